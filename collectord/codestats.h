/*  codestats: `collectord code [options] PATH`. Lines of code at a revision,
    per language (lang_count.h: cloc's languages and counts):

        code.stats  one per language: rev, language, files, blank, comment,
                    code; with --per-file also one per file (path, files 1)

    PATH a git repository (its top directory or a bare one): the tree of
    HEAD, or of --rev (any revision git understands: a branch, a tag, a sha,
    HEAD~3), read with libgit2; files git ignores are not in a tree, and
    neither is what the work tree holds but no commit does. rev is the
    commit's sha and each record's ts the commit's time.

    PATH any other directory: the files under it, ignore files not
    honoured; rev is "fs:" and the first 40 hex digits of a SHA-256 over
    every path and content counted, so that the same files give the same
    records; ts is the time of the run.

    Excluded: every directory whose name (or path from PATH, when it holds
    a '/') is in --exclude-dir (default vendor, node_modules, third_party,
    third-party, thirdparty, bower_components, dist, build, .git, .hg, .svn,
    __pycache__, .venv, venv, .tox); symbolic links, submodules, binary
    files, empty files (as cloc) and files of no known language. Identical
    files count each time (cloc counts them once unless --skip-uniqueness).

    src: --source, else as the git collector's (the repository's absolute
    git directory), else the directory's absolute path.                  */
#ifndef OMNI_COLLECTORD_CODESTATS_H
#define OMNI_COLLECTORD_CODESTATS_H

#include "collectord/collector.h"
#include "collectord/lang_count.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct _codestats_t codestats_t;

//  One file counted.
typedef struct {
    const char *path; //  from the top of the tree, '/'-separated, UTF-8
    const lang_t *lang;
    lang_lines_t lines;
} codestats_file_t;

//  Per language totals.
typedef struct {
    const char *language;
    uint64_t files, blank, comment, code;
} codestats_total_t;

//  Counts the tree at `rev` of the repository `path` (rev NULL: HEAD), or
//  the directory `path` when it is not a repository (rev must be NULL).
//  `exclude`: directory names or paths, NULL-terminated. Returns NULL with
//  `error` set when the path or the revision cannot be read.
codestats_t *codestats_new (const char *path, const char *rev, char *const *exclude, char *error,
                            size_t error_size);
void codestats_destroy (codestats_t **self_p);

//  Reads and counts every file. Calls `progress` (may be NULL) as files are
//  done. Returns 0, or -1 with `error` (an unreadable object; files the
//  filesystem refuses are logged and skipped). `stop` (may be NULL) is
//  polled: true ends the count early with -1.
int codestats_run (codestats_t *self, void (*progress) (void *arg, uint64_t done),
                   bool (*stop) (void *arg), void *arg, char *error, size_t error_size);

//  After the run: the revision (commit sha, or "fs:..."), its time (ns),
//  whether it is a repository, the totals sorted by language, the files
//  sorted by path.
const char *codestats_rev (codestats_t *self);
int64_t codestats_time (codestats_t *self);
bool codestats_is_repo (codestats_t *self);
size_t codestats_ntotals (codestats_t *self);
const codestats_total_t *codestats_total (codestats_t *self, size_t index);
size_t codestats_nfiles (codestats_t *self);
const codestats_file_t *codestats_file (codestats_t *self, size_t index);

extern const collector_t codestats_collector;

void codestats_test (bool verbose);

#endif
