/*  gitpool: the expensive part of the git collector, in parallel. Worker
    threads, each with its own libgit2 repository handle (libgit2 objects are
    not shared between threads), diff commits against their first parent
    (gitdiff_t) and pack each as the msgpack body of a git.commit record.
    The caller takes the results in the order of the commit list, so runs
    stay deterministic whatever the number of threads.

    Work is handed out in runs of consecutive commits: a commit's old side
    is mostly its successor's new side, and the blob cache of one worker
    sees both. Workers stay at most a bounded number of results ahead of
    the caller (memory is bounded when ingestd is slow).                     */
#ifndef OMNI_COLLECTORD_GITPOOL_H
#define OMNI_COLLECTORD_GITPOOL_H

#include "collectord/gitpack.h"

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GITPOOL_NO_SINCE INT64_MIN

typedef enum {
    GITPOOL_COMMIT,     //  body holds the git.commit body
    GITPOOL_OLDER,      //  committed before `since`: not sent
    GITPOOL_UNREADABLE, //  libgit2 cannot parse the commit: error says why
    GITPOOL_FAILED      //  reading or diffing failed: the run fails
} gitpool_status_t;

typedef struct {
    gitpool_status_t status;
    const git_oid *oid;
    int64_t ts;       //  committer time, ns
    const char *body; //  msgpack map
    size_t body_len;
    bool trimmed; //  files or message cut to fit a record
    const char *error;
} gitpool_result_t;

typedef struct _gitpool_t gitpool_t;

//  Opens `threads` handles on the repository at `path`. NULL with `error`
//  when one cannot be opened.
gitpool_t *gitpool_new (const char *path, size_t threads, int64_t since, char *error,
                        size_t error_size);
//  At most `bytes` of trees kept between commits, in one cache the threads
//  share (before gitpool_start; default GITDIFF_TREE_CACHE).
void gitpool_set_tree_cache (gitpool_t *self, size_t bytes);
//  Has `repo` (the handle the source walks) read the packs through the
//  workers' pack reader and its delta-base cache (gitpack_t).
void gitpool_attach_packs (gitpool_t *self, git_repository *repo);
//  The pack reader's counters; false when libgit2 reads the packs itself.
bool gitpool_pack_stats (gitpool_t *self, gitpack_stats_t *stats);
//  Stops the workers (they finish the commit in hand) and frees everything.
void gitpool_destroy (gitpool_t **self_p);

//  Sets `oid` to the next commit to make a body for; false at the end (and
//  not called again). Called by the worker threads, one at a time, with
//  the pool's lock held: a source that walks the history with libgit2 owns
//  that repository handle until the pool is destroyed.
typedef bool (gitpool_source_fn) (void *arg, git_oid *oid);

//  Starts on the commits `source` gives, in that order.
void gitpool_start (gitpool_t *self, gitpool_source_fn *source, void *arg);
//  The result for the next commit of the list, waiting for it if needed;
//  valid until the next call. NULL after the last.
const gitpool_result_t *gitpool_next (gitpool_t *self);

//  The number of threads to use for `configured` (0 = automatic: 2, or 1
//  on a single CPU).
size_t gitpool_threads (int64_t configured);

void gitpool_test (bool verbose);

#endif
