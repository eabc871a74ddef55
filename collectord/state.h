/*  state: what a collector has already sent for one source, kept between
    runs as a small text file (one entry a line) under the state directory:
        <state_dir>/<collector>/<sha256 (source), 32 hex>.state
    The file is only ever replaced whole (temp file, fsync, rename, fsync of
    the directory), so a crash leaves the old state or the new one, never a
    mix. Collectors save it only after ingestd acknowledged everything the
    state claims was sent.                                                   */
#ifndef OMNI_COLLECTORD_STATE_H
#define OMNI_COLLECTORD_STATE_H

#include "common/dirlock.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct _state_t state_t;

state_t *state_new (const char *state_dir, const char *collector, const char *source);
void state_destroy (state_t **self_p);

//  The state directory to use when none is configured:
//  $XDG_STATE_HOME/omniaudit, else $HOME/.local/state/omniaudit. Caller frees.
char *state_default_dir (void);

//  --full: every state_load of this process reads an empty state (the file
//  is left as is until the run saves its new state), so that everything is
//  sent again; the stores deduplicate by id.
void state_set_full (bool full);

//  Reads the file; a missing file is an empty state. Returns 0, or -1 with
//  `error` filled when the file exists but cannot be read.
int state_load (state_t *self, char *error, size_t error_size);

//  Entries: lines without their newline; lines starting with '#' are kept
//  out (the file's header names the source for people reading it).
size_t state_size (state_t *self);
const char *state_entry (state_t *self, size_t index);
void state_clear (state_t *self);
//  Adds one entry; newlines in it are replaced by spaces.
void state_add (state_t *self, const char *entry);

//  Replaces the file atomically. Returns 0, or -1 with `error` filled.
int state_save (state_t *self, char *error, size_t error_size);

const char *state_path (state_t *self);

//  Locks the state of one source against other processes:
//  <state_dir>/.locks/<collector>-<hash>.lock (the hash of its state file). Returns
//  NULL with `error` naming the source and "in use by pid N" when another
//  process holds it.
omni_dirlock_t *state_lock (const char *state_dir, const char *collector, const char *source,
                            char *error, size_t error_size);

void state_test (bool verbose);

#endif
