/*  mpjson: msgpack to JSON, streaming into a growing buffer, with one
    reversible rule for what JSON lacks: binary becomes {"$bin":"<base64>"}.
    Strings must be valid UTF-8 (record_decode guarantees it for records).   */
#ifndef OMNI_MPJSON_H
#define OMNI_MPJSON_H

#include "record.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *data;
    size_t size, capacity;
} mpjson_buf_t;

void mpjson_buf_reset (mpjson_buf_t *buf);
void mpjson_buf_free (mpjson_buf_t *buf);
void mpjson_append (mpjson_buf_t *buf, const char *text, size_t len);

//  Appends the JSON text of a msgpack value.
void mpjson_value (mpjson_buf_t *buf, const msgpack_object *value);
//  Appends a JSON string literal with escapes.
void mpjson_string (mpjson_buf_t *buf, const char *text, size_t len);
//  The body of a JSON string (no quotes) of `len` bytes, escaped by
//  util_json_escape: `untrusted` for bytes that may not be UTF-8.
void mpjson_escaped (mpjson_buf_t *buf, const void *text, size_t len, bool untrusted);

//  Appends one record as a JSON object, one line, no newline:
//  {"v":1,"id":"<hex>","kind":..,"src":..,"col":..,"run":..,"ts":..,"body":{..}[,"tags":{..}]}
void mpjson_record (mpjson_buf_t *buf, const record_t *record);

void mpjson_test (bool verbose);

#endif
