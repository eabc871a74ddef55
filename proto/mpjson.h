/*  mpjson: msgpack to JSON, streaming into a growable buffer (common/buf), with one
    reversible rule for what JSON lacks: binary becomes {"$bin":"<base64>"}.
    Strings must be valid UTF-8 (omni_record_decode guarantees it for records).   */
#ifndef OMNI_MPJSON_H
#define OMNI_MPJSON_H

#include "common/buf.h"
#include "proto/record.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

//  Appends the JSON text of a msgpack value.
void omni_mpjson_value (omni_buf_t *buf, const msgpack_object *value);
//  Appends a JSON string literal with escapes.
void omni_mpjson_string (omni_buf_t *buf, const char *text, size_t len);
//  The body of a JSON string (no quotes) of `len` bytes, escaped by
//  omni_util_json_escape: `untrusted` for bytes that may not be UTF-8.
void omni_mpjson_escaped (omni_buf_t *buf, const void *text, size_t len, bool untrusted);

//  Appends one record as a JSON object, one line, no newline:
//  {"v":1,"id":"<hex>","kind":..,"src":..,"col":..,"run":..,"ts":..,"body":{..}[,"tags":{..}]}
void omni_mpjson_record (omni_buf_t *buf, const omni_record_t *record);

void omni_mpjson_test (bool verbose);

#endif
