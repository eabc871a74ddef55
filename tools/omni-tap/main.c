/*  omni-tap: prints the records (and, with --rejects, the rejected inputs)
    that ingestd publishes on its tap, live, one JSON line each or in a
    readable form. Exits 0 on Ctrl-C / SIGTERM or after --count messages; a
    second signal ends it at once (130 / 143, common/daemon.h).             */
#include "common/config.h"
#include "common/daemon.h"
#include "proto/curve.h"
#include "common/log.h"
#include "tools/omni-tap/tap_printer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAP_MAX_FRAMES 8

//  config keeps only the last of repeated flags; `--kind a --kind b` means
//  both prefixes, so repeated --kind flags are merged into one list first.
//  Returns a new argv (caller frees the array and the merged string).
static char **
s_merge_kind_flags (int argc, char **argv, int *new_argc, char **merged)
{
    char **out = calloc ((size_t) argc + 1, sizeof *out);
    size_t total = 1;
    for (int i = 0; i < argc; i++)
        total += strlen (argv[i]) + 1;
    char *list = calloc (1, total + 8);
    assert (out && list);
    strcpy (list, "--kind=");
    int n = 0, first = -1;
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *value = NULL;
        if (i > 0 && !flags_done && strcmp (arg, "--") == 0)
            flags_done = true;
        else if (i > 0 && !flags_done && strncmp (arg, "--kind=", 7) == 0)
            value = arg + 7;
        else if (i > 0 && !flags_done && strcmp (arg, "--kind") == 0 && i + 1 < argc)
            value = argv[++i];
        if (!value) {
            out[n++] = argv[i];
            continue;
        }
        if (first < 0) {
            first = n;
            out[n++] = list;
        } else
            strcat (list, ",");
        strcat (list, value);
    }
    out[n] = NULL;
    *new_argc = n;
    *merged = list;
    return out;
}

typedef struct {
    char *endpoint, *format_name, *curve_key, *curve_server_key;
    char **kinds;
    bool rejects;
    int64_t count;
} s_keys_t;

static int
s_tap (omni_daemon_t *daemon, s_keys_t *k)
{
    const char *endpoint = k->endpoint;
    int64_t count = k->count;
    tap_format_t format;
    if (tap_format_parse (k->format_name, &format))
        return omni_daemon_bad_config (daemon, "format: bad value \"%s\" (expected json or pretty)",
                                       k->format_name ? k->format_name : "");
    if (count < 0)
        return omni_daemon_bad_config (daemon, "count: %lld is negative", (long long) count);
    omni_config_t *config = omni_daemon_config (daemon);
    if (omni_config_argc (config) > 0) {
        fprintf (stderr, "error: omni-tap takes no arguments, got \"%s\" (see --help)\n",
                 omni_config_arg (config, 0));
        return OMNI_EXIT_USAGE;
    }
    omni_curve_client_t *curve = NULL;
    char curve_error[512];
    if (omni_curve_client_load (k->curve_key, k->curve_server_key, &curve, curve_error,
                                sizeof curve_error))
        return omni_daemon_bad_config (daemon, "%s", curve_error);
    //  A closed pipe (omni-tap | head) ends the tap quietly, not with SIGPIPE.
    signal (SIGPIPE, SIG_IGN);
    setvbuf (stdout, NULL, _IOFBF, 1 << 16);

    bool show_rejects;
    const char **topics = tap_topics ((const char *const *) k->kinds, k->rejects, &show_rejects);
    zsock_t *sub = zsock_new (ZMQ_SUB);
    assert (sub);
    zsock_set_linger (sub, 0);
    //  A terminal is slower than ingestd; keep a burst rather than lose it.
    zsock_set_rcvhwm (sub, 100000);
    size_t ntopics = 0;
    for (; topics[ntopics]; ntopics++)
        zsock_set_subscribe (sub, topics[ntopics]);
    omni_curve_watch_t *watch = NULL;
    if (curve) {
        omni_curve_client_apply (curve, sub);
        watch = omni_curve_watch_new (sub, endpoint);
    }
    if (zsock_connect (sub, "%s", endpoint)) {
        log_error ("tap.endpoint", "endpoint=%s error=\"%s\"", endpoint,
                   zmq_strerror (zmq_errno ()));
        free (topics);
        omni_curve_watch_destroy (&watch);
        zsock_destroy (&sub);
        omni_curve_client_destroy (&curve);
        return OMNI_EXIT_USAGE;
    }
    char topic_list[512] = "";
    for (size_t i = 0; i < ntopics; i++)
        snprintf (topic_list + strlen (topic_list), sizeof topic_list - strlen (topic_list),
                  "%s\"%s\"", i ? "," : "", topics[i]);
    //  Publishers drop what they send before a subscription reaches them; the
    //  line tells a caller from when on messages will be seen.
    log_info ("tap.subscribed", "endpoint=%s topics=%s format=%s count=%lld curve=%s", endpoint,
              topic_list, k->format_name, (long long) count, curve ? "on" : "off");
    free (topics);

    tap_printer_t *printer = tap_printer_new (format, show_rejects);
    const void *frames[TAP_MAX_FRAMES];
    size_t sizes[TAP_MAX_FRAMES];
    int rc = OMNI_EXIT_OK;
    while (!zsys_interrupted && (count == 0 || tap_printer_printed (printer) < (size_t) count)) {
        omni_curve_watch_poll (watch);
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 500) <= 0)
            continue; //  timeout or EINTR: the loop head checks zsys_interrupted
        zmsg_t *msg = zmsg_recv (sub);
        if (!msg)
            continue;
        size_t n = 0;
        for (zframe_t *f = zmsg_first (msg); f && n < TAP_MAX_FRAMES; f = zmsg_next (msg)) {
            frames[n] = zframe_data (f);
            sizes[n++] = zframe_size (f);
        }
        if (zmsg_size (msg) > TAP_MAX_FRAMES)
            n = zmsg_size (msg); //  reported as bad: no tap message has that many
        const char *text;
        size_t size;
        tap_result_t result =
            tap_printer_format (printer, frames, sizes, n > TAP_MAX_FRAMES ? 0 : n, &text, &size);
        if (result == TAP_PRINTED) {
            if (fwrite (text, 1, size, stdout) != size || fflush (stdout)) {
                //  A closed pipe or a signal while stdout is blocked: a normal end.
                if (errno != EPIPE && !zsys_interrupted) {
                    log_error ("tap.output", "error=\"%s\"", strerror (errno));
                    rc = OMNI_EXIT_FAILURE;
                }
                zmsg_destroy (&msg);
                break;
            }
        } else if (result == TAP_BAD) {
            log_warn ("tap.bad_message", "frames=%zu reason=\"%s\"", n, text);
        }
        zmsg_destroy (&msg);
    }
    log_info ("tap.stop", "printed=%zu bad=%zu", tap_printer_printed (printer),
              tap_printer_bad (printer));
    tap_printer_destroy (&printer);
    omni_curve_watch_destroy (&watch);
    zsock_destroy (&sub);
    omni_curve_client_destroy (&curve);
    return rc;
}

int
main (int argc, char **argv)
{
    s_keys_t k = {0};
    const omni_config_option_t options[] = {
        {"endpoint", CONFIG_ENDPOINT, "tcp://127.0.0.1:5552", "ingestd tap (XPUB) to connect to",
         &k.endpoint},
        {"kind", CONFIG_LIST, NULL,
         "kind prefixes to show, e.g. git. or metric (repeatable); none = every kind", &k.kinds},
        {"rejects", CONFIG_BOOL, "false", "show rejected inputs (alone: only them)", &k.rejects},
        {"count", CONFIG_INT, "0", "exit after printing this many messages; 0 = run until stopped",
         &k.count},
        {"format", CONFIG_STRING, "json", "json (one line each) | pretty", &k.format_name},
        OMNI_CURVE_CLIENT_OPTIONS ("subscriber", &k.curve_key, &k.curve_server_key),
        {NULL}};
    //  A long-running tool on the daemon skeleton: its config, log keys and
    //  signal policy; no /metrics (no http key).
    const omni_daemon_spec_t spec = {.name = "omni-tap", .options = options};
    int merged_argc;
    char *merged;
    char **merged_argv = s_merge_kind_flags (argc, argv, &merged_argc, &merged);
    int rc;
    omni_daemon_t *daemon = omni_daemon_new (&spec, merged_argc, merged_argv, &rc);
    free (merged_argv);
    free (merged);
    if (daemon)
        rc = s_tap (daemon, &k);
    omni_daemon_destroy (&daemon);
    return rc;
}
