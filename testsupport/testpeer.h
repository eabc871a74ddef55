/*  testpeer: the intake side of ingestd for self-tests, the one fake peer of
    the protocol (it replaced four). A thread binds a ROUTER on a free
    loopback port, decodes every message with the protocol's own codec,
    keeps every record frame of every BATCH and REPLAY, validates each with
    the real decoder and answers with an ACK counting the valid ones as
    accepted and the others as rejected, as ingestd does.
    Linked into self-tests only (libomnitest), never into a program.         */
#ifndef OMNI_TESTPEER_H
#define OMNI_TESTPEER_H

#include "record.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct _testpeer_t testpeer_t;

testpeer_t *testpeer_new (void);
void testpeer_destroy (testpeer_t **self_p);
const char *testpeer_endpoint (testpeer_t *self);

//  The next `batches` messages are kept but never answered, as by an
//  ingestd that died before its ACK: the client must send them again.
void testpeer_drop (testpeer_t *self, size_t batches);

//  Records received so far (each copy of a batch sent twice counts). Read
//  them after the client's flush returned: every record is kept before its
//  batch is acknowledged.
size_t testpeer_count (testpeer_t *self);
//  Records found valid and invalid, in the batches answered.
size_t testpeer_accepted (testpeer_t *self);
size_t testpeer_rejected (testpeer_t *self);
//  Decodes record `index` into `record` (pointing into `zone`); asserts
//  that it is valid.
void testpeer_record (testpeer_t *self, size_t index, record_t *record, msgpack_zone *zone);
//  Records of `kind` received so far.
size_t testpeer_count_kind (testpeer_t *self, const char *kind);
//  The writers frame of the last REPLAY received, or NULL. Caller frees.
char *testpeer_replay_writers (testpeer_t *self);
void testpeer_clear (testpeer_t *self);

void testpeer_test (bool verbose);

#endif
