/*  mpjson: msgpack to JSON, streaming, no intermediate tree, because the
    archiver and omni-tap convert every record and a tree per record would
    cost more than the conversion itself.                                     */
#include "proto/mpjson.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
omni_mpjson_escaped (omni_buf_t *buf, const void *text, size_t len, bool untrusted)
{
    //  Room for the worst case (6 bytes a byte) up front: one check per
    //  string instead of one per piece, most strings being short
    char *at = omni_buf_reserve (buf, 6 * len);
    omni_buf_advance (buf, omni_util_json_escape (at, text, len, untrusted));
}

void
omni_mpjson_string (omni_buf_t *buf, const char *text, size_t len)
{
    char *at = omni_buf_reserve (buf, 6 * len + 2);
    at[0] = '"';
    size_t n = 1 + omni_util_json_escape (at + 1, text, len, false);
    at[n++] = '"';
    omni_buf_advance (buf, n);
}

static void
s_base64 (omni_buf_t *buf, const uint8_t *data, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *start = omni_buf_reserve (buf, (len + 2) / 3 * 4), *out = start;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8 | data[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t) data[i] << 16 | (i + 1 < len ? (uint32_t) data[i + 1] << 8 : 0);
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *out++ = '=';
    }
    omni_buf_advance (buf, (size_t) (out - start));
}

//  Decimal digits of `value` into `out` (at least 20 bytes); returns the
//  length. printf costs more than the rest of a record's JSON together.
static size_t
s_u64 (uint64_t value, char *out)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

static void
s_int (omni_buf_t *buf, int64_t value)
{
    char text[24];
    size_t n = 0;
    if (value < 0)
        text[n++] = '-';
    n += s_u64 (value < 0 ? 0 - (uint64_t) value : (uint64_t) value, text + n);
    omni_buf_append (buf, text, n);
}

static void
s_uint (omni_buf_t *buf, uint64_t value)
{
    char text[24];
    omni_buf_append (buf, text, s_u64 (value, text));
}

//  Shortest text that reads back as the same double, always with a '.' or
//  an exponent so that a JSON reader keeps it a float.
static void
s_double (omni_buf_t *buf, double value)
{
    char text[40];
    //  Whole numbers (counts, bytes, seconds) are most metric values: their
    //  digits are exact below 2^53, no search needed.
    if (value > -9007199254740992.0 && value < 9007199254740992.0 &&
        value == (double) (int64_t) value && (value != 0 || !signbit (value))) {
        s_int (buf, (int64_t) value);
        omni_buf_append (buf, ".0", 2);
        return;
    }
    for (int precision = 15; precision <= 17; precision++) {
        snprintf (text, sizeof text, "%.*g", precision, value);
        if (strtod (text, NULL) == value)
            break;
    }
    if (!strpbrk (text, ".eEn"))
        strcat (text, ".0");
    omni_buf_append (buf, text, strlen (text));
}

void
omni_mpjson_value (omni_buf_t *buf, const msgpack_object *value)
{
    switch (value->type) {
    case MSGPACK_OBJECT_NIL: omni_buf_append (buf, "null", 4); break;
    case MSGPACK_OBJECT_BOOLEAN:
        if (value->via.boolean)
            omni_buf_append (buf, "true", 4);
        else
            omni_buf_append (buf, "false", 5);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: s_uint (buf, value->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: s_int (buf, value->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: s_double (buf, value->via.f64); break;
    case MSGPACK_OBJECT_STR:
        omni_mpjson_string (buf, value->via.str.ptr, value->via.str.size);
        break;
    case MSGPACK_OBJECT_BIN:
        omni_buf_append (buf, "{\"$bin\":\"", 9);
        s_base64 (buf, (const uint8_t *) value->via.bin.ptr, value->via.bin.size);
        omni_buf_append (buf, "\"}", 2);
        break;
    case MSGPACK_OBJECT_ARRAY:
        omni_buf_append_char (buf, '[');
        for (uint32_t i = 0; i < value->via.array.size; i++) {
            if (i)
                omni_buf_append_char (buf, ',');
            omni_mpjson_value (buf, &value->via.array.ptr[i]);
        }
        omni_buf_append_char (buf, ']');
        break;
    case MSGPACK_OBJECT_MAP:
        omni_buf_append_char (buf, '{');
        for (uint32_t i = 0; i < value->via.map.size; i++) {
            if (i)
                omni_buf_append_char (buf, ',');
            const msgpack_object *key = &value->via.map.ptr[i].key;
            if (key->type == MSGPACK_OBJECT_STR)
                omni_mpjson_string (buf, key->via.str.ptr, key->via.str.size);
            else { //  records never have these (omni_record_decode refuses them)
                omni_buf_t inner = {0};
                omni_mpjson_value (&inner, key);
                omni_mpjson_string (buf, inner.data, inner.size);
                omni_buf_release (&inner);
            }
            omni_buf_append_char (buf, ':');
            omni_mpjson_value (buf, &value->via.map.ptr[i].val);
        }
        omni_buf_append_char (buf, '}');
        break;
    default: omni_buf_append (buf, "null", 4); break;
    }
}

void
omni_mpjson_record (omni_buf_t *buf, const omni_record_t *record)
{
    char text[64];
    omni_buf_append (buf, "{\"v\":", 5);
    s_uint (buf, record->v);
    omni_buf_append (buf, ",\"id\":\"", 7);
    omni_util_hex (record->id, RECORD_ID_SIZE, text);
    omni_buf_append (buf, text, 2 * RECORD_ID_SIZE);
    omni_buf_append (buf, "\",\"kind\":", 9);
    omni_mpjson_string (buf, record->kind.ptr, record->kind.len);
    omni_buf_append (buf, ",\"src\":", 7);
    omni_mpjson_string (buf, record->src.ptr, record->src.len);
    omni_buf_append (buf, ",\"col\":", 7);
    omni_mpjson_string (buf, record->col.ptr, record->col.len);
    omni_buf_append (buf, ",\"run\":", 7);
    omni_mpjson_string (buf, record->run.ptr, record->run.len);
    omni_buf_append (buf, ",\"ts\":", 6);
    s_int (buf, record->ts);
    omni_buf_append (buf, ",\"body\":", 8);
    omni_mpjson_value (buf, record->body);
    if (record->tags) {
        omni_buf_append (buf, ",\"tags\":", 8);
        omni_mpjson_value (buf, record->tags);
    }
    omni_buf_append_char (buf, '}');
}

void
omni_mpjson_test (bool verbose)
{
    msgpack_sbuffer sbuf;
    msgpack_sbuffer_init (&sbuf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 7);
    msgpack_pack_str_with_body (&pk, "s", 1);
    msgpack_pack_str_with_body (&pk, "a\"b\\c\n\x01\xc3\xa9", 9);
    msgpack_pack_str_with_body (&pk, "n", 1);
    msgpack_pack_array (&pk, 4);
    msgpack_pack_int64 (&pk, -5);
    msgpack_pack_uint64 (&pk, UINT64_MAX);
    msgpack_pack_double (&pk, 3.0);
    msgpack_pack_double (&pk, 0.1);
    msgpack_pack_str_with_body (&pk, "b", 1);
    msgpack_pack_bin_with_body (&pk, "\x00\xff\x10\x20", 4);
    msgpack_pack_str_with_body (&pk, "t", 1);
    msgpack_pack_true (&pk);
    msgpack_pack_str_with_body (&pk, "z", 1);
    msgpack_pack_nil (&pk);
    msgpack_pack_str_with_body (&pk, "e", 1);
    msgpack_pack_map (&pk, 0);
    msgpack_pack_str_with_body (&pk, "b1", 2);
    msgpack_pack_bin_with_body (&pk, "a", 1);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    msgpack_object obj;
    size_t off = 0;
    assert (msgpack_unpack (sbuf.data, sbuf.size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS);
    omni_buf_t buf = {0};
    omni_mpjson_value (&buf, &obj);
    const char *expected = "{\"s\":\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\","
                           "\"n\":[-5,18446744073709551615,3.0,0.1],"
                           "\"b\":{\"$bin\":\"AP8QIA==\"},\"t\":true,\"z\":null,\"e\":{},"
                           "\"b1\":{\"$bin\":\"YQ==\"}}";
    if (verbose || strcmp (buf.data, expected))
        fprintf (stderr, "%s\n%s\n", buf.data, expected);
    assert (strcmp (buf.data, expected) == 0);
    omni_buf_reset (&buf);
    assert (buf.size == 0);

    //  Numbers printed without printf, against printf.
    const int64_t ints[] = {0, 1, -1, 9, 10, -10, 1234567890123, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        char text[32];
        snprintf (text, sizeof text, "%" PRId64, ints[i]);
        omni_buf_reset (&buf);
        s_int (&buf, ints[i]);
        assert (strcmp (buf.data, text) == 0);
    }
    const struct {
        double value;
        const char *text;
    } doubles[] = {{0.0, "0.0"},
                   {-0.0, "-0.0"},
                   {42.0, "42.0"},
                   {-7.0, "-7.0"},
                   {1.5, "1.5"},
                   {1e300, "1e+300"},
                   {9007199254740991.0, "9007199254740991.0"},
                   {9007199254740992.0, "9007199254740992.0"},
                   {1e16, "1e+16"}};
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++) {
        omni_buf_reset (&buf);
        s_double (&buf, doubles[i].value);
        if (strcmp (buf.data, doubles[i].text))
            fprintf (stderr, "%s != %s\n", buf.data, doubles[i].text);
        assert (strcmp (buf.data, doubles[i].text) == 0);
    }
    //  Strings scanned a word at a time escape exactly what a byte scan
    //  does, wherever the special bytes fall.
    const char specials[] = {'"', '\\', '\n', '\x01', '\x1f', 'a', ' ', '\x7f', '\xc3'};
    uint32_t seed = 12345;
    for (int round = 0; round < 2000; round++) {
        char text[40];
        size_t len = (size_t) round % sizeof text;
        for (size_t i = 0; i < len; i++) {
            seed = seed * 1103515245 + 12345;
            text[i] = (seed >> 16) % 4 ? 'x' : specials[(seed >> 8) % sizeof specials];
        }
        omni_buf_t expect = {0};
        omni_buf_append_char (&expect, '"');
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char) text[i];
            char esc[8];
            if (c == '"' || c == '\\')
                snprintf (esc, sizeof esc, "\\%c", c);
            else if (c == '\n')
                snprintf (esc, sizeof esc, "\\n");
            else if (c < 0x20)
                snprintf (esc, sizeof esc, "\\u%04x", c);
            else
                snprintf (esc, sizeof esc, "%c", c);
            omni_buf_append (&expect, esc, strlen (esc));
        }
        omni_buf_append_char (&expect, '"');
        omni_buf_reset (&buf);
        omni_mpjson_string (&buf, text, len);
        assert (buf.size == expect.size && memcmp (buf.data, expect.data, buf.size) == 0);
        omni_buf_release (&expect);
    }
    omni_buf_release (&buf);
    msgpack_zone_destroy (&zone);
    msgpack_sbuffer_destroy (&sbuf);
}
