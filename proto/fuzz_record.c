/*  libFuzzer target for the record decoder: whatever the bytes, decoding
    must return a reason or a record, never crash, hang or over-allocate,
    and an accepted record must convert to JSON and back to its id.

    The oracle (fuzz_oracle.cpp) reads the same bytes without record.c:
    another msgpack implementation (msgpack-c's C++ parser, bounded), the
    record rules written from their documentation and the kinds table. For
    every input: omni_record_decode and omni_record_check agree with each other
    exactly, and omni_record_decode (one walk that checks and builds the
    objects) with omni_record_decode_unpacked (the check, then msgpack-c's
    unpacker), down to the objects; the decoder accepts exactly what the oracle finds valid, and
    rejects with a reason the oracle finds broken; an accepted record has
    the oracle's envelope, body and tags (packed again, byte for byte) and
    the id the oracle computes from its natural key.

    The same bytes as the body of a JetStream batch message (jsbatch.c,
    the writers' split of what ingestd publishes): split with the count
    the body declares, it must either be refused with a reason or give
    records inside the body, in order, none empty, that encode again to a
    body that splits into the same records.                                 */
#include "proto/fuzz_oracle.h"
#include "proto/jsbatch.h"
#include "proto/mpjson.h"
#include "proto/record.h"

#include <assert.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  The oracle's name for a reason
static omni_oracle_rule_t
s_rule (omni_record_reject_t reason)
{
    switch (reason) {
    case REJECT_TOO_LARGE: return ORACLE_TOO_LARGE;
    case REJECT_NOT_MSGPACK: return ORACLE_NOT_MSGPACK;
    case REJECT_TOO_DEEP: return ORACLE_TOO_DEEP;
    case REJECT_NOT_MAP: return ORACLE_NOT_MAP;
    case REJECT_BAD_VERSION: return ORACLE_BAD_VERSION;
    case REJECT_BAD_ENVELOPE: return ORACLE_BAD_ENVELOPE;
    case REJECT_UNKNOWN_KIND: return ORACLE_UNKNOWN_KIND;
    case REJECT_BAD_BODY: return ORACLE_BAD_BODY;
    case REJECT_BAD_UTF8: return ORACLE_BAD_UTF8;
    default: return ORACLE_RULES; //  no decoder reason but these
    }
}

static void
s_same_str (omni_record_str_t str, const char *ptr, size_t len)
{
    assert (str.len == len && memcmp (str.ptr, ptr, len) == 0);
}

//  A decoded value packed again (msgpack-c's C packer: shortest encodings)
static void
s_same_packed (const msgpack_object *value, const uint8_t *bytes, size_t size)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_object (&pk, *value);
    assert (buf.size == size && memcmp (buf.data, bytes, size) == 0);
    msgpack_sbuffer_destroy (&buf);
}

//  A decoded map packed (shortest encodings, floats bit for bit)
static void
s_pack_into (msgpack_sbuffer *buf, const msgpack_object *value)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_object (&pk, *value);
}

static void
s_same_object (const msgpack_object *a, const msgpack_object *b)
{
    assert (msgpack_object_equal (*a, *b));
    msgpack_sbuffer one, two;
    msgpack_sbuffer_init (&one);
    msgpack_sbuffer_init (&two);
    s_pack_into (&one, a);
    s_pack_into (&two, b);
    assert (one.size == two.size && memcmp (one.data, two.data, one.size) == 0);
    msgpack_sbuffer_destroy (&one);
    msgpack_sbuffer_destroy (&two);
}

//  omni_record_decode (one walk that checks and builds the objects) against
//  omni_record_decode_unpacked (the check, then msgpack_unpack): the same
//  reason and detail, the same record, the same body and tags
static void
s_same_as_unpacked (const omni_record_t *record, omni_record_reject_t rc, const char *detail,
                    const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    omni_record_t want;
    char want_detail[256];
    omni_record_reject_t want_rc = omni_record_decode_unpacked (&want, &zone, data, size, NULL,
                                                                want_detail, sizeof want_detail);
    assert (rc == want_rc && strcmp (detail, want_detail) == 0);
    if (rc == REJECT_NONE) {
        assert (record->v == want.v && record->ts == want.ts && record->spec == want.spec);
        assert (memcmp (record->id, want.id, RECORD_ID_SIZE) == 0);
        assert (record->kind.ptr == want.kind.ptr && record->kind.len == want.kind.len);
        assert (record->src.ptr == want.src.ptr && record->src.len == want.src.len);
        assert (record->col.ptr == want.col.ptr && record->col.len == want.col.len);
        assert (record->run.ptr == want.run.ptr && record->run.len == want.run.len);
        assert (record->body_at == want.body_at && record->tags_at == want.tags_at);
        assert (memcmp (record->key_at, want.key_at, sizeof want.key_at) == 0);
        s_same_object (record->body, want.body);
        assert (!record->tags == !want.tags);
        if (record->tags)
            s_same_object (record->tags, want.tags);
    }
    msgpack_zone_destroy (&zone);
}

//  The bytes as a batch message's body (see the top)
static void
s_batch (const uint8_t *data, size_t size)
{
    //  The count the body's array head says, so that the items are reached
    uint64_t said = 1;
    if (size && data[0] >= 0x90 && data[0] <= 0x9f)
        said = data[0] & 0x0f;
    else if (size >= 3 && data[0] == 0xdc)
        said = ((uint64_t) data[1] << 8) | data[2];
    else if (size >= 5 && data[0] == 0xdd)
        said = ((uint64_t) data[1] << 24) | ((uint64_t) data[2] << 16) | ((uint64_t) data[3] << 8) |
               data[4];
    char records[24], why[256] = "";
    snprintf (records, sizeof records, "%" PRIu64, said);
    omni_js_part_t *parts = NULL, *again = NULL;
    size_t cap = 0, again_cap = 0;
    int n = omni_js_batch_split ("1", records, data, size, &parts, &cap, why, sizeof why);
    if (n < 0) {
        assert (strlen (why) > 0);
        free (parts);
        return;
    }
    assert ((uint64_t) n == said);
    const uint8_t *at = data;
    omni_js_batch_t batch = {0};
    uint8_t id[RECORD_ID_SIZE] = {0};
    for (int i = 0; i < n; i++) {
        const uint8_t *p = parts[i].data;
        assert (p > at && parts[i].size > 0 && p + parts[i].size <= data + size);
        at = p + parts[i].size;
        omni_js_batch_add (&batch, id, p, parts[i].size);
    }
    assert (at == data + size);
    char msg_id[OMNI_JS_BATCH_ID_SIZE];
    omni_js_batch_finish (&batch, "s", msg_id);
    int m = omni_js_batch_split ("1", records, batch.body.data, batch.body.size, &again, &again_cap,
                                 why, sizeof why);
    assert (m == n);
    for (int i = 0; i < n; i++)
        assert (again[i].size == parts[i].size &&
                memcmp (again[i].data, parts[i].data, parts[i].size) == 0);
    omni_js_batch_release (&batch);
    free (parts);
    free (again);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_batch (data, size);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    omni_record_t record, checked;
    char detail[256], check_detail[256];
    omni_record_reject_t rc =
        omni_record_decode (&record, &zone, data, size, NULL, detail, sizeof detail);
    omni_record_reject_t check_rc =
        omni_record_check (&checked, data, size, NULL, check_detail, sizeof check_detail);
    //  The two entry points are one pass: the same answer, the same words
    assert (rc == check_rc && strcmp (detail, check_detail) == 0);
    s_same_as_unpacked (&record, rc, detail, data, size);

    omni_oracle_limits_t limits = {omni_record_default_limits.max_size,
                                   omni_record_default_limits.max_depth, RECORD_VERSION};
    omni_oracle_verdict_t oracle;
    fuzz_oracle_judge (data, size, &limits, &oracle);
    if (rc != REJECT_NONE) {
        assert (strlen (detail) > 0);
        //  Refused: the oracle finds the record invalid, and this rule broken
        assert (oracle.broken & (1u << s_rule (rc)));
    } else {
        //  Accepted: valid for the oracle too, and read as the oracle reads it
        assert (oracle.broken == 0);
        assert (record.v == oracle.v && record.ts == oracle.ts);
        assert (memcmp (record.id, oracle.id, RECORD_ID_SIZE) == 0);
        s_same_str (record.kind, oracle.kind, oracle.kind_len);
        s_same_str (record.src, oracle.src, oracle.src_len);
        s_same_str (record.col, oracle.col, oracle.col_len);
        s_same_str (record.run, oracle.run, oracle.run_len);
        assert (record.spec == omni_kinds_lookup (oracle.kind, oracle.kind_len));
        assert (record.body && record.body->type == MSGPACK_OBJECT_MAP);
        s_same_packed (record.body, oracle.body, oracle.body_size);
        assert (!record.tags == !oracle.tags);
        if (record.tags)
            s_same_packed (record.tags, oracle.tags, oracle.tags_size);
        assert (checked.spec == record.spec && checked.ts == record.ts);
        omni_buf_t json = {0};
        omni_mpjson_record (&json, &record);
        assert (json.size > 0 && json.data[0] == '{' && json.data[json.size - 1] == '}');
        omni_buf_release (&json);
        //  The id from the bytes is the oracle's, whatever the encoding
        uint8_t id[RECORD_ID_SIZE], from_check[RECORD_ID_SIZE];
        omni_record_compute_id (&record, id);
        omni_record_compute_id (&checked, from_check);
        assert (memcmp (id, from_check, RECORD_ID_SIZE) == 0);
        assert (memcmp (id, oracle.expected_id, RECORD_ID_SIZE) == 0);
    }
    msgpack_zone_destroy (&zone);
    return 0;
}
