/*  record: decode, validate, identify and encode audit records.

    Validation is one walk over the raw bytes (s_walk) that checks every
    declared length and count against the bytes that remain, the depth limit,
    UTF-8 strings, string map keys, finite floats and no extension types, and
    on the way notes where the envelope fields are; the envelope and the body
    are then checked against the kinds table from those positions, reading
    headers only. omni_record_check stops there, without allocating: it is what
    ingestd runs on every record.

    omni_record_decode, for the writers and every reader of bodies, runs the
    same walk and the same checks, and the walk also builds msgpack-c's
    objects for the body and tags maps as it goes (what msgpack_unpack would
    make of them, strings pointing into the input): the writers re-check
    every record (the JetStream stream takes any publisher's bytes, and the
    stores read fields without looking at their types again), and walking
    the bytes once to check and again to unpack cost metricsd ~600 of its
    ~8,000 instructions per point (issue 20). Building while checking needs
    one care msgpack_unpack after a check did not: a container's elements
    are allocated from its declared count before they are seen, so the walk
    stops building once the containers declare more items than the frame
    has bytes (s_walk): what it allocates stays within a small multiple of the
    frame size, for a lying frame too. omni_record_decode_unpacked, the
    check then msgpack_unpack, is kept as the oracle the self-test and the
    fuzzer hold the one walk to.                                             */
#include "proto/record.h"
#include "common/buf.h"
#include "common/util.h"

#include "testsupport/selftest.h"

#include <assert.h>
#include <dirent.h>
#include <malloc.h>
#include <math.h>
#include <stddef.h>
//  For SHA256_Init and friends (see s_hash_t)
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const omni_record_limits_t omni_record_default_limits = {4 * 1024 * 1024, 16};

static const char *s_reject_names[REJECT_REASON_COUNT] = {
    "none",         "too_large",    "not_msgpack", "too_deep", "not_map", "bad_version",
    "bad_envelope", "unknown_kind", "bad_body",    "bad_utf8", "bad_id"};

const char *
omni_record_reject_name (omni_record_reject_t reason)
{
    return reason < REJECT_REASON_COUNT ? s_reject_names[reason] : "unknown";
}

static omni_record_reject_t
s_fail (omni_record_reject_t reason, char *detail, size_t detail_size, const char *format, ...)
{
    if (detail && detail_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (detail, detail_size, format, args);
        va_end (args);
    }
    return reason;
}

//  Whether a string is all ASCII (most are): checked inline, eight bytes
//  at a time, before the full UTF-8 check. Most strings are map keys of a
//  few bytes, so short ones are read as two overlapping words, not byte by
//  byte.
static inline bool
s_ascii (const uint8_t *s, size_t len)
{
    uint64_t high = 0;
    if (len >= 8) {
        for (size_t i = 0; i + 8 <= len; i += 8) {
            uint64_t word;
            memcpy (&word, s + i, 8);
            high |= word;
        }
        uint64_t last;
        memcpy (&last, s + len - 8, 8);
        high |= last;
    } else if (len >= 4) {
        uint32_t first, last;
        memcpy (&first, s, 4);
        memcpy (&last, s + len - 4, 4);
        high = first | last;
    } else if (len > 0)
        high = s[0] | s[len / 2] | s[len - 1];
    return !(high & 0x8080808080808080ULL);
}

//  A big-endian number of `n` (1, 2, 4 or 8) bytes: a load and a byte swap
//  each, where a loop over the bytes took 7 instructions a byte (a float64
//  or an int64 of every record, twice in a decode).
static inline uint64_t
s_be (const uint8_t *p, int n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    switch (n) {
    case 1: return p[0];
    case 2: {
        uint16_t v;
        memcpy (&v, p, 2);
        return __builtin_bswap16 (v);
    }
    case 4: {
        uint32_t v;
        memcpy (&v, p, 4);
        return __builtin_bswap32 (v);
    }
    case 8: {
        uint64_t v;
        memcpy (&v, p, 8);
        return __builtin_bswap64 (v);
    }
    default: break;
    }
#endif
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

//  The same, read as a two's complement integer of that width.
static inline int64_t
s_be_signed (const uint8_t *p, int n)
{
    uint64_t raw = s_be (p, n);
    if (n == 8)
        return (int64_t) raw;
    uint64_t sign = 1ULL << (8 * n - 1);
    return (int64_t) (raw ^ sign) - (int64_t) sign;
}

typedef struct {
    uint64_t remaining; //  items left in this container (a map counts keys and values)
    bool is_map;
    //  When the walk builds objects (omni_record_decode): where the
    //  container's next item goes (a map's key, then its value), or NULL
    msgpack_object *next;
} s_frame_t;

#define S_STACK_MAX 64

_Static_assert(sizeof (msgpack_object_kv) == 2 * sizeof (msgpack_object) &&
                   offsetof (msgpack_object_kv, val) == sizeof (msgpack_object),
               "a map's pairs are built as two objects each (s_walk)");

//  Root map entries noted by the walk. Only 9 distinct keys are valid, so
//  by the 10th entry at the latest the envelope check has failed: the
//  entries after it are never looked at.
#define S_ENTRIES 10

typedef struct {
    const char *key;
    size_t key_len;
    size_t at;              //  offset of the value
    bool not_all_str;       //  a map with a value that is not a string (bad tags)
    msgpack_object *object; //  a map value as the walk built it (body, tags), or NULL
} s_entry_t;

typedef struct {
    s_entry_t entry[S_ENTRIES];
    size_t count; //  root values seen, may exceed S_ENTRIES
} s_root_t;

//  A scalar, string or bin value as msgpack-c's unpacker builds it: strings
//  and bins point into the input (an empty one just after its header,
//  where msgpack-c leaves a stale position or NULL), a signed encoding of a
//  value >= 0 is a positive integer, a float32 is widened and typed FLOAT32.
//  `t` is the type byte, `at` where its payload starts (after any length
//  field), `payload` its size.
static inline void
s_build_value (msgpack_object *o, uint8_t t, const uint8_t *at, uint64_t payload)
{
    if (t <= 0x7f) {
        o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o->via.u64 = t;
    } else if (t >= 0xe0) {
        o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o->via.i64 = (int8_t) t;
    } else if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) {
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.size = (uint32_t) payload;
        o->via.str.ptr = (const char *) at;
    } else
        switch (t) {
        case 0xc0: o->type = MSGPACK_OBJECT_NIL; break;
        case 0xc2:
        case 0xc3:
            o->type = MSGPACK_OBJECT_BOOLEAN;
            o->via.boolean = t == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
            o->type = MSGPACK_OBJECT_BIN;
            o->via.bin.size = (uint32_t) payload;
            o->via.bin.ptr = (const char *) at;
            break;
        case 0xca: {
            uint32_t bits = (uint32_t) s_be (at, 4);
            float f;
            memcpy (&f, &bits, 4);
            o->type = MSGPACK_OBJECT_FLOAT32;
            o->via.f64 = f;
            break;
        }
        case 0xcb: {
            uint64_t bits = s_be (at, 8);
            o->type = MSGPACK_OBJECT_FLOAT64;
            memcpy (&o->via.f64, &bits, 8);
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = s_be (at, (int) payload);
            break;
        default: { //  0xd0 to 0xd3: the walk lets nothing else through here
            int64_t v = s_be_signed (at, (int) payload);
            if (v < 0) {
                o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
                o->via.i64 = v;
            } else {
                o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
                o->via.u64 = (uint64_t) v;
            }
            break;
        }
        }
}

//  Structural checks over the whole input, in byte order (the first problem
//  found is the one reported). With `root`, the top level is a map and its
//  entries are noted for the envelope checks that follow.
//
//  With `zone` (omni_record_decode), the same walk also builds msgpack-c's
//  objects for every map that is a value of the top-level map (the body and
//  the tags, in a valid record), in the zone, as msgpack_unpack would: the
//  bytes are read once for both. A container's elements are allocated from
//  its declared count when its header is read, before they are seen. So
//  that a frame that lies about its counts cannot make the walk allocate
//  more than a valid record of its size (nested containers each declaring
//  nearly all the bytes that remain, then a truncation), the walk allocates
//  no more than one object per byte of input: each item of a valid record
//  takes a byte at least, so a record whose containers declare more items
//  than it has bytes will be refused, and nothing more is built once that
//  budget is spent. A map's pairs are allocated as twice as many objects,
//  each key then its value (msgpack_object_kv is two objects, no padding).
//
//  Always inlined: omni_record_check's walk (zone NULL, what ingestd runs
//  on every record) compiles without any of the building.
static inline __attribute__ ((always_inline)) omni_record_reject_t
s_walk (const uint8_t *p, size_t size, size_t max_depth, s_root_t *root, msgpack_zone *zone,
        char *detail, size_t detail_size)
{
    //  The innermost open container's state stays in locals, the outer
    //  ones on the stack: the loop then reads no memory it just wrote. At
    //  depth 0 the frame is the top level, which holds one value.
    s_frame_t stack[S_STACK_MAX];
    size_t depth = 0, pos = 0;
    uint64_t remaining = 1;
    bool in_map = false;
    msgpack_object *next = NULL; //  building: where the next item goes
    uint64_t budget = size;      //  building: objects it may still allocate
    bool building = zone != NULL;
    while (remaining) {
        if (pos >= size)
            return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated at byte %zu", pos);
        bool is_key = in_map && remaining % 2 == 0;
        size_t at = pos;
        uint8_t t = p[pos++];
        size_t left = size - pos;
        uint64_t payload = 0; //  bytes following the header
        uint64_t items = 0;   //  container items, for maps keys + values
        bool container = false, is_map = false, is_str = false;
        int hdr = 0;
        if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
            ;
        else if (t >= 0xa0 && t <= 0xbf) {
            payload = t & 0x1f;
            is_str = true;
        } else if (t >= 0x90 && t <= 0x9f) {
            items = t & 0x0f;
            container = true;
        } else if (t >= 0x80 && t <= 0x8f) {
            items = (uint64_t) (t & 0x0f) * 2;
            container = is_map = true;
        } else
            switch (t) {
            case 0xcc:
            case 0xd0: hdr = 1; break;
            case 0xcd:
            case 0xd1: hdr = 2; break;
            case 0xce:
            case 0xd2: hdr = 4; break;
            case 0xcf:
            case 0xd3: hdr = 8; break;
            case 0xca:
            case 0xcb: {
                int n = t == 0xca ? 4 : 8;
                if (left < (size_t) n)
                    return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated float");
                double d;
                if (n == 4) {
                    uint32_t bits = (uint32_t) s_be (p + pos, 4);
                    float f;
                    memcpy (&f, &bits, 4);
                    d = f;
                } else {
                    uint64_t bits = s_be (p + pos, 8);
                    memcpy (&d, &bits, 8);
                }
                if (!isfinite (d))
                    return s_fail (REJECT_BAD_BODY, detail, detail_size,
                                   "non-finite float at byte %zu", pos - 1);
                payload = (uint64_t) n;
                break;
            }
            case 0xd9:
            case 0xda:
            case 0xdb:
            case 0xc4:
            case 0xc5:
            case 0xc6: {
                int n = (t == 0xd9 || t == 0xc4) ? 1 : (t == 0xda || t == 0xc5) ? 2 : 4;
                if (left < (size_t) n)
                    return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated length");
                payload = s_be (p + pos, n);
                pos += (size_t) n;
                left -= (size_t) n;
                is_str = t >= 0xd9;
                break;
            }
            case 0xdc:
            case 0xdd:
            case 0xde:
            case 0xdf: {
                int n = (t == 0xdc || t == 0xde) ? 2 : 4;
                if (left < (size_t) n)
                    return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated count");
                items = s_be (p + pos, n);
                pos += (size_t) n;
                left -= (size_t) n;
                container = true;
                if (t >= 0xde) {
                    is_map = true;
                    items *= 2;
                }
                break;
            }
            case 0xc1:
                return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                               "invalid type byte 0xc1 at %zu", pos - 1);
            default:
                return s_fail (REJECT_BAD_BODY, detail, detail_size,
                               "extension type 0x%02x at byte %zu is not supported", t, pos - 1);
            }
        if (is_key && !is_str)
            return s_fail (REJECT_BAD_BODY, detail, detail_size,
                           "map key at byte %zu is not a string", pos - 1);
        if (hdr) {
            if (left < (size_t) hdr)
                return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated integer");
            payload = (uint64_t) hdr;
        }
        if (payload > left)
            return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                           "value at byte %zu declares %llu bytes, %zu remain", pos - 1,
                           (unsigned long long) payload, left);
        if (is_str && !s_ascii (p + pos, payload) && !omni_util_utf8_valid (p + pos, payload))
            return s_fail (REJECT_BAD_UTF8, detail, detail_size,
                           "string at byte %zu is not valid UTF-8", pos - 1);
        if (root && depth == 1) {
            if (root->count < S_ENTRIES) {
                s_entry_t *entry = &root->entry[root->count];
                if (is_key) {
                    entry->key = (const char *) p + pos;
                    entry->key_len = (size_t) payload;
                    entry->not_all_str = false;
                    entry->object = NULL;
                } else
                    entry->at = at;
            }
            if (!is_key)
                root->count++;
        } else if (root && depth == 2 && !is_key && !is_str && in_map && root->count <= S_ENTRIES)
            root->entry[root->count - 1].not_all_str = true;
        if (next && !container)
            s_build_value (next++, t, p + pos, payload);
        pos += payload;
        remaining--;
        if (container) {
            if (items > size - pos)
                return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                               "container declares %llu items, %zu bytes remain",
                               (unsigned long long) items, size - pos);
            if (depth + 1 > max_depth || depth + 1 > S_STACK_MAX)
                return s_fail (REJECT_TOO_DEEP, detail, detail_size, "nesting deeper than %zu",
                               max_depth);
            msgpack_object *elements = NULL, *out = NULL;
            if (zone) {
                if (next)
                    out = next++;
                else if (root && depth == 1 && is_map && root->count <= S_ENTRIES) {
                    //  A map in the record map (the body, the tags)
                    out = msgpack_zone_malloc (zone, sizeof *out);
                    if (!out)
                        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                                       "msgpack decoder refused it");
                    root->entry[root->count - 1].object = out;
                }
            }
            if (out) {
                if (items > budget) {
                    zone = NULL; //  will be refused (see the top): build no more
                    next = NULL;
                } else {
                    budget -= items;
                    //  Allocated even when empty (a pointer into the zone), as
                    //  msgpack-c's unpacker does
                    elements = msgpack_zone_malloc (zone, (size_t) items * sizeof *elements);
                    if (!elements)
                        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                                       "msgpack decoder refused it");
                    if (is_map) {
                        out->type = MSGPACK_OBJECT_MAP;
                        out->via.map.size = (uint32_t) (items / 2);
                        out->via.map.ptr = (msgpack_object_kv *) elements;
                    } else {
                        out->type = MSGPACK_OBJECT_ARRAY;
                        out->via.array.size = (uint32_t) items;
                        out->via.array.ptr = elements;
                    }
                }
            }
            if (items) {
                stack[depth].remaining = remaining;
                stack[depth].is_map = in_map;
                stack[depth].next = next;
                depth++;
                remaining = items;
                in_map = is_map;
                next = elements;
            }
        }
        while (remaining == 0 && depth > 0) {
            depth--;
            remaining = stack[depth].remaining;
            in_map = stack[depth].is_map;
            next = zone ? stack[depth].next : NULL;
        }
    }
    if (pos != size)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "%zu trailing bytes", size - pos);
    //  Building stops only for inputs refused above (see the top): a guard
    if (building && !zone)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "msgpack decoder refused it");
    return REJECT_NONE;
}

//  A value's type as the checks name it, msgpack-c's way: a signed
//  encoding of a value >= 0 is a positive integer.
typedef enum { S_NIL, S_BOOL, S_POS, S_NEG, S_FLOAT, S_STR, S_BIN, S_ARRAY, S_MAP } s_type_t;

typedef struct {
    s_type_t type;
    size_t head;  //  bytes up to the payload (str, bin) or the first item; all of a scalar
    uint64_t len; //  str, bin: payload bytes; array: items; map: keys + values
    uint64_t u;   //  S_POS
    int64_t i;    //  S_NEG
} s_head_t;

//  Reads the header of a value s_walk has accepted (so no bounds checks).
static inline __attribute__ ((always_inline)) void
s_head (const uint8_t *p, s_head_t *h)
{
    uint8_t t = p[0];
    h->head = 1;
    h->len = 0;
    h->u = 0;
    h->i = 0;
    if (t <= 0x7f) {
        h->type = S_POS;
        h->u = t;
    } else if (t >= 0xe0) {
        h->type = S_NEG;
        h->i = (int8_t) t;
    } else if (t <= 0x8f) {
        h->type = S_MAP;
        h->len = (uint64_t) (t & 0x0f) * 2;
    } else if (t <= 0x9f) {
        h->type = S_ARRAY;
        h->len = t & 0x0f;
    } else if (t <= 0xbf) {
        h->type = S_STR;
        h->len = t & 0x1f;
    } else
        switch (t) {
        case 0xc2:
        case 0xc3: h->type = S_BOOL; break;
        case 0xc4:
        case 0xc5:
        case 0xc6:
        case 0xd9:
        case 0xda:
        case 0xdb: {
            //  bin and str 8, 16, 32: the same length field
            bool str = t >= 0xd9;
            int n = 1 << (t - (str ? 0xd9 : 0xc4));
            h->type = str ? S_STR : S_BIN;
            h->len = s_be (p + 1, n);
            h->head += (size_t) n;
            break;
        }
        case 0xca:
            h->type = S_FLOAT;
            h->head = 5;
            break;
        case 0xcb:
            h->type = S_FLOAT;
            h->head = 9;
            break;
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf: {
            int n = 1 << (t - 0xcc);
            h->type = S_POS;
            h->u = s_be (p + 1, n);
            h->head += (size_t) n;
            break;
        }
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            int n = 1 << (t - 0xd0);
            int64_t v = s_be_signed (p + 1, n);
            if (v < 0) {
                h->type = S_NEG;
                h->i = v;
            } else {
                h->type = S_POS;
                h->u = (uint64_t) v;
            }
            h->head += (size_t) n;
            break;
        }
        case 0xdc:
        case 0xdd:
            h->type = S_ARRAY;
            h->len = s_be (p + 1, t == 0xdc ? 2 : 4);
            h->head += t == 0xdc ? 2 : 4;
            break;
        case 0xde:
        case 0xdf:
            h->type = S_MAP;
            h->len = s_be (p + 1, t == 0xde ? 2 : 4) * 2;
            h->head += t == 0xde ? 2 : 4;
            break;
        default: h->type = S_NIL; break; //  0xc0; s_walk let nothing else through
        }
}

//  Offset just past the (accepted) value at `pos`.
static size_t
s_skip (const uint8_t *p, size_t pos)
{
    uint64_t pending = 1;
    while (pending) {
        s_head_t h;
        s_head (p + pos, &h);
        pos += h.head;
        pending--;
        if (h.type == S_STR || h.type == S_BIN)
            pos += (size_t) h.len;
        else if (h.type == S_ARRAY || h.type == S_MAP)
            pending += h.len;
    }
    return pos;
}

static bool
s_key_is (const msgpack_object *key, const char *name)
{
    size_t len = strlen (name);
    return key->type == MSGPACK_OBJECT_STR && key->via.str.size == len &&
           memcmp (key->via.str.ptr, name, len) == 0;
}

const msgpack_object *
omni_record_field (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (s_key_is (&map->via.map.ptr[i].key, key))
            return &map->via.map.ptr[i].val;
    return NULL;
}

static bool
s_is_int (const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX);
}

static const char *
s_head_type_name (const s_head_t *h)
{
    static const char *names[] = {"nil", "bool", "int",   "int", "float",
                                  "str", "bin",  "array", "map"};
    return names[h->type];
}

static bool
s_head_is_int (const s_head_t *h)
{
    return h->type == S_NEG || (h->type == S_POS && h->u <= INT64_MAX);
}

static bool
s_type_ok (omni_field_type_t type, const s_head_t *h)
{
    switch (type) {
    case FIELD_STR: return h->type == S_STR;
    case FIELD_INT: return s_head_is_int (h);
    case FIELD_NUM: return s_head_is_int (h) || h->type == S_FLOAT;
    case FIELD_BOOL: return h->type == S_BOOL;
    case FIELD_BIN: return h->type == S_BIN;
    case FIELD_ARRAY: return h->type == S_ARRAY;
    case FIELD_MAP: return h->type == S_MAP;
    case FIELD_ANY: return true;
    }
    return false;
}

static omni_record_reject_t
s_envelope_str (const uint8_t *value, const s_head_t *h, const char *name, omni_record_str_t *out,
                char *detail, size_t detail_size)
{
    if (h->type != S_STR)
        return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "%s: expected str, got %s", name,
                       s_head_type_name (h));
    out->ptr = (const char *) value + h->head;
    out->len = (size_t) h->len;
    return REJECT_NONE;
}

//  Index of an envelope field in the order of `names` in omni_record_check, or
//  -1: a switch on the length first, because this runs for every field of
//  every record ingestd receives.
static int
s_envelope_index (const char *p, size_t len)
{
    switch (len) {
    case 1: return *p == 'v' ? 0 : -1;
    case 2:
        if (memcmp (p, "id", 2) == 0)
            return 1;
        return memcmp (p, "ts", 2) == 0 ? 6 : -1;
    case 3:
        if (memcmp (p, "src", 3) == 0)
            return 3;
        if (memcmp (p, "col", 3) == 0)
            return 4;
        return memcmp (p, "run", 3) == 0 ? 5 : -1;
    case 4:
        if (memcmp (p, "kind", 4) == 0)
            return 2;
        if (memcmp (p, "body", 4) == 0)
            return 7;
        return memcmp (p, "tags", 4) == 0 ? 8 : -1;
    default: return -1;
    }
}

//  Where a value is, for a reject's detail (formatted only then):
//  body.<member>, body.<field>.<member> inside a map, or
//  body.<field>[<index>].<member> inside an array's element
typedef struct {
    const char *field; //  NULL: the body's own members
    int64_t index;     //  -1: not an array's element
} s_where_t;

static omni_record_reject_t s_check_members (const uint8_t *p, size_t at,
                                             const omni_field_spec_t *fields, s_where_t where,
                                             omni_record_t *record, char *detail,
                                             size_t detail_size);

static omni_record_reject_t
s_where_fail (s_where_t where, const char *member, char *detail, size_t detail_size,
              const char *what, const char *got)
{
    char at[96] = "", index[24] = "";
    if (where.index >= 0)
        snprintf (index, sizeof index, "[%lld]", (long long) where.index);
    if (where.field)
        snprintf (at, sizeof at, "%s%s%s", where.field, index, member ? "." : "");
    return s_fail (REJECT_BAD_BODY, detail, detail_size, "body.%s%s: %s%s", at,
                   member ? member : "", what, got);
}

//  The elements of the array at `at` (the body's member `field`), each
//  against `element`
static omni_record_reject_t
s_check_elements (const uint8_t *p, size_t at, const omni_field_spec_t *element, const char *field,
                  char *detail, size_t detail_size)
{
    s_head_t array;
    s_head (p + at, &array);
    size_t pos = at + array.head;
    for (uint64_t i = 0; i < array.len; i++) {
        s_head_t h;
        s_head (p + pos, &h);
        s_where_t where = {field, (int64_t) i};
        if (!(h.type == S_NIL && !element->required)) {
            if (!s_type_ok (element->type, &h)) {
                char what[32];
                snprintf (what, sizeof what, "expected %s, got ",
                          omni_field_type_name (element->type));
                return s_where_fail (where, NULL, detail, detail_size, what, s_head_type_name (&h));
            }
            if (element->members && h.type == S_MAP) {
                omni_record_reject_t rc =
                    s_check_members (p, pos, element->members, where, NULL, detail, detail_size);
                if (rc != REJECT_NONE)
                    return rc;
            }
        }
        pos = s_skip (p, pos);
    }
    return REJECT_NONE;
}

//  The map at `at` against `fields`, in one pass over its entries: each key
//  is matched against the fields (first byte and length first: this runs
//  for every record ingestd receives), each known member is of its type
//  (nil when optional) with its elements (an array's, in the body only) or
//  members (a map's) checked in turn, and each required one is present.
//  For the body (`record` given), where the natural key's fields are is
//  noted in `record` (the first occurrence, as omni_record_field finds).
static omni_record_reject_t
s_check_members (const uint8_t *p, size_t at, const omni_field_spec_t *fields, s_where_t where,
                 omni_record_t *record, char *detail, size_t detail_size)
{
    const omni_kind_spec_t *spec = record ? record->spec : NULL;
    uint64_t key_mask = spec ? omni_kinds_key_mask (spec) : 0;
    s_head_t map;
    s_head (p + at, &map);
    size_t pos = at + map.head;
    uint64_t present = 0;
    for (uint64_t i = 0; i < map.len / 2; i++) {
        s_head_t key, val;
        s_head (p + pos, &key);
        const char *kp = (const char *) p + pos + key.head;
        size_t klen = (size_t) key.len; //  keys are strings: s_walk refuses others
        pos += key.head + klen;
        s_head (p + pos, &val);
        for (int n = 0; fields[n].name && n < 64; n++) {
            const char *name = fields[n].name;
            if (klen == 0 || name[0] != kp[0] || strlen (name) != klen ||
                memcmp (name, kp, klen) != 0)
                continue;
            if (key_mask & (1ULL << n))
                for (int k = 0; k < KIND_KEY_MAX && spec->key[k]; k++)
                    if (!record->key_at[k] &&
                        strcmp (omni_kinds_key_field (spec->key[k]), name) == 0)
                        record->key_at[k] = pos;
            if (val.type == S_NIL && !fields[n].required)
                break;
            if (!s_type_ok (fields[n].type, &val)) {
                char what[32];
                snprintf (what, sizeof what, "expected %s, got ",
                          omni_field_type_name (fields[n].type));
                return s_where_fail (where, name, detail, detail_size, what,
                                     s_head_type_name (&val));
            }
            omni_record_reject_t rc = REJECT_NONE;
            if (fields[n].element && val.type == S_ARRAY && !where.field)
                rc = s_check_elements (p, pos, fields[n].element, name, detail, detail_size);
            else if (fields[n].members && val.type == S_MAP && !where.field)
                rc = s_check_members (p, pos, fields[n].members, (s_where_t){name, -1}, NULL,
                                      detail, detail_size);
            if (rc != REJECT_NONE)
                return rc;
            present |= 1ULL << n;
            break;
        }
        pos = s_skip (p, pos);
    }
    for (int n = 0; fields[n].name && n < 64; n++)
        if (fields[n].required && !(present & (1ULL << n)))
            return s_where_fail (where, fields[n].name, detail, detail_size, "missing", "");
    return REJECT_NONE;
}

//  The body map at `at` against the kind's fields
static omni_record_reject_t
s_check_body (const uint8_t *p, size_t at, omni_record_t *record, char *detail, size_t detail_size)
{
    return s_check_members (p, at, record->spec->fields, (s_where_t){NULL, -1}, record, detail,
                            detail_size);
}

//  omni_record_check, and with `zone` omni_record_decode: the walk then
//  builds the body and tags maps' objects, and *body and *tags are set to
//  them (*tags NULL without tags). Always inlined, as s_walk is, so that
//  the check compiles without the building.
static inline __attribute__ ((always_inline)) omni_record_reject_t
s_check (omni_record_t *record, const void *data, size_t size, const omni_record_limits_t *limits,
         msgpack_zone *zone, msgpack_object **body, msgpack_object **tags, char *detail,
         size_t detail_size)
{
    if (!limits)
        limits = &omni_record_default_limits;
    if (detail && detail_size)
        detail[0] = 0;
    //  Field by field: a memset of the whole struct costs more, per record.
    record->v = 0;
    memset (record->id, 0, RECORD_ID_SIZE);
    record->kind = record->src = record->col = record->run = (omni_record_str_t){NULL, 0};
    record->ts = 0;
    record->body = record->tags = NULL;
    record->spec = NULL;
    record->raw = data;
    record->raw_size = size;
    record->body_at = record->tags_at = 0;
    for (int k = 0; k < KIND_KEY_MAX; k++)
        record->key_at[k] = 0;
    if (size > limits->max_size)
        return s_fail (REJECT_TOO_LARGE, detail, detail_size, "%zu bytes, limit %zu", size,
                       limits->max_size);
    if (size == 0)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "empty frame");
    const uint8_t *bytes = data;
    if (!((bytes[0] >= 0x80 && bytes[0] <= 0x8f) || bytes[0] == 0xde || bytes[0] == 0xdf)) {
        omni_record_reject_t rc =
            s_walk (bytes, size, limits->max_depth, NULL, NULL, detail, detail_size);
        if (rc != REJECT_NONE)
            return rc;
        return s_fail (REJECT_NOT_MAP, detail, detail_size, "top level is not a map");
    }
    s_root_t root;
    root.count = 0;
    omni_record_reject_t rc =
        s_walk (bytes, size, limits->max_depth, &root, zone, detail, detail_size);
    if (rc != REJECT_NONE)
        return rc;

    enum {
        F_V = 1,
        F_ID = 2,
        F_KIND = 4,
        F_SRC = 8,
        F_COL = 16,
        F_RUN = 32,
        F_TS = 64,
        F_BODY = 128,
        F_TAGS = 256
    };
    static const char *names[] = {"v", "id", "kind", "src", "col", "run", "ts", "body", "tags"};
    unsigned seen = 0;
    size_t entries = root.count < S_ENTRIES ? root.count : S_ENTRIES;
    for (size_t i = 0; i < entries; i++) {
        const s_entry_t *entry = &root.entry[i];
        int which = s_envelope_index (entry->key, entry->key_len);
        if (which < 0)
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "unknown field \"%.*s\"",
                           (int) omni_util_utf8_cut (entry->key, entry->key_len, 64), entry->key);
        if (seen & (1u << which))
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "duplicate field \"%s\"",
                           names[which]);
        seen |= 1u << which;
        const uint8_t *value = bytes + entry->at;
        s_head_t h;
        s_head (value, &h);
        rc = REJECT_NONE;
        switch (1u << which) {
        case F_V:
            if (h.type != S_POS)
                return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: expected int, got %s",
                               s_head_type_name (&h));
            record->v = h.u;
            break;
        case F_ID:
            if (h.type != S_BIN || h.len != RECORD_ID_SIZE)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "id: expected %d-byte bin",
                               RECORD_ID_SIZE);
            memcpy (record->id, value + h.head, RECORD_ID_SIZE);
            break;
        case F_KIND:
            rc = s_envelope_str (value, &h, "kind", &record->kind, detail, detail_size);
            break;
        case F_SRC:
            rc = s_envelope_str (value, &h, "src", &record->src, detail, detail_size);
            break;
        case F_COL:
            rc = s_envelope_str (value, &h, "col", &record->col, detail, detail_size);
            break;
        case F_RUN:
            rc = s_envelope_str (value, &h, "run", &record->run, detail, detail_size);
            break;
        case F_TS:
            if (!s_head_is_int (&h))
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "ts: expected int (ns), got %s", s_head_type_name (&h));
            record->ts = h.type == S_NEG ? h.i : (int64_t) h.u;
            break;
        case F_BODY:
            if (h.type != S_MAP)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "body: expected map, got %s", s_head_type_name (&h));
            record->body_at = entry->at;
            if (zone)
                *body = entry->object;
            break;
        case F_TAGS:
            if (h.type != S_MAP)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "tags: expected map, got %s", s_head_type_name (&h));
            if (entry->not_all_str)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "tags: values must be strings");
            record->tags_at = entry->at;
            if (zone)
                *tags = entry->object;
            break;
        }
        if (rc != REJECT_NONE)
            return rc;
    }
    //  Ten entries cannot pass the loop above (see S_ENTRIES).
    assert (root.count < S_ENTRIES);
    if (!(seen & F_V))
        return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: missing");
    if (record->v != RECORD_VERSION)
        return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: %llu is not supported",
                       (unsigned long long) record->v);
    for (int n = 1; n < 8; n++)
        if (!(seen & (1u << n)))
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "%s: missing", names[n]);

    record->spec = omni_kinds_lookup (record->kind.ptr, record->kind.len);
    if (!record->spec)
        return s_fail (REJECT_UNKNOWN_KIND, detail, detail_size, "kind \"%.*s\" is not declared",
                       (int) omni_util_utf8_cut (record->kind.ptr, record->kind.len, 64),
                       record->kind.ptr);
    return s_check_body (bytes, record->body_at, record, detail, detail_size);
}

omni_record_reject_t
omni_record_check (omni_record_t *record, const void *data, size_t size,
                   const omni_record_limits_t *limits, char *detail, size_t detail_size)
{
    return s_check (record, data, size, limits, NULL, NULL, NULL, detail, detail_size);
}

omni_record_reject_t
omni_record_decode (omni_record_t *record, msgpack_zone *zone, const void *data, size_t size,
                    const omni_record_limits_t *limits, char *detail, size_t detail_size)
{
    msgpack_object *body = NULL, *tags = NULL;
    omni_record_reject_t rc =
        s_check (record, data, size, limits, zone, &body, &tags, detail, detail_size);
    if (rc != REJECT_NONE)
        return rc;
    //  The walk built both maps if it accepted them: a guard all the same
    if (!body || (record->tags_at && !tags))
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "msgpack decoder refused it");
    record->body = body;
    record->tags = tags;
    return REJECT_NONE;
}

//  The map that starts at `at` in `data`, unpacked into `zone` (the object
//  itself too, since the record points at it), or NULL if msgpack-c refuses
//  it or finds something else there (it cannot, after the check: kept as a
//  guard, not trusted to never happen).
static msgpack_object *
s_unpack_map (msgpack_zone *zone, const void *data, size_t size, size_t at)
{
    msgpack_object *object = msgpack_zone_malloc (zone, sizeof *object);
    if (!object)
        return NULL;
    size_t offset = at;
    msgpack_unpack_return rc = msgpack_unpack (data, size, &offset, zone, object);
    if ((rc != MSGPACK_UNPACK_SUCCESS && rc != MSGPACK_UNPACK_EXTRA_BYTES) ||
        object->type != MSGPACK_OBJECT_MAP)
        return NULL;
    return object;
}

omni_record_reject_t
omni_record_decode_unpacked (omni_record_t *record, msgpack_zone *zone, const void *data,
                             size_t size, const omni_record_limits_t *limits, char *detail,
                             size_t detail_size)
{
    omni_record_reject_t rc = omni_record_check (record, data, size, limits, detail, detail_size);
    if (rc != REJECT_NONE)
        return rc;
    //  The body and the tags are each one object starting at its offset:
    //  msgpack_unpack stops after it (MSGPACK_UNPACK_EXTRA_BYTES when fields
    //  follow), so the rest of the record is the right bound. The check
    //  refused duplicate fields, so these are the ones a look-up of the
    //  whole record would find.
    msgpack_object *body = s_unpack_map (zone, data, size, record->body_at);
    msgpack_object *tags =
        record->tags_at ? s_unpack_map (zone, data, size, record->tags_at) : NULL;
    if (!body || (record->tags_at && !tags))
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "msgpack decoder refused it");
    record->body = body;
    record->tags = tags;
    return REJECT_NONE;
}

//  The hash input gathers in a buffer on the stack and goes to SHA-256 in
//  few calls: ingestd hashes every record's key. The low-level SHA256_*
//  calls, deprecated in OpenSSL 3 but not removed, take a context on the
//  stack and no provider dispatch; per record they cost less than EVP's
//  context allocation and look-ups, for the same digest.
typedef struct {
    uint8_t buf[512];
    size_t n;
    SHA256_CTX ctx;
} s_hash_t;

static void
s_hash_begin (s_hash_t *self)
{
    self->n = 0;
    SHA256_Init (&self->ctx);
}

static void
s_hash_put (s_hash_t *self, const void *data, size_t len)
{
    if (self->n + len > sizeof self->buf) {
        SHA256_Update (&self->ctx, self->buf, self->n);
        self->n = 0;
        if (len > sizeof self->buf) {
            SHA256_Update (&self->ctx, data, len);
            return;
        }
    }
    memcpy (self->buf + self->n, data, len);
    self->n += len;
}

static void
s_hash_end (s_hash_t *self, uint8_t *out, size_t size)
{
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_Update (&self->ctx, self->buf, self->n);
    SHA256_Final (digest, &self->ctx);
    memcpy (out, digest, size);
}

//  A header: `first` is the type byte, then `n` big-endian bytes of
//  `value`, into `head`; returns its size.
static size_t
s_head_bytes (uint8_t head[9], uint8_t first, int n, uint64_t value)
{
    head[0] = first;
    for (int i = 0; i < n; i++)
        head[1 + i] = (uint8_t) (value >> (8 * (n - 1 - i)));
    return (size_t) n + 1;
}

static void
s_hash_head (s_hash_t *self, uint8_t first, int n, uint64_t value)
{
    uint8_t head[9];
    s_hash_put (self, head, s_head_bytes (head, first, n, value));
}

//  The shortest encodings, as msgpack-c's packer chooses them.
static void
s_hash_uint (s_hash_t *self, uint64_t u)
{
    if (u < 128)
        s_hash_head (self, (uint8_t) u, 0, 0);
    else if (u < 256)
        s_hash_head (self, 0xcc, 1, u);
    else if (u < 65536)
        s_hash_head (self, 0xcd, 2, u);
    else if (u < (1ULL << 32))
        s_hash_head (self, 0xce, 4, u);
    else
        s_hash_head (self, 0xcf, 8, u);
}

static void
s_hash_int (s_hash_t *self, int64_t i)
{
    if (i >= 0)
        s_hash_uint (self, (uint64_t) i);
    else if (i >= -32)
        s_hash_head (self, (uint8_t) (int8_t) i, 0, 0);
    else if (i >= -128)
        s_hash_head (self, 0xd0, 1, (uint64_t) i);
    else if (i >= -32768)
        s_hash_head (self, 0xd1, 2, (uint64_t) i);
    else if (i >= INT32_MIN)
        s_hash_head (self, 0xd2, 4, (uint64_t) i);
    else
        s_hash_head (self, 0xd3, 8, (uint64_t) i);
}

//  A container or byte string header: fix form below `fix` items, else the
//  16- or 32-bit form (`wide` is the 16-bit form's type byte); strings
//  also have an 8-bit form (`wide` - 1), binaries have no fix form.
static void
s_hash_len (s_hash_t *self, uint8_t fixbase, uint64_t fix, uint8_t narrow, uint8_t wide,
            uint64_t len)
{
    if (len < fix)
        s_hash_head (self, (uint8_t) (fixbase | len), 0, 0);
    else if (narrow && len < 256)
        s_hash_head (self, narrow, 1, len);
    else if (len < 65536)
        s_hash_head (self, wide, 2, len);
    else
        s_hash_head (self, (uint8_t) (wide + 1), 4, len);
}

//  The value at `pos` (accepted by s_walk) in its shortest encoding, so that
//  a sender's choice of encoding does not change an id: what msgpack-c's
//  msgpack_pack_object makes of the decoded value, without decoding.
static void
s_hash_value (s_hash_t *self, const uint8_t *p, size_t pos)
{
    uint64_t pending = 1;
    while (pending) {
        s_head_t h;
        s_head (p + pos, &h);
        pending--;
        switch (h.type) {
        case S_NIL:
        case S_BOOL:
        case S_FLOAT: s_hash_put (self, p + pos, h.head); break;
        case S_POS: s_hash_uint (self, h.u); break;
        case S_NEG: s_hash_int (self, h.i); break;
        case S_STR:
            s_hash_len (self, 0xa0, 32, 0xd9, 0xda, h.len);
            s_hash_put (self, p + pos + h.head, (size_t) h.len);
            break;
        case S_BIN:
            s_hash_len (self, 0, 0, 0xc4, 0xc5, h.len);
            s_hash_put (self, p + pos + h.head, (size_t) h.len);
            break;
        case S_ARRAY:
            s_hash_len (self, 0x90, 16, 0, 0xdc, h.len);
            pending += h.len;
            break;
        case S_MAP:
            s_hash_len (self, 0x80, 16, 0, 0xde, h.len / 2);
            pending += h.len;
            break;
        }
        pos += h.head;
        if (h.type == S_STR || h.type == S_BIN)
            pos += (size_t) h.len;
    }
}

void
omni_record_compute_id (const omni_record_t *record, uint8_t id[RECORD_ID_SIZE])
{
    assert (record->raw && record->body_at);
    s_hash_t hash;
    s_hash_begin (&hash);
    s_hash_put (&hash, "omni.id/1", 10);
    s_hash_put (&hash, record->kind.ptr, record->kind.len);
    s_hash_put (&hash, "", 1);
    s_hash_put (&hash, record->src.ptr, record->src.len);
    s_hash_put (&hash, "", 1);
    static const uint8_t nil = 0xc0;
    const omni_kind_spec_t *spec = record->spec;
    if (!spec || !spec->key[0])
        s_hash_value (&hash, record->raw, record->body_at);
    else
        for (int i = 0; i < KIND_KEY_MAX && spec->key[i]; i++) {
            const char *part = spec->key[i];
            if (strcmp (part, "@ts") == 0) {
                s_hash_int (&hash, record->ts);
                continue;
            }
            size_t at = strcmp (part, "@tags") == 0 ? record->tags_at : record->key_at[i];
            if (at)
                s_hash_value (&hash, record->raw, at);
            else if (part[0] != '?') //  an absent optional part adds nothing
                s_hash_put (&hash, &nil, 1);
        }
    s_hash_end (&hash, id, RECORD_ID_SIZE);
}

omni_record_reject_t
omni_record_check_id (const omni_record_t *record, char *detail, size_t detail_size)
{
    uint8_t id[RECORD_ID_SIZE];
    omni_record_compute_id (record, id);
    if (memcmp (id, record->id, RECORD_ID_SIZE) == 0)
        return REJECT_NONE;
    char hex[2 * RECORD_ID_SIZE + 1];
    omni_util_hex (id, RECORD_ID_SIZE, hex);
    return s_fail (REJECT_BAD_ID, detail, detail_size,
                   "id is not the hash of kind, src and natural key (expected %s)", hex);
}

void
omni_record_content_hash (const omni_record_t *record, uint8_t hash[RECORD_CONTENT_SIZE])
{
    assert (record->raw && record->body_at);
    s_hash_t sink;
    s_hash_begin (&sink);
    s_hash_put (&sink, record->id, RECORD_ID_SIZE);
    s_hash_value (&sink, record->raw, record->body_at);
    s_hash_end (&sink, hash, RECORD_CONTENT_SIZE);
}

bool
omni_record_field_str (const msgpack_object *map, const char *key, omni_record_str_t *out)
{
    const msgpack_object *val = omni_record_field (map, key);
    if (!val || val->type != MSGPACK_OBJECT_STR)
        return false;
    out->ptr = val->via.str.ptr;
    out->len = val->via.str.size;
    return true;
}

bool
omni_record_field_int (const msgpack_object *map, const char *key, int64_t *out)
{
    const msgpack_object *val = omni_record_field (map, key);
    if (!val || !s_is_int (val))
        return false;
    *out = val->via.i64;
    return true;
}

bool
omni_record_field_num (const msgpack_object *map, const char *key, double *out)
{
    const msgpack_object *val = omni_record_field (map, key);
    if (!val)
        return false;
    if (val->type == MSGPACK_OBJECT_FLOAT32 || val->type == MSGPACK_OBJECT_FLOAT64)
        *out = val->via.f64;
    else if (val->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double) val->via.u64;
    else if (val->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double) val->via.i64;
    else
        return false;
    return true;
}

bool
omni_record_field_bool (const msgpack_object *map, const char *key, bool *out)
{
    const msgpack_object *val = omni_record_field (map, key);
    if (!val || val->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = val->via.boolean;
    return true;
}

void
omni_record_pack_str (msgpack_packer *pk, const char *text)
{
    size_t len = strlen (text);
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, text, len);
}

void
omni_record_pack_strv (msgpack_packer *pk, const char *const *list)
{
    size_t n = 0;
    while (list[n])
        n++;
    msgpack_pack_array (pk, n);
    for (size_t i = 0; i < n; i++)
        omni_record_pack_str (pk, list[i]);
}

void
omni_record_pack_kv (msgpack_packer *pk, const char *key, const char *value)
{
    omni_record_pack_str (pk, key);
    omni_record_pack_str (pk, value);
}

void
omni_record_pack_kv_int (msgpack_packer *pk, const char *key, int64_t value)
{
    omni_record_pack_str (pk, key);
    msgpack_pack_int64 (pk, value);
}

void
omni_record_pack_kv_double (msgpack_packer *pk, const char *key, double value)
{
    omni_record_pack_str (pk, key);
    msgpack_pack_double (pk, value);
}

void
omni_record_pack_kv_bool (msgpack_packer *pk, const char *key, bool value)
{
    omni_record_pack_str (pk, key);
    if (value)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

bool
omni_record_str_eq (omni_record_str_t s, const char *cstr)
{
    return strlen (cstr) == s.len && memcmp (s.ptr, cstr, s.len) == 0;
}

char *
omni_record_str_dup (omni_record_str_t s)
{
    char *copy = malloc (s.len + 1);
    assert (copy);
    memcpy (copy, s.ptr, s.len);
    copy[s.len] = 0;
    return copy;
}

//  ---------------------------------------------------------------------------
//  Encoder

typedef struct {
    char *key, *value;
} s_tag_t;

struct _omni_record_encoder_t {
    msgpack_sbuffer body_buf, out_buf;
    msgpack_packer body_pk, out_pk;
    char *kind, *src, *col, *run;
    int64_t ts;
    s_tag_t *tags;
    size_t ntags, tags_cap;
    msgpack_zone zone;
    uint8_t id[RECORD_ID_SIZE];
};

omni_record_encoder_t *
omni_record_encoder_new (void)
{
    omni_record_encoder_t *self = calloc (1, sizeof *self);
    assert (self);
    msgpack_sbuffer_init (&self->body_buf);
    msgpack_sbuffer_init (&self->out_buf);
    msgpack_packer_init (&self->body_pk, &self->body_buf, msgpack_sbuffer_write);
    msgpack_packer_init (&self->out_pk, &self->out_buf, msgpack_sbuffer_write);
    msgpack_zone_init (&self->zone, 4096);
    return self;
}

static void
s_encoder_clear (omni_record_encoder_t *self)
{
    free (self->kind);
    free (self->src);
    free (self->col);
    free (self->run);
    self->kind = self->src = self->col = self->run = NULL;
    for (size_t i = 0; i < self->ntags; i++) {
        free (self->tags[i].key);
        free (self->tags[i].value);
    }
    self->ntags = 0;
}

void
omni_record_encoder_destroy (omni_record_encoder_t **self_p)
{
    omni_record_encoder_t *self = *self_p;
    if (!self)
        return;
    s_encoder_clear (self);
    free (self->tags);
    msgpack_sbuffer_destroy (&self->body_buf);
    msgpack_sbuffer_destroy (&self->out_buf);
    msgpack_zone_destroy (&self->zone);
    free (self);
    *self_p = NULL;
}

void
omni_record_encoder_begin (omni_record_encoder_t *self, const char *kind, const char *src,
                           const char *col, const char *run, int64_t ts)
{
    s_encoder_clear (self);
    self->kind = strdup (kind);
    self->src = strdup (src);
    self->col = strdup (col);
    self->run = strdup (run);
    self->ts = ts;
    msgpack_sbuffer_clear (&self->body_buf);
}

msgpack_packer *
omni_record_encoder_body (omni_record_encoder_t *self)
{
    return &self->body_pk;
}

void
omni_record_encoder_tag (omni_record_encoder_t *self, const char *key, const char *value)
{
    s_tag_t *tag = omni_array_push (self->tags, self->ntags, self->tags_cap);
    tag->key = strdup (key);
    tag->value = strdup (value);
}

static int
s_tag_cmp (const void *a, const void *b)
{
    return strcmp (((const s_tag_t *) a)->key, ((const s_tag_t *) b)->key);
}

size_t
omni_record_pack_head (msgpack_sbuffer *buf, msgpack_packer *pk, bool tags, const char *kind,
                       const char *src, const char *col, const char *run, int64_t ts)
{
    msgpack_sbuffer_clear (buf);
    msgpack_pack_map (pk, tags ? 9 : 8);
    omni_record_pack_kv_int (pk, "v", RECORD_VERSION);
    omni_record_pack_str (pk, "id");
    msgpack_pack_bin (pk, RECORD_ID_SIZE);
    size_t id_at = buf->size;
    static const uint8_t zero_id[RECORD_ID_SIZE] = {0};
    msgpack_pack_bin_body (pk, zero_id, RECORD_ID_SIZE);
    omni_record_pack_kv (pk, "kind", kind);
    omni_record_pack_kv (pk, "src", src);
    omni_record_pack_kv (pk, "col", col);
    omni_record_pack_kv (pk, "run", run);
    omni_record_pack_kv_int (pk, "ts", ts);
    omni_record_pack_str (pk, "body");
    return id_at;
}

int
omni_record_encoder_end (omni_record_encoder_t *self, const void **data, size_t *size, char *detail,
                         size_t detail_size)
{
    msgpack_packer *pk = &self->out_pk;
    size_t id_at = omni_record_pack_head (&self->out_buf, pk, self->ntags > 0, self->kind,
                                          self->src, self->col, self->run, self->ts);
    msgpack_sbuffer_write (&self->out_buf, self->body_buf.data, self->body_buf.size);
    if (self->ntags) {
        qsort (self->tags, self->ntags, sizeof *self->tags, s_tag_cmp);
        omni_record_pack_str (pk, "tags");
        msgpack_pack_map (pk, self->ntags);
        for (size_t i = 0; i < self->ntags; i++) {
            omni_record_pack_str (pk, self->tags[i].key);
            omni_record_pack_str (pk, self->tags[i].value);
        }
    }
    //  Validate exactly as ingestd will, so a collector never sends what
    //  ingestd would refuse; then fill in the id computed from the result.
    msgpack_zone_clear (&self->zone);
    omni_record_t record;
    char local[256];
    if (!detail) {
        detail = local;
        detail_size = sizeof local;
    }
    if (omni_record_decode (&record, &self->zone, self->out_buf.data, self->out_buf.size, NULL,
                            detail, detail_size) != REJECT_NONE)
        return -1;
    omni_record_compute_id (&record, self->id);
    memcpy (self->out_buf.data + id_at, self->id, RECORD_ID_SIZE);
    *data = self->out_buf.data;
    *size = self->out_buf.size;
    return 0;
}

const uint8_t *
omni_record_encoder_id (omni_record_encoder_t *self)
{
    return self->id;
}

//  ---------------------------------------------------------------------------

static omni_record_reject_t
s_decode_bytes (const void *data, size_t size, char *detail)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    omni_record_t record;
    omni_record_reject_t rc = omni_record_decode (&record, &zone, data, size, NULL, detail, 256);
    msgpack_zone_destroy (&zone);
    return rc;
}

//  Ids and content hashes: the same record in other (longer) encodings has
//  the same id; a wrong id is refused; content tells bodies apart.
static void
s_test_ids (omni_record_encoder_t *enc)
{
    const void *data;
    size_t size;
    char detail[256];
    omni_record_encoder_begin (enc, "metric", "h", "c", "r", 5);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "name");
    omni_record_pack_str (pk, "cpu");
    omni_record_pack_str (pk, "value");
    msgpack_pack_int (pk, -3);
    omni_record_encoder_tag (enc, "host", "h");
    assert (omni_record_encoder_end (enc, &data, &size, NULL, 0) == 0);
    uint8_t id[RECORD_ID_SIZE];
    memcpy (id, omni_record_encoder_id (enc), RECORD_ID_SIZE);
    omni_record_t rec;
    assert (omni_record_check (&rec, data, size, NULL, detail, sizeof detail) == REJECT_NONE);
    assert (omni_record_check_id (&rec, detail, sizeof detail) == REJECT_NONE);
    uint8_t content[RECORD_CONTENT_SIZE];
    omni_record_content_hash (&rec, content);

    //  str8 for "cpu" and "h", int64 for ts, int16 for -3: same id, same content
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer out;
    msgpack_packer_init (&out, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&out, 9);
    omni_record_pack_str (&out, "v");
    msgpack_pack_uint64 (&out, RECORD_VERSION);
    omni_record_pack_str (&out, "id");
    msgpack_pack_bin_with_body (&out, id, RECORD_ID_SIZE);
    const char *env[] = {"kind", "metric", "src", "h", "col", "c", "run", "r"};
    for (int i = 0; i < 8; i++)
        omni_record_pack_str (&out, env[i]);
    omni_record_pack_str (&out, "ts");
    msgpack_sbuffer_write (&sbuf, "\xd3\0\0\0\0\0\0\0\x05", 9);
    omni_record_pack_str (&out, "body");
    msgpack_pack_map (&out, 2);
    omni_record_pack_str (&out, "name");
    msgpack_sbuffer_write (&sbuf,
                           "\xd9\x03"
                           "cpu",
                           5);
    omni_record_pack_str (&out, "value");
    msgpack_sbuffer_write (&sbuf, "\xd1\xff\xfd", 3);
    omni_record_pack_str (&out, "tags");
    msgpack_pack_map (&out, 1);
    omni_record_pack_str (&out, "host");
    msgpack_sbuffer_write (&sbuf, "\xd9\x01h", 3);
    assert (omni_record_check (&rec, sbuf.data, sbuf.size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    assert (omni_record_check_id (&rec, detail, sizeof detail) == REJECT_NONE);
    uint8_t other[RECORD_CONTENT_SIZE];
    omni_record_content_hash (&rec, other);
    assert (memcmp (content, other, RECORD_CONTENT_SIZE) == 0);

    //  Another value: same id, other content; another name: another id
    sbuf.data[sbuf.size - 15] = (char) 0xfe; //  -3 becomes -2
    assert (omni_record_check (&rec, sbuf.data, sbuf.size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    assert (omni_record_check_id (&rec, detail, sizeof detail) == REJECT_NONE);
    omni_record_content_hash (&rec, other);
    assert (memcmp (content, other, RECORD_CONTENT_SIZE) != 0);
    char *name = memmem (sbuf.data, sbuf.size, "cpu", 3);
    assert (name);
    name[0] = 'g';
    assert (omni_record_check (&rec, sbuf.data, sbuf.size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    assert (omni_record_check_id (&rec, detail, sizeof detail) == REJECT_BAD_ID);
    assert (strstr (detail, "expected "));
    assert (strcmp (omni_record_reject_name (REJECT_BAD_ID), "bad_id") == 0);
    msgpack_sbuffer_destroy (&sbuf);

    //  A custom kind's whole body is its key, larger than the hash buffer
    omni_record_encoder_begin (enc, "x.big", "s", "c", "r", 0);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 1);
    omni_record_pack_str (pk, "text");
    char big[3000];
    memset (big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    omni_record_pack_str (pk, big);
    assert (omni_record_encoder_end (enc, &data, &size, NULL, 0) == 0);
    assert (omni_record_check (&rec, data, size, NULL, detail, sizeof detail) == REJECT_NONE);
    assert (omni_record_check_id (&rec, detail, sizeof detail) == REJECT_NONE);
}

//  A git.commit whose parents and files are packed by `variant`: 0 good,
//  1 an int parent, 2 a str file, 3 a file with an int path, 4 a file
//  without a path, 5 a bool insertions, 6 nil members where optional
static int
s_test_commit (omni_record_encoder_t *enc, int variant, char *detail, size_t size)
{
    omni_record_encoder_begin (enc, "git.commit", "repo-a", "c", "r", 1);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 15);
    static const char *strs[] = {
        "sha", "author_name", "author_email", "committer_name", "committer_email", "message"};
    for (int i = 0; i < 6; i++) {
        omni_record_pack_str (pk, strs[i]);
        omni_record_pack_str (pk, "x");
    }
    static const char *ints[] = {"author_time",   "author_tz",  "committer_time", "committer_tz",
                                 "files_changed", "insertions", "deletions"};
    for (int i = 0; i < 7; i++) {
        omni_record_pack_str (pk, ints[i]);
        msgpack_pack_int (pk, 1);
    }
    omni_record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 2);
    omni_record_pack_str (pk, "p1");
    if (variant == 1)
        msgpack_pack_int (pk, 7);
    else
        omni_record_pack_str (pk, "p2");
    omni_record_pack_str (pk, "files");
    msgpack_pack_array (pk, 2);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "path");
    omni_record_pack_str (pk, "a.c");
    omni_record_pack_str (pk, "old_path");
    omni_record_pack_str (pk, "b.c");
    if (variant == 2) {
        omni_record_pack_str (pk, "c.c");
        return omni_record_encoder_end (enc, &(const void *){NULL}, &(size_t){0}, detail, size);
    }
    msgpack_pack_map (pk, 3);
    omni_record_pack_str (pk, "insertions");
    if (variant == 5)
        msgpack_pack_true (pk);
    else if (variant == 6)
        msgpack_pack_nil (pk);
    else
        msgpack_pack_int (pk, 3);
    omni_record_pack_str (pk, "binary");
    if (variant == 6)
        msgpack_pack_nil (pk);
    else
        msgpack_pack_false (pk);
    omni_record_pack_str (pk, variant == 4 ? "paths" : "path");
    if (variant == 3)
        msgpack_pack_int (pk, 9);
    else
        omni_record_pack_str (pk, "d.c");
    return omni_record_encoder_end (enc, &(const void *){NULL}, &(size_t){0}, detail, size);
}

//  Begins a git.branch record: main at `target`, the head or not.
static void
s_test_branch (omni_record_encoder_t *enc, const char *src, const char *col, const char *run,
               int64_t ts, const char *target, bool head)
{
    omni_record_encoder_begin (enc, "git.branch", src, col, run, ts);
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 3);
    omni_record_pack_str (pk, "name");
    omni_record_pack_str (pk, "main");
    omni_record_pack_str (pk, "target");
    omni_record_pack_str (pk, target);
    omni_record_pack_str (pk, "head");
    if (head)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

//  The body of s_pack_variant's record: flat, nested, empty or a map16
static void
s_pack_variant_body (msgpack_packer *pk, int variant)
{
    omni_record_pack_str (pk, "body");
    switch (variant % 4) {
    case 0: //  flat, every scalar type
        msgpack_pack_map (pk, 4);
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "na\xc3\xafve");
        omni_record_pack_str (pk, "n");
        msgpack_pack_int64 (pk, -7);
        omni_record_pack_str (pk, "f");
        msgpack_pack_double (pk, 0.25);
        omni_record_pack_str (pk, "none");
        msgpack_pack_nil (pk);
        break;
    case 1: //  nested: maps in arrays in maps, a bin
        msgpack_pack_map (pk, 2);
        omni_record_pack_str (pk, "list");
        msgpack_pack_array (pk, 3);
        msgpack_pack_map (pk, 1);
        omni_record_pack_str (pk, "deep");
        msgpack_pack_array (pk, 1);
        msgpack_pack_map (pk, 1);
        omni_record_pack_str (pk, "x");
        msgpack_pack_true (pk);
        msgpack_pack_array (pk, 0);
        msgpack_pack_bin (pk, 3);
        msgpack_pack_bin_body (pk, "\0\1\2", 3);
        omni_record_pack_str (pk, "m");
        msgpack_pack_map (pk, 1);
        omni_record_pack_str (pk, "k");
        msgpack_pack_uint64 (pk, UINT64_MAX);
        break;
    case 2: //  empty
        msgpack_pack_map (pk, 0);
        break;
    default: //  over 15 entries: a map16 head
        msgpack_pack_map (pk, 20);
        for (int i = 0; i < 20; i++) {
            char key[16];
            snprintf (key, sizeof key, "k%02d", i);
            omni_record_pack_str (pk, key);
            msgpack_pack_int (pk, i * 1000);
        }
        break;
    }
}

//  The tags of s_pack_variant's record: empty or not
static void
s_pack_variant_tags (msgpack_packer *pk, int variant)
{
    omni_record_pack_str (pk, "tags");
    msgpack_pack_map (pk, variant % 8 == 0 ? 0 : 2);
    if (variant % 8) {
        omni_record_pack_str (pk, "env");
        omni_record_pack_str (pk, "prod");
        omni_record_pack_str (pk, "zone");
        omni_record_pack_str (pk, "eu");
    }
}

//  A record packed by hand, its fields in orders the encoder never uses,
//  for s_test_decode_maps: `variant` picks where the body is (first or
//  after the envelope), what it holds, and the tags (absent, before the
//  body, last; empty or not). Into `buf`, which it initialises.
static void
s_pack_variant (msgpack_sbuffer *buf, int variant)
{
    msgpack_sbuffer_init (buf);
    msgpack_packer packer;
    msgpack_packer_init (&packer, buf, msgpack_sbuffer_write);
    msgpack_packer *pk = &packer;
    bool tags = variant % 3 != 2;
    bool body_first = variant % 2 == 1;
    bool tags_last = variant % 5 < 2;
    msgpack_pack_map (pk, tags ? 9 : 8);
    if (body_first)
        s_pack_variant_body (pk, variant);
    omni_record_pack_str (pk, "v");
    msgpack_pack_uint64 (pk, RECORD_VERSION);
    if (tags && !tags_last)
        s_pack_variant_tags (pk, variant);
    omni_record_pack_str (pk, "id");
    msgpack_pack_bin (pk, RECORD_ID_SIZE);
    msgpack_pack_bin_body (pk, "0123456789abcdef", RECORD_ID_SIZE);
    omni_record_pack_str (pk, "kind");
    omni_record_pack_str (pk, "x.decode");
    omni_record_pack_str (pk, "src");
    omni_record_pack_str (pk, "s");
    omni_record_pack_str (pk, "col");
    omni_record_pack_str (pk, "c");
    omni_record_pack_str (pk, "run");
    omni_record_pack_str (pk, "r");
    omni_record_pack_str (pk, "ts");
    msgpack_pack_int64 (pk, -5 - variant);
    if (!body_first)
        s_pack_variant_body (pk, variant);
    if (tags && tags_last)
        s_pack_variant_tags (pk, variant);
}

//  omni_record_decode's body and tags, built by the walk: the same objects
//  as a full msgpack_unpack of the record and look-ups of the two fields,
//  pointing into the same bytes.
static void
s_test_decode_maps (void)
{
    for (int variant = 0; variant < 40; variant++) {
        msgpack_sbuffer buf;
        s_pack_variant (&buf, variant);
        char detail[256];
        msgpack_zone zone, full_zone;
        msgpack_zone_init (&zone, 1024);
        msgpack_zone_init (&full_zone, 1024);
        omni_record_t rec;
        assert (omni_record_decode (&rec, &zone, buf.data, buf.size, NULL, detail, sizeof detail) ==
                REJECT_NONE);
        msgpack_object root;
        size_t off = 0;
        assert (msgpack_unpack (buf.data, buf.size, &off, &full_zone, &root) ==
                MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *body = omni_record_field (&root, "body");
        const msgpack_object *tags = omni_record_field (&root, "tags");
        assert (body && rec.body && msgpack_object_equal (*body, *rec.body));
        if (body->via.map.size) //  strings point into the record, as before
            assert (rec.body->via.map.ptr[0].key.via.str.ptr ==
                    body->via.map.ptr[0].key.via.str.ptr);
        assert ((variant % 3 == 2) == (tags == NULL));
        assert ((tags == NULL) == (rec.tags == NULL));
        if (tags) {
            assert (msgpack_object_equal (*tags, *rec.tags));
            for (uint32_t i = 0; i < tags->via.map.size; i++)
                assert (rec.tags->via.map.ptr[i].val.via.str.ptr ==
                        tags->via.map.ptr[i].val.via.str.ptr);
        }
        //  In the zone, not on a stack: still there after another decode
        const msgpack_object *kept = rec.body;
        omni_record_t other;
        assert (omni_record_decode (&other, &zone, buf.data, buf.size, NULL, detail,
                                    sizeof detail) == REJECT_NONE);
        assert (kept != other.body && msgpack_object_equal (*kept, *body));
        //  Every truncation is still refused
        for (size_t cut = 0; cut < buf.size; cut++)
            assert (omni_record_decode (&other, &zone, buf.data, cut, NULL, detail,
                                        sizeof detail) != REJECT_NONE);
        msgpack_zone_destroy (&zone);
        msgpack_zone_destroy (&full_zone);
        msgpack_sbuffer_destroy (&buf);
    }
}

//  The one walk (omni_record_decode) against its oracle, the check then
//  msgpack_unpack (omni_record_decode_unpacked): the same reason and detail
//  for every input, and for an accepted one the same record and the same
//  objects, value for value, strings and bins pointing at the same bytes.
static void
s_same_tree (const msgpack_object *a, const msgpack_object *b)
{
    assert (a->type == b->type);
    switch (a->type) {
    case MSGPACK_OBJECT_NIL: break;
    case MSGPACK_OBJECT_BOOLEAN: assert (a->via.boolean == b->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: assert (a->via.u64 == b->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: assert (a->via.i64 == b->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: //  bit for bit: -0.0 is not 0.0
        assert (memcmp (&a->via.f64, &b->via.f64, sizeof a->via.f64) == 0);
        break;
    //  An empty one's pointer is not compared: msgpack-c's unpacker leaves
    //  the position of the last header it read there, or NULL; the walk
    //  points just after the empty string's own header.
    case MSGPACK_OBJECT_STR:
        assert (a->via.str.size == b->via.str.size);
        assert (a->via.str.ptr == b->via.str.ptr || a->via.str.size == 0);
        break;
    case MSGPACK_OBJECT_BIN:
        assert (a->via.bin.size == b->via.bin.size);
        assert (a->via.bin.ptr == b->via.bin.ptr || a->via.bin.size == 0);
        break;
    case MSGPACK_OBJECT_ARRAY:
        assert (a->via.array.size == b->via.array.size);
        assert (a->via.array.ptr && b->via.array.ptr);
        for (uint32_t i = 0; i < a->via.array.size; i++)
            s_same_tree (&a->via.array.ptr[i], &b->via.array.ptr[i]);
        break;
    case MSGPACK_OBJECT_MAP:
        assert (a->via.map.size == b->via.map.size);
        assert (a->via.map.ptr && b->via.map.ptr);
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            s_same_tree (&a->via.map.ptr[i].key, &b->via.map.ptr[i].key);
            s_same_tree (&a->via.map.ptr[i].val, &b->via.map.ptr[i].val);
        }
        break;
    default: assert (false); //  records have no extension types
    }
}

static void
s_same_str_at (omni_record_str_t a, omni_record_str_t b)
{
    assert (a.ptr == b.ptr && a.len == b.len);
}

//  Both decoders on the same bytes, which must agree (see above)
static omni_record_reject_t
s_same_decode (const void *data, size_t size, const omni_record_limits_t *limits)
{
    msgpack_zone zone, oracle_zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_zone_init (&oracle_zone, 1024);
    omni_record_t rec, want;
    char detail[256], want_detail[256];
    omni_record_reject_t rc =
        omni_record_decode (&rec, &zone, data, size, limits, detail, sizeof detail);
    omni_record_reject_t want_rc = omni_record_decode_unpacked (
        &want, &oracle_zone, data, size, limits, want_detail, sizeof want_detail);
    if (rc != want_rc || strcmp (detail, want_detail) != 0)
        fprintf (stderr, "one walk: %s \"%s\", oracle: %s \"%s\"\n", omni_record_reject_name (rc),
                 detail, omni_record_reject_name (want_rc), want_detail);
    assert (rc == want_rc && strcmp (detail, want_detail) == 0);
    if (rc == REJECT_NONE) {
        assert (rec.v == want.v && rec.ts == want.ts && rec.spec == want.spec);
        assert (memcmp (rec.id, want.id, RECORD_ID_SIZE) == 0);
        s_same_str_at (rec.kind, want.kind);
        s_same_str_at (rec.src, want.src);
        s_same_str_at (rec.col, want.col);
        s_same_str_at (rec.run, want.run);
        assert (rec.raw == want.raw && rec.raw_size == want.raw_size);
        assert (rec.body_at == want.body_at && rec.tags_at == want.tags_at);
        for (int k = 0; k < KIND_KEY_MAX; k++)
            assert (rec.key_at[k] == want.key_at[k]);
        assert (rec.body && want.body);
        s_same_tree (rec.body, want.body);
        assert (!rec.tags == !want.tags);
        if (rec.tags)
            s_same_tree (rec.tags, want.tags);
    }
    msgpack_zone_destroy (&zone);
    msgpack_zone_destroy (&oracle_zone);
    return rc;
}

//  A record and what can go wrong with it: every truncation, bytes changed
//  (`changes` at random places, or with `every` all places, four ways
//  each), tighter limits. Returns whether the record itself was accepted.
static bool
s_same_decode_around (const uint8_t *data, size_t size, uint64_t *rng, int changes, bool every)
{
    bool accepted = s_same_decode (data, size, NULL) == REJECT_NONE;
    for (size_t cut = 0; cut < size; cut++)
        s_same_decode (data, cut, NULL);
    uint8_t *copy = malloc (size ? size : 1);
    assert (copy);
    size_t places = every ? size : (size_t) changes;
    for (size_t i = 0; size && i < places; i++) {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        size_t at = every ? i : (size_t) (*rng % size);
        static const uint8_t flips[] = {0x01, 0x80, 0xff, 0x20};
        for (int f = 0; f < 4; f++) {
            memcpy (copy, data, size);
            copy[at] ^= every ? flips[f] : (uint8_t) (*rng >> (8 * (f + 1)));
            s_same_decode (copy, size, NULL);
        }
    }
    free (copy);
    for (size_t depth = 1; depth <= 4; depth++) {
        omni_record_limits_t tight = {size, depth};
        s_same_decode (data, size, &tight);
    }
    omni_record_limits_t small = {size ? size - 1 : 0, 16};
    s_same_decode (data, size, &small);
    return accepted;
}

static uint64_t
s_rand (uint64_t *rng, uint64_t below)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return *rng % below;
}

//  A header: `first`, then `n` big-endian bytes of `value`
static void
s_put_head (msgpack_sbuffer *buf, uint8_t first, int n, uint64_t value)
{
    uint8_t head[9];
    msgpack_sbuffer_write (buf, (const char *) head, s_head_bytes (head, first, n, value));
}

//  A length in one of its encodings (fix when there is one and it fits),
//  not always the shortest: senders need not use it. `wide` is the 8-bit
//  form's type byte (0: none; bin), else the 16-bit one's (arrays, maps),
//  the wider ones following it.
static void
s_put_len (msgpack_sbuffer *buf, uint64_t *rng, uint8_t fix, uint64_t fix_max, uint8_t wide,
           bool has8, uint64_t len)
{
    int way = (int) s_rand (rng, 4);
    if (fix && len <= fix_max && way == 0)
        s_put_head (buf, (uint8_t) (fix | len), 0, 0);
    else if (has8 && len <= 0xff && way == 1)
        s_put_head (buf, wide, 1, len);
    else if (len <= 0xffff && way != 3)
        s_put_head (buf, (uint8_t) (wide + has8), 2, len);
    else
        s_put_head (buf, (uint8_t) (wide + has8 + 1), 4, len);
}

static void
s_rand_str (msgpack_sbuffer *buf, uint64_t *rng)
{
    static const char *pieces[] = {"a",   "name", "value", "\xc3\xa9",        "\xe2\x82\xac",
                                   "x.y", " ",    "0",     "\xf0\x9f\x98\x80"};
    char text[128];
    size_t len = 0;
    for (uint64_t n = s_rand (rng, 6); n; n--) {
        const char *piece = pieces[s_rand (rng, sizeof pieces / sizeof pieces[0])];
        memcpy (text + len, piece, strlen (piece));
        len += strlen (piece);
    }
    if (s_rand (rng, 100) == 0 && len) //  not UTF-8
        text[s_rand (rng, len)] = (char) 0xff;
    int way = (int) s_rand (rng, 4);
    if (len < 32 && way == 0)
        s_put_head (buf, (uint8_t) (0xa0 | len), 0, 0);
    else
        s_put_head (buf, (uint8_t) (0xd9 + (way == 0 ? 0 : way - 1)), 1 << (way == 0 ? 0 : way - 1),
                    len);
    msgpack_sbuffer_write (buf, text, len);
}

static void
s_rand_value (msgpack_sbuffer *buf, uint64_t *rng, int depth)
{
    uint64_t u = s_rand (rng, UINT64_MAX) >> s_rand (rng, 64);
    switch (s_rand (rng, depth < 5 ? 14 : 11)) {
    case 0: { //  nil, false, true
        uint64_t r = s_rand (rng, 3);
        s_put_head (buf, (uint8_t) (0xc0 + (r ? r + 1 : 0)), 0, 0);
        break;
    }
    case 1: s_put_head (buf, (uint8_t) s_rand (rng, 256) | 0xe0, 0, 0); break; //  negative fixint
    case 2: s_put_head (buf, (uint8_t) (u & 0x7f), 0, 0); break;
    case 3: { //  unsigned and signed of every width
        int w = (int) s_rand (rng, 4);
        s_put_head (buf, (uint8_t) ((s_rand (rng, 2) ? 0xcc : 0xd0) + w), 1 << w, u);
        break;
    }
    case 4: {
        double d = (double) (int64_t) u / 1024.0;
        if (s_rand (rng, 50) == 0)
            d = s_rand (rng, 2) ? -0.0 : INFINITY;
        if (s_rand (rng, 2)) {
            float f = (float) d;
            uint32_t bits;
            memcpy (&bits, &f, 4);
            s_put_head (buf, 0xca, 4, bits);
        } else {
            uint64_t bits;
            memcpy (&bits, &d, 8);
            s_put_head (buf, 0xcb, 8, bits);
        }
        break;
    }
    case 5:
    case 6:
    case 7: s_rand_str (buf, rng); break;
    case 8: {
        size_t len = (size_t) s_rand (rng, 20);
        s_put_len (buf, rng, 0, 0, 0xc4, true, len);
        msgpack_sbuffer_write (buf, "0123456789abcdefghij", len);
        break;
    }
    case 9:
        if (s_rand (rng, 20) == 0) { //  an extension type
            s_put_head (buf, 0xd4, 1, 1);
            msgpack_sbuffer_write (buf, "", 1);
        } else if (s_rand (rng, 20) == 0)
            s_put_head (buf, 0xc1, 0, 0); //  never used
        else
            s_put_head (buf, (uint8_t) (u & 0x7f), 0, 0);
        break;
    case 10: s_put_head (buf, 0xd3, 8, u | (1ULL << 63)); break;
    case 11:
    case 12: {
        uint64_t n = s_rand (rng, 5);
        s_put_len (buf, rng, 0x90, 15, 0xdc, false, n);
        while (n--)
            s_rand_value (buf, rng, depth + 1);
        break;
    }
    default: {
        uint64_t n = s_rand (rng, 5);
        s_put_len (buf, rng, 0x80, 15, 0xde, false, n);
        while (n--) {
            if (s_rand (rng, 60) == 0)
                s_put_head (buf, 0x01, 0, 0); //  a key that is not a string
            else
                s_rand_str (buf, rng);
            s_rand_value (buf, rng, depth + 1);
        }
        break;
    }
    }
}

//  A record with a random body: mostly of a custom kind (any body is
//  valid), else a metric with extra fields or a declared kind's body made
//  of random values (mostly refused, each refusal its own detail)
static void
s_rand_record (msgpack_sbuffer *buf, uint64_t *rng)
{
    static const char *kinds[] = {"x.rand",     "x.rand",  "x.rand",     "metric",
                                  "git.commit", "ci.test", "code.stats", "run.end"};
    const char *kind = kinds[s_rand (rng, sizeof kinds / sizeof kinds[0])];
    bool tags = s_rand (rng, 2);
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    omni_record_pack_head (buf, &pk, tags, kind, "src", "col", "run",
                           (int64_t) s_rand (rng, 1ULL << 62));
    uint64_t extra = s_rand (rng, 6);
    bool metric = strcmp (kind, "metric") == 0;
    s_put_len (buf, rng, 0x80, 15, 0xde, false, extra + (metric ? 2 : 0));
    if (metric) {
        omni_record_pack_kv (&pk, "name", "host.cpu.user");
        omni_record_pack_str (&pk, "value");
        s_rand_value (buf, rng, 4);
    }
    while (extra--) {
        if (s_rand (rng, 3) == 0 && !metric) { //  a declared field's name, any value
            const omni_field_spec_t *fields = omni_kinds_lookup (kind, strlen (kind))->fields;
            size_t n = 0;
            while (fields[n].name)
                n++;
            omni_record_pack_str (&pk, n ? fields[s_rand (rng, n)].name : "k");
        } else
            s_rand_str (buf, rng);
        s_rand_value (buf, rng, 2);
    }
    if (tags) {
        omni_record_pack_str (&pk, "tags");
        uint64_t n = s_rand (rng, 4);
        s_put_len (buf, rng, 0x80, 15, 0xde, false, n);
        while (n--) {
            s_rand_str (buf, rng);
            if (s_rand (rng, 30) == 0)
                s_rand_value (buf, rng, 2);
            else
                s_rand_str (buf, rng);
        }
    }
}

#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes (void);
static size_t
s_heap_in_use (void)
{
    return __sanitizer_get_current_allocated_bytes ();
}
#else
static size_t
s_heap_in_use (void)
{
    struct mallinfo2 info = mallinfo2 ();
    return info.uordblks + info.hblkhd;
}
#endif

//  A frame that lies about its counts: a body of nested arrays, each
//  declaring as many elements as bytes remain after it, then too few
//  bytes. Refused as the oracle refuses it, and built from no more than
//  one declared count: each nested array's elements allocated from its
//  count would be fifteen times as much.
static void
s_test_lying_counts (void)
{
    size_t size = 1 << 20;
    uint8_t *frame = calloc (1, size);
    assert (frame);
    memcpy (frame,
            "\x81\xa4"
            "body\x81\xa1"
            "a",
            9);
    size_t pos = 9;
    for (int i = 0; i < 14; i++) {
        uint64_t items = size - pos - 5;
        frame[pos] = 0xdd;
        for (int b = 0; b < 4; b++)
            frame[pos + 1 + (size_t) b] = (uint8_t) (items >> (8 * (3 - b)));
        pos += 5;
    }
    assert (s_same_decode (frame, size, NULL) == REJECT_NOT_MSGPACK);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    size_t before = s_heap_in_use ();
    omni_record_t rec;
    char detail[256];
    assert (omni_record_decode (&rec, &zone, frame, size, NULL, detail, sizeof detail) ==
            REJECT_NOT_MSGPACK);
    size_t used = s_heap_in_use () - before;
    //  One array's elements: 24 bytes each, in a chunk of up to twice that
    assert (used <= 2 * size * sizeof (msgpack_object) + 4096);
    msgpack_zone_destroy (&zone);
    free (frame);
}

static void
s_test_one_walk (bool verbose)
{
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    size_t records = 0, accepted = 0;
    //  The variants (every order of the fields, tags or none)
    for (int variant = 0; variant < 40; variant++) {
        msgpack_sbuffer buf;
        s_pack_variant (&buf, variant);
        accepted += s_same_decode_around ((const uint8_t *) buf.data, buf.size, &rng, 32, false);
        records++;
        msgpack_sbuffer_destroy (&buf);
    }
    //  The fuzzer's seeds, every byte changed four ways
    char *dir_path = selftest_source ("proto/fuzz_seeds");
    DIR *dir = opendir (dir_path);
    assert (dir);
    size_t seeds = 0;
    for (struct dirent *entry; (entry = readdir (dir));) {
        if (entry->d_name[0] == '.')
            continue;
        char *path;
        assert (asprintf (&path, "%s/%s", dir_path, entry->d_name) > 0);
        FILE *file = fopen (path, "rb");
        assert (file);
        uint8_t seed[65536];
        size_t size = fread (seed, 1, sizeof seed, file);
        assert (feof (file));
        fclose (file);
        free (path);
        accepted += s_same_decode_around (seed, size, &rng, 0, true);
        records++;
        seeds++;
    }
    closedir (dir);
    free (dir_path);
    assert (seeds >= 10);
    //  Random bodies, in every encoding of their lengths
    for (int i = 0; i < 400; i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_rand_record (&buf, &rng);
        accepted += s_same_decode_around ((const uint8_t *) buf.data, buf.size, &rng, 16, false);
        records++;
        msgpack_sbuffer_destroy (&buf);
    }
    assert (accepted > records / 3 && accepted < records);
    s_test_lying_counts ();
    if (verbose)
        printf ("record: one walk = check + unpack on %zu records (%zu accepted), their cuts "
                "and changes\n",
                records, accepted);
}

void
omni_record_test (bool verbose)
{
    //  A list of strings as an array
    msgpack_sbuffer list_buf;
    msgpack_sbuffer_init (&list_buf);
    msgpack_packer list_pk;
    msgpack_packer_init (&list_pk, &list_buf, msgpack_sbuffer_write);
    const char *const list[] = {"a", "bc", NULL};
    omni_record_pack_strv (&list_pk, list);
    omni_record_pack_strv (&list_pk, list + 2);
    assert (list_buf.size == 7 && memcmp (list_buf.data,
                                          "\x92\xa1"
                                          "a\xa2"
                                          "bc\x90",
                                          7) == 0);
    msgpack_sbuffer_destroy (&list_buf);

    omni_record_encoder_t *enc = omni_record_encoder_new ();
    char detail[256];
    const void *data;
    size_t size;
    msgpack_packer *pk;

    //  A valid commit round-trips, and its id depends only on src + sha.
    s_test_branch (enc, "repo-a", "col-1", "run-1", 1700000000000000000LL, "abc", true);
    omni_record_encoder_tag (enc, "zone", "eu");
    omni_record_encoder_tag (enc, "env", "prod");
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    uint8_t id1[RECORD_ID_SIZE];
    memcpy (id1, omni_record_encoder_id (enc), RECORD_ID_SIZE);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    omni_record_t rec;
    assert (omni_record_decode (&rec, &zone, data, size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    assert (omni_record_str_eq (rec.kind, "git.branch"));
    assert (omni_record_str_eq (rec.src, "repo-a"));
    assert (rec.ts == 1700000000000000000LL);
    assert (memcmp (rec.id, id1, RECORD_ID_SIZE) == 0);
    assert (rec.tags && rec.tags->via.map.size == 2);
    assert (s_key_is (&rec.tags->via.map.ptr[0].key, "env")); //  sorted
    omni_record_str_t name;
    assert (omni_record_field_str (rec.body, "name", &name) && omni_record_str_eq (name, "main"));
    bool head;
    assert (omni_record_field_bool (rec.body, "head", &head) && head);
    msgpack_zone_destroy (&zone);

    //  Same natural key, other target and run: same id (the branch moved).
    s_test_branch (enc, "repo-a", "col-2", "run-2", 1, "def", false);
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    assert (memcmp (omni_record_encoder_id (enc), id1, RECORD_ID_SIZE) == 0);

    //  Other source: other id.
    s_test_branch (enc, "repo-b", "col-2", "run-2", 1, "def", false);
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    assert (memcmp (omni_record_encoder_id (enc), id1, RECORD_ID_SIZE) != 0);

    //  An optional key part ("?occurrence" of ci.test) adds nothing when
    //  absent: the id is the one of the four parts before it was added
    uint8_t ids[2][RECORD_ID_SIZE];
    for (int k = 0; k < 2; k++) {
        omni_record_encoder_begin (enc, "ci.test", "repo-a", "c", "r", 1);
        pk = omni_record_encoder_body (enc);
        msgpack_pack_map (pk, 5 + k);
        omni_record_pack_str (pk, "suite");
        omni_record_pack_str (pk, "s");
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "t");
        omni_record_pack_str (pk, "status");
        omni_record_pack_str (pk, "passed");
        omni_record_pack_str (pk, "duration");
        msgpack_pack_double (pk, 0.5);
        omni_record_pack_str (pk, "build_id");
        omni_record_pack_str (pk, "42");
        if (k) {
            omni_record_pack_str (pk, "occurrence");
            msgpack_pack_int (pk, 1);
        }
        assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
        memcpy (ids[k], omni_record_encoder_id (enc), RECORD_ID_SIZE);
    }
    {
        //  sha256 ("omni.id/1" 0 "ci.test" 0 "repo-a" 0 "42" "s" nil "t")
        static const char key[] = "omni.id/1\0ci.test\0repo-a\0\xa2"
                                  "42\xa1s\xc0\xa1t";
        uint8_t digest[32];
        SHA256 ((const unsigned char *) key, sizeof key - 1, digest);
        assert (memcmp (ids[0], digest, RECORD_ID_SIZE) == 0);
        assert (memcmp (ids[1], ids[0], RECORD_ID_SIZE) != 0);
    }

    //  A missing required field is refused by the encoder with a reason.
    omni_record_encoder_begin (enc, "git.branch", "repo-a", "c", "r", 1);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 1);
    omni_record_pack_str (pk, "name");
    msgpack_pack_int (pk, 3);
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == -1);
    assert (strstr (detail, "body.name: expected str, got int"));

    //  Array elements and their members have the kinds table's types
    //  (git.commit's parents and files), each refusal says where
    assert (s_test_commit (enc, 0, detail, sizeof detail) == 0);
    assert (s_test_commit (enc, 6, detail, sizeof detail) == 0);
    static const char *where[] = {NULL,
                                  "body.parents[1]: expected str, got int",
                                  "body.files[1]: expected map, got str",
                                  "body.files[1].path: expected str, got int",
                                  "body.files[1].path: missing",
                                  "body.files[1].insertions: expected int, got bool"};
    for (int variant = 1; variant <= 5; variant++) {
        assert (s_test_commit (enc, variant, detail, sizeof detail) == -1);
        if (!strstr (detail, where[variant]))
            fprintf (stderr, "variant %d: %s\n", variant, detail);
        assert (strstr (detail, where[variant]));
    }

    //  Bad inputs, each with its reason.
    assert (s_decode_bytes ("", 0, detail) == REJECT_NOT_MSGPACK);
    assert (s_decode_bytes ("\x01", 1, detail) == REJECT_NOT_MAP);
    assert (s_decode_bytes ("\x81\xa1", 2, detail) == REJECT_NOT_MSGPACK);
    assert (s_decode_bytes ("\xdd\xff\xff\xff\xff", 5, detail) == REJECT_NOT_MSGPACK);
    assert (s_decode_bytes ("\xdf\xff\xff\xff\xff\x00", 6, detail) == REJECT_NOT_MSGPACK);
    assert (s_decode_bytes ("\x80\x00", 2, detail) == REJECT_NOT_MSGPACK);  //  trailing
    assert (s_decode_bytes ("\x81\x01\x02", 3, detail) == REJECT_BAD_BODY); //  int key
    assert (s_decode_bytes ("\x81\xa1v\xa2\xff\xfe", 6, detail) == REJECT_BAD_UTF8);
    assert (s_decode_bytes ("\x81\xa1v\xc7\x01\x05\x00", 7, detail) == REJECT_BAD_BODY); //  ext
    assert (s_decode_bytes ("\x81\xa1v\x02", 4, detail) == REJECT_BAD_VERSION);
    assert (s_decode_bytes ("\x81\xa1v\x01", 4, detail) == REJECT_BAD_ENVELOPE);
    assert (strstr (detail, "id: missing"));
    assert (s_decode_bytes ("\x81\xa1v\xcb\x7f\xf0\0\0\0\0\0\0", 12, detail) == REJECT_BAD_BODY);
    //  Deep nesting: 40 nested single-element arrays under a map.
    uint8_t deep[64];
    deep[0] = 0x81;
    deep[1] = 0xa1;
    deep[2] = 'x';
    for (int i = 0; i < 40; i++)
        deep[3 + i] = 0x91;
    deep[43] = 0x00;
    assert (s_decode_bytes (deep, 44, detail) == REJECT_TOO_DEEP);
    //  Over the size limit.
    omni_record_limits_t small = {8, 16};
    msgpack_zone_init (&zone, 1024);
    assert (omni_record_decode (&rec, &zone, "\x81\xa1v\xa8........", 12, &small, detail,
                                sizeof detail) == REJECT_TOO_LARGE);
    msgpack_zone_destroy (&zone);

    //  Every truncation of a valid record is refused, none crashes.
    omni_record_encoder_begin (enc, "metric", "host-1", "c", "r", 5);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "name");
    omni_record_pack_str (pk, "host.cpu.user");
    omni_record_pack_str (pk, "value");
    msgpack_pack_double (pk, 12.5);
    assert (omni_record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    for (size_t cut = 0; cut < size; cut++)
        assert (s_decode_bytes (data, cut, detail) != REJECT_NONE);
    assert (s_decode_bytes (data, size, detail) == REJECT_NONE);

    s_test_ids (enc);
    s_test_decode_maps ();
    s_test_one_walk (verbose);
    if (verbose)
        printf ("record: %zu-byte metric record ok\n", size);
    omni_record_encoder_destroy (&enc);
    assert (enc == NULL);
}
