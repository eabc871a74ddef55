/*  fuzz_oracle: the record rules, checked on msgpack-c's C++ object tree
    (see fuzz_oracle.h). Written from the rules, not from record.c: it
    walks a decoded tree where record.c checks bytes in one pass, so a
    reason may differ in which of several broken rules it names first, but
    never in whether a record is valid.                                     */
#define MSGPACK_NO_BOOST
#include <msgpack.hpp>

#include "proto/fuzz_oracle.h"
extern "C" {
#include "proto/kinds.h"
}

#include <openssl/evp.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <iconv.h>
#include <string>

namespace
{

using msgpack::object;
namespace type = msgpack::type;

const unsigned BIT_TOO_LARGE = 1u << ORACLE_TOO_LARGE;
const unsigned BIT_NOT_MSGPACK = 1u << ORACLE_NOT_MSGPACK;
const unsigned BIT_TOO_DEEP = 1u << ORACLE_TOO_DEEP;
const unsigned BIT_NOT_MAP = 1u << ORACLE_NOT_MAP;
const unsigned BIT_BAD_VERSION = 1u << ORACLE_BAD_VERSION;
const unsigned BIT_BAD_ENVELOPE = 1u << ORACLE_BAD_ENVELOPE;
const unsigned BIT_UNKNOWN_KIND = 1u << ORACLE_UNKNOWN_KIND;
const unsigned BIT_BAD_BODY = 1u << ORACLE_BAD_BODY;
const unsigned BIT_BAD_UTF8 = 1u << ORACLE_BAD_UTF8;

//  Strict UTF-8 as glibc's converter reads it: no overlong forms, no
//  surrogates, nothing past U+10FFFF
bool
utf8_valid (const char *data, size_t size)
{
    static iconv_t cd = iconv_open ("UTF-32LE", "UTF-8");
    iconv (cd, nullptr, nullptr, nullptr, nullptr);
    char *in = const_cast<char *> (data);
    while (size > 0) {
        char out[256], *at = out;
        size_t room = sizeof out;
        if (iconv (cd, &in, &size, &at, &room) == (size_t) -1 && errno != E2BIG)
            return false; //  EILSEQ, or EINVAL: cut short
    }
    return true;
}

bool
is_str (const object &o, const char *text)
{
    return o.type == type::STR && o.via.str.size == strlen (text) &&
           memcmp (o.via.str.ptr, text, o.via.str.size) == 0;
}

bool
is_int (const object &o)
{
    return o.type == type::NEGATIVE_INTEGER ||
           (o.type == type::POSITIVE_INTEGER && o.via.u64 <= (uint64_t) INT64_MAX);
}

//  Rules any value breaks wherever it is: strings, extensions, floats, map
//  keys, nesting (the record map is depth 1)
unsigned
structure (const object &o, size_t depth, size_t max_depth)
{
    unsigned broken = 0;
    switch (o.type) {
    case type::STR: return utf8_valid (o.via.str.ptr, o.via.str.size) ? 0 : BIT_BAD_UTF8;
    case type::EXT: return BIT_BAD_BODY;
    case type::FLOAT32:
    case type::FLOAT64: return std::isfinite (o.via.f64) ? 0 : BIT_BAD_BODY;
    case type::ARRAY:
        if (depth + 1 > max_depth)
            broken |= BIT_TOO_DEEP;
        for (uint32_t i = 0; i < o.via.array.size; i++)
            broken |= structure (o.via.array.ptr[i], depth + 1, max_depth);
        return broken;
    case type::MAP:
        if (depth + 1 > max_depth)
            broken |= BIT_TOO_DEEP;
        for (uint32_t i = 0; i < o.via.map.size; i++) {
            const object &key = o.via.map.ptr[i].key;
            broken |= key.type == type::STR ? 0 : BIT_BAD_BODY;
            broken |= structure (key, depth + 1, max_depth);
            broken |= structure (o.via.map.ptr[i].val, depth + 1, max_depth);
        }
        return broken;
    default: return 0;
    }
}

bool
type_ok (omni_field_type_t field, const object &o)
{
    switch (field) {
    case FIELD_STR: return o.type == type::STR;
    case FIELD_INT: return is_int (o);
    case FIELD_NUM: return is_int (o) || o.type == type::FLOAT32 || o.type == type::FLOAT64;
    case FIELD_BOOL: return o.type == type::BOOLEAN;
    case FIELD_BIN: return o.type == type::BIN;
    case FIELD_ARRAY: return o.type == type::ARRAY;
    case FIELD_MAP: return o.type == type::MAP;
    case FIELD_ANY: return true;
    }
    return false;
}

//  The first value under `name` in a map of string keys, or NULL
const object *
field (const object &map, const char *name)
{
    for (uint32_t i = 0; i < map.via.map.size; i++)
        if (is_str (map.via.map.ptr[i].key, name))
            return &map.via.map.ptr[i].val;
    return nullptr;
}

struct envelope {
    const object *v = nullptr, *id = nullptr, *kind = nullptr, *src = nullptr, *col = nullptr,
                 *run = nullptr, *ts = nullptr, *body = nullptr, *tags = nullptr;
};

//  The envelope's rules (record.h): each field once, of its type; v first
//  among what is missing or unsupported
unsigned
envelope_rules (const object &root, uint64_t version, envelope &e)
{
    static const char *names[] = {"v", "id", "kind", "src", "col", "run", "ts", "body", "tags"};
    const object **slots[] = {&e.v,   &e.id, &e.kind, &e.src, &e.col,
                              &e.run, &e.ts, &e.body, &e.tags};
    unsigned broken = 0;
    for (uint32_t i = 0; i < root.via.map.size; i++) {
        const object &key = root.via.map.ptr[i].key, &val = root.via.map.ptr[i].val;
        size_t n = 0;
        while (n < 9 && !is_str (key, names[n]))
            n++;
        if (n == 9 || *slots[n]) { //  unknown, or twice
            broken |= BIT_BAD_ENVELOPE;
            continue;
        }
        *slots[n] = &val;
        bool ok;
        switch (n) {
        case 0: ok = val.type == type::POSITIVE_INTEGER; break;
        case 1: ok = val.type == type::BIN && val.via.bin.size == 16; break;
        case 6: ok = is_int (val); break;
        case 7: ok = val.type == type::MAP; break;
        case 8:
            ok = val.type == type::MAP;
            for (uint32_t t = 0; ok && t < val.via.map.size; t++)
                ok = val.via.map.ptr[t].val.type == type::STR;
            break;
        default: ok = val.type == type::STR;
        }
        if (!ok)
            broken |= n == 0 ? BIT_BAD_VERSION : BIT_BAD_ENVELOPE;
    }
    if (!e.v || (e.v->type == type::POSITIVE_INTEGER && e.v->via.u64 != version))
        broken |= BIT_BAD_VERSION;
    for (size_t n = 1; n < 8; n++)
        if (!*slots[n])
            broken |= BIT_BAD_ENVELOPE;
    return broken;
}

unsigned fields_rules (const object &map, const omni_field_spec_t *fields);

//  A value against its field spec: its type, then every element of an
//  array (`element`, nil allowed when not required) and the members of a
//  map (`members`), by the same rules
unsigned
value_rules (const object &val, const omni_field_spec_t *f)
{
    if (!type_ok (f->type, val))
        return BIT_BAD_BODY;
    unsigned broken = 0;
    if (f->element && val.type == type::ARRAY)
        for (uint32_t i = 0; i < val.via.array.size; i++) {
            const object &e = val.via.array.ptr[i];
            if (!(e.type == type::NIL && !f->element->required))
                broken |= value_rules (e, f->element);
        }
    if (f->members && val.type == type::MAP)
        broken |= fields_rules (val, f->members);
    return broken;
}

//  A map's rules from the kinds table: declared fields of their types
//  (nil for an optional one), required ones present; others are allowed
unsigned
fields_rules (const object &map, const omni_field_spec_t *fields)
{
    unsigned broken = 0;
    for (size_t n = 0; fields[n].name; n++) {
        const omni_field_spec_t *f = &fields[n];
        bool seen = false;
        for (uint32_t i = 0; i < map.via.map.size; i++) {
            if (!is_str (map.via.map.ptr[i].key, f->name))
                continue;
            const object &val = map.via.map.ptr[i].val;
            if (val.type == type::NIL && !f->required)
                continue;
            seen = true;
            broken |= value_rules (val, f);
        }
        if (f->required && !seen)
            broken |= BIT_BAD_BODY;
    }
    return broken;
}

//  The body's rules from the kinds table
unsigned
body_rules (const object &body, const omni_kind_spec_t *spec)
{
    return fields_rules (body, spec->fields);
}

void
put_be (std::string &out, uint64_t value, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        out.push_back ((char) (value >> (8 * i)));
}

//  A header: the one-byte form `fix | n` when `n` is under `fix_end` (0:
//  none), else the first of `codes` (8, 16, 32-bit length; codes[0] 0:
//  no 8-bit form) wide enough
void
put_head (std::string &out, uint64_t n, uint8_t fix, uint64_t fix_end, const uint8_t codes[3])
{
    if (n < fix_end)
        out.push_back ((char) (fix | n));
    else if (codes[0] && n <= 0xff) {
        out.push_back ((char) codes[0]);
        put_be (out, n, 1);
    } else if (n <= 0xffff) {
        out.push_back ((char) codes[1]);
        put_be (out, n, 2);
    } else {
        out.push_back ((char) codes[2]);
        put_be (out, n, 4);
    }
}

//  A value in its shortest msgpack encoding, as the msgpack spec lays it
//  out (written here, not msgpack-c's packer, whose C++ side packs an
//  integral float as an integer)
void
pack_into (std::string &out, const object &o)
{
    static const uint8_t str_codes[3] = {0xd9, 0xda, 0xdb}, bin_codes[3] = {0xc4, 0xc5, 0xc6},
                         array_codes[3] = {0, 0xdc, 0xdd}, map_codes[3] = {0, 0xde, 0xdf};
    switch (o.type) {
    case type::NIL: out.push_back ((char) 0xc0); break;
    case type::BOOLEAN: out.push_back ((char) (o.via.boolean ? 0xc3 : 0xc2)); break;
    case type::POSITIVE_INTEGER: {
        uint64_t u = o.via.u64;
        if (u < 0x80)
            out.push_back ((char) u);
        else {
            int bytes = u <= 0xff ? 1 : u <= 0xffff ? 2 : u <= 0xffffffff ? 4 : 8;
            out.push_back ((char) (bytes == 1   ? 0xcc
                                   : bytes == 2 ? 0xcd
                                   : bytes == 4 ? 0xce
                                                : 0xcf));
            put_be (out, u, bytes);
        }
        break;
    }
    case type::NEGATIVE_INTEGER: {
        int64_t i = o.via.i64;
        if (i >= -32)
            out.push_back ((char) (uint8_t) i);
        else {
            int bytes = i >= INT8_MIN ? 1 : i >= INT16_MIN ? 2 : i >= INT32_MIN ? 4 : 8;
            out.push_back ((char) (bytes == 1   ? 0xd0
                                   : bytes == 2 ? 0xd1
                                   : bytes == 4 ? 0xd2
                                                : 0xd3));
            put_be (out, (uint64_t) i, bytes);
        }
        break;
    }
    case type::FLOAT32: {
        float f = (float) o.via.f64;
        uint32_t bits;
        memcpy (&bits, &f, 4);
        out.push_back ((char) 0xca);
        put_be (out, bits, 4);
        break;
    }
    case type::FLOAT64: {
        uint64_t bits;
        memcpy (&bits, &o.via.f64, 8);
        out.push_back ((char) 0xcb);
        put_be (out, bits, 8);
        break;
    }
    case type::STR:
        put_head (out, o.via.str.size, 0xa0, 32, str_codes);
        out.append (o.via.str.ptr, o.via.str.size);
        break;
    case type::BIN:
        put_head (out, o.via.bin.size, 0, 0, bin_codes);
        out.append (o.via.bin.ptr, o.via.bin.size);
        break;
    case type::ARRAY:
        put_head (out, o.via.array.size, 0x90, 16, array_codes);
        for (uint32_t i = 0; i < o.via.array.size; i++)
            pack_into (out, o.via.array.ptr[i]);
        break;
    case type::MAP:
        put_head (out, o.via.map.size, 0x80, 16, map_codes);
        for (uint32_t i = 0; i < o.via.map.size; i++) {
            pack_into (out, o.via.map.ptr[i].key);
            pack_into (out, o.via.map.ptr[i].val);
        }
        break;
    default: break; //  extensions: never in a valid record
    }
}

//  PROTOCOL.md, "Ids": SHA-256 of "omni.id/1" 0 kind 0 src 0 and each key
//  part in its shortest encoding, nil when absent, nothing for an absent
//  optional "?field"; a kind without key parts: the whole body
void
expected_id (const envelope &e, const omni_kind_spec_t *spec, uint8_t id[16])
{
    std::string text ("omni.id/1", 10);
    text.append (e.kind->via.str.ptr, e.kind->via.str.size).push_back ('\0');
    text.append (e.src->via.str.ptr, e.src->via.str.size).push_back ('\0');
    if (!spec->key[0])
        pack_into (text, *e.body);
    for (size_t i = 0; i < KIND_KEY_MAX && spec->key[i]; i++) {
        const char *part = spec->key[i];
        bool optional = part[0] == '?';
        const object *val =
            strcmp (part, "@tags") == 0 ? e.tags : field (*e.body, optional ? part + 1 : part);
        if (strcmp (part, "@ts") == 0)
            pack_into (text, *e.ts);
        else if (val)
            pack_into (text, *val);
        else if (!optional)
            text.push_back ((char) 0xc0);
    }
    uint8_t digest[32];
    EVP_Digest (text.data (), text.size (), digest, nullptr, EVP_sha256 (), nullptr);
    memcpy (id, digest, 16);
}

//  What a verdict points to, until the next input
msgpack::object_handle held;
std::string kept_body, kept_tags;

} // namespace

extern "C" void
fuzz_oracle_judge (const uint8_t *data, size_t size, const omni_oracle_limits_t *limits,
                   omni_oracle_verdict_t *verdict)
{
    memset (verdict, 0, sizeof *verdict);
    if (size > limits->max_size) {
        verdict->broken = BIT_TOO_LARGE;
        return;
    }
    //  Any count past the input's size cannot be filled: refused before
    //  anything is allocated for it
    uint32_t most = size < UINT32_MAX ? (uint32_t) size : UINT32_MAX;
    msgpack::unpack_limit bound (most, most, most, most, most, limits->max_depth + 1);
    size_t used = 0;
    try {
        held = msgpack::unpack (reinterpret_cast<const char *> (data), size, used, nullptr, nullptr,
                                bound);
    } catch (const std::exception &) {
        //  Truncated, a byte no value starts with, or nested too deep: the
        //  decoder meets one of these or an earlier fault of another rule
        //  (a bad string, key, float or extension) in the bytes before it
        verdict->broken = BIT_NOT_MSGPACK | BIT_TOO_DEEP | BIT_BAD_UTF8 | BIT_BAD_BODY;
        return;
    }
    const object &root = held.get ();
    unsigned broken = structure (root, 0, limits->max_depth);
    if (used != size)
        broken = broken ? broken : BIT_NOT_MSGPACK; //  trailing bytes, met last
    if (!broken && root.type != type::MAP)
        broken = BIT_NOT_MAP;
    envelope e;
    if (!broken)
        broken = envelope_rules (root, limits->version, e);
    const omni_kind_spec_t *spec =
        broken ? nullptr : omni_kinds_lookup (e.kind->via.str.ptr, e.kind->via.str.size);
    if (!broken && !spec)
        broken = BIT_UNKNOWN_KIND;
    if (!broken)
        broken = body_rules (*e.body, spec);
    verdict->broken = broken;
    if (broken)
        return;
    verdict->v = e.v->via.u64;
    verdict->ts = e.ts->via.i64;
    memcpy (verdict->id, e.id->via.bin.ptr, 16);
    verdict->kind = e.kind->via.str.ptr;
    verdict->kind_len = e.kind->via.str.size;
    verdict->src = e.src->via.str.ptr;
    verdict->src_len = e.src->via.str.size;
    verdict->col = e.col->via.str.ptr;
    verdict->col_len = e.col->via.str.size;
    verdict->run = e.run->via.str.ptr;
    verdict->run_len = e.run->via.str.size;
    kept_body.clear ();
    pack_into (kept_body, *e.body);
    verdict->body = reinterpret_cast<const uint8_t *> (kept_body.data ());
    verdict->body_size = kept_body.size ();
    if (e.tags) {
        kept_tags.clear ();
        pack_into (kept_tags, *e.tags);
        verdict->tags = reinterpret_cast<const uint8_t *> (kept_tags.data ());
        verdict->tags_size = kept_tags.size ();
    }
    expected_id (e, spec, verdict->expected_id);
}
