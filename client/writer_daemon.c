/*  writer_daemon: the shared body of the writer daemons' main: the writer's
    keys and the writer loop, on the skeleton every daemon shares
    (common/daemon.h: log and http keys, /metrics, /health, signals).      */
#include "client/writer_daemon.h"
#include "client/jsdelivery.h"

#include <assert.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHARED_OPTIONS 10

struct _omni_writer_daemon_t {
    omni_writer_daemon_spec_t spec;
    omni_config_option_t *options;
    omni_daemon_t *daemon; //  config, log, metrics, /health, signals
    char *delivery;
    char *curve_key, *curve_server_key, *conflicts_dir;
    char **nats_urls, *stream; //  delivery from a JetStream stream instead of ingestd
    omni_curve_client_t *curve;
    int64_t batch_size, window, flush_ms, retry_max_ms;
    omni_writer_t *writer;
    health_fn *store_health;
    void *store_arg;
};

omni_writer_daemon_t *
omni_writer_daemon_new (const omni_writer_daemon_spec_t *spec, int argc, char **argv,
                        int *exit_code)
{
    omni_writer_daemon_t *self = calloc (1, sizeof *self);
    assert (self);
    self->spec = *spec;
    size_t own = 0;
    while (spec->store_options && spec->store_options[own].key)
        own++;
    self->options = calloc (SHARED_OPTIONS + own + 1, sizeof *self->options);
    assert (self->options);
    omni_config_option_t shared[SHARED_OPTIONS] = {
        {"delivery", CONFIG_ENDPOINT, "tcp://127.0.0.1:5551", "ingestd delivery endpoint",
         &self->delivery},
        {"batch_size", CONFIG_INT, spec->default_batch, spec->batch_help, &self->batch_size},
        {"flush_interval", CONFIG_DURATION, "200ms", "a partial batch waits at most this long",
         &self->flush_ms},
        {"window", CONFIG_INT, "0", "records delivered ahead of acks; 0 = 4 * batch_size",
         &self->window},
        {"retry_max", CONFIG_DURATION, "5s", "longest wait between retries while the store fails",
         &self->retry_max_ms},
        OMNI_CURVE_CLIENT_OPTIONS ("writer", &self->curve_key, &self->curve_server_key),
        {"conflicts_dir", CONFIG_STRING, "var/conflicts",
         "where records under an id already stored with other content are filed "
         "(<dir>/<writer>.jsonl)",
         &self->conflicts_dir},
        {"nats_urls", CONFIG_LIST, "",
         "records from the JetStream stream of ingestd's journal: jetstream (its writer "
         "consumer), not from ingestd's delivery: NATS servers, nats://HOST:PORT,...; empty = "
         "from ingestd",
         &self->nats_urls},
        {"stream", CONFIG_STRING, "OMNI", "with nats_urls: the stream ingestd journals into",
         &self->stream}};
    memcpy (self->options, shared, sizeof shared);
    if (own)
        memcpy (self->options + SHARED_OPTIONS, spec->store_options, own * sizeof *self->options);
    omni_daemon_spec_t daemon_spec = {
        .name = spec->section, .options = self->options, .default_http = spec->default_http};
    self->daemon = omni_daemon_new (&daemon_spec, argc, argv, exit_code);
    if (!self->daemon) {
        omni_writer_daemon_destroy (&self);
        return NULL;
    }
    const char *bad =
        self->batch_size < 1 || self->batch_size > 1000000 ? "batch_size: must be 1..1000000"
        : self->window < 0 || self->window > 100000000     ? "window: must be 0..100000000"
        : self->flush_ms < 1                               ? "flush_interval: must be at least 1ms"
        : self->retry_max_ms < 100                         ? "retry_max: must be at least 100ms"
                                                           : NULL;
    char curve_error[512];
    if (!bad && omni_curve_client_load (self->curve_key, self->curve_server_key, &self->curve,
                                        curve_error, sizeof curve_error))
        bad = curve_error;
    if (bad) {
        *exit_code = omni_daemon_bad_config (self->daemon, "%s", bad);
        omni_writer_daemon_destroy (&self);
        return NULL;
    }
    return self;
}

void
omni_writer_daemon_destroy (omni_writer_daemon_t **self_p)
{
    omni_writer_daemon_t *self = *self_p;
    if (!self)
        return;
    //  /health reads the writer: it stops first
    if (self->daemon)
        omni_daemon_serve_end (self->daemon);
    omni_writer_destroy (&self->writer);
    omni_curve_client_destroy (&self->curve);
    omni_daemon_destroy (&self->daemon);
    free (self->options);
    free (self);
    *self_p = NULL;
}

omni_daemon_t *
omni_writer_daemon_base (omni_writer_daemon_t *self)
{
    return self->daemon;
}

omni_metrics_t *
omni_writer_daemon_metrics (omni_writer_daemon_t *self)
{
    return omni_daemon_metrics (self->daemon);
}

size_t
omni_writer_daemon_batch_size (omni_writer_daemon_t *self)
{
    return (size_t) self->batch_size;
}

//  The writer's state first (its "ok" or why not), then the store's own
//  words, so that "store busy" and "ingestd gone" read apart.
static bool
s_healthy (void *arg, char *text, size_t size)
{
    omni_writer_daemon_t *self = arg;
    char store[512] = "";
    bool store_ok =
        !self->store_health || self->store_health (self->store_arg, store, sizeof store);
    if (!store_ok) {
        snprintf (text, size, "%s", store);
        return false;
    }
    bool ok = omni_writer_healthy (self->writer, text, size);
    if (*store) {
        size_t used = strlen (text);
        snprintf (text + used, size - used, "; %s", store);
    }
    return ok;
}

int
omni_writer_daemon_run (omni_writer_daemon_t *self, writer_store_fn *store_fn, void *store,
                        health_fn *store_health, void *store_arg)
{
    omni_writer_config_t config = {self->delivery,
                                   self->spec.writer,
                                   (size_t) self->batch_size,
                                   self->flush_ms,
                                   (uint32_t) self->window,
                                   100,
                                   self->retry_max_ms,
                                   self->curve,
                                   self->conflicts_dir};
    //  journal: jetstream: the loop takes its records from the stream, through
    //  a bridge that speaks the delivery protocol to it (jsdelivery.h)
    omni_jsdelivery_t *source = NULL;
    if (self->nats_urls[0]) {
        char error[512];
        omni_jsdelivery_config_t js = {(const char *const *) self->nats_urls, self->stream,
                                       self->spec.writer, self->conflicts_dir,
                                       omni_daemon_metrics (self->daemon)};
        if (self->curve)
            return omni_daemon_bad_config (self->daemon,
                                           "curve_key: not with nats_urls (NATS has its own TLS)");
        if (!(source = omni_jsdelivery_new (&js, error, sizeof error)))
            return omni_daemon_bad_config (self->daemon, "%s", error);
        config.endpoint = omni_jsdelivery_endpoint (source);
        config.curve = NULL;
    }
    self->writer = omni_writer_new (&config, store_fn, store, omni_daemon_metrics (self->daemon));
    self->store_health = store_health;
    self->store_arg = store_arg;
    if (omni_daemon_serve (self->daemon, s_healthy, self)) {
        omni_jsdelivery_destroy (&source);
        return OMNI_EXIT_FAILURE;
    }
    int rc = omni_writer_run (self->writer);
    omni_jsdelivery_destroy (&source);
    if (omni_writer_refusal (self->writer))
        fprintf (stderr, "error: %s: ingestd at %s refused writer \"%s\" (this instance %s): %s\n",
                 self->spec.section, self->delivery, self->spec.writer,
                 omni_writer_instance (self->writer), omni_writer_refusal (self->writer));
    if (omni_writer_fault (self->writer))
        fprintf (stderr,
                 "error: %s: ingestd at %s sent what writer \"%s\" cannot read: %s (a version "
                 "skew between them, or a bug); started again, it is delivered the same records "
                 "from its durable cursor\n",
                 self->spec.section, self->delivery, self->spec.writer,
                 omni_writer_fault (self->writer));
    omni_daemon_serve_end (self->daemon);
    return rc ? OMNI_EXIT_FAILURE : OMNI_EXIT_OK;
}

void
omni_writer_daemon_test (bool verbose)
{
    (void) verbose;
    char *path = NULL;
    const omni_config_option_t own[] = {{"path", CONFIG_STRING, "x", "a store key", &path}, {NULL}};
    omni_writer_daemon_spec_t spec = {"testd", "archive", "10", "", "records per batch", own};
    char *good[] = {"testd", "--path=/tmp/y", "--batch-size=5", NULL};
    int exit_code = -1;
    omni_writer_daemon_t *daemon = omni_writer_daemon_new (&spec, 3, good, &exit_code);
    assert (daemon && exit_code == 0);
    assert (strcmp (path, "/tmp/y") == 0 && daemon->batch_size == 5);
    assert (strcmp (daemon->delivery, "tcp://127.0.0.1:5551") == 0);
    assert (omni_writer_daemon_metrics (daemon));
    omni_writer_daemon_destroy (&daemon);
    assert (daemon == NULL);
    char *bad[] = {"testd", "--batch-size=0", NULL};
    assert (omni_writer_daemon_new (&spec, 2, bad, &exit_code) == NULL && exit_code == 2);
    char *unknown[] = {"testd", "--nope=1", NULL};
    assert (omni_writer_daemon_new (&spec, 2, unknown, &exit_code) == NULL && exit_code == 2);
}
