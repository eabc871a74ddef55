/*  jsonrec: archive line -> msgpack record (see jsonrec.h).

    jansson parses the line (the project's JSON parser, shared with
    collectord); its objects keep insertion order, which is the order the
    record's maps had, and the order is part of the bytes.                 */
#include "jsonrec.h"
#include "mpjson.h"
#include "record.h"
#include "util.h"

#include <assert.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _jsonrec_t {
    json_t *root;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    uint8_t *bin;
    size_t bin_cap;
};

jsonrec_t *
jsonrec_new (void)
{
    jsonrec_t *self = calloc (1, sizeof *self);
    assert (self);
    msgpack_sbuffer_init (&self->buf);
    msgpack_packer_init (&self->pk, &self->buf, msgpack_sbuffer_write);
    return self;
}

void
jsonrec_destroy (jsonrec_t **self_p)
{
    jsonrec_t *self = *self_p;
    if (!self)
        return;
    json_decref (self->root);
    msgpack_sbuffer_destroy (&self->buf);
    free (self->bin);
    free (self);
    *self_p = NULL;
}

static int
s_b64_value (char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

//  Standard base64 with padding, as mpjson writes it; -1 on anything else.
static long
s_unbase64 (jsonrec_t *self, const char *text, size_t len)
{
    if (len % 4)
        return -1;
    if (len / 4 * 3 > self->bin_cap) {
        self->bin_cap = len / 4 * 3 + 64;
        self->bin = realloc (self->bin, self->bin_cap);
        assert (self->bin);
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (text[i + j] == '=' && i + 4 == len && j >= 2) {
                v[j] = 0;
                pad++;
            } else if (pad || (v[j] = s_b64_value (text[i + j])) < 0)
                return -1;
        }
        uint32_t word =
            (uint32_t) v[0] << 18 | (uint32_t) v[1] << 12 | (uint32_t) v[2] << 6 | (uint32_t) v[3];
        self->bin[n++] = (uint8_t) (word >> 16);
        if (pad < 2)
            self->bin[n++] = (uint8_t) (word >> 8);
        if (pad < 1)
            self->bin[n++] = (uint8_t) word;
    }
    return (long) n;
}

static int s_pack (jsonrec_t *self, json_t *value, char *error, size_t error_size);

//  {"$bin": "..."} and nothing else is binary (mpjson's one rule).
static json_t *
s_bin_text (json_t *value)
{
    if (json_object_size (value) != 1)
        return NULL;
    json_t *text = json_object_get (value, "$bin");
    return json_is_string (text) ? text : NULL;
}

static int
s_pack (jsonrec_t *self, json_t *value, char *error, size_t error_size)
{
    msgpack_packer *pk = &self->pk;
    switch (json_typeof (value)) {
    case JSON_NULL: msgpack_pack_nil (pk); return 0;
    case JSON_TRUE: msgpack_pack_true (pk); return 0;
    case JSON_FALSE: msgpack_pack_false (pk); return 0;
    case JSON_INTEGER: {
        json_int_t v = json_integer_value (value);
        //  msgpack-c packs a non-negative int64 as the same bytes as a uint64
        if (v >= 0)
            msgpack_pack_uint64 (pk, (uint64_t) v);
        else
            msgpack_pack_int64 (pk, (int64_t) v);
        return 0;
    }
    case JSON_REAL: msgpack_pack_double (pk, json_real_value (value)); return 0;
    case JSON_STRING:
        msgpack_pack_str_with_body (pk, json_string_value (value), json_string_length (value));
        return 0;
    case JSON_ARRAY: {
        size_t n = json_array_size (value);
        msgpack_pack_array (pk, n);
        for (size_t i = 0; i < n; i++)
            if (s_pack (self, json_array_get (value, i), error, error_size))
                return -1;
        return 0;
    }
    case JSON_OBJECT: {
        json_t *bin = s_bin_text (value);
        if (bin) {
            long n = s_unbase64 (self, json_string_value (bin), json_string_length (bin));
            if (n < 0) {
                snprintf (error, error_size, "\"$bin\" is not base64");
                return -1;
            }
            msgpack_pack_bin_with_body (pk, self->bin, (size_t) n);
            return 0;
        }
        msgpack_pack_map (pk, json_object_size (value));
        for (void *it = json_object_iter (value); it; it = json_object_iter_next (value, it)) {
            msgpack_pack_str_with_body (pk, json_object_iter_key (it),
                                        json_object_iter_key_len (it));
            if (s_pack (self, json_object_iter_value (it), error, error_size))
                return -1;
        }
        return 0;
    }
    }
    snprintf (error, error_size, "unexpected JSON value");
    return -1;
}

json_t *
jsonrec_parse (jsonrec_t *self, const char *line, size_t len, char *error, size_t error_size)
{
    json_decref (self->root);
    json_error_t jerr;
    self->root = json_loadb (line, len, JSON_ALLOW_NUL, &jerr);
    if (!self->root) {
        snprintf (error, error_size, "not JSON: %s (column %d)", jerr.text, jerr.column);
        return NULL;
    }
    if (!json_is_object (self->root) || !json_is_string (json_object_get (self->root, "kind")) ||
        !json_is_integer (json_object_get (self->root, "ts"))) {
        snprintf (error, error_size, "not an archived record (an object with kind and ts)");
        json_decref (self->root);
        self->root = NULL;
        return NULL;
    }
    return self->root;
}

int
jsonrec_pack (jsonrec_t *self, const char *line, size_t len, const void **data, size_t *size,
              char *error, size_t error_size)
{
    if (!jsonrec_parse (self, line, len, error, error_size))
        return -1;
    msgpack_sbuffer_clear (&self->buf);
    msgpack_pack_map (&self->pk, json_object_size (self->root));
    for (void *it = json_object_iter (self->root); it;
         it = json_object_iter_next (self->root, it)) {
        const char *key = json_object_iter_key (it);
        json_t *value = json_object_iter_value (it);
        msgpack_pack_str_with_body (&self->pk, key, json_object_iter_key_len (it));
        if (strcmp (key, "id") == 0) {
            uint8_t id[RECORD_ID_SIZE];
            if (!json_is_string (value) || json_string_length (value) != 2 * RECORD_ID_SIZE ||
                util_unhex (json_string_value (value), id, RECORD_ID_SIZE)) {
                snprintf (error, error_size, "\"id\" is not %d hex digits", 2 * RECORD_ID_SIZE);
                return -1;
            }
            msgpack_pack_bin_with_body (&self->pk, id, RECORD_ID_SIZE);
        } else if (s_pack (self, value, error, error_size))
            return -1;
    }
    *data = self->buf.data;
    *size = self->buf.size;
    return 0;
}

const char *
jsonrec_kind (jsonrec_t *self)
{
    return self->root ? json_string_value (json_object_get (self->root, "kind")) : NULL;
}

const char *
jsonrec_src (jsonrec_t *self)
{
    return self->root ? json_string_value (json_object_get (self->root, "src")) : NULL;
}

long long
jsonrec_ts (jsonrec_t *self)
{
    return self->root ? json_integer_value (json_object_get (self->root, "ts")) : 0;
}

//  Encodes a record, writes its archive line, reads the line back: the
//  bytes must be the encoder's.
static void
s_test_round_trip (jsonrec_t *self, record_encoder_t *enc)
{
    const void *data, *back;
    size_t size, back_size;
    char detail[256];
    assert (record_encoder_end (enc, &data, &size, detail, sizeof detail) == 0);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    record_t record;
    assert (record_decode (&record, &zone, data, size, NULL, detail, sizeof detail) == REJECT_NONE);
    mpjson_buf_t line = {0};
    mpjson_record (&line, &record);
    int rc = jsonrec_pack (self, line.data, line.size, &back, &back_size, detail, sizeof detail);
    if (rc || back_size != size || memcmp (back, data, size))
        fprintf (stderr, "round trip differs: %s (%s)\n", line.data, rc ? detail : "bytes");
    assert (rc == 0 && back_size == size && memcmp (back, data, size) == 0);
    mpjson_buf_free (&line);
    msgpack_zone_destroy (&zone);
}

void
jsonrec_test (bool verbose)
{
    (void) verbose;
    jsonrec_t *self = jsonrec_new ();
    record_encoder_t *enc = record_encoder_new ();

    //  A commit: strings with escapes and non-ASCII, ints of every width,
    //  negative ones, an array of maps, a binary field.
    record_encoder_begin (enc, "git.commit", "git@example.com:a/b.git", "col-1", "run-1",
                          1700000000123456789LL);
    msgpack_packer *pk = record_encoder_body (enc);
    msgpack_pack_map (pk, 17);
    record_pack_str (pk, "sha");
    record_pack_str (pk, "0123456789abcdef0123456789abcdef01234567");
    record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 0);
    record_pack_str (pk, "author_name");
    record_pack_str (pk, "J\xc3\xa9r\xc3\xb4me \"q\"\t\\");
    record_pack_str (pk, "author_email");
    record_pack_str (pk, "");
    record_pack_str (pk, "author_time");
    msgpack_pack_int64 (pk, 4294967296LL);
    record_pack_str (pk, "author_tz");
    msgpack_pack_int64 (pk, -300);
    record_pack_str (pk, "committer_name");
    record_pack_str (pk, "x");
    record_pack_str (pk, "committer_email");
    record_pack_str (pk, "x@y");
    record_pack_str (pk, "committer_time");
    msgpack_pack_int64 (pk, 200);
    record_pack_str (pk, "committer_tz");
    msgpack_pack_int64 (pk, -40000);
    record_pack_str (pk, "message");
    record_pack_str (pk, "line\n\x01 ctl");
    record_pack_str (pk, "files_changed");
    msgpack_pack_int64 (pk, 65536);
    record_pack_str (pk, "insertions");
    msgpack_pack_int64 (pk, 0);
    record_pack_str (pk, "deletions");
    msgpack_pack_int64 (pk, -2147483649LL);
    record_pack_str (pk, "files");
    msgpack_pack_array (pk, 1);
    msgpack_pack_map (pk, 2);
    record_pack_str (pk, "path");
    record_pack_str (pk, "a.c");
    record_pack_str (pk, "binary");
    msgpack_pack_false (pk);
    record_pack_str (pk, "raw");
    msgpack_pack_map (pk, 2);
    record_pack_str (pk, "author_name");
    msgpack_pack_bin_with_body (pk, "\xff\x00\x01", 3);
    record_pack_str (pk, "one");
    msgpack_pack_bin_with_body (pk, "\xfe", 1);
    record_pack_str (pk, "author_name_mailmap");
    msgpack_pack_nil (pk);
    s_test_round_trip (self, enc);

    //  A metric: floats whole and not, negative zero, tags; ts before 1970.
    const double values[] = {0.0, -0.0, 3.0, 0.1, 1e300, -2.5e-7, 9007199254740993.0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        record_encoder_begin (enc, "metric", "host-1", "c", "r", -5 - (int64_t) i);
        pk = record_encoder_body (enc);
        msgpack_pack_map (pk, 2);
        record_pack_str (pk, "name");
        record_pack_str (pk, "cpu.user");
        record_pack_str (pk, "value");
        msgpack_pack_double (pk, values[i]);
        record_encoder_tag (enc, "host", "web-1");
        record_encoder_tag (enc, "az", "");
        s_test_round_trip (self, enc);
    }

    //  A custom kind with nested maps and an empty binary.
    record_encoder_begin (enc, "x.deploy", "s", "c", "r", 0);
    pk = record_encoder_body (enc);
    msgpack_pack_map (pk, 3);
    record_pack_str (pk, "nested");
    msgpack_pack_map (pk, 1);
    record_pack_str (pk, "deeper");
    msgpack_pack_array (pk, 3);
    msgpack_pack_true (pk);
    msgpack_pack_int64 (pk, 127);
    msgpack_pack_int64 (pk, 128);
    record_pack_str (pk, "empty");
    msgpack_pack_bin_with_body (pk, "", 0);
    record_pack_str (pk, "u64");
    msgpack_pack_uint64 (pk, INT64_MAX);
    s_test_round_trip (self, enc);

    //  Bad lines say why.
    const void *data;
    size_t size;
    char error[256];
    const char *bad[] = {"{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"id\":\"00\"}",
                         "{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"body\":{\"$bin\":\"###\"}}",
                         "{\"v\":1,\"kind\":\"metric\",\"ts\":1,\"body\":{\"x\":nan}}",
                         "{\"v\":1,\"kind\":\"met",
                         "[1,2]",
                         ""};
    const char *why[] = {"hex", "base64", "not JSON", "not JSON", "not an archived", "not JSON"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        error[0] = 0;
        assert (jsonrec_pack (self, bad[i], strlen (bad[i]), &data, &size, error, sizeof error) ==
                -1);
        if (!strstr (error, why[i]))
            fprintf (stderr, "%s: %s\n", bad[i], error);
        assert (strstr (error, why[i]));
    }
    record_encoder_destroy (&enc);
    jsonrec_destroy (&self);
    assert (self == NULL);
}
