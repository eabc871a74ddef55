/*  docmap: a record as a BSON document, the one shape documentd stores.

        _id    string, the record id in lower-case hex (32 characters: the
               same text as the archive's and the tap's `id`). Not BinData:
               FerretDB 1.24 serves a query by _id in SQL only when the
               _id is a string or an ObjectId (README: "Why a string _id")
        kind   string, e.g. "git.commit"
        src    string
        col    string
        run    string
        ts     BSON date (ms since epoch, rounded down)
        ts_ns  int64, the exact event time in ns
        body   document: the body map converted value by value
        tags   document of strings (only when the record has tags)

    Values: map -> document, array -> array, str -> string (UTF-8, embedded
    NUL kept), bin -> BinData subtype 0, int -> int64, float -> double,
    bool -> bool, nil -> null. An unsigned integer above INT64_MAX becomes
    the nearest double (exact for multiples of 2^11 up to 2^64): MongoDB has
    no uint64, and decimal128 is not served by every MongoDB-wire server; the
    exact value stays in the archive.

    Keys: MongoDB-wire servers refuse (or treat as operators or paths) keys
    that start with '$' or contain '.', and BSON keys cannot hold NUL. Such
    keys are escaped: a leading '$' becomes U+FF04 (＄), every '.' U+FF0E (．),
    every NUL U+FFFD. A map that holds the same key twice (after escaping)
    keeps the last value, as JSON parsers do; servers refuse duplicate keys. */
#ifndef OMNI_DOCMAP_H
#define OMNI_DOCMAP_H

#include "proto/record.h"

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

//  Appends the document of `record` to `doc` (initialised, normally empty).
//  Returns false only if libbson refuses to grow the document (over 2 GiB).
bool docmap_record (bson_t *doc, const omni_record_t *record);

//  Appends `_id`: the record id as 32 lower-case hex digits.
bool docmap_append_id (bson_t *doc, const char *key, const uint8_t *id);

//  Appends a msgpack value under `key` (key_len bytes, already escaped).
bool docmap_value (bson_t *doc, const char *key, size_t key_len, const msgpack_object *value);

//  Whether `key` needs escaping; docmap_key_escape writes the escaped key
//  into `out` (at most 3 * len + 1 bytes, NUL-terminated) and returns its length.
bool docmap_key_needs_escape (const char *key, size_t len);
size_t docmap_key_escape (const char *key, size_t len, char *out);

//  Milliseconds since the epoch of a time in ns, rounded down (also before 1970).
int64_t docmap_ns_to_ms (int64_t ns);

void docmap_test (bool verbose);

#endif
