/*  daemon: the skeleton of every long-running program. Built once because
    five main () functions each declared the log and http keys, started
    logging, metrics and /health, and stopped in their own way (czmq's
    handler, a hand-written one, a reset of zsys_interrupted): an operator
    now gets one behaviour from every program, and a program's main.c only
    wires its classes.

    The signal handler keeps what it does async-signal-safe: it stores the
    signal, raises czmq's flag (a volatile int the loops poll) and, the
    second time, calls _exit. It is installed with sigaction and without
    SA_RESTART, so that a poll or a sleep returns early and the loop looks at
    the flag. czmq's own handler is switched off first: zsys_init, which a
    later socket calls, would otherwise install it over ours.              */
#include "common/daemon.h"
#include "common/log.h"

#include <assert.h>
#include <czmq.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SHARED_OPTIONS 3

struct _omni_daemon_t {
    omni_daemon_spec_t spec;
    omni_config_option_t *options;
    omni_config_t *config;
    omni_metrics_t *metrics;
    omni_httpd_t *httpd;
    char *http, *log_level, *log_format;
};

static volatile sig_atomic_t s_signal;     //  the first stop signal, 0 before it
static volatile sig_atomic_t s_raise_czmq; //  whether it raises zsys_interrupted

static void
s_on_signal (int signum)
{
    if (s_signal)
        _exit (128 + signum);
    s_signal = signum;
    if (s_raise_czmq)
        zsys_interrupted = 1;
}

omni_config_t *
omni_daemon_tool_config (const char *name, const omni_config_option_t *options, int argc,
                         char **argv, void (*usage) (FILE *out), int *exit_code)
{
    char **args = calloc ((size_t) argc + 1, sizeof *args);
    assert (args);
    for (int i = 0; i < argc; i++)
        args[i] = strcmp (argv[i], "-o") == 0 ? "--output" : argv[i];
    omni_config_t *config = omni_config_new (name, options);
    int rc = omni_config_load (config, argc, args);
    free (args);
    if (rc) {
        if (rc == 1)
            usage (stdout);
        omni_config_destroy (&config);
        *exit_code = rc < 0 ? OMNI_EXIT_USAGE : OMNI_EXIT_OK;
        return NULL;
    }
    omni_log_init (name, "warn", "kv");
    *exit_code = OMNI_EXIT_OK;
    return config;
}

void
omni_daemon_catch_signals (bool raise_czmq)
{
    s_raise_czmq = raise_czmq;
    //  Disables czmq's handler now and in zsys_init to come
    zsys_handler_set (NULL);
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    //  The other signal waits while the handler runs on this thread
    sigemptyset (&action.sa_mask);
    sigaddset (&action.sa_mask, SIGINT);
    sigaddset (&action.sa_mask, SIGTERM);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

bool
omni_daemon_stopping (void)
{
    return s_signal != 0;
}

static size_t
s_count (const omni_config_option_t *options)
{
    size_t n = 0;
    while (options && options[n].key)
        n++;
    return n;
}

omni_daemon_t *
omni_daemon_new (const omni_daemon_spec_t *spec, int argc, char **argv, int *exit_code)
{
    //  From the first moment: a SIGTERM while a store starts already drains
    omni_daemon_catch_signals (!spec->keep_czmq_running);
    omni_daemon_t *self = calloc (1, sizeof *self);
    assert (self);
    self->spec = *spec;
    size_t own = s_count (spec->options), hidden = s_count (spec->hidden_options);
    self->options = calloc (own + SHARED_OPTIONS + hidden + 1, sizeof *self->options);
    assert (self->options);
    omni_config_option_t *next = self->options;
    if (own)
        memcpy (next, spec->options, own * sizeof *next);
    next += own;
    if (spec->default_http)
        *next++ = (omni_config_option_t){
            "http", CONFIG_STRING, spec->default_http,
            spec->http_help ? spec->http_help : "/metrics and /health address, empty = off",
            &self->http};
    *next++ = (omni_config_option_t){"log_level", CONFIG_STRING, "info",
                                     "debug | info | warn | error", &self->log_level};
    *next++ =
        (omni_config_option_t){"log_format", CONFIG_STRING, "kv", "kv | json", &self->log_format};
    size_t shown = (size_t) (next - self->options);
    if (hidden)
        memcpy (next, spec->hidden_options, hidden * sizeof *next);
    self->config = omni_config_new (spec->name, self->options);
    if (hidden)
        omni_config_set_help_count (self->config, shown);
    int rc = omni_config_load (self->config, argc, argv);
    if (rc == 1 && spec->help_epilogue)
        printf ("\n%s\n", spec->help_epilogue);
    if (rc) {
        *exit_code = rc < 0 ? OMNI_EXIT_USAGE : OMNI_EXIT_OK;
        omni_daemon_destroy (&self);
        return NULL;
    }
    if (omni_log_init (spec->name, self->log_level, self->log_format)) {
        *exit_code = omni_daemon_bad_config (self, "log_level / log_format: bad value");
        omni_daemon_destroy (&self);
        return NULL;
    }
    char prefix[64];
    snprintf (prefix, sizeof prefix, "omni_%s_", spec->name);
    self->metrics = omni_metrics_new (prefix);
    *exit_code = OMNI_EXIT_OK;
    return self;
}

void
omni_daemon_destroy (omni_daemon_t **self_p)
{
    omni_daemon_t *self = *self_p;
    if (!self)
        return;
    omni_httpd_destroy (&self->httpd);
    omni_metrics_destroy (&self->metrics);
    omni_config_destroy (&self->config);
    free (self->options);
    free (self);
    *self_p = NULL;
}

omni_config_t *
omni_daemon_config (omni_daemon_t *self)
{
    return self->config;
}

omni_metrics_t *
omni_daemon_metrics (omni_daemon_t *self)
{
    return self->metrics;
}

const char *
omni_daemon_name (omni_daemon_t *self)
{
    return self->spec.name;
}

int
omni_daemon_bad_config (omni_daemon_t *self, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    fprintf (stderr, "error: %s.%s\n", self->spec.name, text);
    return OMNI_EXIT_USAGE;
}

int
omni_daemon_serve (omni_daemon_t *self, health_fn *health, void *arg)
{
    if (self->httpd || !self->http || !*self->http)
        return 0;
    self->httpd = omni_httpd_new (self->http, self->metrics, health, arg);
    return self->httpd ? 0 : -1;
}

void
omni_daemon_serve_end (omni_daemon_t *self)
{
    omni_httpd_destroy (&self->httpd);
}

//  In a child: what the policy does with one signal, then a second.
static void
s_test_signals (bool raise_czmq, int signum)
{
    pid_t pid = fork ();
    assert (pid >= 0);
    if (pid == 0) {
        zsys_interrupted = 0;
        omni_daemon_catch_signals (raise_czmq);
        zsys_init (); //  must not put czmq's handler back
        struct sigaction action;
        sigaction (signum, NULL, &action);
        //  A blocking call returns early: no SA_RESTART
        if (omni_daemon_stopping () || (action.sa_flags & SA_RESTART))
            _exit (10);
        raise (signum);
        if (!omni_daemon_stopping () || zsys_interrupted != (raise_czmq ? 1 : 0))
            _exit (11);
        raise (signum);
        _exit (12);
    }
    int status;
    assert (waitpid (pid, &status, 0) == pid);
    assert (WIFEXITED (status) && WEXITSTATUS (status) == 128 + signum);
}

void
omni_daemon_test (bool verbose)
{
    (void) verbose;
    s_test_signals (true, SIGTERM);
    s_test_signals (false, SIGINT);

    char *path = NULL;
    int64_t workers = 0;
    const omni_config_option_t own[] = {{"path", CONFIG_STRING, "x", "a key of the program", &path},
                                        {"workers", CONFIG_INT, "1", "another", &workers},
                                        {NULL}};
    int64_t other = 0;
    const omni_config_option_t hidden[] = {{"other", CONFIG_INT, "0", "hidden", &other}, {NULL}};
    omni_daemon_spec_t spec = {"testd", own, "127.0.0.1:0", NULL, hidden, NULL, false};
    char *good[] = {"testd", "--path=/tmp/y", "--other=3", "--log-level=warn", NULL};
    int exit_code = -1;
    omni_daemon_t *daemon = omni_daemon_new (&spec, 4, good, &exit_code);
    assert (daemon && exit_code == OMNI_EXIT_OK);
    assert (strcmp (path, "/tmp/y") == 0 && workers == 1 && other == 3);
    assert (strcmp (omni_daemon_name (daemon), "testd") == 0);
    assert (omni_daemon_config (daemon) && omni_daemon_metrics (daemon));
    assert (strcmp (omni_config_origin (omni_daemon_config (daemon), "http"), "default") == 0);
    assert (omni_daemon_serve (daemon, NULL, NULL) == 0 && daemon->httpd);
    omni_daemon_serve_end (daemon);
    assert (!daemon->httpd);
    assert (omni_daemon_bad_config (daemon, "workers: must be %d..%d", 1, 8) == OMNI_EXIT_USAGE);
    omni_daemon_destroy (&daemon);
    assert (daemon == NULL);

    //  A tool without http: the key is unknown
    spec.default_http = NULL;
    char *http[] = {"testd", "--http=127.0.0.1:0", NULL};
    assert (omni_daemon_new (&spec, 2, http, &exit_code) == NULL && exit_code == OMNI_EXIT_USAGE);
    char *bad[] = {"testd", "--workers=many", NULL};
    assert (omni_daemon_new (&spec, 2, bad, &exit_code) == NULL && exit_code == OMNI_EXIT_USAGE);
    char *level[] = {"testd", "--log-level=loud", NULL};
    assert (omni_daemon_new (&spec, 2, level, &exit_code) == NULL && exit_code == OMNI_EXIT_USAGE);

    //  A tool's config: -o FILE as --output FILE; a bad flag exits 2
    char *output = NULL;
    const omni_config_option_t tool[] = {{"output", CONFIG_STRING, "", "file", &output}, {NULL}};
    char *tool_args[] = {"testtool", "export", "-o", "-", NULL};
    omni_config_t *config =
        omni_daemon_tool_config ("testtool", tool, 4, tool_args, NULL, &exit_code);
    assert (config && exit_code == OMNI_EXIT_OK && strcmp (output, "-") == 0);
    assert (omni_config_argc (config) == 1 && strcmp (omni_config_arg (config, 0), "export") == 0);
    omni_config_destroy (&config);
    char *tool_bad[] = {"testtool", "-x", NULL};
    assert (!omni_daemon_tool_config ("testtool", tool, 2, tool_bad, NULL, &exit_code));
    assert (exit_code == OMNI_EXIT_USAGE);
    omni_log_init ("testd", "info", "kv");
    signal (SIGINT, SIG_DFL);
    signal (SIGTERM, SIG_DFL);
}
