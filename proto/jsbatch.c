/*  jsbatch: many records in one JetStream message (see jsbatch.h).

    Why batches. NATS spends its CPU per message, not per byte: each one
    has its own publish ack, its own entry in the stream's store and its
    own round through the stream's Raft group to the other replicas. One
    message per record cost 54 us of NATS CPU per record with three
    replicas (docs/performance.md), so two cores could not journal more
    than some 37,000 records/s. A message of hundreds of records costs
    about what one record did.

    Why a msgpack array of bin items. The records are msgpack already, and
    a reader must find each one's end without decoding it: a bin item
    says its length. The array head is written as array32 and each item
    as bin32 (valid msgpack, fixed widths, so the count is written last
    and a record appended without moving any byte); the reader takes any
    width. The headers say the version and the count, so that a reader
    tells a batch from a single record before looking at the body, and a
    truncated body is told from a complete one.                            */
#include "proto/jsbatch.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
//  For SHA256_Init and friends, as record.c: a few calls per message
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_HEAD 5 //  0xdd + count (big-endian, 4 bytes)
#define ITEM_HEAD  5 //  0xc6 + length (big-endian, 4 bytes)

void
omni_js_batch_release (omni_js_batch_t *self)
{
    omni_buf_release (&self->body);
    omni_buf_release (&self->ids);
    self->count = 0;
}

void
omni_js_batch_reset (omni_js_batch_t *self)
{
    omni_buf_reset (&self->body);
    omni_buf_reset (&self->ids);
    self->count = 0;
}

size_t
omni_js_batch_size_with (const omni_js_batch_t *self, size_t size)
{
    return (self->count ? self->body.size : ARRAY_HEAD) + ITEM_HEAD + size;
}

void
omni_js_batch_add (omni_js_batch_t *self, const uint8_t *id, const void *data, size_t size)
{
    assert (size <= UINT32_MAX && self->count < UINT32_MAX);
    if (self->count == 0) {
        omni_buf_reset (&self->body);
        omni_buf_reset (&self->ids);
        uint8_t head[ARRAY_HEAD] = {0xdd, 0, 0, 0, 0};
        omni_buf_append (&self->body, head, sizeof head);
    }
    uint8_t *at = (uint8_t *) omni_buf_reserve (&self->body, ITEM_HEAD + size);
    at[0] = 0xc6;
    omni_util_put_be (at + 1, size, 4);
    memcpy (at + ITEM_HEAD, data, size);
    omni_buf_advance (&self->body, ITEM_HEAD + size);
    omni_buf_append (&self->ids, id, RECORD_ID_SIZE);
    self->count++;
}

void
omni_js_batch_finish (omni_js_batch_t *self, const char *subject, char *msg_id)
{
    assert (self->count);
    omni_util_put_be ((uint8_t *) self->body.data + 1, self->count, 4);
    SHA256_CTX ctx;
    SHA256_Init (&ctx);
    SHA256_Update (&ctx, subject, strlen (subject) + 1);
    SHA256_Update (&ctx, self->ids.data, self->ids.size);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_Final (digest, &ctx);
    memcpy (msg_id, "ob1-", 4);
    omni_util_hex (digest, 16, msg_id + 4);
}

//  A length of `n` big-endian bytes at *p, if they are there.
static bool
s_take (const uint8_t **p, const uint8_t *end, size_t n, uint64_t *value)
{
    if ((size_t) (end - *p) < n)
        return false;
    *value = omni_util_get_be (*p, n);
    *p += n;
    return true;
}

int
omni_js_batch_split (const char *version, const char *records, const void *data, size_t size,
                     omni_js_part_t **parts, size_t *cap, char *why, size_t why_size)
{
    if (!version) {
        omni_array_reserve (*parts, *cap, 1);
        (*parts)[0] = (omni_js_part_t){data, size};
        return 1;
    }
    if (strcmp (version, OMNI_JS_BATCH_VERSION)) {
        snprintf (why, why_size, "%s: %.32s is no version this writer reads (it reads %s)",
                  OMNI_JS_BATCH_HEADER, version, OMNI_JS_BATCH_VERSION);
        return -1;
    }
    char *end_text = NULL;
    unsigned long long said = records ? strtoull (records, &end_text, 10) : 0;
    if (!records || !*records || *end_text || said == 0 || said > UINT32_MAX) {
        snprintf (why, why_size, "%s: \"%.32s\" is no record count", OMNI_JS_RECORDS_HEADER,
                  records ? records : "(missing)");
        return -1;
    }
    const uint8_t *p = data, *end = p + size;
    uint64_t count = 0;
    uint8_t tag = size ? *p++ : 0;
    bool head_ok = (tag >= 0x90 && tag <= 0x9f && ((count = tag & 0x0f), true)) ||
                   (tag == 0xdc && s_take (&p, end, 2, &count)) ||
                   (tag == 0xdd && s_take (&p, end, 4, &count));
    if (!head_ok) {
        snprintf (why, why_size, "the body (%zu bytes) does not start with a msgpack array", size);
        return -1;
    }
    if (count != said) {
        snprintf (why, why_size, "the body holds %" PRIu64 " records, %s says %llu", count,
                  OMNI_JS_RECORDS_HEADER, said);
        return -1;
    }
    //  Each item takes 3 bytes at least: no room is made for more than
    //  the body can hold, whatever the headers say
    if (count > (uint64_t) (end - p) / 3) {
        snprintf (why, why_size, "%" PRIu64 " records cannot fit in %zu bytes (truncated)", count,
                  size);
        return -1;
    }
    omni_array_reserve (*parts, *cap, (size_t) count);
    for (uint64_t i = 0; i < count; i++) {
        uint64_t len = 0;
        tag = p < end ? *p++ : 0;
        bool item_ok = (tag == 0xc4 && s_take (&p, end, 1, &len)) ||
                       (tag == 0xc5 && s_take (&p, end, 2, &len)) ||
                       (tag == 0xc6 && s_take (&p, end, 4, &len));
        if (!item_ok) {
            snprintf (why, why_size, "record %" PRIu64 " of %" PRIu64 " is no msgpack bin", i + 1,
                      count);
            return -1;
        }
        if (len > (uint64_t) (end - p)) {
            snprintf (why, why_size,
                      "record %" PRIu64 " of %" PRIu64 " says %" PRIu64
                      " bytes, %zu are left (truncated)",
                      i + 1, count, len, (size_t) (end - p));
            return -1;
        }
        if (len == 0) {
            snprintf (why, why_size, "record %" PRIu64 " of %" PRIu64 " is empty", i + 1, count);
            return -1;
        }
        (*parts)[i] = (omni_js_part_t){p, (size_t) len};
        p += len;
    }
    if (p != end) {
        snprintf (why, why_size, "%zu bytes after the last of %" PRIu64 " records",
                  (size_t) (end - p), count);
        return -1;
    }
    return (int) count;
}

void
omni_js_batch_test (bool verbose)
{
    (void) verbose;
    omni_js_part_t *parts = NULL;
    size_t cap = 0;
    char why[256], id1[OMNI_JS_BATCH_ID_SIZE], id2[OMNI_JS_BATCH_ID_SIZE];
    //  Round trip: three records, in order, and a stable name
    omni_js_batch_t batch = {0};
    const char *records[] = {"first", "second record", "x"};
    uint8_t ids[3][RECORD_ID_SIZE];
    for (int i = 0; i < 3; i++) {
        memset (ids[i], 'a' + i, RECORD_ID_SIZE);
        assert (omni_js_batch_size_with (&batch, strlen (records[i])) ==
                (i ? batch.body.size : 5) + 5 + strlen (records[i]));
        omni_js_batch_add (&batch, ids[i], records[i], strlen (records[i]));
    }
    omni_js_batch_finish (&batch, "omni.rec.a._._._.x", id1);
    assert (strlen (id1) == OMNI_JS_BATCH_ID_SIZE - 1 && strncmp (id1, "ob1-", 4) == 0);
    assert (batch.body.size == 5 + 3 * 5 + 5 + 13 + 1);
    int n = omni_js_batch_split ("1", "3", batch.body.data, batch.body.size, &parts, &cap, why,
                                 sizeof why);
    assert (n == 3);
    for (int i = 0; i < 3; i++)
        assert (parts[i].size == strlen (records[i]) &&
                memcmp (parts[i].data, records[i], parts[i].size) == 0);
    //  The same records on the same subject: the same id; another subject
    //  or other records: another
    omni_js_batch_finish (&batch, "omni.rec.a._._._.x", id2);
    assert (strcmp (id1, id2) == 0);
    omni_js_batch_finish (&batch, "omni.rec.a.r._._.x", id2);
    assert (strcmp (id1, id2) != 0);
    omni_js_batch_t other = {0};
    omni_js_batch_add (&other, ids[0], records[0], strlen (records[0]));
    omni_js_batch_add (&other, ids[1], records[1], strlen (records[1]));
    omni_js_batch_finish (&other, "omni.rec.a._._._.x", id2);
    assert (strcmp (id1, id2) != 0);
    //  Reset, then a batch of one
    omni_js_batch_reset (&other);
    assert (other.count == 0);
    omni_js_batch_add (&other, ids[2], "y", 1);
    assert (other.body.size == 1 + OMNI_JS_BATCH_OVERHEAD);
    omni_js_batch_finish (&other, "s", id2);
    assert (omni_js_batch_split ("1", "1", other.body.data, other.body.size, &parts, &cap, why,
                                 sizeof why) == 1);
    assert (parts[0].size == 1 && *(const char *) parts[0].data == 'y');
    //  A message of before: the whole body is one record
    assert (omni_js_batch_split (NULL, NULL, "old", 3, &parts, &cap, why, sizeof why) == 1);
    assert (parts[0].size == 3 && memcmp (parts[0].data, "old", 3) == 0);
    //  Other msgpack widths are read too: fixarray of bin8
    const uint8_t narrow[] = {0x92, 0xc4, 0x01, 'p', 0xc5, 0x00, 0x02, 'q', 'r'};
    assert (omni_js_batch_split ("1", "2", narrow, sizeof narrow, &parts, &cap, why, sizeof why) ==
            2);
    assert (parts[1].size == 2 && memcmp (parts[1].data, "qr", 2) == 0);
    //  Every truncation of a good body is refused, never read past
    for (size_t cut = 0; cut < batch.body.size; cut++) {
        uint8_t *copy = malloc (cut ? cut : 1);
        memcpy (copy, batch.body.data, cut);
        why[0] = 0;
        assert (omni_js_batch_split ("1", "3", copy, cut, &parts, &cap, why, sizeof why) == -1);
        assert (*why);
        free (copy);
    }
    //  What a reader must refuse, each with its reason
    const char *body = batch.body.data;
    size_t size = batch.body.size;
    assert (omni_js_batch_split ("2", "3", body, size, &parts, &cap, why, sizeof why) == -1);
    assert (strstr (why, "no version"));
    assert (omni_js_batch_split ("1", NULL, body, size, &parts, &cap, why, sizeof why) == -1);
    assert (strstr (why, "no record count"));
    assert (omni_js_batch_split ("1", "3x", body, size, &parts, &cap, why, sizeof why) == -1);
    assert (omni_js_batch_split ("1", "0", body, size, &parts, &cap, why, sizeof why) == -1);
    assert (omni_js_batch_split ("1", "4", body, size, &parts, &cap, why, sizeof why) == -1);
    assert (strstr (why, "holds 3 records"));
    assert (omni_js_batch_split ("1", "1",
                                 "\x81\xa1"
                                 "a\x01",
                                 4, &parts, &cap, why, sizeof why) == -1);
    assert (strstr (why, "msgpack array"));
    const uint8_t not_bin[] = {0x91, 0xa3, 'x', 'y', 'z'};
    assert (omni_js_batch_split ("1", "1", not_bin, sizeof not_bin, &parts, &cap, why,
                                 sizeof why) == -1);
    assert (strstr (why, "no msgpack bin"));
    const uint8_t empty[] = {0x91, 0xc4, 0x00, 0x00};
    assert (omni_js_batch_split ("1", "1", empty, sizeof empty, &parts, &cap, why, sizeof why) ==
            -1);
    const uint8_t trailing[] = {0x91, 0xc4, 0x01, 'p', 'z'};
    assert (omni_js_batch_split ("1", "1", trailing, sizeof trailing, &parts, &cap, why,
                                 sizeof why) == -1);
    assert (strstr (why, "after the last"));
    //  A count past what the body can hold allocates nothing for it
    const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc4, 0x01, 'p'};
    assert (omni_js_batch_split ("1", "4294967295", huge, sizeof huge, &parts, &cap, why,
                                 sizeof why) == -1);
    assert (strstr (why, "cannot fit"));
    omni_js_batch_release (&batch);
    omni_js_batch_release (&other);
    free (parts);
}
