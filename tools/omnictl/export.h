/*  export: the archive's records, read one at a time through archread (the
    same files, order, filters and damage reports as replay), written out
    as JSON Lines, YAML or CSV with memory that does not grow with the
    archive.

    json  the lines as archived, byte for byte (only those the filters keep).
    yaml  a stream of documents, one a record, through libyaml's emitter:
          integers and floats as plain scalars YAML resolves to int and
          float, strings always quoted (a string "12" stays a string),
          binary ({"$bin":..} in the archive) as !!binary, maps in order.
    csv   RFC 4180 (CRLF, fields with , " CR or LF quoted, "" inside), one
          table per kind: a header, then a row a record. Columns: id, kind,
          src, col, run, ts, then the body's fields flattened (nested maps
          as a.b.c, arrays as JSON text, binary as base64, null as empty),
          then tags.<name>. A body field named like an envelope column is
          body.<name>. The columns are the union over the kind's records,
          in order of first appearance, so the archive is read twice (the
          first pass keeps only column names). Several kinds go to one file
          each (<dir>/<kind>.csv) with -o DIR; to stdout or -o FILE, one
          kind only (say which with --kind).                               */
#ifndef OMNI_EXPORT_H
#define OMNI_EXPORT_H

#include "tools/omnictl/archread.h"

#include <stdbool.h>

typedef enum { EXPORT_JSON, EXPORT_YAML, EXPORT_CSV } export_format_t;

typedef struct {
    const char *archive_dir;
    archread_filter_t filter;
    export_format_t format;
    const char *output; //  "" or "-": stdout; a file; csv: a directory (exists, or ends in /)
} export_config_t;

//  "json", "yaml", "csv" -> format; -1 on anything else.
int export_format_parse (const char *text, export_format_t *format);

//  Exit status: 0 every record written; 1 the output could not be written
//  (said on stderr); 2 a usage error (said); 3 written, but damaged lines
//  of the archive were skipped (each reported as file:line on stderr).
int export_run (const export_config_t *config);

void export_test (bool verbose);

#endif
