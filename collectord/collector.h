/*  collector: the interface every collectord mode implements. main.c looks
    the mode up by name, loads the config (section "collectord": the shared
    keys plus every collector's own), opens the collector, then for each run:

        session_begin (source, target, pack_config)
        collect       reads the source, sends records through the session
        session_end   run.end, wait for every ACK
        commit        only when everything was acknowledged: remember what
                      was sent (incremental state)

    A new mode is one file pair with a `const collector_t` and a line in the
    table of collector.c.                                                   */
#ifndef OMNI_COLLECTORD_COLLECTOR_H
#define OMNI_COLLECTORD_COLLECTOR_H

#include "common/config.h"
#include "collectord/session.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  What main hands a collector when it opens it.
typedef struct {
    const char *const *args; //  positional arguments after the mode
    size_t nargs;
    const char *state_dir; //  where collectors keep what they sent
    const char *instance;  //  collector instance name (records' col)
    int64_t interval_ms;   //  --interval (0 = none)
    bool once;             //  --once
} collector_env_t;

typedef struct {
    const char *name;    //  the mode: "git"
    const char *usage;   //  positional arguments: "REPO_PATH"
    const char *summary; //  one line for the usage text
    //  The collector paces itself (samples every --interval until done or
    //  stopped) within one run; otherwise main repeats whole runs.
    bool self_paced;
    //  The collector's own config keys (section "collectord"), ending with
    //  {NULL}; their targets are the collector's static settings.
    const omni_config_option_t *options;
    //  Checks the settings and arguments (a bad path fails here, before
    //  anything is sent). Returns the collector, or NULL with `error` set.
    void *(*open) (const collector_env_t *env, char *error, size_t error_size);
    void (*close) (void **self_p);
    //  The records' src (a stable identity) and what the user named.
    const char *(*source) (void *self);
    const char *(*target) (void *self);
    session_config_fn *pack_config;
    //  One run. Returns 0, or -1 with `error` set (including when the
    //  session failed or was interrupted: session_interrupted says which).
    int (*collect) (void *self, session_t *session, char *error, size_t error_size);
    //  After session_end succeeded: persist what this run sent (NULL: the
    //  collector remembers nothing between runs).
    int (*commit) (void *self, char *error, size_t error_size);
    //  The collector keeps state per source (state.h): main holds the
    //  source's state lock for the whole process, so that two collectors of
    //  one source never interleave their loads and saves.
    bool keeps_state;
} collector_t;

//  The two names of a source most collectors keep as they were given: a
//  collector whose handle begins with them takes collector_source and
//  collector_target for its table's entries.
typedef struct {
    char *src;    //  the records' src
    char *target; //  what the user named
} collector_names_t;

const char *collector_source (void *self);
const char *collector_target (void *self);
//  Frees both names.
void collector_names_free (collector_names_t *names);

//  A run the session stopped (session_send or session_flush returned -1):
//  sets `error` to why, a signal or ingestd giving up. Returns -1.
int collector_broken (session_t *session, char *error, size_t error_size);

//  For the collectors' self-tests: a session of `mode` to the test peer at
//  `endpoint` (instance "test", batches of `batch` records, no progress),
//  and the run.start of `collector`'s `handle` on it.
session_t *collector_test_session (const char *mode, const char *endpoint, size_t batch);
void collector_test_begin (session_t *session, const collector_t *collector, void *handle);

//  The collector for a mode, or NULL.
const collector_t *collector_lookup (const char *name);
//  Iterates the collectors: 0.. until NULL.
const collector_t *collector_at (size_t index);

void collector_test (bool verbose);

#endif
