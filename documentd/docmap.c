/*  docmap: a record as a BSON document (rules in docmap.h).

    Most maps have short keys that need nothing, so a map is first scanned
    once; only a map with a key to escape pays for copies, and only a map
    with more than a few keys pays for a sort to find duplicates.           */
#include "documentd/docmap.h"
#include "proto/record.h"
#include "common/util.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SMALL_MAP 32 //  members handled with stack arrays
#define S_PAIRWISE  8  //  up to this many members, duplicates by pairwise compare

typedef struct {
    const char *ptr;
    size_t len;
    uint32_t index;
} s_key_t;

bool
docmap_key_needs_escape (const char *key, size_t len)
{
    return (len > 0 && key[0] == '$') || memchr (key, '.', len) || memchr (key, '\0', len);
}

size_t
docmap_key_escape (const char *key, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (i == 0 && key[i] == '$') {
            memcpy (out + o, "\xef\xbc\x84", 3); //  U+FF04 FULLWIDTH DOLLAR SIGN
            o += 3;
        } else if (key[i] == '.') {
            memcpy (out + o, "\xef\xbc\x8e", 3); //  U+FF0E FULLWIDTH FULL STOP
            o += 3;
        } else if (key[i] == '\0') {
            memcpy (out + o, "\xef\xbf\xbd", 3); //  U+FFFD REPLACEMENT CHARACTER
            o += 3;
        } else
            out[o++] = key[i];
    }
    out[o] = 0;
    return o;
}

int64_t
docmap_ns_to_ms (int64_t ns)
{
    int64_t ms = ns / 1000000;
    if (ns % 1000000 < 0)
        ms--;
    return ms;
}

static int
s_key_cmp (const void *a_, const void *b_)
{
    const s_key_t *a = a_, *b = b_;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    int c = memcmp (a->ptr, b->ptr, a->len);
    if (c)
        return c;
    return a->index < b->index ? -1 : a->index > b->index;
}

static bool s_map_members (bson_t *doc, const msgpack_object *map);

static bool
s_array_members (bson_t *doc, const msgpack_object *array)
{
    for (uint32_t i = 0; i < array->via.array.size; i++) {
        const char *key;
        char buf[16];
        size_t len = bson_uint32_to_string (i, &key, buf, sizeof buf);
        if (!docmap_value (doc, key, len, &array->via.array.ptr[i]))
            return false;
    }
    return true;
}

bool
docmap_value (bson_t *doc, const char *key, size_t key_len, const msgpack_object *value)
{
    int klen = (int) key_len;
    switch (value->type) {
    case MSGPACK_OBJECT_NIL: return bson_append_null (doc, key, klen);
    case MSGPACK_OBJECT_BOOLEAN: return bson_append_bool (doc, key, klen, value->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (value->via.u64 > (uint64_t) INT64_MAX)
            return bson_append_double (doc, key, klen, (double) value->via.u64);
        return bson_append_int64 (doc, key, klen, (int64_t) value->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return bson_append_int64 (doc, key, klen, value->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return bson_append_double (doc, key, klen, value->via.f64);
    case MSGPACK_OBJECT_STR:
        return bson_append_utf8 (doc, key, klen, value->via.str.ptr, (int) value->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return bson_append_binary (doc, key, klen, BSON_SUBTYPE_BINARY,
                                   (const uint8_t *) value->via.bin.ptr, value->via.bin.size);
    case MSGPACK_OBJECT_EXT:
        //  omni_record_decode refuses extensions; kept as user-defined binary for
        //  any other caller rather than dropped.
        return bson_append_binary (doc, key, klen, BSON_SUBTYPE_USER,
                                   (const uint8_t *) value->via.ext.ptr, value->via.ext.size);
    case MSGPACK_OBJECT_ARRAY: {
        bson_t child;
        if (!bson_append_array_begin (doc, key, klen, &child))
            return false;
        bool ok = s_array_members (&child, value);
        return bson_append_array_end (doc, &child) && ok;
    }
    case MSGPACK_OBJECT_MAP: {
        bson_t child;
        if (!bson_append_document_begin (doc, key, klen, &child))
            return false;
        bool ok = s_map_members (&child, value);
        return bson_append_document_end (doc, &child) && ok;
    }
    }
    return bson_append_null (doc, key, klen);
}

static bool
s_map_members (bson_t *doc, const msgpack_object *map)
{
    uint32_t n = map->via.map.size;
    const msgpack_object_kv *kv = map->via.map.ptr;
    //  Fast path: every key a plain string, no escapes, no duplicates among few
    size_t escaped_bytes = 0;
    bool plain = true;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            plain = false;
        else if (docmap_key_needs_escape (k->via.str.ptr, k->via.str.size)) {
            plain = false;
            escaped_bytes += 3 * (size_t) k->via.str.size + 1;
        }
    }
    if (plain && n <= S_PAIRWISE) {
        bool dup = false;
        for (uint32_t i = 0; i < n && !dup; i++)
            for (uint32_t j = i + 1; j < n && !dup; j++)
                dup = kv[i].key.via.str.size == kv[j].key.via.str.size &&
                      memcmp (kv[i].key.via.str.ptr, kv[j].key.via.str.ptr,
                              kv[i].key.via.str.size) == 0;
        if (!dup) {
            for (uint32_t i = 0; i < n; i++)
                if (!docmap_value (doc, kv[i].key.via.str.ptr, kv[i].key.via.str.size, &kv[i].val))
                    return false;
            return true;
        }
    }
    s_key_t keys_small[S_SMALL_MAP], sorted_small[S_SMALL_MAP];
    bool drop_small[S_SMALL_MAP];
    s_key_t *keys = keys_small, *sorted = sorted_small;
    bool *drop = drop_small;
    if (n > S_SMALL_MAP) {
        keys = malloc (n * sizeof *keys);
        sorted = malloc (n * sizeof *sorted);
        drop = malloc (n * sizeof *drop);
        assert (keys && sorted && drop);
    }
    char *escaped = escaped_bytes ? malloc (escaped_bytes) : NULL;
    assert (escaped || !escaped_bytes);
    size_t used = 0;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        drop[i] = false;
        keys[i].index = i;
        if (k->type != MSGPACK_OBJECT_STR) {
            //  omni_record_decode allows only string keys; anything else is skipped
            drop[i] = true;
            keys[i].ptr = "";
            keys[i].len = 0;
        } else if (docmap_key_needs_escape (k->via.str.ptr, k->via.str.size)) {
            keys[i].ptr = escaped + used;
            keys[i].len = docmap_key_escape (k->via.str.ptr, k->via.str.size, escaped + used);
            used += keys[i].len + 1;
        } else {
            keys[i].ptr = k->via.str.ptr;
            keys[i].len = k->via.str.size;
        }
    }
    //  Duplicates: equal keys sort together, by position; all but the last go
    memcpy (sorted, keys, n * sizeof *sorted);
    qsort (sorted, n, sizeof *sorted, s_key_cmp);
    for (uint32_t i = 0; i + 1 < n; i++)
        if (sorted[i].len == sorted[i + 1].len &&
            memcmp (sorted[i].ptr, sorted[i + 1].ptr, sorted[i].len) == 0)
            drop[sorted[i].index] = true;
    bool ok = true;
    for (uint32_t i = 0; i < n && ok; i++)
        if (!drop[i])
            ok = docmap_value (doc, keys[i].ptr, keys[i].len, &kv[i].val);
    free (escaped);
    if (n > S_SMALL_MAP) {
        free (keys);
        free (sorted);
        free (drop);
    }
    return ok;
}

bool
docmap_append_id (bson_t *doc, const char *key, const uint8_t *id)
{
    char hex[2 * RECORD_ID_SIZE + 1];
    omni_util_hex (id, RECORD_ID_SIZE, hex);
    return bson_append_utf8 (doc, key, -1, hex, 2 * RECORD_ID_SIZE);
}

bool
docmap_record (bson_t *doc, const omni_record_t *record)
{
    bool ok = docmap_append_id (doc, "_id", record->id) &&
              bson_append_utf8 (doc, "kind", 4, record->kind.ptr, (int) record->kind.len) &&
              bson_append_utf8 (doc, "src", 3, record->src.ptr, (int) record->src.len) &&
              bson_append_utf8 (doc, "col", 3, record->col.ptr, (int) record->col.len) &&
              bson_append_utf8 (doc, "run", 3, record->run.ptr, (int) record->run.len) &&
              bson_append_date_time (doc, "ts", 2, docmap_ns_to_ms (record->ts)) &&
              bson_append_int64 (doc, "ts_ns", 5, record->ts);
    if (ok && record->body)
        ok = docmap_value (doc, "body", 4, record->body);
    if (ok && record->tags)
        ok = docmap_value (doc, "tags", 4, record->tags);
    return ok;
}

//  ---------------------------------------------------------------------------
//  Self-test: records from the encoder, documents checked element by element.

static const msgpack_object *
s_decode (msgpack_zone *zone, omni_record_encoder_t *enc, omni_record_t *record)
{
    const void *data;
    size_t size;
    char detail[256];
    int rc = omni_record_encoder_end (enc, &data, &size, detail, sizeof detail);
    if (rc)
        fprintf (stderr, "encoder: %s\n", detail);
    assert (rc == 0);
    //  The record points into `data`, which the next begin reuses: keep a copy
    void *copy = msgpack_zone_malloc (zone, size);
    memcpy (copy, data, size);
    assert (omni_record_decode (record, zone, copy, size, NULL, detail, sizeof detail) ==
            REJECT_NONE);
    return record->body;
}

static bool
s_find (const bson_t *doc, const char *path, bson_iter_t *out)
{
    bson_iter_t it;
    return bson_iter_init (&it, doc) && bson_iter_find_descendant (&it, path, out);
}

static void
s_check_keys (bool verbose)
{
    char out[64];
    assert (!docmap_key_needs_escape ("plain_key", 9));
    assert (!docmap_key_needs_escape ("", 0));
    assert (!docmap_key_needs_escape ("a$b", 3));
    assert (docmap_key_needs_escape ("$x", 2));
    assert (docmap_key_needs_escape ("a.b", 3));
    assert (docmap_key_needs_escape ("a\0b", 3));
    assert (docmap_key_escape ("$x.y$", 5, out) == 3 + 1 + 3 + 2);
    assert (strcmp (out, "\xef\xbc\x84x\xef\xbc\x8ey$") == 0);
    assert (docmap_key_escape ("a\0b", 3, out) == 5);
    assert (memcmp (out,
                    "a\xef\xbf\xbd"
                    "b",
                    6) == 0);
    assert (docmap_ns_to_ms (1999999) == 1);
    assert (docmap_ns_to_ms (0) == 0);
    assert (docmap_ns_to_ms (-1) == -1);
    assert (docmap_ns_to_ms (-1000000) == -1);
    assert (docmap_ns_to_ms (-1000001) == -2);
    if (verbose)
        printf ("  keys and times ok\n");
}

void
docmap_test (bool verbose)
{
    s_check_keys (verbose);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    omni_record_encoder_t *enc = omni_record_encoder_new ();
    omni_record_t record;

    //  A commit: the envelope, nested arrays of maps, every value type
    int64_t ts = INT64_C (1700000000123456789);
    omni_record_encoder_begin (enc, "git.commit", "repo-a", "col-1", "run-7", ts);
    omni_record_encoder_tag (enc, "env", "ci");
    msgpack_packer *pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 16);
    omni_record_pack_str (pk, "sha");
    omni_record_pack_str (pk, "0123456789abcdef0123456789abcdef01234567");
    omni_record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 2);
    omni_record_pack_str (pk, "p1");
    omni_record_pack_str (pk, "p2");
    const char *strs[] = {"author_name",     "Ann", "author_email", "a@x",  "committer_name", "Bob",
                          "committer_email", "b@x", "message",      "fix\n"};
    for (size_t i = 0; i < 10; i += 2) {
        omni_record_pack_str (pk, strs[i]);
        omni_record_pack_str (pk, strs[i + 1]);
    }
    const char *ints[] = {"author_time",   "author_tz",  "committer_time", "committer_tz",
                          "files_changed", "insertions", "deletions"};
    for (size_t i = 0; i < 7; i++) {
        omni_record_pack_str (pk, ints[i]);
        msgpack_pack_int64 (pk, i == 1 ? -120 : (int64_t) i * 1000);
    }
    omni_record_pack_str (pk, "files");
    msgpack_pack_array (pk, 1);
    msgpack_pack_map (pk, 4);
    omni_record_pack_str (pk, "path");
    omni_record_pack_str (pk, "a/b.c");
    omni_record_pack_str (pk, "insertions");
    msgpack_pack_uint64 (pk, 3);
    omni_record_pack_str (pk, "binary");
    msgpack_pack_false (pk);
    omni_record_pack_str (pk, "blob");
    msgpack_pack_bin_with_body (pk, "\x00\x01\xff", 3);
    omni_record_pack_str (pk, "raw");
    msgpack_pack_map (pk, 7);
    omni_record_pack_str (pk, "big");
    msgpack_pack_uint64 (pk, UINT64_MAX);
    omni_record_pack_str (pk, "max");
    msgpack_pack_uint64 (pk, (uint64_t) INT64_MAX);
    omni_record_pack_str (pk, "f");
    msgpack_pack_double (pk, 2.5);
    omni_record_pack_str (pk, "f32");
    msgpack_pack_float (pk, 0.25f);
    omni_record_pack_str (pk, "nil");
    msgpack_pack_nil (pk);
    omni_record_pack_str (pk, "nul");
    msgpack_pack_str_with_body (pk, "a\0b", 3);
    omni_record_pack_str (pk, "empty");
    msgpack_pack_map (pk, 0);
    s_decode (&zone, enc, &record);

    bson_t doc = BSON_INITIALIZER;
    assert (docmap_record (&doc, &record));
    bson_iter_t it;
    assert (s_find (&doc, "_id", &it) && BSON_ITER_HOLDS_UTF8 (&it));
    uint32_t len;
    const char *hex = bson_iter_utf8 (&it, &len);
    uint8_t bin[RECORD_ID_SIZE];
    assert (len == 32 && omni_util_unhex (hex, bin, RECORD_ID_SIZE) == 0);
    assert (memcmp (bin, record.id, 16) == 0);
    for (uint32_t i = 0; i < len; i++)
        assert ((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
    assert (s_find (&doc, "kind", &it) && strcmp (bson_iter_utf8 (&it, NULL), "git.commit") == 0);
    assert (s_find (&doc, "src", &it) && strcmp (bson_iter_utf8 (&it, NULL), "repo-a") == 0);
    assert (s_find (&doc, "col", &it) && strcmp (bson_iter_utf8 (&it, NULL), "col-1") == 0);
    assert (s_find (&doc, "run", &it) && strcmp (bson_iter_utf8 (&it, NULL), "run-7") == 0);
    assert (s_find (&doc, "ts", &it) && BSON_ITER_HOLDS_DATE_TIME (&it));
    assert (bson_iter_date_time (&it) == INT64_C (1700000000123));
    assert (s_find (&doc, "ts_ns", &it) && bson_iter_int64 (&it) == ts);
    assert (s_find (&doc, "tags.env", &it) && strcmp (bson_iter_utf8 (&it, NULL), "ci") == 0);
    assert (s_find (&doc, "body.parents.1", &it) && strcmp (bson_iter_utf8 (&it, NULL), "p2") == 0);
    assert (s_find (&doc, "body.author_tz", &it) && BSON_ITER_HOLDS_INT64 (&it) &&
            bson_iter_int64 (&it) == -120);
    assert (s_find (&doc, "body.files.0.path", &it) &&
            strcmp (bson_iter_utf8 (&it, NULL), "a/b.c") == 0);
    assert (s_find (&doc, "body.files.0.insertions", &it) && BSON_ITER_HOLDS_INT64 (&it) &&
            bson_iter_int64 (&it) == 3);
    assert (s_find (&doc, "body.files.0.binary", &it) && BSON_ITER_HOLDS_BOOL (&it) &&
            !bson_iter_bool (&it));
    assert (s_find (&doc, "body.files.0.blob", &it) && BSON_ITER_HOLDS_BINARY (&it));
    bson_subtype_t subtype;
    const uint8_t *blob;
    bson_iter_binary (&it, &subtype, &len, &blob);
    assert (subtype == BSON_SUBTYPE_BINARY && len == 3 && memcmp (blob, "\x00\x01\xff", 3) == 0);
    assert (s_find (&doc, "body.raw.big", &it) && BSON_ITER_HOLDS_DOUBLE (&it) &&
            bson_iter_double (&it) == 18446744073709551615.0);
    assert (s_find (&doc, "body.raw.max", &it) && BSON_ITER_HOLDS_INT64 (&it) &&
            bson_iter_int64 (&it) == INT64_MAX);
    assert (s_find (&doc, "body.raw.f", &it) && bson_iter_double (&it) == 2.5);
    assert (s_find (&doc, "body.raw.f32", &it) && bson_iter_double (&it) == 0.25);
    assert (s_find (&doc, "body.raw.nil", &it) && BSON_ITER_HOLDS_NULL (&it));
    assert (s_find (&doc, "body.raw.nul", &it));
    uint32_t slen;
    const char *s = bson_iter_utf8 (&it, &slen);
    assert (slen == 3 && memcmp (s, "a\0b", 3) == 0);
    assert (s_find (&doc, "body.raw.empty", &it) && BSON_ITER_HOLDS_DOCUMENT (&it));
    bson_destroy (&doc);

    //  Hostile keys: escaped, and a duplicate (also one made by escaping) keeps the last
    omni_record_encoder_begin (enc, "x.custom", "src", "col", "run", -1500000);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 6);
    omni_record_pack_str (pk, "$set");
    msgpack_pack_int (pk, 1);
    omni_record_pack_str (pk, "a.b");
    msgpack_pack_int (pk, 2);
    omni_record_pack_str (pk, "a\xef\xbc\x8e"
                              "b");
    msgpack_pack_int (pk, 3);
    omni_record_pack_str (pk, "dup");
    msgpack_pack_int (pk, 4);
    omni_record_pack_str (pk, "dup");
    msgpack_pack_int (pk, 5);
    omni_record_pack_str (pk, "");
    msgpack_pack_int (pk, 6);
    s_decode (&zone, enc, &record);
    bson_init (&doc);
    assert (docmap_record (&doc, &record));
    assert (s_find (&doc, "ts", &it) && bson_iter_date_time (&it) == -2);
    bson_t body;
    assert (s_find (&doc, "body", &it));
    const uint8_t *data;
    bson_iter_document (&it, &len, &data);
    assert (bson_init_static (&body, data, len));
    assert (bson_count_keys (&body) == 4);
    assert (bson_iter_init_find (&it, &body, "\xef\xbc\x84set") && bson_iter_int64 (&it) == 1);
    assert (bson_iter_init_find (&it, &body,
                                 "a\xef\xbc\x8e"
                                 "b") &&
            bson_iter_int64 (&it) == 3);
    assert (bson_iter_init_find (&it, &body, "dup") && bson_iter_int64 (&it) == 5);
    assert (bson_iter_init_find (&it, &body, "") && bson_iter_int64 (&it) == 6);
    assert (bson_validate (&doc, BSON_VALIDATE_DOT_KEYS | BSON_VALIDATE_DOLLAR_KEYS, NULL));
    bson_destroy (&doc);

    //  A large map takes the sorting path: 1000 keys, every tenth repeated
    omni_record_encoder_begin (enc, "x.big", "src", "col", "run", 1);
    pk = omni_record_encoder_body (enc);
    msgpack_pack_map (pk, 1100);
    for (int i = 0; i < 1100; i++) {
        char key[16];
        int n = snprintf (key, sizeof key, "k%d", i < 1000 ? i : (i - 1000) * 10);
        msgpack_pack_str_with_body (pk, key, (size_t) n);
        msgpack_pack_int (pk, i);
    }
    s_decode (&zone, enc, &record);
    bson_init (&doc);
    assert (docmap_record (&doc, &record));
    assert (s_find (&doc, "body", &it));
    bson_iter_document (&it, &len, &data);
    assert (bson_init_static (&body, data, len));
    assert (bson_count_keys (&body) == 1000);
    assert (bson_iter_init_find (&it, &body, "k990") && bson_iter_int64 (&it) == 1099);
    assert (bson_iter_init_find (&it, &body, "k991") && bson_iter_int64 (&it) == 991);
    bson_destroy (&doc);

    omni_record_encoder_destroy (&enc);
    msgpack_zone_destroy (&zone);
}
