/*  server: ingestd's event loop. Intake batches are validated and journaled
    in group-committed rounds and acknowledged once durable; delivery sends
    each writer the records routed to it as far as its credit allows and
    moves its durable cursor on ACK; the tap publishes what was accepted and
    what was rejected. While the journal is full, or cannot be written (disk
    full, quota, map full, I/O error), intake is not read; a fault is probed
    every second and intake resumes by itself once writes succeed again.
    Intake, delivery and tap are classes of their own (intake.h,
    delivery.h, tap.h); the server binds their sockets and runs the loop.  */
#ifndef OMNI_SERVER_H
#define OMNI_SERVER_H

#include "proto/curve.h"
#include "common/metrics.h"
#include "ingestd/jsjournal.h"
#include "ingestd/jsrejects.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *intake;   //  ROUTER bind endpoint
    const char *delivery; //  ROUTER bind endpoint
    const char *tap;      //  XPUB bind endpoint
    const char *journal_dir;
    uint64_t journal_max;       //  bytes of records held before intake pauses
    uint64_t dead_max;          //  dead letters kept
    const char *const *writers; //  configured writer names, NULL-terminated
    omni_record_limits_t limits;
    omni_curve_server_t *curve; //  NULL = no security; else all three sockets are CURVE servers
    //  A writer name is held by one connection while it was heard from within
    //  this long; HELLOs of other instances wait, then are refused or take
    //  over (0 = 5 s).
    int64_t session_timeout_ms;
    uint64_t journal_map_size; //  LMDB map; 0 = 2 x journal_max + 1 GiB
    int64_t dead_retain_ms;    //  dead letters older than this go; 0 = kept
    //  Bounds on what peers may make ingestd hold (0 = the default below)
    uint32_t window_max;      //  a writer's credit is capped to this many records
    size_t max_batch_records; //  record frames of one intake message
    uint64_t max_batch_bytes; //  bytes of one intake message
    size_t max_connections;   //  over all sockets; 0 = the fd limit less a reserve, at most 4096
    int64_t idle_timeout_ms;  //  intake and delivery connections silent this long are closed
    int64_t peer_timeout_ms;  //  a peer gone without a FIN goes within this (0 = 30 s)
    uint64_t memory_max;      //  over this, connections without a recent whole message go
    uint64_t tap_budget;      //  bytes queued to one tap subscriber at most
    //  journal: jetstream: accepted records go to this stream (the LMDB
    //  journal keeps dead letters and counters); NULL = journal: lmdb
    jsjournal_t *stream;
    jsrejects_t *rejects; //  journal: jetstream: the rejects stream (jsrejects.h), or NULL
} server_config_t;

#define SERVER_WINDOW_MAX      100000
#define SERVER_BATCH_RECORDS   100000
#define SERVER_BATCH_BYTES     (64ULL << 20)
#define SERVER_MEMORY_MAX      (1ULL << 30)
#define SERVER_TAP_BUDGET      (256ULL << 20)
#define SERVER_IDLE_TIMEOUT_MS (10 * 60 * 1000)

typedef struct _server_t server_t;

server_t *server_new (const server_config_t *config, omni_metrics_t *metrics, char *error,
                      size_t error_size);
void server_destroy (server_t **self_p);

//  Runs until interrupted (SIGINT/SIGTERM) or server_stop; returns 0.
int server_run (server_t *self);
void server_stop (server_t *self);

//  /health: a journal fault (503 with its cause), else the accounting
//  invariants, checked against the journal, then a line per writer with the
//  instance holding its name.
bool server_healthy (void *self, char *text, size_t size);

void server_test (bool verbose);

#endif
