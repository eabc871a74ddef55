/*  exec: `collectord exec --kind KIND [--interval D] -- COMMAND [ARG...]`.
    Runs the command (once, or every --interval), reads JSON Lines from its
    standard output, and sends each line as one record of KIND:

        KIND  x.<name> (a custom kind: any body, to the archive and document
              writers, keyed on the whole body), name of letters, digits
              and . _ -; or a declared kind (metric, ci.build ...) whose
              body fields must then validate as the kinds table says

    Body: the line's JSON object as msgpack, integers as integers, other
    numbers as floats, nested objects and arrays kept; object keys sorted
    (bytewise), so that the same object gives the same record id whatever
    the order of its keys. ts: when the line was read.

    A bad line (not JSON, not an object, a duplicate key, over 4 MiB, a body
    the kind refuses) is logged with its line number and skipped; the run
    goes on, and run.end counts it (counts.bad_lines). Blank lines are
    ignored. The command's stderr is collectord's; its stdin is /dev/null;
    it runs in its own process group, which SIGTERM reaches when collectord
    is stopped. A command that exits non-zero, or is killed, fails the run
    (after the lines it printed are sent). src: --source, else the command
    line.                                                                 */
#ifndef OMNI_COLLECTORD_EXEC_H
#define OMNI_COLLECTORD_EXEC_H

#include "collectord/collector.h"

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#define EXEC_LINE_MAX (4u << 20)

//  Called for each line of output (without its newline); `line` is NULL
//  for a line over EXEC_LINE_MAX (skipped). Returns 0 to go on.
typedef int (exec_line_fn) (void *arg, const char *line, size_t len, size_t lineno);
//  Polled while the command runs: true stops it (SIGTERM to its group).
typedef bool (exec_stop_fn) (void *arg);

//  Runs argv (PATH searched), calls `fn` per line of its stdout. Returns 0
//  when the command exited 0; -1 with `error` otherwise (could not start,
//  exit status, signal, stopped).
int exec_run (char *const *argv, exec_line_fn *fn, exec_stop_fn *stop, void *arg, char *error,
              size_t error_size);

//  Packs a JSON value as msgpack (objects with sorted keys).
void exec_pack_json (msgpack_packer *pk, json_t *value);

//  True when `kind` may be sent by exec: x.<name> or a declared kind other
//  than run.start / run.end.
bool exec_kind_valid (const char *kind);

extern const collector_t exec_collector;

void exec_test (bool verbose);

#endif
