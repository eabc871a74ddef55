/*  collectord: one collector per process, `collectord MODE [options] ARGS`.
    Wires the config, the session (intake, run records, progress) and the
    collector of MODE, then runs once (--once, or no --interval) or every
    --interval, on the daemon skeleton (common/daemon.h). Exit codes: 0
    done (or drained after a first SIGTERM), 1 a run failed (ingestd
    unreachable past give_up, unreadable source), 2 bad usage, config or
    source path, 143 / 130 a second signal (no drain).                     */
#include "collectord/collector.h"
#include "collectord/runner.h"
#include "collectord/session.h"
#include "collectord/state.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out, "usage: collectord MODE [--config FILE] [OPTION...] ARGS\n\nmodes:\n");
    for (size_t i = 0; collector_at (i); i++)
        fprintf (out, "  %-6s %-12s %s\n", collector_at (i)->name, collector_at (i)->usage,
                 collector_at (i)->summary);
    fprintf (out, "\n`collectord MODE --help` lists the options.\n");
}

//  Every mode's keys are known in every mode: one config file can hold the
//  settings of several collectors in its one collectord section. The other
//  modes' keys (not shown by --help), without repeats; ends with {NULL}.
static omni_config_option_t *
s_other_options (const collector_t *collector, const omni_config_option_t *shared)
{
    size_t count = 0;
    for (size_t i = 0; collector_at (i); i++)
        for (const omni_config_option_t *o = collector_at (i)->options; o->key; o++)
            count++;
    omni_config_option_t *options = calloc (count + 1, sizeof *options);
    assert (options);
    size_t n = 0;
    for (size_t i = 0; collector_at (i); i++)
        for (const omni_config_option_t *o = collector_at (i)->options; o->key; o++) {
            bool dup = false;
            for (const omni_config_option_t *m = collector->options; m->key && !dup; m++)
                dup = strcmp (m->key, o->key) == 0;
            for (const omni_config_option_t *m = shared; m->key && !dup; m++)
                dup = strcmp (m->key, o->key) == 0;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strcmp (options[k].key, o->key) == 0;
            if (!dup)
                options[n++] = *o;
        }
    return options;
}

//  The targets of the keys every mode has.
typedef struct {
    char *intake, *instance, *state_dir, *progress, *project;
    char *curve_key, *curve_server_key;
    int64_t batch_records, window, ack_timeout, give_up, interval, progress_interval;
    uint64_t batch_bytes;
    bool once, full;
} s_keys_t;

//  After the config: checks the values, opens the collector and runs it.
static int
s_collect (omni_daemon_t *daemon, const collector_t *collector, s_keys_t *k)
{
    progress_mode_t progress_mode;
    if (progress_parse_mode (k->progress, &progress_mode))
        return omni_daemon_bad_config (daemon,
                                       "progress: bad value \"%s\" "
                                       "(expected auto, bar, log or off)",
                                       k->progress);
    if (k->batch_records < 1 || k->batch_records > 1000000 || k->window < 1 || k->window > 10000 ||
        k->batch_bytes < 1024 || k->ack_timeout < 10 || k->give_up < 0 || k->interval < 0)
        return omni_daemon_bad_config (
            daemon, "batch_records: must be 1..1000000, window 1..10000, batch_bytes >= 1k, "
                    "ack_timeout >= 10ms, give_up and interval >= 0");
    omni_curve_client_t *curve = NULL;
    char error[1024] = "";
    if (omni_curve_client_load (k->curve_key, k->curve_server_key, &curve, error, sizeof error))
        return omni_daemon_bad_config (daemon, "%s", error);

    char instance_buf[300];
    if (!k->instance || !*k->instance) {
        char host[256] = "localhost";
        gethostname (host, sizeof host - 1);
        snprintf (instance_buf, sizeof instance_buf, "%s-%d", host, (int) getpid ());
        k->instance = instance_buf;
    }
    char *default_state = k->state_dir && *k->state_dir ? NULL : state_default_dir ();
    omni_config_t *config = omni_daemon_config (daemon);
    size_t nargs = omni_config_argc (config);
    const char **positional = calloc (nargs + 1, sizeof *positional);
    for (size_t i = 0; i < nargs; i++)
        positional[i] = omni_config_arg (config, i);
    state_set_full (k->full);
    collector_env_t env = {positional,  nargs,       default_state ? default_state : k->state_dir,
                           k->instance, k->interval, k->once};
    int rc = OMNI_EXIT_OK;
    omni_dirlock_t *state_lock_held = NULL;
    void *handle = collector->open (&env, error, sizeof error);
    if (!handle) {
        fprintf (stderr, "error: collectord %s: %s\n", collector->name, error);
        fprintf (stderr, "usage: collectord %s [OPTION...] %s (see --help)\n", collector->name,
                 collector->usage);
        rc = OMNI_EXIT_USAGE;
    } else if (collector->keeps_state &&
               !(state_lock_held = state_lock (env.state_dir, collector->name,
                                               collector->source (handle), error, sizeof error))) {
        //  Not a usage error: the same command works once the other ends.
        fprintf (stderr, "error: collectord %s: %s\n", collector->name, error);
        rc = OMNI_EXIT_FAILURE;
    }
    omni_metrics_t *metrics = omni_daemon_metrics (daemon);
    session_config_t session_config = {collector->name,
                                       k->instance,
                                       {k->intake, (size_t) k->batch_records,
                                        (size_t) k->batch_bytes, (size_t) k->window, k->ack_timeout,
                                        k->give_up, curve},
                                       progress_mode,
                                       k->progress_interval,
                                       k->project};
    session_t *session = rc ? NULL : session_new (&session_config);
    if (session)
        session_set_metrics (session, metrics);
    runner_t *runner = runner_new (collector, handle, session, metrics);
    if (!rc && (!session || omni_daemon_serve (daemon, runner_health, runner)))
        rc = OMNI_EXIT_USAGE;
    if (rc == 0) {
        log_info ("collectord.start",
                  "mode=%s instance=%s intake=%s source=\"%s\" state_dir=%s "
                  "interval_ms=%" PRId64,
                  collector->name, k->instance, k->intake, collector->source (handle),
                  env.state_dir, k->once ? 0 : k->interval);
        rc = runner_loop (runner, k->once, k->interval);
    }
    omni_daemon_serve_end (daemon);
    runner_destroy (&runner);
    session_destroy (&session); //  its intake client counts in the metrics
    if (handle)
        collector->close (&handle);
    omni_dirlock_destroy (&state_lock_held);
    free (positional);
    free (default_state);
    omni_curve_client_destroy (&curve);
    return rc;
}

int
main (int argc, char **argv)
{
    zsys_set_logstream (NULL);
    if (argc == 2 && strcmp (argv[1], "--version") == 0) {
        printf ("collectord %s\n", omni_config_version ());
        return OMNI_EXIT_OK;
    }
    if (argc < 2 || strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        s_usage (argc < 2 ? stderr : stdout);
        return argc < 2 ? OMNI_EXIT_USAGE : OMNI_EXIT_OK;
    }
    const collector_t *collector = collector_lookup (argv[1]);
    if (!collector) {
        fprintf (stderr, "error: collectord: unknown mode \"%s\"\n\n", argv[1]);
        s_usage (stderr);
        return OMNI_EXIT_USAGE;
    }
    s_keys_t k = {0};
    const omni_config_option_t shared[] = {
        {"intake", CONFIG_ENDPOINTS, "tcp://127.0.0.1:5550",
         "ingestd intake endpoint, or several separated by commas: batches go to one, and to "
         "the next when it stops answering (failover)",
         &k.intake},
        {"instance", CONFIG_STRING, NULL,
         "collector instance name, the records' col (default <hostname>-<pid>)", &k.instance},
        {"state_dir", CONFIG_STRING, NULL,
         "what was already sent, per source (default $XDG_STATE_HOME/omniaudit or "
         "~/.local/state/omniaudit)",
         &k.state_dir},
        {"project", CONFIG_STRING, NULL,
         "the project this source belongs to (sent in run.start; relationald's projects "
         "table); default: the source is its own project",
         &k.project},
        {"batch_records", CONFIG_INT, "500", "records per batch", &k.batch_records},
        {"batch_bytes", CONFIG_SIZE, "1M", "or bytes per batch, whichever comes first",
         &k.batch_bytes},
        {"window", CONFIG_INT, "8", "batches sent and not yet acknowledged, at most", &k.window},
        {"ack_timeout", CONFIG_DURATION, "10s", "send a batch again when unacknowledged this long",
         &k.ack_timeout},
        {"give_up", CONFIG_DURATION, "2m",
         "a run fails when ingestd acknowledges nothing for this long; 0 = wait forever",
         &k.give_up},
        {"once", CONFIG_BOOL, "false", "collect once, exit when everything is acknowledged",
         &k.once},
        {"full", CONFIG_BOOL, "false",
         "ignore what the state says was sent (this run sends everything again; the stores "
         "deduplicate by id); the state is saved as usual after it",
         &k.full},
        {"interval", CONFIG_DURATION, "0",
         "collect again this long after each run started; 0 = once (host: between samples, "
         "0 = 10s)",
         &k.interval},
        {"progress", CONFIG_STRING, "auto",
         "auto (a bar on a terminal, else log lines) | bar | log | off", &k.progress},
        {"progress_interval", CONFIG_DURATION, "5s", "between progress log lines",
         &k.progress_interval},
        OMNI_CURVE_CLIENT_OPTIONS ("collector", &k.curve_key, &k.curve_server_key),
        {NULL}};
    //  --help shows this mode's keys and the shared ones
    size_t nmode = 0, nshared = sizeof shared / sizeof shared[0] - 1;
    while (collector->options[nmode].key)
        nmode++;
    omni_config_option_t *options = calloc (nmode + nshared + 1, sizeof *options);
    assert (options);
    memcpy (options, collector->options, nmode * sizeof *options);
    memcpy (options + nmode, shared, nshared * sizeof *options);
    omni_config_option_t *others = s_other_options (collector, shared);
    char epilogue[512];
    snprintf (epilogue, sizeof epilogue, "arguments: %s\n  %s", collector->usage,
              collector->summary);
    const omni_daemon_spec_t spec = {.name = "collectord",
                                     .options = options,
                                     .default_http = "",
                                     .http_help =
                                         "/metrics and /health address (HOST:PORT); empty = off",
                                     .hidden_options = others,
                                     .help_epilogue = epilogue};

    //  The mode is not an argument of the collector
    char program[64];
    snprintf (program, sizeof program, "collectord %s", collector->name);
    char **args = calloc ((size_t) argc, sizeof *args);
    assert (args);
    args[0] = program;
    for (int i = 2; i < argc; i++)
        args[i - 1] = argv[i];
    int rc;
    omni_daemon_t *daemon = omni_daemon_new (&spec, argc - 1, args, &rc);
    free (args);
    if (daemon)
        rc = s_collect (daemon, collector, &k);
    omni_daemon_destroy (&daemon);
    free (others);
    free (options);
    return rc;
}
