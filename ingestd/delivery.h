/*  delivery: ingestd's side of the delivery protocol (PROTOCOL.md,
    Delivery). One session per configured writer name, held by one
    connection at a time (HELLO, WELCOME; a second instance waits, is
    refused or takes over); records routed to the writer are sent in
    DELIVER messages as far as its credit allows (its window, in records,
    and INFLIGHT_BYTES); an ACK moves its cursor to upto + 1, which is
    persisted at most every SYNC_MS, and a record leaves the journal once
    every writer's cursor is past it. An idle writer gets a HEARTBEAT every
    second; a message from a connection that holds no session gets RESET.

    The ROUTER socket and the connection table are the server's (it binds
    the socket and tells delivery when a connection closed); delivery reads
    and answers the socket.                                                 */
#ifndef OMNI_DELIVERY_H
#define OMNI_DELIVERY_H

#include "common/metrics.h"
#include "ingestd/journal.h"
#include "ingestd/peers.h"
#include "ingestd/tap.h"
#include "proto/curve.h"
#include "proto/record.h"

#include <czmq.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *const *writers;  //  configured writer names, NULL-terminated, as in the journal
    omni_record_limits_t limits; //  what a CONFLICT's records are checked against
    omni_curve_server_t *curve;  //  NULL = no security; else a writer name must be its key's
    uint32_t window_max;         //  a writer's credit is capped to this many records
    int64_t session_timeout_ms;  //  a holder not heard from this long is not live
    const char *intake;          //  the intake endpoint, for the hint to replay
} delivery_config_t;

typedef struct _delivery_t delivery_t;

//  Serves `sock` (a ROUTER, not owned) from `journal`; `state_lock` guards
//  what /health reads (delivery_health).
delivery_t *delivery_new (zsock_t *sock, journal_t *journal, peers_t *peers, tap_t *tap,
                          const delivery_config_t *config, pthread_mutex_t *state_lock,
                          omni_metrics_t *metrics);
void delivery_destroy (delivery_t **self_p);

//  Reads the writers' messages waiting (HELLO, ACK, CONFLICT), persists the
//  cursors when due (every SYNC_MS; at once while the journal is full and
//  not `faulted`), then sends what the writers have credit for. Returns -1
//  when persisting the cursors failed, else 0.
int delivery_round (delivery_t *self, bool faulted);
//  Sends every connected writer what it has credit for (after a round of
//  intake journaled more).
void delivery_pump (delivery_t *self);
//  Persists moved cursors and trims what every writer passed. Returns 0, or
//  -1 when the journal failed: the cursors stay moved in memory and are
//  synced when possible.
int delivery_sync (delivery_t *self);
//  Every HOUSEKEEP_MS: persists cursors, sets the lag gauges, lets a waiting
//  HELLO take over from a holder silent for the timeout, sends HEARTBEAT to
//  the writers sent nothing for a second. Returns delivery_sync's result.
int delivery_housekeep (delivery_t *self);
//  The delivery connection `fd` closed: the session it held is over (a
//  HELLO waiting takes over now).
void delivery_disconnected (delivery_t *self, int fd);
//  Appends to `text` (of `size`, `len` used) a line per writer with the
//  instance holding its name; `replayed` are the roles REPLAY routed to.
//  Returns the new length, as snprintf counts.
int delivery_health (delivery_t *self, char *text, size_t size, int len, unsigned replayed);
size_t delivery_writers (delivery_t *self);

void delivery_test (bool verbose);

#endif
