/*  testrec (metricsd): test records of the kinds metricsd derives points
    from, built with testsupport/testrec.h, for derive's and pointstore's
    self-tests.                                                            */
#ifndef OMNI_METRICSD_TESTREC_H
#define OMNI_METRICSD_TESTREC_H

#include "testsupport/testrec.h"

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
