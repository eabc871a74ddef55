/*  omni-loadgen: synthetic records into ingestd's intake, for tests and
    benchmarks. Prints one summary line on stdout:
        sent=N accepted=N rejected=N seconds=X rate=Y resent=N failovers=N
    and exits 0 once every batch is acknowledged, 1 when ingestd stayed
    silent past --give-up (or on a second Ctrl-C), 2 on bad options.       */
#include "common/config.h"
#include "common/daemon.h"
#include "tools/omni-loadgen/loadgen.h"
#include "common/log.h"
#include "tools/omni-loadgen/synth.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int s_fail (omni_daemon_t **daemon, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Every check of a value ends the same way: a message naming the key, exit 2.
static int
s_fail (omni_daemon_t **daemon, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    int rc = omni_daemon_bad_config (*daemon, "%s", text);
    omni_daemon_destroy (daemon);
    return rc;
}

int
main (int argc, char **argv)
{
    char *intake, *kind, *src, *col, *run, *ids_out, *dump;
    char **bad;
    char *curve_key, *curve_server_key;
    bool preencode;
    int64_t count, rate, seed, start_index, batch, window, duration, give_up, ack_timeout;
    uint64_t size;
    int64_t suite_size;
    const omni_config_option_t options[] = {
        {"intake", CONFIG_ENDPOINTS, "tcp://127.0.0.1:5550",
         "ingestd intake endpoint, or several separated by commas (failover, in this order)",
         &intake},
        {"count", CONFIG_INT, "0", "records to send; 0 = until --duration or Ctrl-C", &count},
        {"duration", CONFIG_DURATION, "0", "stop generating after this long; 0 = no limit",
         &duration},
        {"rate", CONFIG_INT, "0", "records per second; 0 = as fast as possible", &rate},
        {"kind", CONFIG_STRING, "metric",
         "metric | git.commit | ci.test | ci.build | "
         "code.stats | mix",
         &kind},
        {"size", CONFIG_SIZE, "200B", "target encoded record size in bytes; 0 = no padding", &size},
        {"suite_size", CONFIG_INT, "0",
         "ci.test: builds of this many results, the same tests in each; 0 = every result a "
         "test of its own",
         &suite_size},
        {"seed", CONFIG_INT, "1", "same seed, kind, source and size: same records", &seed},
        {"start_index", CONFIG_INT, "0", "index of the first record", &start_index},
        {"src", CONFIG_STRING, "loadgen", "the records' source", &src},
        {"col", CONFIG_STRING, "omni-loadgen", "the records' collector", &col},
        {"run", CONFIG_STRING, NULL, "the records' run id (default loadgen-<seed>)", &run},
        {"batch", CONFIG_INT, "500", "records per batch", &batch},
        {"window", CONFIG_INT, "8", "batches in flight, unacknowledged", &window},
        {"give_up", CONFIG_DURATION, "30s",
         "fail when ingestd acknowledges nothing for this long; 0 = wait forever", &give_up},
        {"ack_timeout", CONFIG_DURATION, "10s", "resend a batch unacknowledged this long",
         &ack_timeout},
        {"ids_out", CONFIG_STRING, NULL, "write the hex id of every record sent to this file",
         &ids_out},
        {"dump", CONFIG_STRING, NULL,
         "write the records (concatenated msgpack) to this file instead of sending them", &dump},
        {"bad", CONFIG_LIST, NULL,
         "send bad inputs instead, these modes in turn: garbage, truncated, wrong-types, "
         "bad-version, deep, huge (4 MiB + 16 KiB), or all",
         &bad},
        {"preencode", CONFIG_BOOL, "false",
         "build every record before sending (benchmarks: seconds and rate then cover the "
         "sending only)",
         &preencode},
        OMNI_CURVE_CLIENT_OPTIONS ("client", &curve_key, &curve_server_key),
        {NULL}};
    //  The first signal stops generating and still waits for the ACKs: the
    //  intake client must go on working, so czmq's flag is not raised.
    const omni_daemon_spec_t spec = {
        .name = "omni-loadgen", .options = options, .keep_czmq_running = true};
    int rc;
    omni_daemon_t *daemon = omni_daemon_new (&spec, argc, argv, &rc);
    if (!daemon)
        return rc;
    omni_config_t *config = omni_daemon_config (daemon);
    if (omni_config_argc (config) > 0)
        return s_fail (&daemon, "takes no arguments, got \"%s\" (see --help)",
                       omni_config_arg (config, 0));
    if (count < 0)
        return s_fail (&daemon, "count: %s", "must not be negative");
    if (rate < 0)
        return s_fail (&daemon, "rate: %s", "must not be negative");
    if (seed < 0 || start_index < 0 || suite_size < 0)
        return s_fail (&daemon, "seed / start_index / suite_size: %s", "must not be negative");
    if (batch < 1 || batch > 1000000)
        return s_fail (&daemon, "batch: %s", "must be 1..1000000");
    if (window < 1 || window > 10000)
        return s_fail (&daemon, "window: %s", "must be 1..10000");
    if (duration < 0 || give_up < 0 || ack_timeout < 0)
        return s_fail (&daemon, "duration / give_up / ack_timeout: %s", "must not be negative");
    if (size > (64u << 20))
        return s_fail (&daemon, "size: %s", "at most 64M");
    synth_bad_t modes[SYNTH_BAD_COUNT * 4];
    size_t nbad = 0;
    for (char **b = bad; *b; b++) {
        if (strcmp (*b, "all") == 0) {
            for (int m = 1; m < SYNTH_BAD_COUNT && nbad < sizeof modes / sizeof *modes; m++)
                modes[nbad++] = (synth_bad_t) m;
            continue;
        }
        synth_bad_t mode = synth_bad_parse (*b);
        if (mode == SYNTH_BAD_NONE)
            return s_fail (&daemon,
                           "bad: unknown mode \"%s\" (expected garbage, truncated, wrong-types, "
                           "bad-version, deep, huge or all)",
                           *b);
        if (nbad < sizeof modes / sizeof *modes)
            modes[nbad++] = mode;
    }
    char error[512];
    omni_curve_client_t *curve = NULL;
    if (omni_curve_client_load (curve_key, curve_server_key, &curve, error, sizeof error))
        return s_fail (&daemon, "%s", error);
    synth_config_t synth_config = {kind, (uint64_t) seed,      (size_t) size, src, col,
                                   run,  (uint64_t) suite_size};
    synth_t *synth = synth_new (&synth_config, error, sizeof error);
    if (!synth) {
        omni_curve_client_destroy (&curve);
        return s_fail (&daemon, "kind: %s", error);
    }
    loadgen_config_t gen_config = {
        intake,         (uint64_t) count,    duration, (double) rate, (uint64_t) start_index,
        (size_t) batch, (size_t) window,     give_up,  ack_timeout,   ids_out,
        dump,           nbad ? modes : NULL, nbad,     preencode,     curve};
    loadgen_t *gen = loadgen_new (&gen_config, synth, error, sizeof error);
    if (!gen) {
        synth_destroy (&synth);
        omni_curve_client_destroy (&curve);
        return s_fail (&daemon, "%s", error);
    }
    rc = loadgen_run (gen);
    char summary[256];
    loadgen_summary (gen, summary, sizeof summary);
    printf ("%s\n", summary);
    fflush (stdout);
    log_info ("loadgen.done", "%s status=%s", summary, rc ? "failed" : "ok");
    loadgen_destroy (&gen);
    synth_destroy (&synth);
    omni_curve_client_destroy (&curve);
    omni_daemon_destroy (&daemon);
    return rc ? OMNI_EXIT_FAILURE : OMNI_EXIT_OK;
}
