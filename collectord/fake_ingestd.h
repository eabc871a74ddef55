/*  fake_ingestd: the intake side of ingestd for self-tests. A thread binds
    a ROUTER on a free port, keeps every record frame of every BATCH and
    answers each with an ACK counting them all as accepted. Built into the
    self-test runner only.                                                   */
#ifndef OMNI_COLLECTORD_FAKE_INGESTD_H
#define OMNI_COLLECTORD_FAKE_INGESTD_H

#include "record.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _fake_ingestd_t fake_ingestd_t;

fake_ingestd_t *fake_ingestd_new (void);
void fake_ingestd_destroy (fake_ingestd_t **self_p);
const char *fake_ingestd_endpoint (fake_ingestd_t *self);

//  Records received so far. Read them only after the collector's flush
//  returned: every record is stored before its batch is acknowledged.
size_t fake_ingestd_count (fake_ingestd_t *self);
//  Decodes record `index` into `record` (pointing into `zone`); asserts
//  that it is valid.
void fake_ingestd_record (fake_ingestd_t *self, size_t index, record_t *record, msgpack_zone *zone);
//  Records of `kind` received so far.
size_t fake_ingestd_count_kind (fake_ingestd_t *self, const char *kind);
void fake_ingestd_clear (fake_ingestd_t *self);

#endif
