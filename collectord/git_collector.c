/*  git_collector: git history into records, with libgit2.

    A run: resolve the refs to tips, walk every commit reachable from them
    (hiding the tips of the last complete run), have the pool (gitpool_t)
    diff and pack each commit on worker threads, send the bodies in walk
    order, then one git.branch per local branch and one git.tag per tag.
    Text that is not valid UTF-8 is sent repaired, its bytes in body.raw
    (gittext_t).                                                            */
#include "collectord/git_collector.h"
#include "common/buf.h"
#include "proto/record.h"
#include "testsupport/testpeer.h"
#include "collectord/gitpool.h"
#include "collectord/gittext.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "collectord/srcname.h"
#include "collectord/state.h"
#include "collectord/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <git2.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#define S_NO_SINCE GITPOOL_NO_SINCE

//  Settings from the config (section collectord)
static struct {
    char **branch;
    char *since;
    int64_t max_commits;
    char *source;
    uint64_t cache_size;
    int64_t threads;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"branch", CONFIG_LIST, NULL,
     "git: branches (or any ref names) to collect; default every ref and HEAD", &s_settings.branch},
    {"since", CONFIG_STRING, NULL,
     "git: only commits committed at or after this: 2024-01-31, 2024-01-31T12:00:00+02:00, "
     "@UNIX_SECONDS, or an age: 90d, 12w, 36h",
     &s_settings.since},
    {"max_commits", CONFIG_INT, "0",
     "git: at most this many commits per run, newest first; 0 = all", &s_settings.max_commits},
    {"source", CONFIG_STRING, NULL,
     "git: the records' src; default the origin remote's URL normalized (github.com/acme/widget), "
     "else the repository directory's name",
     &s_settings.source},
    {"cache_size", CONFIG_SIZE, "16M",
     "git: trees kept for the next commits (a commit's old side is mostly the new side of "
     "the commits that follow), one cache for all threads",
     &s_settings.cache_size},
    {"threads", CONFIG_INT, "0",
     "git: threads diffing commits; 0 = 2, or 1 on a single CPU (they read the pack files "
     "through one reader and delta-base cache of collectord's, without libgit2's pack locks)",
     &s_settings.threads},
    {NULL}};

typedef enum { S_BRANCH, S_TAG } s_ref_kind_t;

typedef struct {
    s_ref_kind_t kind;
    char *name; //  short name
    git_oid target;
    bool head;
} s_ref_t;

typedef struct {
    collector_names_t names; //  target: the path's absolute path
    char *path;              //  as given
    char *state_dir;
    char **branches;
    char *since;
    int64_t max_commits;

    size_t threads;

    //  One run
    git_repository *repo;
    gittext_t *text;
    git_oid *tips;
    size_t ntips, tips_cap;
    git_oid *old_tips;
    size_t nold;
    s_ref_t *refs;
    size_t nrefs, refs_cap;
    int64_t since_used;
    bool complete;
    bool flagged; //  this run sent git.unreachable for what old tips alone reach
} s_git_t;

//  ---------------------------------------------------------------------------
//  --since

//  Seconds since the epoch for `text`, relative to `now` for ages.
static int
s_parse_since (const char *text, int64_t now, int64_t *out)
{
    if (!text || !*text)
        return -1;
    char *end;
    if (text[0] == '@') {
        errno = 0;
        long long v = strtoll (text + 1, &end, 10);
        if (errno || end == text + 1 || *end)
            return -1;
        *out = v;
        return 0;
    }
    if (isdigit ((unsigned char) text[0])) {
        errno = 0;
        long long n = strtoll (text, &end, 10);
        if (!errno && end != text && end[0] && !end[1]) {
            int64_t unit = end[0] == 's'   ? 1
                           : end[0] == 'm' ? 60
                           : end[0] == 'h' ? 3600
                           : end[0] == 'd' ? 86400
                           : end[0] == 'w' ? 7 * 86400
                                           : 0;
            if (!unit || n < 0 || n > INT64_MAX / unit / 2)
                return -1;
            *out = now - n * unit;
            return 0;
        }
    }
    //  YYYY-MM-DD[(T| )HH:MM[:SS]][Z|(+|-)HH[:]MM], UTC unless an offset is given
    const char *p = text;
    omni_util_time_t when;
    if (omni_util_iso_time (&p, false, &when) || *p)
        return -1;
    *out = when.secs;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Open and close

static const char *
s_git_error (void)
{
    const git_error *e = git_error_last ();
    return e && e->message ? e->message : "unknown libgit2 error";
}

//  Opens the repository at `path` itself (no search upwards: a directory
//  inside a work tree is not taken for its repository).
static int
s_open_repo (git_repository **repo, const char *path, char *error, size_t size)
{
    int rc = git_repository_open_ext (repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (rc == GIT_ENOTFOUND)
        snprintf (error, size, "not a git repository: %s", path);
    else if (rc)
        snprintf (error, size, "cannot open repository %s: %s", path, s_git_error ());
    return rc ? -1 : 0;
}

//  The ref a --branch name means, as git would read it (main, origin/main,
//  refs/heads/main, v1.0 ...).
static int
s_resolve (git_repository *repo, const char *name, git_reference **ref)
{
    if (git_reference_dwim (ref, repo, name) == 0)
        return 0;
    return git_reference_lookup (ref, repo, name);
}

static void s_close (void **self_p);

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    if (env->nargs != 1) {
        snprintf (error, size, "%s",
                  env->nargs ? "one repository path, please" : "the repository path is missing");
        return NULL;
    }
    const char *path = env->args[0];
    struct stat st;
    if (stat (path, &st) != 0) {
        snprintf (error, size, "cannot open repository %s: %s", path, strerror (errno));
        return NULL;
    }
    if (!S_ISDIR (st.st_mode)) {
        snprintf (error, size, "not a git repository: %s (not a directory)", path);
        return NULL;
    }
    git_libgit2_init ();
    //  No libgit2 object cache: gitdiff keeps the trees the next commits
    //  read (cache_size); blobs are rarely read twice close together, and
    //  libgit2 evicts by iterating its hash table from the start, over the
    //  buckets its last evictions emptied: it cost more than it saved
    //  (docs/performance.md). And, as git does when it reads, trust the
    //  object store rather than hash every object again.
    git_libgit2_opts (GIT_OPT_ENABLE_CACHING, 0);
    git_libgit2_opts (GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0);
    s_git_t *self = calloc (1, sizeof *self);
    assert (self);
    self->text = gittext_new ();
    self->threads = gitpool_threads (s_settings.threads);
    self->path = strdup (path);
    self->names.target = realpath (path, NULL);
    if (!self->names.target)
        self->names.target = strdup (path);
    self->state_dir = strdup (env->state_dir);
    self->max_commits = s_settings.max_commits;
    self->since = s_settings.since ? strdup (s_settings.since) : NULL;
    size_t nbranches = 0;
    while (s_settings.branch && s_settings.branch[nbranches])
        nbranches++;
    self->branches = calloc (nbranches + 1, sizeof (char *));
    for (size_t i = 0; i < nbranches; i++)
        self->branches[i] = strdup (s_settings.branch[i]);
    int64_t since;
    if (self->since && s_parse_since (self->since, time (NULL), &since)) {
        snprintf (error, size,
                  "collectord.since: bad value \"%s\" (expected 2024-01-31, "
                  "2024-01-31T12:00:00Z, @1700000000 or an age like 90d)",
                  self->since);
        s_close ((void **) &self);
        return NULL;
    }
    if (s_settings.threads < 0) {
        snprintf (error, size, "collectord.threads: must be 0 or more");
        s_close ((void **) &self);
        return NULL;
    }
    if (self->max_commits < 0) {
        snprintf (error, size, "collectord.max_commits: must be 0 or more");
        s_close ((void **) &self);
        return NULL;
    }
    git_repository *repo;
    if (s_open_repo (&repo, path, error, size)) {
        s_close ((void **) &self);
        return NULL;
    }
    //  The origin's URL names the project wherever it is cloned; the
    //  directory's name is a guess, said so
    if (s_settings.source && *s_settings.source)
        self->names.src = strdup (s_settings.source);
    else {
        bool from_remote;
        self->names.src = srcname_from_repo (repo, &from_remote);
        if (!from_remote)
            log_info ("git.source_fallback",
                      "repository=%s source=\"%s\" reason=\"no origin remote: the directory's "
                      "name is the source; --source names it\"",
                      path, self->names.src);
    }
    for (size_t i = 0; self->branches[i]; i++) {
        git_reference *ref;
        if (s_resolve (repo, self->branches[i], &ref)) {
            snprintf (error, size, "collectord.branch: no branch or ref \"%s\" in %s",
                      self->branches[i], path);
            git_repository_free (repo);
            s_close ((void **) &self);
            return NULL;
        }
        git_reference_free (ref);
    }
    git_repository_free (repo);
    return self;
}

static void
s_end_run (s_git_t *self)
{
    git_repository_free (self->repo);
    self->repo = NULL;
    for (size_t i = 0; i < self->nrefs; i++)
        free (self->refs[i].name);
    self->nrefs = 0;
}

static void
s_close (void **self_p)
{
    s_git_t *self = (s_git_t *) *self_p;
    if (!self)
        return;
    s_end_run (self);
    gittext_destroy (&self->text);
    for (size_t i = 0; self->branches && self->branches[i]; i++)
        free (self->branches[i]);
    free (self->branches);
    free (self->tips);
    free (self->old_tips);
    free (self->refs);
    free (self->path);
    collector_names_free (&self->names);
    free (self->state_dir);
    free (self->since);
    free (self);
    *self_p = NULL;
    git_libgit2_shutdown ();
}

static void
s_pack_strn (msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str (pk, len);
    msgpack_pack_str_body (pk, s, len);
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_git_t *self = (s_git_t *) handle;
    size_t nbranches = 0;
    while (self->branches[nbranches])
        nbranches++;
    msgpack_pack_map (pk, 3 + (nbranches > 0) + (self->since != NULL));
    omni_record_pack_str (pk, "repository");
    omni_record_pack_str (pk, collector_target (self));
    omni_record_pack_str (pk, "max_commits");
    msgpack_pack_int64 (pk, self->max_commits);
    omni_record_pack_str (pk, "state_dir");
    omni_record_pack_str (pk, self->state_dir);
    if (nbranches) {
        omni_record_pack_str (pk, "branch");
        msgpack_pack_array (pk, nbranches);
        for (size_t i = 0; i < nbranches; i++)
            omni_record_pack_str (pk, self->branches[i]);
    }
    if (self->since) {
        omni_record_pack_str (pk, "since");
        omni_record_pack_str (pk, self->since);
    }
}

//  ---------------------------------------------------------------------------
//  Refs

static void
s_add_tip (s_git_t *self, const git_oid *oid)
{
    for (size_t i = 0; i < self->ntips; i++)
        if (git_oid_equal (&self->tips[i], oid))
            return;
    *omni_array_push (self->tips, self->ntips, self->tips_cap) = *oid;
}

static void
s_add_ref (s_git_t *self, s_ref_kind_t kind, const char *name, const git_oid *target, bool head)
{
    s_ref_t *ref = omni_array_push (self->refs, self->nrefs, self->refs_cap);
    ref->kind = kind;
    ref->name = strdup (name);
    ref->target = *target;
    ref->head = head;
}

//  The commit a ref leads to, if any (tags of trees or blobs lead nowhere).
static bool
s_ref_commit (git_reference *ref, git_oid *oid)
{
    git_object *obj;
    if (git_reference_peel (&obj, ref, GIT_OBJECT_COMMIT) != 0) {
        git_error_clear ();
        return false;
    }
    *oid = *git_object_id (obj);
    git_object_free (obj);
    return true;
}

static bool
s_selected (s_git_t *self, const char *refname)
{
    for (size_t i = 0; self->branches[i]; i++) {
        git_reference *ref;
        if (s_resolve (self->repo, self->branches[i], &ref) == 0) {
            bool same = strcmp (git_reference_name (ref), refname) == 0;
            git_reference_free (ref);
            if (same)
                return true;
        } else
            git_error_clear ();
    }
    return false;
}

//  Finds the tips to walk and the branches and tags to send.
static int
s_read_refs (s_git_t *self, char *error, size_t size)
{
    self->ntips = 0;
    bool all = !self->branches[0];
    //  HEAD: which branch it is on, or a detached commit to walk
    char *head_branch = NULL;
    git_reference *head;
    if (git_reference_lookup (&head, self->repo, "HEAD") == 0) {
        if (git_reference_type (head) == GIT_REFERENCE_SYMBOLIC)
            head_branch = strdup (git_reference_symbolic_target (head));
        else {
            git_oid oid;
            if (all && s_ref_commit (head, &oid))
                s_add_tip (self, &oid);
        }
        git_reference_free (head);
    }
    git_error_clear ();
    git_reference_iterator *iter;
    if (git_reference_iterator_new (&iter, self->repo)) {
        snprintf (error, size, "cannot list refs: %s", s_git_error ());
        free (head_branch);
        return -1;
    }
    git_reference *ref;
    int rc;
    while ((rc = git_reference_next (&ref, iter)) == 0) {
        const char *name = git_reference_name (ref);
        //  Symbolic refs (refs/remotes/origin/HEAD) lead to refs listed anyway
        if (git_reference_type (ref) != GIT_REFERENCE_DIRECT) {
            git_reference_free (ref);
            continue;
        }
        bool branch = strncmp (name, "refs/heads/", 11) == 0;
        bool tag = strncmp (name, "refs/tags/", 10) == 0;
        bool selected = all || s_selected (self, name);
        git_oid oid;
        if (selected && s_ref_commit (ref, &oid))
            s_add_tip (self, &oid);
        if (branch && selected)
            s_add_ref (self, S_BRANCH, name + 11, git_reference_target (ref),
                       head_branch && strcmp (head_branch, name) == 0);
        else if (tag)
            s_add_ref (self, S_TAG, name + 10, git_reference_target (ref), false);
        git_reference_free (ref);
    }
    git_reference_iterator_free (iter);
    free (head_branch);
    if (rc != GIT_ITEROVER) {
        snprintf (error, size, "cannot list refs: %s", s_git_error ());
        return -1;
    }
    git_error_clear ();
    return 0;
}

//  ---------------------------------------------------------------------------
//  State: "since <seconds|none>" then "tip <sha>" lines

static void
s_load_state (s_git_t *self)
{
    self->nold = 0;
    state_t *state = state_new (self->state_dir, "git", self->names.src);
    char error[512];
    if (state_load (state, error, sizeof error)) {
        log_warn ("git.state_unreadable", "error=\"%s\" effect=\"full collection\"", error);
        state_destroy (&state);
        return;
    }
    bool valid = false;
    size_t n = state_size (state);
    free (self->old_tips);
    self->old_tips = calloc (n + 1, sizeof *self->old_tips);
    for (size_t i = 0; i < n; i++) {
        const char *entry = state_entry (state, i);
        if (strncmp (entry, "since ", 6) == 0) {
            //  Commits older than the cutoff of that run were not sent:
            //  its tips stand for their history only from a cutoff as late
            if (strcmp (entry + 6, "none") == 0)
                valid = true;
            else {
                char *end;
                long long old = strtoll (entry + 6, &end, 10);
                valid = !*end && self->since_used != S_NO_SINCE && self->since_used >= old;
            }
        } else if (strncmp (entry, "tip ", 4) == 0 &&
                   git_oid_fromstr (&self->old_tips[self->nold], entry + 4) == 0)
            self->nold++;
    }
    if (!valid && self->nold) {
        log_info ("git.state_ignored", "path=%s reason=\"an earlier --since cutoff\"",
                  state_path (state));
        self->nold = 0;
    }
    state_destroy (&state);
}

static int
s_commit (void *handle, char *error, size_t size)
{
    s_git_t *self = (s_git_t *) handle;
    if (!self->complete) {
        log_info ("git.state_kept", "reason=\"max_commits cut this run short\"");
        s_end_run (self);
        return 0;
    }
    state_t *state = state_new (self->state_dir, "git", self->names.src);
    char line[64];
    if (self->since_used == S_NO_SINCE)
        state_add (state, "since none");
    else {
        snprintf (line, sizeof line, "since %" PRId64, self->since_used);
        state_add (state, line);
    }
    char hex[GIT_OID_HEXSZ + 1];
    for (size_t i = 0; i < self->ntips; i++) {
        snprintf (line, sizeof line, "tip %s", git_oid_tostr (hex, sizeof hex, &self->tips[i]));
        state_add (state, line);
    }
    //  An earlier tip still stands for history the current tips do not
    //  reach (a branch not walked this time, or deleted); one they reach
    //  adds nothing
    for (size_t i = 0; i < self->nold; i++) {
        bool keep = true;
        for (size_t t = 0; keep && t < self->ntips; t++)
            keep = !git_oid_equal (&self->old_tips[i], &self->tips[t]);
        //  Every ref was walked and what this tip alone reached was flagged
        //  unreachable: it stands for nothing any more
        if (keep && self->flagged)
            keep = false;
        if (keep && self->repo && self->ntips) {
            int reached = git_graph_reachable_from_any (self->repo, &self->old_tips[i], self->tips,
                                                        self->ntips);
            keep = reached == 0;
            git_error_clear ();
        }
        if (keep) {
            snprintf (line, sizeof line, "tip %s",
                      git_oid_tostr (hex, sizeof hex, &self->old_tips[i]));
            state_add (state, line);
        }
    }
    int rc = state_save (state, error, size);
    if (rc == 0)
        log_debug ("git.state_saved", "path=%s tips=%zu", state_path (state),
                   state_size (state) - 1);
    state_destroy (&state);
    s_end_run (self);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Records

static void
s_pack_raw (msgpack_packer *pk, const gittext_str_t *texts, const char *const *names, size_t n)
{
    size_t changed = 0;
    for (size_t i = 0; i < n; i++)
        changed += texts[i].changed;
    omni_record_pack_str (pk, "raw");
    msgpack_pack_map (pk, changed);
    for (size_t i = 0; i < n; i++)
        if (texts[i].changed) {
            omni_record_pack_str (pk, names[i]);
            msgpack_pack_bin (pk, texts[i].orig_len);
            msgpack_pack_bin_body (pk, texts[i].orig, texts[i].orig_len);
        }
}

static int
s_send_ref (s_git_t *self, session_t *session, const s_ref_t *ref, int64_t now)
{
    char hex[GIT_OID_HEXSZ + 1];
    gittext_str_t name = gittext_get (self->text, 0, NULL, ref->name, strlen (ref->name));
    if (ref->kind == S_BRANCH) {
        msgpack_packer *pk = session_record (session, "git.branch", now);
        msgpack_pack_map (pk, 3 + name.changed);
        omni_record_pack_str (pk, "name");
        s_pack_strn (pk, name.ptr, name.len);
        omni_record_pack_str (pk, "target");
        omni_record_pack_str (pk, git_oid_tostr (hex, sizeof hex, &ref->target));
        omni_record_pack_str (pk, "head");
        if (ref->head)
            msgpack_pack_true (pk);
        else
            msgpack_pack_false (pk);
        if (name.changed) {
            static const char *const names[] = {"name"};
            s_pack_raw (pk, &name, names, 1);
        }
        return session_send (session);
    }
    //  A tag: annotated when its ref names a tag object
    git_object *obj = NULL, *peeled = NULL;
    git_tag *tag = NULL;
    git_oid target = ref->target;
    if (git_object_lookup (&obj, self->repo, &ref->target, GIT_OBJECT_ANY) == 0) {
        if (git_object_type (obj) == GIT_OBJECT_TAG) {
            tag = (git_tag *) obj;
            if (git_tag_peel (&peeled, tag) == 0)
                target = *git_object_id (peeled);
        }
    }
    git_error_clear ();
    const git_signature *tagger = tag ? git_tag_tagger (tag) : NULL;
    const char *message = tag ? git_tag_message (tag) : NULL;
    gittext_str_t texts[4] = {name};
    static const char *const names[] = {"name", "tagger_name", "tagger_email", "message"};
    size_t ntexts = 1;
    if (tagger) {
        texts[1] = gittext_get (self->text, 1, NULL, tagger->name, strlen (tagger->name));
        texts[2] = gittext_get (self->text, 2, NULL, tagger->email, strlen (tagger->email));
        ntexts = 3;
    }
    if (message) {
        texts[3] = gittext_get (self->text, 3, NULL, message, strlen (message));
        ntexts = 4;
    }
    bool any_raw = false;
    for (size_t i = 0; i < ntexts; i++)
        any_raw |= texts[i].changed;
    msgpack_packer *pk = session_record (session, "git.tag", now);
    msgpack_pack_map (pk, 3 + (tagger ? 4 : 0) + (message != NULL) + any_raw);
    omni_record_pack_str (pk, "name");
    s_pack_strn (pk, name.ptr, name.len);
    omni_record_pack_str (pk, "target");
    omni_record_pack_str (pk, git_oid_tostr (hex, sizeof hex, &target));
    omni_record_pack_str (pk, "annotated");
    if (tag)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    if (tagger) {
        omni_record_pack_str (pk, "tagger_name");
        s_pack_strn (pk, texts[1].ptr, texts[1].len);
        omni_record_pack_str (pk, "tagger_email");
        s_pack_strn (pk, texts[2].ptr, texts[2].len);
        omni_record_pack_str (pk, "tagger_time");
        msgpack_pack_int64 (pk, tagger->when.time);
        omni_record_pack_str (pk, "tagger_tz");
        msgpack_pack_int (pk, tagger->when.offset);
    }
    if (message) {
        omni_record_pack_str (pk, "message");
        s_pack_strn (pk, texts[3].ptr, texts[3].len);
    }
    if (any_raw)
        s_pack_raw (pk, texts, names, ntexts);
    git_object_free (peeled);
    git_object_free (obj);
    return session_send (session);
}

//  ---------------------------------------------------------------------------
//  A run

//  Commits the last complete run reached and no ref reaches now (amended,
//  rebased, a branch force-moved or deleted): walked from the old tips,
//  hiding the current ones, so the cost is the abandoned history only. Only
//  when every ref is walked (with --branch, a branch left out is not gone)
//  and the repository is not shallow. An old tip that was garbage collected
//  cannot be walked: what it alone reached stays as it was.
static int
s_send_unreachable (s_git_t *self, session_t *session, int64_t now, uint64_t *count, char *error,
                    size_t size)
{
    *count = 0;
    self->flagged = false;
    if (self->branches[0] || !self->nold || git_repository_is_shallow (self->repo))
        return 0;
    git_revwalk *walk;
    if (git_revwalk_new (&walk, self->repo)) {
        snprintf (error, size, "revwalk: %s", s_git_error ());
        return -1;
    }
    size_t pushed = 0;
    for (size_t i = 0; i < self->nold; i++)
        if (git_revwalk_push (walk, &self->old_tips[i]) == 0)
            pushed++;
    git_error_clear ();
    for (size_t i = 0; i < self->ntips; i++)
        git_revwalk_hide (walk, &self->tips[i]);
    git_error_clear ();
    git_oid oid;
    char hex[GIT_OID_HEXSZ + 1];
    int rc = 0;
    while (pushed && rc == 0 && git_revwalk_next (&oid, walk) == 0) {
        git_commit *commit;
        //  Older than --since: never sent
        if (self->since_used != S_NO_SINCE && git_commit_lookup (&commit, self->repo, &oid) == 0) {
            bool older = git_commit_time (commit) < self->since_used;
            git_commit_free (commit);
            if (older)
                continue;
        }
        msgpack_packer *pk = session_record (session, "git.unreachable", now);
        msgpack_pack_map (pk, 1);
        omni_record_pack_str (pk, "sha");
        omni_record_pack_str (pk, git_oid_tostr (hex, sizeof hex, &oid));
        rc = session_send (session);
        if (rc < 0)
            collector_broken (session, error, size);
        else if (rc == 0)
            (*count)++;
        rc = rc < 0 ? -1 : 0;
    }
    git_error_clear ();
    git_revwalk_free (walk);
    self->flagged = rc == 0 && pushed == self->nold;
    return rc;
}

//  Where the pool takes the commits to send from, newest first: libgit2's
//  revwalk, read as the pool needs them (a list of the whole history
//  would grow with it), or a list made beforehand for a shallow clone.
typedef struct {
    git_revwalk *walk;
    git_oid *oids; //  shallow clone
    size_t count, next;
    size_t limit;  //  max_commits without --since; 0 = none
    size_t walked; //  given to the pool
    bool truncated;
    char error[256]; //  a revwalk error, empty if none
} s_source_t;

static bool
s_source_pull (s_source_t *source, git_oid *oid)
{
    if (!source->walk) {
        if (source->next == source->count)
            return false;
        *oid = source->oids[source->next++];
        return true;
    }
    int rc = git_revwalk_next (oid, source->walk);
    if (rc && rc != GIT_ITEROVER)
        snprintf (source->error, sizeof source->error, "revwalk: %s", s_git_error ());
    git_error_clear ();
    return rc == 0;
}

static bool
s_source_next (void *arg, git_oid *oid)
{
    s_source_t *source = (s_source_t *) arg;
    if (source->limit && source->walked == source->limit) {
        //  The newest `limit`; one more says whether any was left out
        git_oid more;
        source->truncated = s_source_pull (source, &more);
        return false;
    }
    if (!s_source_pull (source, oid))
        return false;
    source->walked++;
    return true;
}

//  Every commit to consider, newest first: reachable from the tips, not
//  from the tips of the last complete run.
static int
s_walk (s_git_t *self, s_source_t *source, char *error, size_t size)
{
    git_revwalk *walk;
    if (git_revwalk_new (&walk, self->repo)) {
        snprintf (error, size, "revwalk: %s", s_git_error ());
        return -1;
    }
    git_revwalk_sorting (walk, GIT_SORT_TIME);
    char hex[GIT_OID_HEXSZ + 1];
    for (size_t i = 0; i < self->ntips; i++)
        if (git_revwalk_push (walk, &self->tips[i])) {
            snprintf (error, size, "cannot walk from %s: %s",
                      git_oid_tostr (hex, sizeof hex, &self->tips[i]), s_git_error ());
            git_revwalk_free (walk);
            return -1;
        }
    size_t hidden = 0;
    for (size_t i = 0; i < self->nold; i++) {
        //  A tip that is gone (gc after a forced push) hides nothing
        if (git_revwalk_hide (walk, &self->old_tips[i]) == 0)
            hidden++;
        git_error_clear ();
    }
    source->walk = walk;
    log_debug ("git.walk", "tips=%zu hidden=%zu", self->ntips, hidden);
    return 0;
}

//  A shallow clone: libgit2 (1.5) cannot walk past commits whose parents
//  are missing, so commits are walked here, without following the parents
//  of the boundary commits listed in <gitdir>/shallow (git's own rule) or
//  any parent that is not there. Shallow histories are short by design:
//  a set of visited commits and a sort by commit time are enough.
typedef struct {
    git_oid oid;
    int64_t time;
} s_dated_t;

static int
s_dated_cmp (const void *a, const void *b)
{
    const s_dated_t *x = (const s_dated_t *) a, *y = (const s_dated_t *) b;
    if (x->time != y->time)
        return x->time > y->time ? -1 : 1;
    return git_oid_cmp (&x->oid, &y->oid);
}

//  Marks every commit reachable from `from` in `seen`; appends the ones not
//  seen before to `out` when it is not NULL.
static int
s_mark (s_git_t *self, zhash_t *seen, zhash_t *boundary, const git_oid *from, s_dated_t **out,
        size_t *count, size_t *cap)
{
    size_t stack_cap = 0, depth = 0;
    git_oid *stack = NULL;
    *omni_array_push (stack, depth, stack_cap) = *from;
    char hex[GIT_OID_HEXSZ + 1];
    int rc = 0;
    while (depth && rc == 0) {
        git_oid oid = stack[--depth];
        git_oid_tostr (hex, sizeof hex, &oid);
        if (zhash_lookup (seen, hex))
            continue;
        git_commit *commit;
        if (git_commit_lookup (&commit, self->repo, &oid)) {
            git_error_clear ();
            continue; //  not in this clone
        }
        zhash_insert (seen, hex, (void *) 1);
        if (out) {
            s_dated_t *dated = omni_array_push (*out, *count, *cap);
            dated->oid = oid;
            dated->time = git_commit_time (commit);
        }
        if (!zhash_lookup (boundary, hex))
            for (unsigned i = 0; i < git_commit_parentcount (commit); i++) {
                *omni_array_push (stack, depth, stack_cap) = *git_commit_parent_id (commit, i);
            }
        git_commit_free (commit);
    }
    free (stack);
    return rc;
}

static int
s_walk_shallow (s_git_t *self, s_source_t *source, char *error, size_t size)
{
    (void) error;
    (void) size;
    zhash_t *boundary = zhash_new (), *seen = zhash_new ();
    char *path;
    assert (asprintf (&path, "%s/shallow", git_repository_commondir (self->repo)) > 0);
    FILE *file = fopen (path, "r");
    free (path);
    char line[128];
    while (file && fgets (line, sizeof line, file)) {
        line[strcspn (line, "\r\n")] = 0;
        if (*line)
            zhash_insert (boundary, line, (void *) 1);
    }
    if (file)
        fclose (file);
    //  What the last complete run covered, then what is new
    for (size_t i = 0; i < self->nold; i++)
        s_mark (self, seen, boundary, &self->old_tips[i], NULL, NULL, NULL);
    s_dated_t *found = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < self->ntips; i++)
        s_mark (self, seen, boundary, &self->tips[i], &found, &n, &cap);
    qsort (found, n, sizeof *found, s_dated_cmp);
    source->oids = malloc ((n ? n : 1) * sizeof *source->oids);
    assert (source->oids);
    for (size_t i = 0; i < n; i++)
        source->oids[i] = found[i].oid;
    source->count = n;
    free (found);
    zhash_destroy (&boundary);
    zhash_destroy (&seen);
    log_debug ("git.walk", "shallow=yes tips=%zu commits=%zu", self->ntips, n);
    return 0;
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_git_t *self = (s_git_t *) handle;
    s_end_run (self);
    self->complete = false;
    self->flagged = false;
    if (s_open_repo (&self->repo, self->path, error, size))
        return -1;
    self->since_used = S_NO_SINCE;
    if (self->since && s_parse_since (self->since, time (NULL), &self->since_used)) {
        snprintf (error, size, "bad since value \"%s\"", self->since);
        return -1;
    }
    s_load_state (self);
    if (s_read_refs (self, error, size))
        return -1;
    s_source_t source = {0};
    bool shallow = git_repository_is_shallow (self->repo);
    if (shallow ? s_walk_shallow (self, &source, error, size) : s_walk (self, &source, error, size))
        return -1;
    //  The newest max_commits, without diffing the others (with --since,
    //  the older ones do not count: cut below, as they are sent)
    if (self->max_commits && self->since_used == S_NO_SINCE)
        source.limit = (size_t) self->max_commits;
    bool truncated = false;
    gitpool_t *pool = gitpool_new (self->path, self->threads, self->since_used, error, size);
    if (!pool) {
        git_revwalk_free (source.walk);
        free (source.oids);
        return -1;
    }
    gitpool_set_tree_cache (pool, (size_t) s_settings.cache_size);
    //  The walk reads every commit: through the same pack reader
    gitpool_attach_packs (pool, self->repo);
    gitpool_start (pool, s_source_next, &source);

    progress_t *progress = session_progress (session);
    //  The walk is read as commits are sent: the total is known beforehand
    //  only for a shallow clone (counting would walk the history twice)
    progress_start (progress, "git commits", shallow ? source.count : 0);
    uint64_t sent = 0, older = 0, skipped = 0, done = 0;
    int rc = 0;
    char hex[GIT_OID_HEXSZ + 1];
    const gitpool_result_t *r;
    while (rc == 0 && (r = gitpool_next (pool))) {
        done++;
        if (session_interrupted (session)) {
            snprintf (error, size, "interrupted");
            rc = -1;
        } else if (r->status == GITPOOL_FAILED) {
            snprintf (error, size, "%s", r->error);
            rc = -1;
        } else if (r->status == GITPOOL_OLDER)
            older++;
        else if (r->status == GITPOOL_UNREADABLE) {
            //  e.g. a malformed signature libgit2 refuses to parse
            log_error ("git.commit_unreadable", "sha=%s error=\"%s\"",
                       git_oid_tostr (hex, sizeof hex, r->oid), r->error);
            skipped++;
        } else if (self->max_commits && sent == (uint64_t) self->max_commits) {
            truncated = true;
            break;
        } else {
            if (r->trimmed)
                log_warn ("git.commit_trimmed", "sha=%s reason=\"over the record size limit\"",
                          git_oid_tostr (hex, sizeof hex, r->oid));
            msgpack_packer *pk = session_record (session, "git.commit", r->ts);
            //  The body is packed already: append its bytes
            pk->callback (pk->data, r->body, r->body_len);
            int sent_rc = session_send (session);
            if (sent_rc > 0) {
                log_error ("git.commit_unsendable", "sha=%s reason=\"%s\"",
                           git_oid_tostr (hex, sizeof hex, r->oid), session_detail (session));
                skipped++;
            } else if (sent_rc < 0) {
                rc = collector_broken (session, error, size);
            } else
                sent++;
        }
        progress_update (progress, done);
    }
    gitpack_stats_t packs;
    if (gitpool_pack_stats (pool, &packs))
        log_debug ("git.packs",
                   "reads=%" PRIu64 " inflated=%" PRIu64 " cache_hits=%" PRIu64 " passed=%" PRIu64,
                   packs.reads, packs.inflated, packs.cache_hits, packs.passed);
    //  The workers are joined: the walk is the main thread's again
    gitpool_destroy (&pool);
    git_revwalk_free (source.walk);
    free (source.oids);
    progress_finish (progress);
    if (rc == 0 && source.error[0]) {
        snprintf (error, size, "%s", source.error);
        rc = -1;
    }
    if (rc)
        return rc;
    truncated |= source.truncated;

    int64_t now = omni_util_now_ns ();
    for (size_t i = 0; i < self->nrefs; i++) {
        int ref_rc = s_send_ref (self, session, &self->refs[i], now);
        if (ref_rc > 0)
            log_error ("git.ref_unsendable", "name=\"%s\" reason=\"%s\"", self->refs[i].name,
                       session_detail (session));
        else if (ref_rc < 0) {
            return collector_broken (session, error, size);
        }
    }
    uint64_t unreachable;
    if (s_send_unreachable (self, session, now, &unreachable, error, size))
        return -1;
    self->complete = !truncated;
    log_info ("git.collected",
              "commits=%" PRIu64 " walked=%zu older_than_since=%" PRIu64 " skipped=%" PRIu64
              " refs=%zu hidden_tips=%zu unreachable=%" PRIu64 " truncated=%s",
              sent, source.walked, older, skipped, self->nrefs, self->nold, unreachable,
              truncated ? "yes" : "no");
    return 0;
}

const collector_t git_collector = {
    "git",         "REPO_PATH",      "git history: commits with numstat, branches, tags (libgit2)",
    false,         s_options,        s_open,
    s_close,       collector_source, collector_target,
    s_pack_config, s_collect,        s_commit,
    true,
};

//  ---------------------------------------------------------------------------
//  Self-test

#define S_GIT_ENV                                                                                  \
    "GIT_AUTHOR_NAME=Ann GIT_AUTHOR_EMAIL=ann@x GIT_COMMITTER_NAME=Cy GIT_COMMITTER_EMAIL=cy@x"

static void
s_sh (const char *dir, const char *script)
{
    selftest_sh (dir, S_GIT_ENV, script);
}

//  The first line `git -C dir <args>` prints.
static char *
s_git_line (const char *dir, const char *args)
{
    char *cmd, line[4096] = "";
    assert (asprintf (&cmd, "git -C '%s' %s", dir, args) > 0);
    FILE *out = popen (cmd, "r");
    assert (out);
    if (!fgets (line, sizeof line, out))
        line[0] = 0;
    pclose (out);
    free (cmd);
    line[strcspn (line, "\n")] = 0;
    return strdup (line);
}

//  One run of the collector against the fake ingestd; returns the number
//  of git.commit records it got.
static size_t
s_run (void *handle, session_t *session, testpeer_t *fake)
{
    testpeer_clear (fake);
    char error[512] = "";
    collector_test_begin (session, &git_collector, handle);
    int rc = s_collect (handle, session, error, sizeof error);
    if (rc)
        fprintf (stderr, "collect: %s\n", error);
    assert (rc == 0);
    assert (session_end (session, "ok", NULL) == 0);
    assert (s_commit (handle, error, sizeof error) == 0);
    return testpeer_count_kind (fake, "git.commit");
}

//  The body of the git.commit for `sha` among the records received.
static const msgpack_object *
s_find_commit (testpeer_t *fake, msgpack_zone *zone, const char *sha)
{
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, zone);
        omni_record_str_t s;
        if (omni_record_str_eq (rec.kind, "git.commit") &&
            omni_record_field_str (rec.body, "sha", &s) && omni_record_str_eq (s, sha))
            return rec.body;
    }
    return NULL;
}

void
git_collector_test (bool verbose)
{
    (void) verbose;
    assert (collector_lookup ("git") == &git_collector);
    //  --since forms
    int64_t t;
    assert (s_parse_since ("2024-01-31", 0, &t) == 0 && t == 1706659200);
    assert (s_parse_since ("2024-01-31T01:00:00+01:00", 0, &t) == 0 && t == 1706659200);
    assert (s_parse_since ("2024-01-31 00:00Z", 0, &t) == 0 && t == 1706659200);
    assert (s_parse_since ("@1700000000", 0, &t) == 0 && t == 1700000000);
    assert (s_parse_since ("2d", 1000000, &t) == 0 && t == 1000000 - 2 * 86400);
    assert (s_parse_since ("yesterday", 0, &t) == -1);
    assert (s_parse_since ("2024-13-01", 0, &t) == -1);
    assert (s_parse_since ("2024-01-31T", 0, &t) == -1);

    char *dir = selftest_tmpdir ("gitcol");
    char *repo, *state_dir, error[512];
    assert (asprintf (&repo, "%s/repo", dir) > 0 && asprintf (&state_dir, "%s/state", dir) > 0);
    char *script;
    //  `git commit` re-encodes bad bytes as Latin-1: the commit with a
    //  non-UTF-8 author and message is written by hand
    assert (asprintf (&script, "mkdir repo && cd repo && git init -q -b main . && "
                               "echo a > a && git add a && git commit -q -m root && "
                               "echo b >> a && printf '\\000' > bin && git add -A && "
                               "git commit -q -m bin && "
                               "printf 'tree %%s\\nparent %%s\\nauthor J\\374rgen <j@x> "
                               "1700000000 +0130\\ncommitter Cy <cy@x> 1700000100 -0700\\n\\n"
                               "caf\\351\\n\\nbody\\n' $(git rev-parse HEAD^{tree} HEAD) "
                               "| git hash-object -t commit -w --stdin > ../crafted && "
                               "git reset -q --hard $(cat ../crafted) && "
                               "git tag light && git tag -a -m 'an annotation' v1 && "
                               "git checkout -q -b side HEAD~1 && echo s > s && git add s && "
                               "git commit -q -m side && git checkout -q main && "
                               "git merge -q --no-ff -m merge side && "
                               "git -c i18n.commitEncoding=ISO-8859-1 commit -q --allow-empty "
                               "-m \"$(printf 'na\\357ve')\"") > 0);
    s_sh (dir, script);
    free (script);

    //  Not a repository, a missing path: refused at open
    static char *no_branches[] = {NULL};
    s_settings.branch = no_branches;
    s_settings.since = NULL;
    s_settings.max_commits = 0;
    s_settings.source = NULL;
    s_settings.cache_size = 64 << 20;
    const char *args[] = {dir};
    collector_env_t env = {args, 1, state_dir, "test", 0, true};
    assert (s_open (&env, error, sizeof error) == NULL);
    assert (strstr (error, "not a git repository"));
    args[0] = "/nonexistent/omni";
    assert (s_open (&env, error, sizeof error) == NULL);
    assert (strstr (error, "/nonexistent/omni"));
    env.nargs = 0;
    assert (s_open (&env, error, sizeof error) == NULL);

    args[0] = repo;
    env.nargs = 1;
    void *handle = s_open (&env, error, sizeof error);
    assert (handle);
    //  No origin: the directory's name
    assert (strcmp (collector_source (handle), "repo") == 0);

    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("git", testpeer_endpoint (fake), 3);
    assert (s_run (handle, session, fake) == 6);
    assert (testpeer_count_kind (fake, "git.branch") == 2);
    assert (testpeer_count_kind (fake, "git.tag") == 2);

    msgpack_zone zone;
    msgpack_zone_init (&zone, 8192);
    //  The commit with a Latin-1 author name: U+FFFD sent, the bytes in raw
    char *sha = s_git_line (repo, "rev-parse v1^{commit}");
    const msgpack_object *body = s_find_commit (fake, &zone, sha);
    assert (body);
    omni_record_str_t s;
    assert (omni_record_field_str (body, "author_name", &s) &&
            omni_record_str_eq (s, "J\xEF\xBF\xBDrgen"));
    assert (omni_record_field_str (body, "message", &s) &&
            omni_record_str_eq (s, "caf\xEF\xBF\xBD\n\nbody\n"));
    const msgpack_object *raw = omni_record_field (body, "raw");
    const msgpack_object *orig = raw ? omni_record_field (raw, "author_name") : NULL;
    assert (orig && orig->type == MSGPACK_OBJECT_BIN && orig->via.bin.size == 6 &&
            memcmp (orig->via.bin.ptr, "J\xFCrgen", 6) == 0);
    orig = omni_record_field (raw, "message");
    assert (orig && orig->via.bin.size == 11 &&
            memcmp (orig->via.bin.ptr, "caf\351\n\nbody\n", 11) == 0);
    assert (!omni_record_field (raw, "author_email"));
    int64_t n;
    assert (omni_record_field_int (body, "author_time", &n) && n == 1700000000);
    assert (omni_record_field_int (body, "author_tz", &n) && n == 90);
    assert (omni_record_field_int (body, "committer_tz", &n) && n == -420);
    assert (omni_record_field_int (body, "files_changed", &n) && n == 0);
    free (sha);
    msgpack_zone_clear (&zone);

    //  The commit before: two files, one binary
    sha = s_git_line (repo, "rev-parse v1~1");
    body = s_find_commit (fake, &zone, sha);
    assert (omni_record_field_int (body, "files_changed", &n) && n == 2);
    assert (omni_record_field_int (body, "insertions", &n) && n == 1);
    const msgpack_object *files = omni_record_field (body, "files");
    assert (files && files->type == MSGPACK_OBJECT_ARRAY && files->via.array.size == 2);
    bool binary;
    assert (omni_record_field_str (&files->via.array.ptr[1], "path", &s) &&
            omni_record_str_eq (s, "bin"));
    assert (omni_record_field_bool (&files->via.array.ptr[1], "binary", &binary) && binary);
    assert (!omni_record_field (body, "raw"));
    char *line = s_git_line (repo, "log -1 --format=%at/%ct v1~1");
    int64_t at, ct;
    assert (omni_record_field_int (body, "author_time", &at) &&
            omni_record_field_int (body, "committer_time", &ct));
    char expect[64];
    snprintf (expect, sizeof expect, "%" PRId64 "/%" PRId64, at, ct);
    assert (strcmp (line, expect) == 0);
    free (line);
    free (sha);
    msgpack_zone_clear (&zone);

    //  The ISO-8859-1 commit: converted as git log converts it, raw kept
    sha = s_git_line (repo, "rev-parse main");
    body = s_find_commit (fake, &zone, sha);
    assert (body && omni_record_field_str (body, "message", &s));
    assert (omni_record_str_eq (s, "na\xC3\xAFve\n"));
    raw = omni_record_field (body, "raw");
    assert (raw && omni_record_field (raw, "message") && !omni_record_field (raw, "author_name"));
    const msgpack_object *parents = omni_record_field (body, "parents");
    assert (parents && parents->via.array.size == 1);
    free (sha);
    msgpack_zone_clear (&zone);

    //  Second run: nothing new; then one new commit, exactly one record
    assert (s_run (handle, session, fake) == 0);
    assert (testpeer_count_kind (fake, "git.branch") == 2);
    s_sh (repo, "git commit -q --allow-empty -m next");
    assert (s_run (handle, session, fake) == 1);
    assert (s_run (handle, session, fake) == 0);
    //  Another branch moves: only its new commit
    s_sh (repo, "git checkout -q side && git commit -q --allow-empty -m more && "
                "git checkout -q main");
    assert (s_run (handle, session, fake) == 1);
    assert (testpeer_count_kind (fake, "git.unreachable") == 0);
    //  Amended: the new commit, and the old one flagged unreachable, once
    char *before = s_git_line (repo, "rev-parse side");
    s_sh (repo, "git checkout -q side && git commit -q --amend --allow-empty -m amended && "
                "git checkout -q main");
    assert (s_run (handle, session, fake) == 1);
    assert (testpeer_count_kind (fake, "git.unreachable") == 1);
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, &zone);
        omni_record_str_t sha_field;
        if (omni_record_str_eq (rec.kind, "git.unreachable"))
            assert (omni_record_field_str (rec.body, "sha", &sha_field) &&
                    omni_record_str_eq (sha_field, before));
    }
    msgpack_zone_clear (&zone);
    free (before);
    assert (s_run (handle, session, fake) == 0);
    assert (testpeer_count_kind (fake, "git.unreachable") == 0);
    s_close (&handle);

    //  max_commits cuts a run short: the state does not move
    s_settings.max_commits = 2;
    s_settings.source = "other-source";
    handle = s_open (&env, error, sizeof error);
    assert (handle && strcmp (collector_source (handle), "other-source") == 0);
    assert (s_run (handle, session, fake) == 2);
    assert (s_run (handle, session, fake) == 2);
    s_close (&handle);

    //  --branch side: only the commits of side, and the one branch
    static char *side[] = {"side", NULL};
    s_settings.branch = side;
    s_settings.max_commits = 0;
    s_settings.source = "side-only";
    handle = s_open (&env, error, sizeof error);
    assert (handle);
    assert (s_run (handle, session, fake) == 4);
    assert (testpeer_count_kind (fake, "git.branch") == 1);
    s_close (&handle);
    static char *bogus[] = {"no-such-branch", NULL};
    s_settings.branch = bogus;
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "no-such-branch"));
    s_settings.branch = no_branches;

    //  A detached HEAD on a commit no ref reaches is walked too
    s_settings.source = "detached";
    s_sh (repo, "git checkout -q --detach && git commit -q --allow-empty -m floating");
    handle = s_open (&env, error, sizeof error);
    assert (s_run (handle, session, fake) == 9);
    s_close (&handle);

    msgpack_zone_destroy (&zone);
    session_destroy (&session);
    testpeer_destroy (&fake);
    selftest_rmtree (dir);
    free (dir);
    free (repo);
    free (state_dir);
}
