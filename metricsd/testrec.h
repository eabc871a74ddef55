/*  testrec: records built with the real encoder and decoded by the real
    decoder, for metricsd's self-tests (derive, pointstore). Each record is
    a valid omni_record_t, as the writer loop hands them to the store.            */
#ifndef OMNI_METRICSD_TESTREC_H
#define OMNI_METRICSD_TESTREC_H

#include "proto/record.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _testrec_t testrec_t;

testrec_t *testrec_new (void);
void testrec_destroy (testrec_t **self_p);
//  Forgets every record.
void testrec_clear (testrec_t *self);
size_t testrec_count (testrec_t *self);
const omni_record_t *testrec_records (testrec_t *self);

//  A record of `kind` whose body is a map of `nfields`: pack them with the
//  returned packer (omni_record_pack_kv ...), add tags, then testrec_end.
msgpack_packer *testrec_begin (testrec_t *self, const char *kind, const char *src, int64_t ts,
                               int nfields);
void testrec_tag (testrec_t *self, const char *key, const char *value);
void testrec_end (testrec_t *self);

//  The kinds metricsd derives points from, with the fields it reads.
//  `started_ns` 0 = absent; `branch` NULL = absent.
void testrec_commit (testrec_t *self, const char *src, const char *sha, const char *email,
                     int64_t author_time, int64_t committer_time, int64_t files, int64_t insertions,
                     int64_t deletions);
void testrec_build (testrec_t *self, const char *src, int64_t ts, const char *pipeline,
                    const char *build_id, const char *status, const char *branch,
                    int64_t started_ns, double duration);
void testrec_test_case (testrec_t *self, const char *src, int64_t ts, const char *suite,
                        const char *class_name, const char *name, const char *status,
                        double duration, const char *build_id);
void testrec_metric (testrec_t *self, const char *src, int64_t ts, const char *name, double value,
                     const char *host);

#endif
