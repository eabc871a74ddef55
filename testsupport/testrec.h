/*  testrec: records built with the real encoder and decoded by the real
    decoder, for the stores' self-tests (metricsd's derive and pointstore,
    relationald's relstore). Each record is a valid omni_record_t, as the
    writer loop hands them to the store.                                   */
#ifndef OMNI_TESTSUPPORT_TESTREC_H
#define OMNI_TESTSUPPORT_TESTREC_H

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

void testrec_test (bool verbose);

#endif
