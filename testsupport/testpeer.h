/*  testpeer: ingestd for self-tests, the one fake peer of the protocol (it
    replaced five), with both of ingestd's sides.
    Intake: a thread binds a ROUTER on a free loopback port, decodes every
    message with the protocol's own codec, keeps every record frame of every
    BATCH and REPLAY, validates each with the real decoder and answers with
    an ACK counting the valid ones as accepted and the others as rejected,
    as ingestd does.
    Delivery: a second ROUTER, scripted by the test from its own thread (a
    writer's conversation is a sequence the test chooses: WELCOME, DELIVER,
    HEARTBEAT, ERROR), which decodes every message a writer sends with the
    codec and fails the test on one that is malformed.
    Linked into self-tests only (libomnitest), never into a program.         */
#ifndef OMNI_TESTPEER_H
#define OMNI_TESTPEER_H

#include "proto/record.h"

#include <czmq.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
//  BATCHP messages received (its ACKs say it takes them, as ingestd's do).
size_t testpeer_packed_batches (testpeer_t *self);
//  From now on, answer BATCHP as an ingestd before it did: ERROR (its ACKs
//  still say it takes BATCHP: an ingestd replaced behind one endpoint).
void testpeer_old (testpeer_t *self, bool old);
//  Decodes record `index` into `record` (pointing into `zone`); asserts
//  that it is valid.
void testpeer_record (testpeer_t *self, size_t index, omni_record_t *record, msgpack_zone *zone);
//  Records of `kind` received so far.
size_t testpeer_count_kind (testpeer_t *self, const char *kind);
//  The writers frame of the last REPLAY received, or NULL. Caller frees.
char *testpeer_replay_writers (testpeer_t *self);
void testpeer_clear (testpeer_t *self);

//  The delivery side (bound at the first call), for writers.
const char *testpeer_delivery_endpoint (testpeer_t *self);
//  Waits for a writer's HELLO, reading past anything else (the last words
//  of a writer gone), and speaks to its sender from then on. Fills `name`
//  and `instance` ("" when the HELLO has none); returns the window.
uint32_t testpeer_hello (testpeer_t *self, char *name, size_t name_size, char *instance,
                         size_t instance_size);
//  WELCOME: the writer's cursor is `cursor`.
void testpeer_welcome (testpeer_t *self, uint64_t cursor);
//  The records of `records` (taken; NULL for none) up to `upto`: as
//  DELIVERP when the writer's HELLO asked for it, else as DELIVER frames.
void testpeer_deliver (testpeer_t *self, uint64_t upto, zmsg_t **records);
//  DELIVER, one frame per record, whatever the writer asked for.
void testpeer_deliver_frames (testpeer_t *self, uint64_t upto, zmsg_t **records);
//  DELIVERP with `frame` as its frame of records, as it is (well formed or not).
void testpeer_deliver_packed (testpeer_t *self, uint64_t upto, const void *frame, size_t size);
void testpeer_heartbeat (testpeer_t *self, uint64_t cursor);
//  ERROR: the writer's name is held by another.
void testpeer_refuse (testpeer_t *self, const char *reason);
//  Reads the writer's messages (ACKs, CONFLICTs, HELLOs) until one
//  acknowledges `upto` or more, or for `timeout_ms` (-1: no limit);
//  returns the last offset acknowledged.
uint64_t testpeer_await_ack (testpeer_t *self, uint64_t upto, int timeout_ms);
//  Records reported in CONFLICT messages so far; `acked`: the last offset
//  acknowledged before the latest of them.
size_t testpeer_conflicts (testpeer_t *self, uint64_t *acked);

void testpeer_test (bool verbose);

#endif
