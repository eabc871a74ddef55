/*  archread: the lines of an archive directory (archiverd's files), in a
    fixed order: kind directory by name, then event date, and for one date
    its compressed segments (<date>.jsonl.zst, <date>.N.jsonl.zst, oldest
    first) before the live <date>.jsonl. Plain and zstd files are read the
    same way, streaming, with constant memory (a line at most in memory).

    Damage is said where it is and skipped: a last line without its newline
    (a file cut short), zstd data that is corrupt or cut short, and any line
    the caller refuses (archread_bad) are reported as "<file>:<line>: why"
    on stderr, counted, and reading goes on with what follows.              */
#ifndef OMNI_ARCHREAD_H
#define OMNI_ARCHREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *const *kinds;   //  NULL or empty: every kind; else these kinds only
    const char *const *sources; //  NULL or empty: every source; else these (src) only
    int64_t since_ns;           //  records with ts before this are skipped (INT64_MIN: none)
    int64_t until_ns;           //  records with ts at or after this are skipped (INT64_MAX: none)
} archread_filter_t;

//  Whether a record passes the filter (the files are pruned by kind and
//  date already; this is the exact test).
bool archread_match (const archread_filter_t *filter, const char *kind, const char *src,
                     int64_t ts);

//  "2024-05-01", "2024-05-01T12:00:00Z" (UTC) into ns since the epoch;
//  -1 on anything else.
int archread_parse_time (const char *text, int64_t *ns);

typedef struct _archread_t archread_t;

//  Lists the archive's files. NULL with `error` when the directory cannot
//  be read.
archread_t *archread_new (const char *dir, const archread_filter_t *filter, char *error,
                          size_t error_size);
void archread_destroy (archread_t **self_p);

//  The next line, without its newline: 1 and *line, *len (valid until the
//  next call), or 0 at the end of the archive.
int archread_next (archread_t *self, const char **line, size_t *len);

//  The line just returned: its file (relative to the archive) and number.
const char *archread_path (archread_t *self);
uint64_t archread_line (archread_t *self);

//  Starts reading at line `line` of file `path` (lines before it and files
//  before it are skipped). A live <date>.jsonl that is no longer there was
//  compressed meanwhile into the date's newest segment: reading starts at
//  that line of it. A segment no longer there: the next file, whole.
void archread_seek (archread_t *self, const char *path, uint64_t line);

//  The caller refuses the line just returned: reported and counted.
void archread_bad (archread_t *self, const char *why);
uint64_t archread_bad_count (archread_t *self);

//  Counts damage without saying it (a first pass that a second one reports).
void archread_quiet (archread_t *self, bool quiet);

//  Progress: bytes of the files (as stored), in total and consumed.
uint64_t archread_total_bytes (archread_t *self);
uint64_t archread_read_bytes (archread_t *self);
size_t archread_files (archread_t *self);

void archread_test (bool verbose);

#endif
