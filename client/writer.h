/*  writer: the machinery every writer daemon shares. It speaks the delivery
    protocol to ingestd, gathers delivered records into batches (by size or
    flush interval), hands each batch to the daemon's store, and acknowledges
    it only once the store has committed it. A store failure is retried with
    exponential backoff while nothing is acknowledged, so a store that is away
    loses nothing. SIGTERM/SIGINT: the batch in hand is finished (committed
    and acked) or left unacked for redelivery, then omni_writer_run returns 0.     */
#ifndef OMNI_WRITER_H
#define OMNI_WRITER_H

#include "proto/curve.h"
#include "common/metrics.h"
#include "proto/record.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *endpoint;             //  ingestd delivery, e.g. tcp://127.0.0.1:5551
    const char *name;                 //  writer role: archive | relational | document | metrics
    size_t batch_size;                //  records per store write (default 1000)
    int64_t flush_ms;                 //  a partial batch waits at most this long (default 200)
    uint32_t window;                  //  credit given to ingestd (default 4 * batch_size)
    int64_t retry_min_ms;             //  first backoff after a store failure (default 100)
    int64_t retry_max_ms;             //  backoff ceiling (default 5000)
    const omni_curve_client_t *curve; //  CURVE keys for delivery, or NULL; outlives the writer
    const char *conflicts_dir;        //  where conflicts are filed (default var/conflicts)
} omni_writer_config_t;

//  Stores `count` decoded records in one transaction. Returns 0 once they
//  are durably committed (records the store refuses for their content count
//  as stored: the store keeps them in its own rejected area), or -1 on a
//  transient failure (store away): the whole batch is retried later. Writes
//  a reason into `error` on failure.
//  A record of an immutable kind whose id the store already holds with other
//  content (omni_record_content_hash) is a conflict: the store keeps what it has,
//  does not store the record, and sets conflicts[i] to 1 (`conflicts` has
//  `count` zeroed entries, or is NULL when the caller does not ask). The
//  writer loop then counts it, logs it, files it in the conflicts area and
//  reports it to ingestd (the tap's conflict.<kind>): an audit never drops
//  evidence silently. The same batch again must flag the same records.
typedef int (writer_store_fn) (void *store, const omni_record_t *records, size_t count,
                               uint8_t *conflicts, char *error, size_t error_size);

//  A store function's answer when the store refuses the writer until an
//  operator acts (no such database or role, authentication, permission):
//  retried all the same (at the backoff ceiling), but logged at error and
//  said as such in /health.
#define WRITER_STORE_PERMANENT (-2)

typedef struct _omni_writer_t omni_writer_t;

//  Registers the writer's metrics (delivered, stored, batches, retries,
//  store up, batch latency) in `metrics`, which may be NULL.
omni_writer_t *omni_writer_new (const omni_writer_config_t *config, writer_store_fn *store_fn,
                                void *store, omni_metrics_t *metrics);
void omni_writer_destroy (omni_writer_t **self_p);

//  Runs until interrupted; returns 0 after a clean drain, -1 when ingestd
//  refused the writer name (another live instance holds it: omni_writer_refusal
//  says why), sent what the writer cannot read (omni_writer_fault) or the
//  endpoint is invalid.
int omni_writer_run (omni_writer_t *self);

//  This process's instance id, "host:pid@start", sent in HELLO.
const char *omni_writer_instance (omni_writer_t *self);

//  ingestd's reason for refusing this writer, or NULL.
const char *omni_writer_refusal (omni_writer_t *self);

//  What ingestd sent that this writer could not read and stopped it, or NULL.
const char *omni_writer_fault (omni_writer_t *self);

//  Makes omni_writer_run drain and return, from another thread.
void omni_writer_stop (omni_writer_t *self);

//  For /health: connected to ingestd and the last store write succeeded.
bool omni_writer_healthy (void *self, char *text, size_t size);

void omni_writer_test (bool verbose);

#endif
