/*  testrec (metricsd): the kinds metricsd derives points from, as test
    records (testsupport/testrec.h builds them), with the fields it reads.  */
#include "metricsd/testrec.h"

#include <assert.h>

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
