/*  gitdiff: the numbers of one commit as `git diff --numstat --no-renames
    <first-parent> <commit>` gives them (the empty tree for a root commit):
    per file insertions, deletions and the binary flag (binary files count as
    changed with 0 lines), and the totals. One object is reused for every
    commit of a run: its options, file table and path storage are allocated
    once and grow to the largest commit seen.                                 */
#ifndef OMNI_COLLECTORD_GITDIFF_H
#define OMNI_COLLECTORD_GITDIFF_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *path; //  valid until the next gitdiff_commit; raw bytes, not UTF-8-checked
    size_t path_len;
    uint64_t insertions, deletions;
    bool binary;
    //  The deleted path git's default rename detection (50 % similarity)
    //  pairs this added file with, else NULL; the numbers stay --no-renames'
    const char *old_path;
    size_t old_path_len;
} gitdiff_file_t;

typedef struct _gitdiff_t gitdiff_t;

//  The memory of trees kept between commits, by default (estimated)
#define GITDIFF_TREE_CACHE (8 * 1024 * 1024)

gitdiff_t *gitdiff_new (git_repository *repo);
void gitdiff_destroy (gitdiff_t **self_p);

//  Diffs `commit` against its first parent. Returns 0, or -1 on a libgit2
//  error (git_error_last () says which). When the first parent is not in
//  the repository (the boundary of a shallow clone) the commit is diffed
//  against the empty tree, as git does there, and gitdiff_parent_missing
//  is true.
int gitdiff_commit (gitdiff_t *self, const git_commit *commit);

//  The first parent the last gitdiff_commit read, when its id is `id`:
//  the walk's next commit is mostly that one, and reading it again costs
//  an inflate. The caller owns it (git_commit_free); else NULL.
git_commit *gitdiff_take_parent (gitdiff_t *self, const git_oid *id);

//  At most `bytes` (estimated) of trees kept between commits; 0: none.
void gitdiff_set_tree_cache (gitdiff_t *self, size_t bytes);
//  From now on `self` keeps its trees with those of `with` (which may be
//  used on another thread, with its own repository handle on the same
//  repository): one cache, one budget.
void gitdiff_share_trees (gitdiff_t *self, gitdiff_t *with);
//  Tree reads served from the cache, read from the repository, and the
//  estimated memory kept now.
void gitdiff_tree_stats (gitdiff_t *self, uint64_t *hits, uint64_t *misses, size_t *bytes);

size_t gitdiff_files (gitdiff_t *self);
gitdiff_file_t gitdiff_file (gitdiff_t *self, size_t index);
uint64_t gitdiff_insertions (gitdiff_t *self);
uint64_t gitdiff_deletions (gitdiff_t *self);
bool gitdiff_parent_missing (gitdiff_t *self);

void gitdiff_test (bool verbose);

#endif
