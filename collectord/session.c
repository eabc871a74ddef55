/*  session: the machinery every collector shares.

    After ingestd stayed silent past give_up the intake client is dropped
    with whatever it still held: that run has failed and its collector does
    not record it as sent, so the next run (--interval) starts on a fresh
    connection and sends it all again; ids make the repeat harmless.        */
#include "collectord/session.h"
#include "proto/kinds.h"
#include "testsupport/testpeer.h"
#include "common/log.h"
#include "proto/record.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define S_MAX_KINDS 16

struct _session_t {
    char *collector, *instance;
    char *project; //  NULL: none named
    omni_intake_config_t intake_config;
    char *endpoint;
    omni_intake_client_t *intake;
    omni_metrics_t *metrics; //  the intake client's, or NULL
    omni_record_encoder_t *encoder;
    progress_t *progress;
    char *src, *target;
    char run[33];
    int64_t started_ns;
    bool interrupted;
    bool broken; //  the intake client gave up
    struct {
        const char *kind; //  static strings from the collectors
        uint64_t count;
    } counts[S_MAX_KINDS];
    size_t nkinds;
    const char *kind;                                         //  of the record begun
    int64_t flushed_ms;                                       //  when ACKs were last waited for
    uint64_t accepted_before, rejected_before, resent_before; //  of dropped intake clients
    char detail[512];
};

session_t *
session_new (const session_config_t *config)
{
    session_t *self = calloc (1, sizeof *self);
    assert (self);
    self->collector = strdup (config->collector);
    self->instance = strdup (config->instance);
    self->project = config->project && *config->project ? strdup (config->project) : NULL;
    self->endpoint = strdup (config->intake.endpoint);
    self->intake_config = config->intake;
    self->intake_config.endpoint = self->endpoint;
    self->intake = omni_intake_client_new (&self->intake_config);
    if (!self->intake) {
        session_destroy (&self);
        return NULL;
    }
    self->encoder = omni_record_encoder_new ();
    self->progress = progress_new (config->progress, config->progress_interval_ms);
    return self;
}

void
session_destroy (session_t **self_p)
{
    session_t *self = *self_p;
    if (!self)
        return;
    omni_intake_client_destroy (&self->intake);
    omni_record_encoder_destroy (&self->encoder);
    progress_destroy (&self->progress);
    free (self->collector);
    free (self->instance);
    free (self->project);
    free (self->endpoint);
    free (self->src);
    free (self->target);
    free (self);
    *self_p = NULL;
}

void
session_set_metrics (session_t *self, omni_metrics_t *metrics)
{
    self->metrics = metrics;
    omni_intake_client_set_metrics (self->intake, metrics);
}

static void
s_new_run_id (char *out)
{
    uint8_t bytes[16];
    if (getrandom (bytes, sizeof bytes, 0) != (ssize_t) sizeof bytes) {
        //  No entropy source: time and pid still make ids unique enough
        int64_t now = omni_util_now_ns ();
        int pid = getpid ();
        memcpy (bytes, &now, 8);
        memcpy (bytes + 8, &pid, sizeof pid);
        memset (bytes + 8 + sizeof pid, 0x5a, 8 - sizeof pid);
    }
    omni_util_hex (bytes, sizeof bytes, out);
}

static int
s_intake_failed (session_t *self)
{
    if (zsys_interrupted)
        self->interrupted = true;
    else
        self->broken = true;
    return -1;
}

int
session_begin (session_t *self, const char *src, const char *target, session_config_fn *config_fn,
               void *omni_config_arg)
{
    if (self->broken) {
        self->accepted_before += omni_intake_client_accepted (self->intake);
        self->rejected_before += omni_intake_client_rejected (self->intake);
        self->resent_before += omni_intake_client_resent (self->intake);
        omni_intake_client_destroy (&self->intake);
        self->intake = omni_intake_client_new (&self->intake_config);
        assert (self->intake); //  the endpoint was valid at start-up
        if (self->metrics)
            omni_intake_client_set_metrics (self->intake, self->metrics);
        self->broken = false;
    }
    free (self->src);
    free (self->target);
    self->src = strdup (src);
    self->target = strdup (target);
    s_new_run_id (self->run);
    self->started_ns = omni_util_now_ns ();
    self->flushed_ms = omni_util_mono_ms ();
    self->interrupted = false;
    self->nkinds = 0;
    log_info ("run.start", "collector=%s run=%s source=\"%s\" src=\"%s\"", self->collector,
              self->run, target, src);
    msgpack_packer *pk = session_record (self, "run.start", self->started_ns);
    msgpack_pack_map (pk, 3 + (config_fn != NULL) + (self->project != NULL));
    omni_record_pack_str (pk, "collector");
    omni_record_pack_str (pk, self->collector);
    if (self->project) {
        omni_record_pack_str (pk, "project");
        omni_record_pack_str (pk, self->project);
    }
    omni_record_pack_str (pk, "source");
    omni_record_pack_str (pk, target);
    omni_record_pack_str (pk, "started");
    msgpack_pack_int64 (pk, self->started_ns);
    if (config_fn) {
        omni_record_pack_str (pk, "config");
        config_fn (omni_config_arg, pk);
    }
    int rc = session_send (self);
    if (rc > 0)
        log_error ("run.start_invalid", "detail=\"%s\"", self->detail);
    return rc ? -1 : 0;
}

msgpack_packer *
session_record (session_t *self, const char *kind, int64_t ts)
{
    self->kind = kind;
    omni_record_encoder_begin (self->encoder, kind, self->src, self->instance, self->run, ts);
    return omni_record_encoder_body (self->encoder);
}

void
session_tag (session_t *self, const char *key, const char *value)
{
    omni_record_encoder_tag (self->encoder, key, value);
}

int
session_flush (session_t *self)
{
    if (self->broken)
        return -1;
    if (omni_intake_client_flush (self->intake))
        return s_intake_failed (self);
    self->flushed_ms = omni_util_mono_ms ();
    return 0;
}

//  Sends a record encoded (session_send, session_end): 0, or -1 when the
//  intake client gave up or a signal stopped it.
static int
s_send_encoded (session_t *self, const void *data, size_t size)
{
    if (self->broken)
        return -1;
    if (omni_intake_client_send (self->intake, data, size))
        return s_intake_failed (self);
    //  The intake client reads ACKs only while it waits for room in its
    //  window: a collector slower than window batches per ack_timeout would
    //  see every batch time out and go twice. Waiting for the ACKs every
    //  half timeout reads them in time, at the cost of one round trip.
    int64_t now = omni_util_mono_ms ();
    if (now - self->flushed_ms >= self->intake_config.ack_timeout_ms / 2) {
        if (omni_intake_client_unacked (self->intake) && omni_intake_client_flush (self->intake))
            return s_intake_failed (self);
        self->flushed_ms = omni_util_mono_ms ();
    }
    return 0;
}

int
session_send (session_t *self)
{
    const void *data;
    size_t size;
    if (omni_record_encoder_end (self->encoder, &data, &size, self->detail, sizeof self->detail))
        return 1;
    int rc = s_send_encoded (self, data, size);
    if (rc || strncmp (self->kind, "run.", 4) == 0)
        return rc; //  counts are of what the run collected
    session_count_add (self, self->kind, 1);
    return 0;
}

//  Takes the first SIGINT/SIGTERM (see session_end) if it came and none
//  was taken before: whether it did.
static bool
s_take_signal (session_t *self, bool *taken)
{
    if (!zsys_interrupted || *taken)
        return false;
    self->interrupted = *taken = true;
    zsys_interrupted = 0;
    return true;
}

void
session_count_add (session_t *self, const char *name, uint64_t n)
{
    size_t i = 0;
    while (i < self->nkinds && strcmp (self->counts[i].kind, name) != 0)
        i++;
    if (i == self->nkinds && i < S_MAX_KINDS) {
        self->counts[i].kind = name;
        self->counts[i].count = 0;
        self->nkinds++;
    }
    if (i < S_MAX_KINDS)
        self->counts[i].count += n;
}

const char *
session_detail (session_t *self)
{
    return self->detail;
}

int
session_end (session_t *self, const char *status, const char *error)
{
    //  The first SIGINT/SIGTERM of a run stops collecting and is taken
    //  here, so that what was collected still drains (the intake client
    //  refuses to send while zsys_interrupted is up); a second one never
    //  comes back here: common/daemon.c's handler ends the process at once
    bool taken = false;
    s_take_signal (self, &taken);
    if (self->interrupted)
        status = "interrupted";
    if (self->broken) {
        log_error ("run.end", "collector=%s run=%s status=failed error=\"ingestd unreachable\"",
                   self->collector, self->run);
        return -1;
    }
    int64_t finished = omni_util_now_ns ();
    double duration = (double) (finished - self->started_ns) / 1e9;
    msgpack_packer *pk = session_record (self, "run.end", finished);
    msgpack_pack_map (pk, error ? 8 : 7);
    omni_record_pack_str (pk, "collector");
    omni_record_pack_str (pk, self->collector);
    omni_record_pack_str (pk, "source");
    omni_record_pack_str (pk, self->target);
    omni_record_pack_str (pk, "status");
    omni_record_pack_str (pk, status);
    omni_record_pack_str (pk, "counts");
    msgpack_pack_map (pk, self->nkinds);
    char counts[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < self->nkinds; i++) {
        omni_record_pack_str (pk, self->counts[i].kind);
        msgpack_pack_uint64 (pk, self->counts[i].count);
        if (used < sizeof counts)
            used += (size_t) snprintf (counts + used, sizeof counts - used, " %s=%" PRIu64,
                                       self->counts[i].kind, self->counts[i].count);
    }
    omni_record_pack_str (pk, "started");
    msgpack_pack_int64 (pk, self->started_ns);
    omni_record_pack_str (pk, "finished");
    msgpack_pack_int64 (pk, finished);
    omni_record_pack_str (pk, "duration");
    msgpack_pack_double (pk, duration);
    if (error) {
        omni_record_pack_str (pk, "error");
        omni_record_pack_str (pk, error);
    }
    const void *data;
    size_t size;
    int rc =
        omni_record_encoder_end (self->encoder, &data, &size, self->detail, sizeof self->detail)
            ? 1
            : s_send_encoded (self, data, size);
    //  The first signal may also come while this record is sent (its batch
    //  waiting for room in the window) or while what is queued drains: it
    //  is taken then, and the record sent again, queued the first time or
    //  not (the writers keep one record per id); then the rest drains
    while (rc <= 0) {
        if (rc < 0 && !self->broken && s_take_signal (self, &taken))
            rc = s_send_encoded (self, data, size);
        else if (rc < 0 || omni_intake_client_flush (self->intake) == 0)
            break;
        else if (s_take_signal (self, &taken))
            log_info ("run.draining", "collector=%s run=%s unacked=%zu", self->collector, self->run,
                      omni_intake_client_unacked (self->intake));
        else
            rc = s_intake_failed (self);
    }
    if (rc == 0) {
        //  `counts` is fields of our own; the error a value the log escapes
        if (error)
            log_info (
                "run.end",
                "collector=%s run=%s status=%s duration_s=%.3f resent=%" PRIu64 "%s error=\"%s\"",
                self->collector, self->run, status, duration, session_resent (self), counts, error);
        else
            log_info ("run.end",
                      "collector=%s run=%s status=%s duration_s=%.3f resent=%" PRIu64 "%s",
                      self->collector, self->run, status, duration, session_resent (self), counts);
        if (omni_intake_client_rejected (self->intake))
            log_warn ("run.rejected", "records=%" PRIu64 " hint=\"see ingestd's dead letters\"",
                      omni_intake_client_rejected (self->intake));
        return 0;
    }
    log_error ("run.end", "collector=%s run=%s status=%s error=\"%s\"", self->collector, self->run,
               self->interrupted ? "interrupted" : "failed",
               rc > 0 ? self->detail : "ingestd did not acknowledge (give_up)");
    return -1;
}

bool
session_interrupted (session_t *self)
{
    return self->interrupted || zsys_interrupted;
}

uint64_t
session_count (session_t *self, const char *kind)
{
    uint64_t n = 0;
    //  All records: every count named after a kind (not e.g. bad_lines).
    for (size_t i = 0; i < self->nkinds; i++)
        if (kind ? strcmp (self->counts[i].kind, kind) == 0
                 : omni_kinds_lookup (self->counts[i].kind, strlen (self->counts[i].kind)) != NULL)
            n += self->counts[i].count;
    return n;
}

const char *
session_run_id (session_t *self)
{
    return self->run;
}

progress_t *
session_progress (session_t *self)
{
    return self->progress;
}

uint64_t
session_accepted (session_t *self)
{
    return self->accepted_before + omni_intake_client_accepted (self->intake);
}

uint64_t
session_rejected (session_t *self)
{
    return self->rejected_before + omni_intake_client_rejected (self->intake);
}

uint64_t
session_resent (session_t *self)
{
    return self->resent_before + omni_intake_client_resent (self->intake);
}

//  ---------------------------------------------------------------------------

static void
s_test_config (void *arg, msgpack_packer *pk)
{
    (void) arg;
    msgpack_pack_map (pk, 1);
    omni_record_pack_str (pk, "branch");
    omni_record_pack_str (pk, "main");
}

//  What common/daemon.c's handler does on a first SIGTERM, a while later
static void *
s_signal_later (void *arg)
{
    (void) arg;
    zclock_sleep (150);
    zsys_interrupted = 1;
    return NULL;
}

void
session_test (bool verbose)
{
    (void) verbose;
    testpeer_t *fake = testpeer_new ();
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (fake));
    session_config_t config = {"test",       "host-1", {endpoint, 2, 0, 2, 1000, 5000, NULL},
                               PROGRESS_OFF, 1000,     "widget"};
    session_t *session = session_new (&config);
    assert (session);
    assert (session_begin (session, "src-a", "/path/a", s_test_config, NULL) == 0);
    const char *run = session_run_id (session);
    assert (strlen (run) == 32);
    msgpack_packer *pk;
    for (int i = 0; i < 5; i++) {
        pk = session_record (session, "metric", 1000 + i);
        msgpack_pack_map (pk, 2);
        omni_record_pack_str (pk, "name");
        omni_record_pack_str (pk, "n");
        omni_record_pack_str (pk, "value");
        msgpack_pack_int (pk, i);
        assert (session_send (session) == 0);
    }
    //  Tags, and a flush that waits for the ACKs
    pk = session_record (session, "metric", 2000);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "name");
    omni_record_pack_str (pk, "tagged");
    omni_record_pack_str (pk, "value");
    msgpack_pack_int (pk, 1);
    session_tag (session, "host", "h1");
    assert (session_send (session) == 0);
    assert (session_flush (session) == 0);
    //  A body the kinds table refuses is not sent, and says why
    pk = session_record (session, "metric", 1);
    msgpack_pack_map (pk, 1);
    omni_record_pack_str (pk, "name");
    msgpack_pack_int (pk, 3);
    assert (session_send (session) == 1);
    assert (strstr (session_detail (session), "body.name"));
    assert (session_count (session, "metric") == 6);
    assert (session_count (session, NULL) == 6);
    assert (session_end (session, "ok", NULL) == 0);
    assert (session_accepted (session) == 8);

    //  What ingestd got: run.start, the records, run.end, all of one run
    assert (testpeer_count (fake) == 8);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    for (int index = 0; index < 8; index++) {
        omni_record_t rec;
        testpeer_record (fake, (size_t) index, &rec, &zone);
        assert (omni_record_str_eq (rec.src, "src-a") && omni_record_str_eq (rec.col, "host-1"));
        assert (omni_record_str_eq (rec.run, run));
        omni_record_str_t s;
        if (index == 0) {
            assert (omni_record_str_eq (rec.kind, "run.start"));
            assert (omni_record_field_str (rec.body, "source", &s) &&
                    omni_record_str_eq (s, "/path/a"));
            const msgpack_object *cfg = omni_record_field (rec.body, "config");
            assert (cfg && omni_record_field_str (cfg, "branch", &s) &&
                    omni_record_str_eq (s, "main"));
            assert (omni_record_field_str (rec.body, "project", &s) &&
                    omni_record_str_eq (s, "widget"));
        } else if (index == 6) {
            assert (rec.tags && omni_record_field_str (rec.tags, "host", &s) &&
                    omni_record_str_eq (s, "h1"));
        } else if (index == 7) {
            assert (omni_record_str_eq (rec.kind, "run.end"));
            assert (omni_record_field_str (rec.body, "status", &s) && omni_record_str_eq (s, "ok"));
            const msgpack_object *counts = omni_record_field (rec.body, "counts");
            int64_t n;
            assert (counts && omni_record_field_int (counts, "metric", &n) && n == 6);
            assert (!omni_record_field (rec.body, "error"));
        } else
            assert (omni_record_str_eq (rec.kind, "metric") && rec.ts == 1000 + index - 1);
        msgpack_zone_clear (&zone);
    }
    msgpack_zone_destroy (&zone);

    //  A producer slower than the ACK timeout: ACKs must be read as they
    //  come, not only when the window is full, or every batch goes twice
    session_config_t slow_config = config;
    slow_config.intake.batch_records = 1;
    slow_config.intake.window = 8;
    slow_config.intake.ack_timeout_ms = 300;
    session_t *slow = session_new (&slow_config);
    assert (session_begin (slow, "src-s", "/s", NULL, NULL) == 0);
    for (int i = 0; i < 6; i++) {
        msgpack_packer *spk = session_record (slow, "metric", i);
        msgpack_pack_map (spk, 2);
        omni_record_pack_str (spk, "name");
        omni_record_pack_str (spk, "n");
        omni_record_pack_str (spk, "value");
        msgpack_pack_int (spk, i);
        assert (session_send (slow) == 0);
        zclock_sleep (120);
    }
    assert (session_end (slow, "ok", NULL) == 0);
    assert (session_resent (slow) == 0);
    session_destroy (&slow);
    testpeer_clear (fake);

    //  A second run has a new run id and its own counts
    char first[33];
    memcpy (first, run, 33);
    assert (session_begin (session, "src-a", "/path/a", NULL, NULL) == 0);
    assert (strcmp (first, session_run_id (session)) != 0);
    assert (session_count (session, "metric") == 0);
    assert (session_end (session, "failed", "it broke") == 0);
    session_destroy (&session);
    assert (session == NULL);
    testpeer_destroy (&fake);

    //  Nobody answers: the run fails after give_up, and the next run
    //  starts on a fresh connection
    config.intake.give_up_ms = 300;
    config.intake.ack_timeout_ms = 100;
    session = session_new (&config);
    assert (session_begin (session, "src-b", "/b", NULL, NULL) == 0);
    int64_t start = omni_util_mono_ms ();
    assert (session_end (session, "ok", NULL) == -1);
    assert (omni_util_mono_ms () - start >= 250);
    assert (session_begin (session, "src-b", "/b", NULL, NULL) == 0);
    assert (session_end (session, "ok", NULL) == -1);
    session_destroy (&session);

    //  A first signal while run.end waits for room in the window (ingestd
    //  holds the batch before it unanswered): taken, and run.end still
    //  goes, as the signal policy drains
    fake = testpeer_new ();
    snprintf (endpoint, sizeof endpoint, "%s", testpeer_endpoint (fake));
    session_config_t signal_config = {
        "test", "host-1", {endpoint, 1, 0, 1, 1000, 10000, NULL}, PROGRESS_OFF, 1000, NULL};
    session = session_new (&signal_config);
    assert (session_begin (session, "src-c", "/c", NULL, NULL) == 0);
    assert (session_flush (session) == 0); //  run.start answered: the drop is the metric's
    testpeer_drop (fake, 1);
    pk = session_record (session, "metric", 1);
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "name");
    omni_record_pack_str (pk, "n");
    omni_record_pack_str (pk, "value");
    msgpack_pack_int (pk, 1);
    assert (session_send (session) == 0);
    pthread_t signaller;
    assert (pthread_create (&signaller, NULL, s_signal_later, NULL) == 0);
    assert (session_end (session, "ok", NULL) == 0);
    pthread_join (signaller, NULL);
    assert (!zsys_interrupted && session_interrupted (session));
    assert (testpeer_count_kind (fake, "run.end") >= 1);
    session_destroy (&session);
    testpeer_destroy (&fake);

    //  A bad endpoint is refused at once
    config.intake.endpoint = "nonsense://x";
    assert (session_new (&config) == NULL);
}
