/*  omni-tap: prints the records (and, with --rejects, the rejected inputs)
    that ingestd publishes on its tap, live, one JSON line each or in a
    readable form. Exits 0 on Ctrl-C / SIGTERM or after --count messages.   */
#include "common/config.h"
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

int
main (int argc, char **argv)
{
    char *endpoint, *format_name, *log_level, *log_format;
    char *curve_key, *curve_server_key;
    char **kinds;
    bool rejects;
    int64_t count;
    const omni_config_option_t options[] = {
        {"endpoint", CONFIG_ENDPOINT, "tcp://127.0.0.1:5552", "ingestd tap (XPUB) to connect to",
         &endpoint},
        {"kind", CONFIG_LIST, NULL,
         "kind prefixes to show, e.g. git. or metric (repeatable); none = every kind", &kinds},
        {"rejects", CONFIG_BOOL, "false", "show rejected inputs (alone: only them)", &rejects},
        {"count", CONFIG_INT, "0", "exit after printing this many messages; 0 = run until stopped",
         &count},
        {"format", CONFIG_STRING, "json", "json (one line each) | pretty", &format_name},
        {"curve_key", CONFIG_STRING, "",
         "CURVE: this subscriber's certificate (PATH and PATH_secret); with curve_server_key",
         &curve_key},
        {"curve_server_key", CONFIG_STRING, "",
         "CURVE: ingestd's public certificate; empty with curve_key = no security",
         &curve_server_key},
        {"log_level", CONFIG_STRING, "info", "debug | info | warn | error", &log_level},
        {"log_format", CONFIG_STRING, "kv", "kv | json", &log_format},
        {NULL}};
    int merged_argc;
    char *merged;
    char **merged_argv = s_merge_kind_flags (argc, argv, &merged_argc, &merged);
    omni_config_t *config = omni_config_new ("omni-tap", options);
    int rc = omni_config_load (config, merged_argc, merged_argv);
    free (merged_argv);
    free (merged);
    if (rc) {
        omni_config_destroy (&config);
        return rc < 0 ? 2 : 0;
    }
    tap_format_t format;
    if (tap_format_parse (format_name, &format)) {
        fprintf (stderr, "error: omni-tap.format: bad value \"%s\" (expected json or pretty)\n",
                 format_name ? format_name : "");
        omni_config_destroy (&config);
        return 2;
    }
    if (count < 0) {
        fprintf (stderr, "error: omni-tap.count: %lld is negative\n", (long long) count);
        omni_config_destroy (&config);
        return 2;
    }
    if (omni_config_argc (config) > 0) {
        fprintf (stderr, "error: omni-tap takes no arguments, got \"%s\" (see --help)\n",
                 omni_config_arg (config, 0));
        omni_config_destroy (&config);
        return 2;
    }
    if (omni_log_init ("omni-tap", log_level, log_format)) {
        fprintf (stderr, "error: omni-tap.log_level / log_format: bad value\n");
        omni_config_destroy (&config);
        return 2;
    }
    omni_curve_client_t *curve = NULL;
    char curve_error[512];
    if (omni_curve_client_load (curve_key, curve_server_key, &curve, curve_error,
                                sizeof curve_error)) {
        fprintf (stderr, "error: omni-tap.%s\n", curve_error);
        omni_config_destroy (&config);
        return 2;
    }
    //  A closed pipe (omni-tap | head) ends the tap quietly, not with SIGPIPE.
    signal (SIGPIPE, SIG_IGN);
    setvbuf (stdout, NULL, _IOFBF, 1 << 16);

    bool show_rejects;
    const char **topics = tap_topics ((const char *const *) kinds, rejects, &show_rejects);
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
        omni_config_destroy (&config);
        return 2;
    }
    char topic_list[512] = "";
    for (size_t i = 0; i < ntopics; i++)
        snprintf (topic_list + strlen (topic_list), sizeof topic_list - strlen (topic_list),
                  "%s\"%s\"", i ? "," : "", topics[i]);
    //  Publishers drop what they send before a subscription reaches them; the
    //  line tells a caller from when on messages will be seen.
    log_info ("tap.subscribed", "endpoint=%s topics=%s format=%s count=%lld curve=%s", endpoint,
              topic_list, format_name, (long long) count, curve ? "on" : "off");
    free (topics);

    tap_printer_t *printer = tap_printer_new (format, show_rejects);
    const void *frames[TAP_MAX_FRAMES];
    size_t sizes[TAP_MAX_FRAMES];
    rc = 0;
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
                    rc = 1;
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
    omni_config_destroy (&config);
    return rc;
}
