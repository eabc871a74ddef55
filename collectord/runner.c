/*  runner: the run loop of collectord, out of main.c so that main only
    wires the config, the collector and the session, and so that the loop
    has a self-test. /health is answered on the HTTP thread while a run
    goes on: what it reads is atomic.                                      */
#include "collectord/runner.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/util.h"
#include "proto/record.h"
#include "testsupport/testpeer.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _runner_t {
    const collector_t *collector;
    void *handle;
    session_t *session;
    omni_metric_t *runs_ok, *runs_failed, *runs_interrupted, *records, *last_duration, *last_end;
    omni_metric_t *failovers; //  the intake client's, read by /health
    atomic_bool last_failed;
    atomic_uint_fast64_t runs;
};

runner_t *
runner_new (const collector_t *collector, void *handle, session_t *session, omni_metrics_t *metrics)
{
    runner_t *self = calloc (1, sizeof *self);
    assert (self);
    self->collector = collector;
    self->handle = handle;
    self->session = session;
    //  The series the intake client counts in (the same name is the same series)
    self->failovers = omni_metrics_counter (
        metrics, "failovers_total", "times the intake moved to the next ingestd endpoint", NULL);
    self->runs_ok =
        omni_metrics_counter (metrics, "runs_total", "collection runs", "status=\"ok\"");
    self->runs_failed =
        omni_metrics_counter (metrics, "runs_total", "collection runs", "status=\"failed\"");
    self->runs_interrupted =
        omni_metrics_counter (metrics, "runs_total", "collection runs", "status=\"interrupted\"");
    self->records = omni_metrics_counter (metrics, "records_sent_total",
                                          "records collected and queued to ingestd", NULL);
    self->last_duration =
        omni_metrics_gauge (metrics, "last_run_duration_seconds", "of the last run", NULL);
    self->last_end = omni_metrics_gauge (metrics, "last_run_end_timestamp_seconds",
                                         "when the last run ended, seconds since the epoch", NULL);
    return self;
}

void
runner_destroy (runner_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

bool
runner_health (void *arg, char *text, size_t size)
{
    runner_t *self = (runner_t *) arg;
    bool failed = atomic_load (&self->last_failed);
    snprintf (text, size, "%s runs=%" PRIuFAST64 " last_run=%s failovers=%.0f",
              failed ? "failing" : "ok", atomic_load (&self->runs), failed ? "failed" : "ok",
              omni_metric_value (self->failovers));
    return !failed;
}

//  One run: run.start, the collection, run.end, every ACK, then the state.
static int
s_run (runner_t *self)
{
    const collector_t *collector = self->collector;
    void *handle = self->handle;
    session_t *session = self->session;
    int64_t started = omni_util_mono_ms ();
    if (session_begin (session, collector->source (handle), collector->target (handle),
                       collector->pack_config, handle))
        return -1;
    char error[1024] = "";
    int rc = collector->collect (handle, session, error, sizeof error);
    bool interrupted = session_interrupted (session);
    if (rc && !interrupted)
        log_error ("collect.failed", "collector=%s error=\"%s\"", collector->name, error);
    int end_rc = session_end (session, rc ? "failed" : "ok", rc ? error : NULL);
    interrupted = session_interrupted (session);
    if (interrupted)
        //  Stopped by a signal: a success when what was collected drained
        //  (the state is not saved: the run is incomplete)
        rc = end_rc;
    else if (rc == 0 && end_rc)
        rc = -1;
    else if (rc == 0 && collector->commit && collector->commit (handle, error, sizeof error)) {
        log_error ("state.failed", "collector=%s error=\"%s\"", collector->name, error);
        rc = -1;
    }
    atomic_fetch_add (&self->runs, 1);
    omni_metric_add (rc            ? self->runs_failed
                     : interrupted ? self->runs_interrupted
                                   : self->runs_ok,
                     1);
    omni_metric_add (self->records, session_count (session, NULL));
    omni_metric_set (self->last_duration, (double) (omni_util_mono_ms () - started) / 1000.0);
    omni_metric_set (self->last_end, (double) omni_util_now_ns () / 1e9);
    atomic_store (&self->last_failed, rc != 0);
    return rc;
}

//  Sleeps until `deadline_ms` (monotonic); false when a signal came.
static bool
s_sleep_until (int64_t deadline_ms)
{
    while (!omni_daemon_stopping ()) {
        int64_t left = deadline_ms - omni_util_mono_ms ();
        if (left <= 0)
            return true;
        zclock_sleep ((int) (left > 200 ? 200 : left));
    }
    return false;
}

int
runner_loop (runner_t *self, bool once, int64_t interval_ms)
{
    while (true) {
        int64_t started = omni_util_mono_ms ();
        int run_rc = s_run (self);
        if (once || interval_ms == 0 || self->collector->self_paced) {
            if (run_rc)
                fprintf (stderr, "error: collectord %s: the run failed (see the log above)\n",
                         self->collector->name);
            return run_rc ? OMNI_EXIT_FAILURE : OMNI_EXIT_OK;
        }
        //  A failed run is tried again at the next interval
        if (session_interrupted (self->session) || !s_sleep_until (started + interval_ms))
            return OMNI_EXIT_OK;
    }
}

//  A collector of `s_test_records` metric records that fails when asked to.
static int s_test_records;
static bool s_test_fail, s_test_committed;

static const char *
s_test_source (void *self)
{
    (void) self;
    return "test-src";
}

static int
s_test_collect (void *self, session_t *session, char *error, size_t error_size)
{
    (void) self;
    if (s_test_fail) {
        snprintf (error, error_size, "the source went away");
        return -1;
    }
    for (int i = 0; i < s_test_records; i++) {
        msgpack_packer *pk = session_record (session, "metric", 1000 + i);
        msgpack_pack_map (pk, 2);
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "n");
        omni_record_pack_str (pk, "value");
        msgpack_pack_int (pk, i);
        if (session_send (session))
            return -1;
    }
    return 0;
}

static int
s_test_commit (void *self, char *error, size_t error_size)
{
    (void) self, (void) error, (void) error_size;
    s_test_committed = true;
    return 0;
}

void
runner_test (bool verbose)
{
    (void) verbose;
    const omni_config_option_t none[] = {{NULL}};
    const collector_t collector = {.name = "test",
                                   .usage = "",
                                   .summary = "",
                                   .options = none,
                                   .source = s_test_source,
                                   .target = s_test_source,
                                   .collect = s_test_collect,
                                   .commit = s_test_commit};
    testpeer_t *peer = testpeer_new ();
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (peer));
    session_config_t config = {"test",       "host-1", {endpoint, 2, 0, 2, 1000, 5000, NULL},
                               PROGRESS_OFF, 1000,     NULL};
    session_t *session = session_new (&config);
    assert (session);
    omni_metrics_t *metrics = omni_metrics_new ("omni_collectord_");
    runner_t *runner = runner_new (&collector, NULL, session, metrics);
    char text[256];
    assert (runner_health (runner, text, sizeof text));
    assert (strcmp (text, "ok runs=0 last_run=ok failovers=0") == 0);

    //  A run that goes well: every record acknowledged, the state saved
    s_test_records = 5;
    assert (runner_loop (runner, true, 0) == OMNI_EXIT_OK);
    assert (s_test_committed);
    assert (testpeer_count_kind (peer, "metric") == 5);
    assert (testpeer_count_kind (peer, "run.end") == 1);
    assert (runner_health (runner, text, sizeof text));
    assert (strcmp (text, "ok runs=1 last_run=ok failovers=0") == 0);
    assert (omni_metric_value (runner->records) >= 5);
    assert (omni_metric_value (runner->runs_ok) == 1);

    //  A run that fails: exit 1, no state, /health failing
    s_test_fail = true;
    s_test_committed = false;
    assert (runner_loop (runner, false, 0) == OMNI_EXIT_FAILURE);
    assert (!s_test_committed);
    assert (!runner_health (runner, text, sizeof text));
    assert (strncmp (text, "failing runs=2 last_run=failed", 30) == 0);
    assert (omni_metric_value (runner->runs_failed) == 1);

    runner_destroy (&runner);
    assert (!runner);
    session_destroy (&session);
    omni_metrics_destroy (&metrics);
    testpeer_destroy (&peer);
}
