/*  synth: deterministic synthetic records for omni-loadgen.

    Record `index` of a given kind, seed, source and size is always the
    same bytes, so a test can regenerate what it expects; distinct indexes
    (and distinct seeds, for seeds below 10^6) give distinct ids. Records
    are padded to a target encoded size: git.commit records through their
    message, the other kinds through a "pad" tag (for metrics, whose id
    covers their tags, the size is then part of the series identity).

    Kinds: metric (body {name, value, unit}), git.commit (every required
    field), ci.test, ci.build, code.stats, and mix (about half metrics, the
    rest spread over the other four, chosen by seed and index).

    Bad inputs for tests are built byte by byte, never through the record
    encoder (which refuses them), each with the reason ingestd gives it.    */
#ifndef OMNI_SYNTH_H
#define OMNI_SYNTH_H

#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Event time of record index i: SYNTH_T0 + i ms + (seed mod 10^6) ns.
#define SYNTH_T0        1700000000000000000LL
#define SYNTH_HUGE_SIZE ((4u << 20) + (16u << 10)) //  over max_record_size, under its frame limit

typedef struct {
    const char *kind; //  metric | git.commit | ci.test | ci.build | code.stats | mix
    uint64_t seed;
    size_t size;     //  target encoded size in bytes; 0 = no padding
    const char *src; //  default "loadgen"
    const char *col; //  default "omni-loadgen"
    const char *run; //  default "loadgen-<seed>"
    //  ci.test: 0, every result a test of its own; N, builds of N results,
    //  the same N tests in each (a suite run by every build)
    uint64_t suite_size;
} synth_config_t;

typedef enum {
    SYNTH_BAD_NONE = 0,
    SYNTH_BAD_GARBAGE,     //  random bytes after an invalid type byte -> not_msgpack
    SYNTH_BAD_TRUNCATED,   //  a valid record cut in half              -> not_msgpack
    SYNTH_BAD_WRONG_TYPES, //  a metric with body.value a string       -> bad_body
    SYNTH_BAD_VERSION,     //  a metric with v = 99                    -> bad_version
    SYNTH_BAD_DEEP,        //  a body nested 100 levels                -> too_deep
    SYNTH_BAD_HUGE,        //  a record of 4 MiB + 16 KiB              -> too_large
    SYNTH_BAD_COUNT
} synth_bad_t;

typedef struct _synth_t synth_t;

//  NULL with a message in `error` for an unknown kind.
synth_t *synth_new (const synth_config_t *config, char *error, size_t error_size);
void synth_destroy (synth_t **self_p);

//  Record `index`: *data / *size are valid until the next call.
void synth_record (synth_t *self, uint64_t index, const void **data, size_t *size);
//  Id and kind of the record synth_record made last.
const uint8_t *synth_id (synth_t *self);
const char *synth_kind (synth_t *self);

//  Bad input `index` of a mode. *data / *size valid until the next call.
void synth_bad (synth_t *self, synth_bad_t mode, uint64_t index, const void **data, size_t *size);

//  "garbage", "truncated", "wrong-types", "bad-version", "deep", "huge";
//  SYNTH_BAD_NONE for anything else.
synth_bad_t synth_bad_parse (const char *name);
const char *synth_bad_name (synth_bad_t mode);
//  What omni_record_decode (with default limits) says about that mode's input.
omni_record_reject_t synth_bad_reason (synth_bad_t mode);

void synth_test (bool verbose);

#endif
