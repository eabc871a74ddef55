/*  session: what every collector shares. It owns the connection to ingestd's
    intake (omni_intake_client_t), the record encoder and the progress display,
    and frames each collection run with a run.start and a run.end record:

        session_begin       new run id, run.start
        session_record      start a record, pack its body
        session_send        encode (validated, deterministic id) and queue it
        ...
        session_end         run.end, then wait until ingestd acked every batch

    Records carry src = the source being collected, col = the collector
    instance, run = the run id (32 random hex digits).                      */
#ifndef OMNI_COLLECTORD_SESSION_H
#define OMNI_COLLECTORD_SESSION_H

#include "client/intake_client.h"
#include "collectord/progress.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *collector; //  collector type, e.g. "git"
    const char *instance;  //  `col` of every record
    omni_intake_config_t intake;
    progress_mode_t progress;
    int64_t progress_interval_ms; //  between progress log lines
    //  The project the source belongs to (config key `project`), sent in
    //  run.start; NULL or empty: none named (relationald then takes the
    //  source for its own project)
    const char *project;
} session_config_t;

typedef struct _session_t session_t;

//  Packs the collector's settings as one msgpack map (run.start body.config).
typedef void (session_config_fn) (void *arg, msgpack_packer *pk);

//  NULL (after logging why) when the intake endpoint is not valid.
session_t *session_new (const session_config_t *config);
void session_destroy (session_t **self_p);

//  The intake client's failover metrics go to `metrics` (outlives the
//  session): omni_intake_client_set_metrics.
void session_set_metrics (session_t *self, omni_metrics_t *metrics);

//  Starts a run on `src` (the record source) and sends run.start, whose
//  body.source is `target` (what the user named, e.g. a path). Returns 0, or
//  -1 when ingestd gave up or the process was interrupted.
int session_begin (session_t *self, const char *src, const char *target,
                   session_config_fn *config_fn, void *omni_config_arg);

//  Starts a record of `kind` with event time `ts` (ns); pack exactly one map
//  into the returned packer, then call session_send.
msgpack_packer *session_record (session_t *self, const char *kind, int64_t ts);

//  Adds a tag to the record begun (kept sorted; part of the id for kinds
//  keyed on @tags, such as metric).
void session_tag (session_t *self, const char *key, const char *value);

//  Encodes the record begun and queues it. Returns 0; 1 when the record is
//  not valid for its kind or too large (nothing sent; session_detail says
//  why, the collector may retry a smaller one); -1 when ingestd gave up or
//  the process was interrupted.
int session_send (session_t *self);
const char *session_detail (session_t *self);

//  Sends what is queued now and waits until ingestd acknowledged it all (a
//  collector that samples sends each sample at once). Returns 0, or -1 as
//  session_send.
int session_flush (session_t *self);

//  Sends run.end with `status` ("ok", "failed"; "interrupted" is chosen
//  here when a signal came) and `error` (NULL if none), then waits until
//  every batch is acknowledged. A SIGINT/SIGTERM that stopped the run is
//  consumed here so that the drain can proceed; a second one ends the
//  process at once (common/daemon.h).
//  Returns 0 when ingestd acknowledged everything.
int session_end (session_t *self, const char *status, const char *error);

//  True once SIGINT/SIGTERM arrived during this run.
bool session_interrupted (session_t *self);

//  Records queued in this run for `kind` (all kinds for NULL).
uint64_t session_count (session_t *self, const char *kind);

//  Adds to a count reported in run.end (e.g. "bad_lines"); `name` must be a
//  static string.
void session_count_add (session_t *self, const char *name, uint64_t n);
const char *session_run_id (session_t *self);
progress_t *session_progress (session_t *self);
//  Totals over the session's life, acknowledged by ingestd.
uint64_t session_accepted (session_t *self);
uint64_t session_rejected (session_t *self);
//  Batches sent again (ACK timeout or reconnect) over the session's life.
uint64_t session_resent (session_t *self);

void session_test (bool verbose);

#endif
