/*  intake_client: the collector side of the intake protocol. Records are
    added one at a time; the client groups them into batches, keeps every
    batch until ingestd acknowledges it, resends unacknowledged batches after
    a timeout or a reconnect, and blocks the caller while its window of
    unacknowledged batches is full, so a slow or absent ingestd makes the
    collector wait with bounded memory instead of dropping records.

    Given several ingestd endpoints it sends to one of them at a time and
    moves to the next (failover) when the current one leaves a batch
    unacknowledged for ack_timeout or has had no connection for
    INTAKE_FAILOVER_MS; every unacknowledged batch then goes again to the
    next one. It stays on an endpoint that works.                            */
#ifndef OMNI_INTAKE_CLIENT_H
#define OMNI_INTAKE_CLIENT_H

#include "proto/curve.h"
#include "common/metrics.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  How long the current endpoint may stay without a connection (never
//  connected, or lost and not back) before the client moves to the next
//  one; at most ack_timeout. An ingestd that is up takes a reconnection
//  within 100 ms.
#define INTAKE_FAILOVER_MS 2000

typedef struct {
    //  ingestd intake, e.g. tcp://127.0.0.1:5550, or several separated by
    //  commas: tcp://a:5550,tcp://b:5550 (failover, in this order). With
    //  CURVE, curve_server_key is every one's: they share one certificate.
    const char *endpoint;
    size_t batch_records;   //  records per batch (default 500)
    size_t batch_bytes;     //  or bytes per batch (default 1 MiB), whichever first
    size_t window;          //  unacked batches in flight (default 8)
    int64_t ack_timeout_ms; //  resend a batch unacked this long (default 10000)
    int64_t give_up_ms;     //  fail if no ACK at all for this long; 0 = wait forever
    const omni_curve_client_t
        *curve; //  NULL = no security; kept by the caller, outlives the client
} omni_intake_config_t;

typedef struct _omni_intake_client_t omni_intake_client_t;

//  NULL (after logging why) when an endpoint is not valid or none is given.
omni_intake_client_t *omni_intake_client_new (const omni_intake_config_t *config);
void omni_intake_client_destroy (omni_intake_client_t **self_p);

//  Counts failovers_total and shows intake_connected{endpoint} (1 for the
//  endpoint in use while connected) in `metrics`, which outlives the client.
void omni_intake_client_set_metrics (omni_intake_client_t *self, omni_metrics_t *metrics);

//  From now on batches go as REPLAY messages routed to these writers only
//  ("relational,document"; "" = every configured writer but the archive)
//  instead of BATCH (omnictl replay; PROTOCOL.md). Call before any send.
void omni_intake_client_set_replay (omni_intake_client_t *self, const char *writers);

//  Queues one encoded record (copied). May block while the window is full.
//  Returns 0, or -1 when no ingestd gave an ACK for give_up_ms or the process
//  was interrupted (SIGINT/SIGTERM).
int omni_intake_client_send (omni_intake_client_t *self, const void *record, size_t size);

//  Sends the partial batch now and waits until every batch is acknowledged.
//  Returns 0, or -1 as above.
int omni_intake_client_flush (omni_intake_client_t *self);

//  After SIGINT/SIGTERM, when send and flush refuse: sends the partial batch
//  and waits up to timeout_ms for every ACK, so a stopping collector hands
//  over what it holds. Returns 0 when all are acknowledged, else -1 (the
//  unacknowledged records will be collected again on the next run).
int omni_intake_client_drain (omni_intake_client_t *self, int64_t timeout_ms);

//  Totals since creation, acknowledged by ingestd.
uint64_t omni_intake_client_accepted (omni_intake_client_t *self);
uint64_t omni_intake_client_rejected (omni_intake_client_t *self);
//  Batches sent and not yet acknowledged.
size_t omni_intake_client_unacked (omni_intake_client_t *self);
//  Batches sent again after a timeout or reconnect.
uint64_t omni_intake_client_resent (omni_intake_client_t *self);
//  Records, counted from the first one given to omni_intake_client_send, of
//  which every one is acknowledged (accepted or rejected): what a resumable
//  sender may record as done.
uint64_t omni_intake_client_acked_prefix (omni_intake_client_t *self);
//  Times the client moved to the next endpoint.
uint64_t omni_intake_client_failovers (omni_intake_client_t *self);
//  The endpoint in use.
const char *omni_intake_client_endpoint (omni_intake_client_t *self);
//  The reason of the last ERROR ingestd answered (a message it refused
//  whole), or NULL; the batch counts as rejected.
const char *omni_intake_client_error (omni_intake_client_t *self);

void omni_intake_client_test (bool verbose);

#endif
