/*  fuzz_oracle: what the record rules (record.h, kinds.h, PROTOCOL.md) say
    of some bytes, found without proto/record.c, so that the record fuzzer
    compares the decoder with something that does not share its bugs.

    The bytes are decoded by another msgpack implementation, msgpack-c's
    C++ parser, bounded: no container may declare more items than the input
    has bytes and nesting stops one past max_depth, so a hostile header
    cannot make it allocate more than a few times the input. Strings are
    checked by glibc's iconv, bodies against the kinds table, ids hashed
    from values packed by the C++ packer. C++ only inside fuzz_oracle.cpp:
    msgpack-c's C and C++ headers do not mix in one file.                   */
#ifndef OMNI_FUZZ_ORACLE_H
#define OMNI_FUZZ_ORACLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The rules an input may break; omni_record_reject_t's reasons, named apart
//  (record.h includes msgpack-c's C headers).
typedef enum {
    ORACLE_TOO_LARGE,
    ORACLE_NOT_MSGPACK,
    ORACLE_TOO_DEEP,
    ORACLE_NOT_MAP,
    ORACLE_BAD_VERSION,
    ORACLE_BAD_ENVELOPE,
    ORACLE_UNKNOWN_KIND,
    ORACLE_BAD_BODY,
    ORACLE_BAD_UTF8,
    ORACLE_RULES
} omni_oracle_rule_t;

typedef struct {
    size_t max_size, max_depth; //  omni_record_limits_t
    uint64_t version;           //  RECORD_VERSION
} omni_oracle_limits_t;

typedef struct {
    //  Bit 1 << rule for each rule the input breaks; the decoder's reason
    //  must be one of them (which one it names first depends on where it
    //  met it). 0: a valid record.
    unsigned broken;
    //  A valid record, as the oracle read it (valid until the next call)
    uint64_t v;
    int64_t ts;
    uint8_t id[16];
    const char *kind, *src, *col, *run;
    size_t kind_len, src_len, col_len, run_len;
    const uint8_t *body, *tags; //  packed again, shortest encodings; tags NULL when absent
    size_t body_size, tags_size;
    uint8_t expected_id[16]; //  SHA-256 of kind, src and natural key (PROTOCOL.md, "Ids")
} omni_oracle_verdict_t;

void fuzz_oracle_judge (const uint8_t *data, size_t size, const omni_oracle_limits_t *limits,
                        omni_oracle_verdict_t *verdict);

#ifdef __cplusplus
}
#endif

#endif
