/*  gitpack: the objects of a repository's pack files, read for libgit2 by
    an object database backend of ours, with a delta-base cache that keeps
    the most recently used bases (git's rule) in a budget the caller sets.
    One store serves every repository handle of a run (the worker threads
    each have their own): they share its cache and nothing else.

    Objects not in a pack (loose ones, alternates) and anything this
    reader does not understand are left to libgit2's own backends.        */
#ifndef OMNI_COLLECTORD_GITPACK_H
#define OMNI_COLLECTORD_GITPACK_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _gitpack_t gitpack_t;

//  The delta-base cache's budget, by default
#define GITPACK_CACHE (48 * 1024 * 1024)

//  The pack files of the repository at `repo` (its objects/pack), with a
//  cache of at most `cache_bytes` of delta bases. NULL when there is no
//  pack to read (libgit2 then reads everything itself).
gitpack_t *gitpack_new (git_repository *repo, size_t cache_bytes);
//  Drops the caller's reference; the backends attached keep theirs.
void gitpack_destroy (gitpack_t **self_p);

//  Adds a backend reading through `self` to `repo`'s object database,
//  before libgit2's own. Returns 0 or -1.
int gitpack_attach (gitpack_t *self, git_repository *repo);

typedef struct {
    uint64_t reads;      //  objects given to libgit2
    uint64_t inflated;   //  zlib streams inflated (objects and deltas)
    uint64_t cache_hits; //  delta chains cut short by a cached base
    uint64_t passed;     //  reads left to libgit2 (not in a pack, or not understood)
    size_t cached_bytes; //  in the cache now
} gitpack_stats_t;

void gitpack_stats (gitpack_t *self, gitpack_stats_t *stats);

void gitpack_test (bool verbose);

#endif
