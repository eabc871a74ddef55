/*  daemon: the skeleton every long-running program is built on, so that
    each main.c only wires its own classes. It declares the keys every
    daemon shares (http, log_level, log_format) beside the program's own,
    loads config, environment and flags, starts logging and the metrics
    registry, serves /metrics and /health, and installs the one signal
    policy. CURVE is not here (common/ knows no wire): the caller adds its
    curve keys to its own options (client/writer_daemon.c, ingestd).

    Signal policy (every program, daemon or tool): the first SIGTERM or
    SIGINT asks for a drain: omni_daemon_stopping () turns true, czmq's
    zsys_interrupted is raised (the loops of the daemons watch it) unless
    the program asked not to, and a blocking call returns EINTR (no
    SA_RESTART). A second one exits at once, without draining, with
    128 + the signal's number: 143 (SIGTERM), 130 (SIGINT).

    Exit codes: OMNI_EXIT_OK (0) done, or drained after a signal;
    OMNI_EXIT_FAILURE (1) a failure at run time (a store, a port, a run);
    OMNI_EXIT_USAGE (2) a usage or configuration error, with a message
    naming the key; OMNI_EXIT_DAMAGED (3) done, with damaged input skipped
    (omnictl replay, export); 130 / 143 a second signal.                  */
#ifndef OMNI_DAEMON_H
#define OMNI_DAEMON_H

#include "common/config.h"
#include "common/httpd.h"
#include "common/metrics.h"

#include <stdbool.h>
#include <stdio.h>

enum {
    OMNI_EXIT_OK = 0,
    OMNI_EXIT_FAILURE = 1,
    OMNI_EXIT_USAGE = 2,
    OMNI_EXIT_DAMAGED = 3 //  omnictl replay / export: damaged input skipped, the rest done
};

typedef struct {
    //  The config section, the name in the log and in error messages, and
    //  the metrics prefix omni_<name>_ ("ingestd").
    const char *name;
    //  The program's own keys, {NULL}-terminated; --help lists them first,
    //  then http (when default_http is not NULL), log_level, log_format.
    const omni_config_option_t *options;
    //  Default of `http` (the /metrics and /health address, "" = off);
    //  NULL: the program has no such key (a tool).
    const char *default_http;
    const char *http_help; //  NULL: the usual text
    //  More keys, accepted but not listed by --help ({NULL}-terminated, or
    //  NULL): collectord knows every mode's keys and shows one mode's.
    const omni_config_option_t *hidden_options;
    //  Printed after --help's options (NULL: nothing).
    const char *help_epilogue;
    //  The first signal does not raise zsys_interrupted: for a program that
    //  drains through czmq sockets that refuse to work once it is raised
    //  (omni-loadgen); it watches omni_daemon_stopping () instead.
    bool keep_czmq_running;
} omni_daemon_spec_t;

typedef struct _omni_daemon_t omni_daemon_t;

//  Installs the signal policy, loads the config, starts logging and makes
//  the metrics registry. Returns NULL with *exit_code set: 0 after --help
//  or --version, 2 after a message naming a bad key or value. `spec` and
//  the tables it points to must outlive the object.
omni_daemon_t *omni_daemon_new (const omni_daemon_spec_t *spec, int argc, char **argv,
                                int *exit_code);
//  Stops /metrics and /health (if serving) and frees the config and the
//  metrics registry.
void omni_daemon_destroy (omni_daemon_t **self_p);

omni_config_t *omni_daemon_config (omni_daemon_t *self);
omni_metrics_t *omni_daemon_metrics (omni_daemon_t *self);
const char *omni_daemon_name (omni_daemon_t *self);

//  Prints "error: <name>.<text>" and returns OMNI_EXIT_USAGE: the way every
//  check of a key's value after loading reports it.
int omni_daemon_bad_config (omni_daemon_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

//  Serves /metrics and /health on the configured `http` address (nothing
//  when it is empty), /health answering from `health` (NULL: always ok).
//  Returns 0, or -1 when the address cannot be bound (the reason is logged).
int omni_daemon_serve (omni_daemon_t *self, health_fn *health, void *arg);
//  Stops serving (before what `health` reads is destroyed).
void omni_daemon_serve_end (omni_daemon_t *self);

//  What a tool with commands and no daemon object (omnictl, omni-report)
//  does first: its config section `name` loaded from `options` and the
//  command line, where -o FILE stands for --output FILE (the one short flag,
//  as in every tool that writes a file), then logging started at warn.
//  Returns the config, or NULL with *exit_code set: 0 after --help (the
//  options, then the tool's `usage` on stdout) or --version, 2 after a
//  message naming a bad key or value.
omni_config_t *omni_daemon_tool_config (const char *name, const omni_config_option_t *options,
                                        int argc, char **argv, void (*usage) (FILE *out),
                                        int *exit_code);

//  The signal policy alone, for the tools that have no daemon object:
//  installed once by omni_daemon_new, again here harmlessly.
//  `raise_czmq`: whether the first signal also raises zsys_interrupted.
void omni_daemon_catch_signals (bool raise_czmq);
//  Whether a first SIGTERM/SIGINT came: the program drains and ends.
bool omni_daemon_stopping (void);

void omni_daemon_test (bool verbose);

#endif
