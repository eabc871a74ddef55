/*  jsonrec: one archive line (the JSON omni_mpjson_record wrote) back to the
    msgpack record it was made from, byte for byte, so that a replayed
    record has the same id and every writer stores the same thing.

    The inverse of mpjson's rules: integers stay integers (msgpack's
    smallest encoding, as msgpack-c packs them), numbers with '.' or an
    exponent are float64, {"$bin":"<base64>"} is binary, the envelope's
    "id" (32 hex digits) is the 16-byte binary id, maps keep their order.
    What the archive cannot say is lost the same way for every line: a
    float32 comes back float64, an integer above INT64_MAX or a non-finite
    float (mpjson writes nan/inf, not JSON) is a bad line.                   */
#ifndef OMNI_JSONREC_H
#define OMNI_JSONREC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _jsonrec_t jsonrec_t;

jsonrec_t *jsonrec_new (void);
void jsonrec_destroy (jsonrec_t **self_p);

//  Parses one line (without its newline). Returns 0 and sets *data, *size
//  to the record (valid until the next call), or -1 with `error` saying why.
int jsonrec_pack (jsonrec_t *self, const char *line, size_t len, const void **data, size_t *size,
                  char *error, size_t error_size);

//  Checks one line and reads its envelope (export json, which writes the
//  line as it is): 0, or -1 with `error` saying why. The "id" is not
//  checked (as jsonrec_parse).
int jsonrec_check (jsonrec_t *self, const char *line, size_t len, char *error, size_t error_size);

//  Parses one line into a tree (export yaml and csv). Returns the object
//  (owned by self, valid until the next call) or NULL with `error`.
json_t *jsonrec_parse (jsonrec_t *self, const char *line, size_t len, char *error,
                       size_t error_size);

//  The envelope fields of the last parsed line (NULL / 0 when absent).
const char *jsonrec_kind (jsonrec_t *self);
const char *jsonrec_src (jsonrec_t *self);
long long jsonrec_ts (jsonrec_t *self);

void jsonrec_test (bool verbose);

#endif
