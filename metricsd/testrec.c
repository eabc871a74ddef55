/*  testrec: records for self-tests, through the real encoder and decoder.
    Decoded records point into their encoded bytes and the zone, so both
    live as long as the set.                                                 */
#include "metricsd/testrec.h"
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
testrec_commit (testrec_t *self, const char *src, const char *sha, const char *email,
                int64_t author_time, int64_t committer_time, int64_t files, int64_t insertions,
                int64_t deletions)
{
    //  The record time is the commit time, when it fits
    int64_t ts = committer_time > -9000000000 && committer_time < 9000000000
                     ? committer_time * 1000000000
                     : 0;
    msgpack_packer *pk = testrec_begin (self, "git.commit", src, ts, 14);
    omni_record_pack_kv (pk, "sha", sha);
    omni_record_pack_str (pk, "parents");
    msgpack_pack_array (pk, 0);
    omni_record_pack_kv (pk, "author_name", "Someone");
    omni_record_pack_kv (pk, "author_email", email);
    omni_record_pack_kv_int (pk, "author_time", author_time);
    omni_record_pack_kv_int (pk, "author_tz", 60);
    omni_record_pack_kv (pk, "committer_name", "Committer");
    omni_record_pack_kv (pk, "committer_email", "committer@example.org");
    omni_record_pack_kv_int (pk, "committer_time", committer_time);
    omni_record_pack_kv_int (pk, "committer_tz", 0);
    omni_record_pack_kv (pk, "message", "change");
    omni_record_pack_kv_int (pk, "files_changed", files);
    omni_record_pack_kv_int (pk, "insertions", insertions);
    omni_record_pack_kv_int (pk, "deletions", deletions);
    testrec_end (self);
}

void
testrec_build (testrec_t *self, const char *src, int64_t ts, const char *pipeline,
               const char *build_id, const char *status, const char *branch, int64_t started_ns,
               double duration)
{
    int n = 3 + (branch != NULL) + (started_ns != 0) + (duration >= 0);
    msgpack_packer *pk = testrec_begin (self, "ci.build", src, ts, n);
    omni_record_pack_kv (pk, "pipeline", pipeline);
    omni_record_pack_kv (pk, "build_id", build_id);
    omni_record_pack_kv (pk, "status", status);
    if (branch)
        omni_record_pack_kv (pk, "branch", branch);
    if (started_ns)
        omni_record_pack_kv_int (pk, "started", started_ns);
    if (duration >= 0)
        omni_record_pack_kv_double (pk, "duration", duration);
    testrec_end (self);
}

void
testrec_test_case (testrec_t *self, const char *src, int64_t ts, const char *suite,
                   const char *class_name, const char *name, const char *status, double duration,
                   const char *build_id)
{
    int n = 4 + (class_name != NULL) + (build_id != NULL);
    msgpack_packer *pk = testrec_begin (self, "ci.test", src, ts, n);
    omni_record_pack_kv (pk, "suite", suite);
    if (class_name)
        omni_record_pack_kv (pk, "class", class_name);
    omni_record_pack_kv (pk, "name", name);
    omni_record_pack_kv (pk, "status", status);
    omni_record_pack_kv_double (pk, "duration", duration);
    if (build_id)
        omni_record_pack_kv (pk, "build_id", build_id);
    testrec_end (self);
}

void
testrec_metric (testrec_t *self, const char *src, int64_t ts, const char *name, double value,
                const char *host)
{
    msgpack_packer *pk = testrec_begin (self, "metric", src, ts, 3);
    omni_record_pack_kv (pk, "name", name);
    omni_record_pack_kv_double (pk, "value", value);
    omni_record_pack_kv (pk, "unit", "percent");
    if (host)
        testrec_tag (self, "host", host);
    testrec_end (self);
}
