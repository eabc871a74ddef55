/*  pgcopy: the COPY ... FROM STDIN encoder of the PostgreSQL writers. Rows
    are built field by field into a buffer that is sent in large chunks over
    an omni_pgconn_t. Each put encodes its value for the format chosen at
    begin, so callers write the same code for text and binary. Binary needs
    the staging column types to match exactly: text, int8, int4, int2,
    float8, bool, bytea, jsonb, text[], timestamptz.

    One encoder per connection (a COPY holds its connection until its end);
    the encoder keeps its buffer between COPYs, so a writer's batches reuse
    it. Errors are the connection's: omni_pgconn_error and friends.

    Also here: the rule for text PostgreSQL cannot hold (U+0000), which
    COPY and query parameters share.                                        */
#ifndef OMNI_PGCOPY_H
#define OMNI_PGCOPY_H

#include "common/buf.h"
#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _omni_pgcopy_t omni_pgcopy_t;

typedef enum { PGCOPY_TEXT, PGCOPY_BINARY } omni_pgcopy_format_t;

omni_pgcopy_t *omni_pgcopy_new (void);
void omni_pgcopy_destroy (omni_pgcopy_t **self_p);

//  Starts COPY `table` (`columns`) FROM STDIN on `conn`; `columns` NULL =
//  all, in table order. `table` and `columns` come from the program, never
//  from data. Returns -1 when refused (omni_pgconn_last_status says why).
int omni_pgcopy_begin (omni_pgcopy_t *self, omni_pgconn_t *conn, const char *table,
                       const char *columns, omni_pgcopy_format_t format);
void omni_pgcopy_row (omni_pgcopy_t *self, int nfields);
void omni_pgcopy_null (omni_pgcopy_t *self);
//  Text must be valid UTF-8 without NUL bytes (see omni_pgcopy_text_clean).
void omni_pgcopy_text (omni_pgcopy_t *self, const char *text, size_t len);
void omni_pgcopy_int8 (omni_pgcopy_t *self, int64_t value);
void omni_pgcopy_int4 (omni_pgcopy_t *self, int32_t value);
void omni_pgcopy_float8 (omni_pgcopy_t *self, double value);
void omni_pgcopy_bool (omni_pgcopy_t *self, bool value);
void omni_pgcopy_bytea (omni_pgcopy_t *self, const void *data, size_t len);
//  JSON text into a jsonb column (the server parses it: a bad one fails
//  the COPY); the same rules as text (see omni_pgcopy_json_clean).
void omni_pgcopy_jsonb (omni_pgcopy_t *self, const char *json, size_t len);
//  A one-dimensional text[]; `items[i]` of `lens[i]` bytes.
void omni_pgcopy_text_array (omni_pgcopy_t *self, const char *const *items, const size_t *lens,
                             size_t count);
//  A timestamptz from ns since the epoch (always in range).
void omni_pgcopy_timestamptz_ns (omni_pgcopy_t *self, int64_t ns);
//  Sends the end-of-data marker and reads the result.
omni_pgconn_status_t omni_pgcopy_end (omni_pgcopy_t *self);
//  Rows sent since begin.
uint64_t omni_pgcopy_rows (omni_pgcopy_t *self);

//  ---------------------------------------------------------------------------
//  PostgreSQL text cannot hold U+0000. The rule OmniAudit applies: every NUL
//  byte becomes U+FFFD (EF BF BD), so the loss is visible. Returns `text`
//  itself when it has no NUL (nothing copied), else a cleaned copy in
//  `scratch` (its content replaced; reused across calls, the caller
//  releases it) with its length in `*out_len`.
const char *omni_pgcopy_text_clean (const char *text, size_t len, omni_buf_t *scratch,
                                    size_t *out_len);
//  The same rule for JSON text: each \u0000 escape becomes \ufffd (jsonb
//  refuses \u0000). Edits `json` in place.
void omni_pgcopy_json_clean (char *json, size_t len);

void omni_pgcopy_test (bool verbose);

#endif
