/*  gitdiff: numstat of a commit against its first parent, with libgit2.

    Rename detection is never run (git_diff_find_similar is not called), so
    a rename is a deletion and an addition, as with --no-renames. A type
    change (file <-> symlink) is one entry comparing both contents, as in
    git's numstat (its patch output shows two, its stat one). Binary detection is libgit2's, which is git's: a NUL byte in
    the first 8000 bytes of either side, the `diff`/`binary` attributes, or
    a blob over 512 MiB (core.bigFileThreshold's default).

    Counting uses hunk headers only: with zero context lines a hunk's old
    and new line counts are exactly its deleted and added lines, so no
    per-line callback runs and no patch is kept in memory, whatever the
    size of the files.                                                      */
#include "gitdiff.h"
#include "selftest.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t path_at, path_len; //  in the arena, which may move while it grows
    uint64_t insertions, deletions;
    bool binary;
} s_file_t;

struct _gitdiff_t {
    git_repository *repo;
    git_diff_options opts;
    s_file_t *files;
    size_t nfiles, cap;
    char *arena;
    size_t arena_size, arena_cap;
    uint64_t insertions, deletions;
    bool parent_missing;
};

gitdiff_t *
gitdiff_new (git_repository *repo)
{
    gitdiff_t *self = calloc (1, sizeof *self);
    assert (self);
    self->repo = repo;
    git_diff_options_init (&self->opts, GIT_DIFF_OPTIONS_VERSION);
    self->opts.context_lines = 0;
    self->opts.interhunk_lines = 0;
    //  No pathspec: skip matching every path against an empty one
    self->opts.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH | GIT_DIFF_INCLUDE_TYPECHANGE;
    return self;
}

void
gitdiff_destroy (gitdiff_t **self_p)
{
    gitdiff_t *self = *self_p;
    if (!self)
        return;
    free (self->files);
    free (self->arena);
    free (self);
    *self_p = NULL;
}

static int s_on_binary (const git_diff_delta *delta, const git_diff_binary *binary,
                        void *payload);
static int s_on_hunk (const git_diff_delta *delta, const git_diff_hunk *hunk, void *payload);
static int s_typechange (gitdiff_t *self, const git_diff_delta *delta);

static int
s_on_file (const git_diff_delta *delta, float progress, void *payload)
{
    (void) progress;
    gitdiff_t *self = (gitdiff_t *) payload;
    if (self->nfiles == self->cap) {
        self->cap = self->cap ? self->cap * 2 : 64;
        self->files = realloc (self->files, self->cap * sizeof *self->files);
        assert (self->files);
    }
    //  A deleted file's new_file.path is its old path too
    const char *path = delta->new_file.path;
    size_t len = strlen (path);
    if (self->arena_size + len + 1 > self->arena_cap) {
        size_t cap = self->arena_cap ? self->arena_cap : 4096;
        while (cap < self->arena_size + len + 1)
            cap *= 2;
        self->arena = realloc (self->arena, cap);
        assert (self->arena);
        self->arena_cap = cap;
    }
    memcpy (self->arena + self->arena_size, path, len + 1);
    s_file_t *file = &self->files[self->nfiles++];
    file->path_at = self->arena_size;
    file->path_len = len;
    file->insertions = file->deletions = 0;
    file->binary = (delta->flags & GIT_DIFF_FLAG_BINARY) != 0;
    self->arena_size += len + 1;
    if (delta->status == GIT_DELTA_TYPECHANGE)
        return s_typechange (self, delta);
    return 0;
}


//  The content git compares for one side of a file: a blob, or for a
//  submodule the line git shows for it.
static int
s_side (gitdiff_t *self, const git_diff_file *file, git_blob **blob, char *line, size_t size,
        const char **data, size_t *len)
{
    *blob = NULL;
    *data = "";
    *len = 0;
    if (file->mode == GIT_FILEMODE_COMMIT) {
        char hex[GIT_OID_HEXSZ + 1];
        *len = (size_t) snprintf (line, size, "Subproject commit %s\n",
                                  git_oid_tostr (hex, sizeof hex, &file->id));
        *data = line;
        return 0;
    }
    if (git_blob_lookup (blob, self->repo, &file->id))
        return -1;
    *data = (const char *) git_blob_rawcontent (*blob);
    *len = (size_t) git_blob_rawsize (*blob);
    return 0;
}

//  libgit2 gives no content diff for a type change, git's numstat compares
//  the two contents: run that diff into the current entry.
static int
s_typechange (gitdiff_t *self, const git_diff_delta *delta)
{
    git_blob *old_blob, *new_blob;
    char old_line[80], new_line[80];
    const char *old_data, *new_data;
    size_t old_len, new_len;
    int rc = s_side (self, &delta->old_file, &old_blob, old_line, sizeof old_line, &old_data,
                     &old_len);
    if (rc == 0)
        rc = s_side (self, &delta->new_file, &new_blob, new_line, sizeof new_line, &new_data,
                     &new_len);
    else
        new_blob = NULL;
    if (rc == 0)
        rc = git_diff_buffers (old_data, old_len, delta->old_file.path, new_data, new_len,
                               delta->new_file.path, &self->opts, NULL, s_on_binary, s_on_hunk,
                               NULL, self);
    git_blob_free (old_blob);
    git_blob_free (new_blob);
    return rc;
}

static int
s_on_binary (const git_diff_delta *delta, const git_diff_binary *binary, void *payload)
{
    (void) delta;
    (void) binary;
    gitdiff_t *self = (gitdiff_t *) payload;
    self->files[self->nfiles - 1].binary = true;
    return 0;
}

static int
s_on_hunk (const git_diff_delta *delta, const git_diff_hunk *hunk, void *payload)
{
    (void) delta;
    gitdiff_t *self = (gitdiff_t *) payload;
    s_file_t *file = &self->files[self->nfiles - 1];
    file->deletions += (uint64_t) hunk->old_lines;
    file->insertions += (uint64_t) hunk->new_lines;
    return 0;
}

int
gitdiff_commit (gitdiff_t *self, const git_commit *commit)
{
    self->nfiles = 0;
    self->arena_size = 0;
    self->insertions = self->deletions = 0;
    self->parent_missing = false;
    git_tree *old_tree = NULL, *new_tree = NULL;
    git_diff *diff = NULL;
    int rc = git_commit_tree (&new_tree, commit);
    if (rc == 0 && git_commit_parentcount (commit) > 0) {
        git_commit *parent = NULL;
        rc = git_commit_parent (&parent, commit, 0);
        if (rc == GIT_ENOTFOUND) {
            self->parent_missing = true;
            git_error_clear ();
            rc = 0;
        }
        else if (rc == 0)
            rc = git_commit_tree (&old_tree, parent);
        git_commit_free (parent);
    }
    if (rc == 0)
        rc = git_diff_tree_to_tree (&diff, self->repo, old_tree, new_tree, &self->opts);
    if (rc == 0)
        rc = git_diff_foreach (diff, s_on_file, s_on_binary, s_on_hunk, NULL, self);
    git_diff_free (diff);
    git_tree_free (old_tree);
    git_tree_free (new_tree);
    if (rc)
        return -1;
    for (size_t i = 0; i < self->nfiles; i++) {
        self->insertions += self->files[i].insertions;
        self->deletions += self->files[i].deletions;
    }
    return 0;
}

size_t
gitdiff_files (gitdiff_t *self)
{
    return self->nfiles;
}

gitdiff_file_t
gitdiff_file (gitdiff_t *self, size_t index)
{
    assert (index < self->nfiles);
    const s_file_t *f = &self->files[index];
    gitdiff_file_t out = {self->arena + f->path_at, f->path_len, f->insertions, f->deletions,
                          f->binary};
    return out;
}

uint64_t
gitdiff_insertions (gitdiff_t *self)
{
    return self->insertions;
}

uint64_t
gitdiff_deletions (gitdiff_t *self)
{
    return self->deletions;
}

bool
gitdiff_parent_missing (gitdiff_t *self)
{
    return self->parent_missing;
}

//  ---------------------------------------------------------------------------
//  Self-test: a repository made with git itself; every commit's numbers
//  are compared with `git diff --numstat -z --no-renames`.

static void
s_git (const char *repo, const char *script)
{
    char *cmd;
    assert (asprintf (&cmd,
                      "cd '%s' && export GIT_AUTHOR_NAME=A GIT_AUTHOR_EMAIL=a@x "
                      "GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@x GIT_CONFIG_NOSYSTEM=1 "
                      "HOME=/nonexistent && (%s) > /dev/null 2>&1",
                      repo, script)
            > 0);
    int rc = system (cmd);
    if (rc != 0)
        fprintf (stderr, "failed: %s\n", cmd);
    assert (rc == 0);
    free (cmd);
}

//  Compares the object's result for `sha` with git's numstat of it.
static void
s_check_commit (gitdiff_t *diff, git_repository *repo, const char *dir, const char *sha,
                bool verbose)
{
    git_oid oid;
    git_commit *commit;
    assert (git_oid_fromstr (&oid, sha) == 0);
    assert (git_commit_lookup (&commit, repo, &oid) == 0);
    assert (gitdiff_commit (diff, commit) == 0);
    char *cmd;
    const char *base = git_commit_parentcount (commit) ? "%s^" : "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
    char from[64];
    snprintf (from, sizeof from, base, sha);
    assert (asprintf (&cmd, "git -C '%s' diff --numstat -z --no-renames %s %s", dir, from, sha)
            > 0);
    FILE *out = popen (cmd, "r");
    assert (out);
    char buf[65536];
    size_t len = fread (buf, 1, sizeof buf, out);
    assert (pclose (out) == 0);
    size_t index = 0, at = 0;
    uint64_t ins_total = 0, del_total = 0;
    while (at < len) {
        //  "ins\tdel\tpath\0"; binary: "-\t-\tpath\0"
        char *field = buf + at;
        char *nul = memchr (field, 0, len - at);
        assert (nul);
        char *tab1 = strchr (field, '\t'), *tab2 = tab1 ? strchr (tab1 + 1, '\t') : NULL;
        assert (tab2);
        gitdiff_file_t f = gitdiff_file (diff, index);
        if (verbose)
            fprintf (stderr, "  %s: git %.*s ours %llu %llu %s%s\n", sha, (int) (tab2 - field), field,
                    (unsigned long long) f.insertions, (unsigned long long) f.deletions,
                    f.binary ? "binary " : "", f.path);
        assert (f.path_len == (size_t) (nul - tab2 - 1) && memcmp (f.path, tab2 + 1, f.path_len) == 0);
        if (field[0] == '-') {
            assert (f.binary && f.insertions == 0 && f.deletions == 0);
        }
        else {
            assert (!f.binary);
            assert (f.insertions == strtoull (field, NULL, 10));
            assert (f.deletions == strtoull (tab1 + 1, NULL, 10));
        }
        ins_total += f.insertions;
        del_total += f.deletions;
        index++;
        at = (size_t) (nul - buf) + 1;
    }
    assert (index == gitdiff_files (diff));
    assert (ins_total == gitdiff_insertions (diff) && del_total == gitdiff_deletions (diff));
    free (cmd);
    git_commit_free (commit);
}

void
gitdiff_test (bool verbose)
{
    git_libgit2_init ();
    char *dir = selftest_tmpdir ("gitdiff");
    s_git (dir, "git init -q -b main . && printf 'a\\nb\\nc\\n' > t.txt && "
                "printf '\\000\\001bin' > b.bin && : > empty && mkdir -p d/e && "
                "printf 'x' > d/e/noeol && printf 'a.txt\\n' > a.txt && "
                "git add -A && git commit -q -m root");
    s_git (dir, "printf 'a\\nB\\nc\\nd\\n' > t.txt && printf '\\000\\002bin' > b.bin && "
                "printf 'y' > d/e/noeol && git mv a.txt renamed.txt && chmod +x empty && "
                "git add -A && git commit -q -m change");
    s_git (dir, "rm t.txt && ln -s renamed.txt empty2 && rm empty && ln -s t empty && "
                "printf '1\\n2\\n' > \"$(printf 'sp ace\\303\\244')\" && printf 'text\\n' > b.bin && "
                "git add -A && git commit -q -m typechange");
    s_git (dir, "git checkout -q -b side HEAD~1 && printf 'side\\n' > side.txt && "
                "git add -A && git commit -q -m side && git checkout -q main && "
                "git merge -q --no-ff -m merge side");
    s_git (dir, "git commit -q --allow-empty -m empty");

    git_repository *repo;
    assert (git_repository_open (&repo, dir) == 0);
    gitdiff_t *diff = gitdiff_new (repo);
    char *cmd;
    assert (asprintf (&cmd, "git -C '%s' rev-list --all", dir) > 0);
    FILE *list = popen (cmd, "r");
    char sha[64];
    int commits = 0;
    while (fgets (sha, sizeof sha, list)) {
        sha[strcspn (sha, "\n")] = 0;
        s_check_commit (diff, repo, dir, sha, verbose);
        commits++;
    }
    assert (pclose (list) == 0);
    assert (commits == 6);
    free (cmd);

    //  The root commit: everything added, the binary file as binary
    git_oid oid;
    git_commit *commit;
    assert (git_revparse_single ((git_object **) &commit, repo, "main~4") == 0);
    assert (git_commit_parentcount (commit) == 0);
    assert (gitdiff_commit (diff, commit) == 0);
    assert (gitdiff_files (diff) == 5 && gitdiff_insertions (diff) == 5);
    assert (gitdiff_file (diff, 1).binary && strcmp (gitdiff_file (diff, 1).path, "b.bin") == 0);
    assert (!gitdiff_parent_missing (diff));
    git_commit_free (commit);
    (void) oid;
    gitdiff_destroy (&diff);
    assert (diff == NULL);
    git_repository_free (repo);
    selftest_rmtree (dir);
    free (dir);
    git_libgit2_shutdown ();
}
