/*  libFuzzer target for the record decoder: whatever the bytes, decoding
    must return a reason or a record, never crash, hang or over-allocate,
    and an accepted record must convert to JSON and back to its id.

    record_check validates in one pass; the two-pass decoder it replaced
    (a bounds-checking pre-scan, then msgpack-c, then the envelope and body
    checks on msgpack-c's objects) is kept below, verbatim, as the oracle:
    for every input both must give the same reason, the same detail and the
    same envelope fields.                                                    */
#include "mpjson.h"
#include "record.h"

#include <openssl/evp.h>

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static record_reject_t
s_fail (record_reject_t reason, char *detail, size_t detail_size, const char *format, ...)
{
    if (detail && detail_size) {
        va_list args;
        va_start (args, format);
        vsnprintf (detail, detail_size, format, args);
        va_end (args);
    }
    return reason;
}

//  Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
static bool
s_utf8_valid (const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else
            return false;
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

//  Length of the longest prefix of at most `max` bytes that does not cut a
//  UTF-8 character, so that details quoting input stay valid UTF-8.
static int
s_utf8_prefix (const char *text, size_t len, size_t max)
{
    if (len <= max)
        return (int) len;
    size_t cut = max;
    while (cut > 0 && ((unsigned char) text[cut] & 0xC0) == 0x80)
        cut--;
    return (int) cut;
}

static uint64_t
s_be (const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

typedef struct {
    uint64_t remaining; //  items left in this container (a map counts keys and values)
    bool is_map;
} s_frame_t;

#define S_STACK_MAX 64

static record_reject_t
s_prescan (const uint8_t *p, size_t size, size_t max_depth, char *detail, size_t detail_size)
{
    s_frame_t stack[S_STACK_MAX];
    size_t depth = 0, pos = 0;
    bool done = false;
    while (!done) {
        if (pos >= size)
            return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "truncated at byte %zu", pos);
        bool is_key = depth > 0 && stack[depth - 1].is_map && stack[depth - 1].remaining % 2 == 0;
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
        if (is_str && !s_utf8_valid (p + pos, payload))
            return s_fail (REJECT_BAD_UTF8, detail, detail_size,
                           "string at byte %zu is not valid UTF-8", pos - 1);
        pos += payload;
        if (depth > 0)
            stack[depth - 1].remaining--;
        if (container) {
            if (items > size - pos)
                return s_fail (REJECT_NOT_MSGPACK, detail, detail_size,
                               "container declares %llu items, %zu bytes remain",
                               (unsigned long long) items, size - pos);
            if (depth + 1 > max_depth || depth + 1 > S_STACK_MAX)
                return s_fail (REJECT_TOO_DEEP, detail, detail_size, "nesting deeper than %zu",
                               max_depth);
            stack[depth].remaining = items;
            stack[depth].is_map = is_map;
            depth++;
        }
        while (depth > 0 && stack[depth - 1].remaining == 0)
            depth--;
        done = depth == 0;
    }
    if (pos != size)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "%zu trailing bytes", size - pos);
    return REJECT_NONE;
}

static bool
s_is_int (const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ||
           (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX);
}

static const char *
s_type_name (const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "bool";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "float";
    case MSGPACK_OBJECT_STR: return "str";
    case MSGPACK_OBJECT_BIN: return "bin";
    case MSGPACK_OBJECT_ARRAY: return "array";
    case MSGPACK_OBJECT_MAP: return "map";
    default: return "ext";
    }
}

static bool
s_type_ok (field_type_t type, const msgpack_object *o)
{
    switch (type) {
    case FIELD_STR: return o->type == MSGPACK_OBJECT_STR;
    case FIELD_INT: return s_is_int (o);
    case FIELD_NUM:
        return s_is_int (o) || o->type == MSGPACK_OBJECT_FLOAT32 ||
               o->type == MSGPACK_OBJECT_FLOAT64;
    case FIELD_BOOL: return o->type == MSGPACK_OBJECT_BOOLEAN;
    case FIELD_BIN: return o->type == MSGPACK_OBJECT_BIN;
    case FIELD_ARRAY: return o->type == MSGPACK_OBJECT_ARRAY;
    case FIELD_MAP: return o->type == MSGPACK_OBJECT_MAP;
    case FIELD_ANY: return true;
    }
    return false;
}

static record_reject_t
s_envelope_str (const msgpack_object *val, const char *name, record_str_t *out, char *detail,
                size_t detail_size)
{
    if (val->type != MSGPACK_OBJECT_STR)
        return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "%s: expected str, got %s", name,
                       s_type_name (val));
    out->ptr = val->via.str.ptr;
    out->len = val->via.str.size;
    return REJECT_NONE;
}

//  Index of an envelope field in the order of `names` in record_decode, or
//  -1: a switch on the length first, because this runs for every field of
//  every record ingestd receives.
static int
s_envelope_index (const msgpack_object *key)
{
    const char *p = key->via.str.ptr;
    switch (key->via.str.size) {
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

record_reject_t
s_reference_decode (record_t *record, msgpack_zone *zone, const void *data, size_t size,
                    const record_limits_t *limits, char *detail, size_t detail_size)
{
    if (!limits)
        limits = &record_default_limits;
    if (detail && detail_size)
        detail[0] = 0;
    memset (record, 0, sizeof *record);
    if (size > limits->max_size)
        return s_fail (REJECT_TOO_LARGE, detail, detail_size, "%zu bytes, limit %zu", size,
                       limits->max_size);
    if (size == 0)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "empty frame");
    const uint8_t *bytes = data;
    if (!((bytes[0] >= 0x80 && bytes[0] <= 0x8f) || bytes[0] == 0xde || bytes[0] == 0xdf)) {
        record_reject_t rc = s_prescan (bytes, size, limits->max_depth, detail, detail_size);
        if (rc != REJECT_NONE)
            return rc;
        return s_fail (REJECT_NOT_MAP, detail, detail_size, "top level is not a map");
    }
    record_reject_t rc = s_prescan (bytes, size, limits->max_depth, detail, detail_size);
    if (rc != REJECT_NONE)
        return rc;
    msgpack_object root;
    size_t offset = 0;
    if (msgpack_unpack (data, size, &offset, zone, &root) != MSGPACK_UNPACK_SUCCESS)
        return s_fail (REJECT_NOT_MSGPACK, detail, detail_size, "msgpack decoder refused it");

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
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const msgpack_object *key = &root.via.map.ptr[i].key;
        const msgpack_object *val = &root.via.map.ptr[i].val;
        int which = s_envelope_index (key);
        if (which < 0)
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "unknown field \"%.*s\"",
                           s_utf8_prefix (key->via.str.ptr, key->via.str.size, 64),
                           key->via.str.ptr);
        if (seen & (1u << which))
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "duplicate field \"%s\"",
                           names[which]);
        seen |= 1u << which;
        switch (1u << which) {
        case F_V:
            if (val->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: expected int, got %s",
                               s_type_name (val));
            record->v = val->via.u64;
            break;
        case F_ID:
            if (val->type != MSGPACK_OBJECT_BIN || val->via.bin.size != RECORD_ID_SIZE)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "id: expected %d-byte bin",
                               RECORD_ID_SIZE);
            memcpy (record->id, val->via.bin.ptr, RECORD_ID_SIZE);
            break;
        case F_KIND: rc = s_envelope_str (val, "kind", &record->kind, detail, detail_size); break;
        case F_SRC: rc = s_envelope_str (val, "src", &record->src, detail, detail_size); break;
        case F_COL: rc = s_envelope_str (val, "col", &record->col, detail, detail_size); break;
        case F_RUN: rc = s_envelope_str (val, "run", &record->run, detail, detail_size); break;
        case F_TS:
            if (!s_is_int (val))
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "ts: expected int (ns), got %s", s_type_name (val));
            record->ts = val->via.i64;
            break;
        case F_BODY:
            if (val->type != MSGPACK_OBJECT_MAP)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "body: expected map, got %s", s_type_name (val));
            record->body = val;
            break;
        case F_TAGS:
            if (val->type != MSGPACK_OBJECT_MAP)
                return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                               "tags: expected map, got %s", s_type_name (val));
            for (uint32_t t = 0; t < val->via.map.size; t++)
                if (val->via.map.ptr[t].val.type != MSGPACK_OBJECT_STR)
                    return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size,
                                   "tags: values must be strings");
            record->tags = val;
            break;
        }
        if (rc != REJECT_NONE)
            return rc;
    }
    if (!(seen & F_V))
        return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: missing");
    if (record->v != RECORD_VERSION)
        return s_fail (REJECT_BAD_VERSION, detail, detail_size, "v: %llu is not supported",
                       (unsigned long long) record->v);
    for (int n = 1; n < 8; n++)
        if (!(seen & (1u << n)))
            return s_fail (REJECT_BAD_ENVELOPE, detail, detail_size, "%s: missing", names[n]);

    record->spec = kinds_lookup (record->kind.ptr, record->kind.len);
    if (!record->spec)
        return s_fail (REJECT_UNKNOWN_KIND, detail, detail_size, "kind \"%.*s\" is not declared",
                       s_utf8_prefix (record->kind.ptr, record->kind.len, 64), record->kind.ptr);
    //  One pass over the body: each key is matched against the spec's
    //  fields (length first), and required fields are ticked off.
    const field_spec_t *fields = record->spec->fields;
    uint64_t present = 0;
    for (uint32_t i = 0; i < record->body->via.map.size; i++) {
        const msgpack_object *key = &record->body->via.map.ptr[i].key;
        const msgpack_object *val = &record->body->via.map.ptr[i].val;
        for (int n = 0; fields[n].name && n < 64; n++) {
            const char *name = fields[n].name;
            if (key->via.str.size == 0 || name[0] != key->via.str.ptr[0] ||
                strlen (name) != key->via.str.size ||
                memcmp (name, key->via.str.ptr, key->via.str.size) != 0)
                continue;
            if (val->type == MSGPACK_OBJECT_NIL && !fields[n].required)
                break;
            if (!s_type_ok (fields[n].type, val))
                return s_fail (REJECT_BAD_BODY, detail, detail_size, "body.%s: expected %s, got %s",
                               name, field_type_name (fields[n].type), s_type_name (val));
            present |= 1ULL << n;
            break;
        }
    }
    for (int n = 0; fields[n].name && n < 64; n++)
        if (fields[n].required && !(present & (1ULL << n)))
            return s_fail (REJECT_BAD_BODY, detail, detail_size, "body.%s: missing",
                           fields[n].name);
    return REJECT_NONE;
}

//  ---------------------------------------------------------------------------

static void
s_same_envelope (const record_t *a, const record_t *b)
{
    assert (a->v == b->v && a->ts == b->ts && a->spec == b->spec);
    assert (memcmp (a->id, b->id, RECORD_ID_SIZE) == 0);
    assert (a->kind.ptr == b->kind.ptr && a->kind.len == b->kind.len);
    assert (a->src.ptr == b->src.ptr && a->src.len == b->src.len);
    assert (a->col.ptr == b->col.ptr && a->col.len == b->col.len);
    assert (a->run.ptr == b->run.ptr && a->run.len == b->run.len);
}

//  The id as record_compute_id computed it before it read the bytes: the
//  key values decoded by msgpack-c and packed again by its packer.
static void
s_reference_id (const record_t *record, uint8_t id[RECORD_ID_SIZE])
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_sbuffer_write (&sbuf, "omni.id/1", 10);
    msgpack_sbuffer_write (&sbuf, record->kind.ptr, record->kind.len);
    msgpack_sbuffer_write (&sbuf, "", 1);
    msgpack_sbuffer_write (&sbuf, record->src.ptr, record->src.len);
    msgpack_sbuffer_write (&sbuf, "", 1);
    const kind_spec_t *spec = record->spec;
    if (!spec->key[0])
        msgpack_pack_object (&pk, *record->body);
    for (int i = 0; i < KIND_KEY_MAX && spec->key[i]; i++) {
        const msgpack_object *val = strcmp (spec->key[i], "@tags") == 0
                                        ? record->tags
                                        : record_field (record->body, spec->key[i]);
        if (strcmp (spec->key[i], "@ts") == 0)
            msgpack_pack_int64 (&pk, record->ts);
        else if (val)
            msgpack_pack_object (&pk, *val);
        else
            msgpack_pack_nil (&pk);
    }
    uint8_t digest[32];
    EVP_Digest (sbuf.data, sbuf.size, digest, NULL, EVP_sha256 (), NULL);
    memcpy (id, digest, RECORD_ID_SIZE);
    msgpack_sbuffer_destroy (&sbuf);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    msgpack_zone zone, ref_zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_zone_init (&ref_zone, 1024);
    record_t record, checked, reference;
    char detail[256], check_detail[256], ref_detail[256];
    record_reject_t rc = record_decode (&record, &zone, data, size, NULL, detail, sizeof detail);
    record_reject_t check_rc =
        record_check (&checked, data, size, NULL, check_detail, sizeof check_detail);
    record_reject_t ref_rc =
        s_reference_decode (&reference, &ref_zone, data, size, NULL, ref_detail, sizeof ref_detail);
    assert (rc == ref_rc && check_rc == ref_rc);
    assert (strcmp (detail, ref_detail) == 0 && strcmp (check_detail, ref_detail) == 0);
    if (rc == REJECT_NONE) {
        s_same_envelope (&record, &reference);
        s_same_envelope (&checked, &reference);
        assert (record.body && record.body->type == MSGPACK_OBJECT_MAP);
        assert (record.body->via.map.size == reference.body->via.map.size);
        assert (!record.tags == !reference.tags);
        mpjson_buf_t json = {0};
        mpjson_record (&json, &record);
        assert (json.size > 0 && json.data[0] == '{' && json.data[json.size - 1] == '}');
        mpjson_buf_free (&json);
        //  The id from the bytes (shortest encodings) is what msgpack-c's
        //  packer makes of the decoded values, whatever the input's encoding
        uint8_t id[RECORD_ID_SIZE], expected[RECORD_ID_SIZE];
        record_compute_id (&record, id);
        record_compute_id (&checked, expected);
        assert (memcmp (id, expected, RECORD_ID_SIZE) == 0);
        s_reference_id (&reference, expected);
        assert (memcmp (id, expected, RECORD_ID_SIZE) == 0);
    } else
        assert (strlen (detail) > 0);
    msgpack_zone_destroy (&zone);
    msgpack_zone_destroy (&ref_zone);
    return 0;
}
