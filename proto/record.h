/*  record: one audit record, a msgpack map
        v     format version (RECORD_VERSION)
        id    16 bytes, hash of the kind's natural key (see omni_record_compute_id)
        kind  e.g. "git.commit"
        src   source, e.g. the repository
        col   collector instance
        run   audit run id
        ts    event time, ns since epoch
        body  kind-specific map
        tags  optional map of string -> string
    A decoded omni_record_t points into its msgpack zone and into the input bytes;
    a checked one (omni_record_check) only into the input bytes.                   */
#ifndef OMNI_RECORD_H
#define OMNI_RECORD_H

#include "proto/kinds.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RECORD_VERSION 1
#define RECORD_ID_SIZE 16

//  Input limits. ingestd enforces them; the defaults fit every collector.
typedef struct {
    size_t max_size;  //  bytes of one encoded record (default 4 MiB)
    size_t max_depth; //  nesting of maps/arrays, the record map is depth 1 (default 16)
} omni_record_limits_t;

extern const omni_record_limits_t omni_record_default_limits;

typedef struct {
    const char *ptr;
    size_t len;
} omni_record_str_t;

typedef struct {
    uint64_t v;
    uint8_t id[RECORD_ID_SIZE];
    omni_record_str_t kind, src, col, run;
    int64_t ts;
    const msgpack_object *body; //  a map
    const msgpack_object *tags; //  a map of str -> str, or NULL
    const omni_kind_spec_t *spec;
    //  Where omni_record_check found things in the encoded record: the id and
    //  the content hash are computed from these bytes, not from msgpack-c
    //  objects, so that ingestd needs no decoding to check an id.
    const uint8_t *raw;
    size_t raw_size;
    size_t body_at, tags_at;     //  offsets of the body and tags maps (tags_at 0: none)
    size_t key_at[KIND_KEY_MAX]; //  offsets of the kind's body key fields (0: absent)
} omni_record_t;

//  Reasons a record is refused; stable names for counters and the tap.
typedef enum {
    REJECT_NONE = 0,
    REJECT_TOO_LARGE,    //  over max_size
    REJECT_NOT_MSGPACK,  //  malformed or truncated msgpack, trailing bytes
    REJECT_TOO_DEEP,     //  over max_depth
    REJECT_NOT_MAP,      //  top level is not a map
    REJECT_BAD_VERSION,  //  missing or unknown v
    REJECT_BAD_ENVELOPE, //  a missing or mistyped envelope field
    REJECT_UNKNOWN_KIND,
    REJECT_BAD_BODY, //  a missing or mistyped body field
    REJECT_BAD_UTF8, //  a string that is not valid UTF-8
    REJECT_BAD_ID,   //  the id is not the hash of kind, src and natural key
    REJECT_REASON_COUNT
} omni_record_reject_t;

const char *omni_record_reject_name (omni_record_reject_t reason);

//  Decodes and validates `data`. On success fills `record` (pointing into
//  `zone`, which the caller owns, and into `data`) and returns REJECT_NONE.
//  On failure returns the reason and writes a human-readable detail into
//  `detail` (e.g. "body.sha: expected str, got int"). Never reads past
//  `size`, never allocates more than a small multiple of `size` (also for
//  refused input: it may leave objects in `zone`). The checks are
//  omni_record_check's and the body and tags are the objects msgpack_unpack
//  makes of them, built during the check's walk (one pass over the bytes).
omni_record_reject_t omni_record_decode (omni_record_t *record, msgpack_zone *zone,
                                         const void *data, size_t size,
                                         const omni_record_limits_t *limits, char *detail,
                                         size_t detail_size);

//  What omni_record_decode computes, the slow way: omni_record_check, then
//  msgpack_unpack of the body and the tags from where it found them. The
//  oracle its self-test and fuzzer hold it to (the same reason and detail,
//  the same objects); not for production paths.
omni_record_reject_t omni_record_decode_unpacked (omni_record_t *record, msgpack_zone *zone,
                                                  const void *data, size_t size,
                                                  const omni_record_limits_t *limits, char *detail,
                                                  size_t detail_size);

//  The same checks and reasons as omni_record_decode, in one pass over `data`
//  and without allocating, for callers that do not read the body (ingestd):
//  fills the envelope fields and spec of `record`, pointing into `data`;
//  body and tags stay NULL.
omni_record_reject_t omni_record_check (omni_record_t *record, const void *data, size_t size,
                                        const omni_record_limits_t *limits, char *detail,
                                        size_t detail_size);

//  Computes the id of a record from its kind's natural key:
//  sha256 ("omni.id/1" 0 kind 0 src 0 msgpack(part1) msgpack(part2) ...)[0..16]
//  where each part is the shortest msgpack encoding of the key field (nil if
//  absent, nothing for an absent "?field" part; "@ts" the event time, "@tags" the tags map), as
//  msgpack-c packs it: an id does not depend on how a sender encoded its values. The record must
//  come from omni_record_check or omni_record_decode. The one derivation of ids: collectors
//  (record_encoder), ingestd (omni_record_check_id), tools.
void omni_record_compute_id (const omni_record_t *record, uint8_t id[RECORD_ID_SIZE]);

//  REJECT_BAD_ID unless the record's id is omni_record_compute_id's (detail
//  names the expected id): a peer cannot file content under another
//  record's id. For a record omni_record_check accepted.
omni_record_reject_t omni_record_check_id (const omni_record_t *record, char *detail,
                                           size_t detail_size);

//  A hash of what a record says, for stores to tell "the same record again"
//  (redelivery, re-collection) from "other content under an existing id":
//  sha256 (id, shortest msgpack of the body)[0..16]. The envelope (col, run,
//  ts) says who sent it when, and the tags that matter are in the id.
#define RECORD_CONTENT_SIZE 16
void omni_record_content_hash (const omni_record_t *record, uint8_t hash[RECORD_CONTENT_SIZE]);

//  Encoder for collectors and tools: pack the body with the msgpack packer,
//  then finish; the id is computed from the kind's natural key.
typedef struct _omni_record_encoder_t omni_record_encoder_t;

omni_record_encoder_t *omni_record_encoder_new (void);
void omni_record_encoder_destroy (omni_record_encoder_t **self_p);

//  Starts a record; the body must then be packed as exactly one map with
//  the packer returned by omni_record_encoder_body.
void omni_record_encoder_begin (omni_record_encoder_t *self, const char *kind, const char *src,
                                const char *col, const char *run, int64_t ts);
msgpack_packer *omni_record_encoder_body (omni_record_encoder_t *self);
//  Adds a tag (kept sorted by key, so equal tag sets give equal ids).
void omni_record_encoder_tag (omni_record_encoder_t *self, const char *key, const char *value);
//  Finishes the record: returns 0 and sets *data/*size to the encoded
//  record (valid until the next begin), or -1 if the body is not a valid
//  map for the kind (detail says why).
//  The envelope the encoder writes, up to the body: into `buf` (cleared
//  first) through `pk`, its packer, the map of 8 fields (9 with tags), v,
//  an id of zeros, kind, src, col, run, ts and the key "body", whose map
//  comes next. Returns the offset of the id in `buf`, to fill in once the
//  record is whole. For producers that skip the encoder (omni-loadgen).
size_t omni_record_pack_head (msgpack_sbuffer *buf, msgpack_packer *pk, bool tags, const char *kind,
                              const char *src, const char *col, const char *run, int64_t ts);
int omni_record_encoder_end (omni_record_encoder_t *self, const void **data, size_t *size,
                             char *detail, size_t detail_size);
//  The id of the record just finished.
const uint8_t *omni_record_encoder_id (omni_record_encoder_t *self);

//  Helpers for reading bodies.
const msgpack_object *omni_record_field (const msgpack_object *map, const char *key);
bool omni_record_field_str (const msgpack_object *map, const char *key, omni_record_str_t *out);
bool omni_record_field_int (const msgpack_object *map, const char *key, int64_t *out);
bool omni_record_field_num (const msgpack_object *map, const char *key, double *out);
bool omni_record_field_bool (const msgpack_object *map, const char *key, bool *out);
bool omni_record_str_eq (omni_record_str_t s, const char *cstr);
//  Packs a NUL-terminated string (bodies are mostly built from these).
void omni_record_pack_str (msgpack_packer *pk, const char *text);
//  Packs a map entry: a key (such a string) and its value.
void omni_record_pack_kv (msgpack_packer *pk, const char *key, const char *value);
void omni_record_pack_kv_int (msgpack_packer *pk, const char *key, int64_t value);
void omni_record_pack_kv_double (msgpack_packer *pk, const char *key, double value);
void omni_record_pack_kv_bool (msgpack_packer *pk, const char *key, bool value);
//  Packs a NULL-terminated list of such strings as an array.
void omni_record_pack_strv (msgpack_packer *pk, const char *const *list);
//  A NUL-terminated copy; caller frees.
char *omni_record_str_dup (omni_record_str_t s);

void omni_record_test (bool verbose);

#endif
