/*  testrec: records for self-tests, through the real encoder and decoder.
    Decoded records point into their encoded bytes and the zone, so both
    live as long as the set. In the test-support library: metricsd's and
    relationald's store tests build their records with it.                  */
#include "testsupport/testrec.h"
#include "common/buf.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _testrec_t {
    omni_record_encoder_t *enc;
    msgpack_zone zone;
    omni_record_t *records;
    void **data;
    size_t count, capacity, data_cap;
};

testrec_t *
testrec_new (void)
{
    testrec_t *self = calloc (1, sizeof *self);
    assert (self);
    self->enc = omni_record_encoder_new ();
    msgpack_zone_init (&self->zone, 65536);
    return self;
}

void
testrec_clear (testrec_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        free (self->data[i]);
    self->count = 0;
    msgpack_zone_clear (&self->zone);
}

void
testrec_destroy (testrec_t **self_p)
{
    testrec_t *self = *self_p;
    if (!self)
        return;
    testrec_clear (self);
    free (self->records);
    free (self->data);
    msgpack_zone_destroy (&self->zone);
    omni_record_encoder_destroy (&self->enc);
    free (self);
    *self_p = NULL;
}

size_t
testrec_count (testrec_t *self)
{
    return self->count;
}

const omni_record_t *
testrec_records (testrec_t *self)
{
    return self->records;
}

msgpack_packer *
testrec_begin (testrec_t *self, const char *kind, const char *src, int64_t ts, int nfields)
{
    omni_record_encoder_begin (self->enc, kind, src, "test-col", "run-1", ts);
    msgpack_packer *pk = omni_record_encoder_body (self->enc);
    msgpack_pack_map (pk, (size_t) nfields);
    return pk;
}

void
testrec_tag (testrec_t *self, const char *key, const char *value)
{
    omni_record_encoder_tag (self->enc, key, value);
}

void
testrec_end (testrec_t *self)
{
    const void *data;
    size_t size;
    char detail[256] = "";
    int rc = omni_record_encoder_end (self->enc, &data, &size, detail, sizeof detail);
    if (rc)
        fprintf (stderr, "testrec: %s\n", detail);
    assert (rc == 0);
    omni_array_reserve (self->records, self->capacity, self->count + 1);
    omni_array_reserve (self->data, self->data_cap, self->count + 1);
    self->data[self->count] = malloc (size);
    assert (self->data[self->count]);
    memcpy (self->data[self->count], data, size);
    rc = omni_record_decode (&self->records[self->count], &self->zone, self->data[self->count],
                             size, &omni_record_default_limits, detail, sizeof detail);
    assert (rc == REJECT_NONE);
    self->count++;
}

void
testrec_test (bool verbose)
{
    (void) verbose;
    testrec_t *self = testrec_new ();
    msgpack_packer *pk = testrec_begin (self, "x.branch", "repo", 1700000000000000000, 2);
    omni_record_pack_kv (pk, "name", "main");
    omni_record_pack_kv (pk, "target", "abc");
    testrec_tag (self, "env", "test");
    testrec_end (self);
    pk = testrec_begin (self, "x.value", "repo", 1700000000000000001, 1);
    omni_record_pack_kv_double (pk, "value", 2.5);
    testrec_end (self);
    assert (testrec_count (self) == 2);
    const omni_record_t *records = testrec_records (self);
    assert (records[0].kind.len == 8 && memcmp (records[0].kind.ptr, "x.branch", 8) == 0);
    assert (records[1].ts == 1700000000000000001 && records[0].tags);
    testrec_clear (self);
    assert (testrec_count (self) == 0);
    testrec_destroy (&self);
    assert (!self);
}
