/*  intake: ingestd's side of the intake protocol (PROTOCOL.md, Intake).
    Every intake message already waiting is read, validated record by
    record, journaled (accepted records) or dead-lettered (rejected ones and
    malformed messages) in one LMDB transaction — a round — committed with
    one fsync; only then do the ACKs go out and the accepted records go on
    the tap. A round that fails acknowledges nothing: collectors resend.

    The ROUTER socket and the connection table are the server's (it binds
    the socket, reads its monitor and decides when intake is read at all:
    not while the journal is full or faulted).                              */
#ifndef OMNI_INTAKE_H
#define OMNI_INTAKE_H

#include "common/metrics.h"
#include "ingestd/journal.h"
#include "ingestd/jsjournal.h"
#include "ingestd/jsrejects.h"
#include "ingestd/peers.h"
#include "ingestd/tap.h"
#include "proto/record.h"

#include <czmq.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *const *writers; //  configured writer names (REPLAY routes to them)
    omni_record_limits_t limits;
    size_t max_batch_records; //  record frames of one intake message
    uint64_t max_batch_bytes; //  bytes of one intake message
    bool curve;               //  frames come as CURVE messages (their size on the wire)
    //  journal: jetstream: accepted records are published to this stream
    //  and the round waits for its acks (the LMDB journal keeps the dead
    //  letters and counters); NULL = journal: lmdb
    jsjournal_t *stream;
    //  journal: jetstream: rejects also go to this stream, stored in the
    //  round like the dead letters (jsrejects.h); NULL = none
    jsrejects_t *rejects;
} intake_config_t;

typedef struct _intake_t intake_t;

//  Reads `sock` (a ROUTER, not owned) into `journal`; `state_lock` is held
//  while a round changes what /health compares.
intake_t *intake_new (zsock_t *sock, journal_t *journal, peers_t *peers, tap_t *tap,
                      const intake_config_t *config, pthread_mutex_t *state_lock,
                      omni_metrics_t *metrics);
void intake_destroy (intake_t **self_p);

//  One round. Returns 1 when it committed messages, 0 when none was
//  waiting, -1 when the journal failed: `op` says which write ("stream":
//  the stream did not store the round) and `bytes` what the round had read
//  (nothing of it was acknowledged).
int intake_round (intake_t *self, const char **op, size_t *bytes);
//  journal: jetstream: why the last round failed with `op` "stream": the
//  records' stream or the rejects stream did not store it.
const char *intake_stream_error (intake_t *self);
//  Whether an intake message waits.
bool intake_waiting (intake_t *self);
//  The writer roles REPLAY messages were routed to since the start.
unsigned intake_replayed (intake_t *self);

void intake_test (bool verbose);

#endif
