/*  gitpool: git.commit bodies made on worker threads, taken in order.

    The ring holds GITPOOL_AHEAD results; the result of commit i lives in
    slot i % GITPOOL_AHEAD. A worker takes a chunk of S_CHUNK consecutive
    commits only when all of its slots are free, i.e. when the caller is
    done with the result that used them before. It draws the chunk's
    commits from the source then, under the lock: the history is never
    listed whole, so memory does not grow with it.

    A body is at most S_RECORD_ROOM bytes so that the record fits ingestd's
    4 MiB limit: a commit touching so many files that it would not fit keeps
    exact totals but lists only the files that fit (files_truncated: true),
    and a message over 1 MiB is cut (message_truncated: true).              */
#include "collectord/gitpool.h"
#include "proto/record.h"
#include "collectord/gitdiff.h"
#include "collectord/gitpack.h"
#include "collectord/gittext.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_CHUNK       32
#define GITPOOL_AHEAD 512
#define S_RECORD_ROOM (4 * 1024 * 1024 - 16 * 1024)
#define S_BODY_BUDGET (3 * 1024 * 1024)
#define S_MESSAGE_MAX (1024 * 1024)
//  A slot's buffer over this is freed when the slot is used again: one
//  large commit per slot would otherwise keep GITPOOL_AHEAD large buffers
#define S_BODY_KEEP (64 * 1024)

typedef struct {
    gitpool_result_t result;
    git_oid oid;
    msgpack_sbuffer body;
    char error[512];
    bool ready;
} s_slot_t;

typedef struct {
    gitpool_t *pool;
    pthread_t thread;
    bool running;
    git_repository *repo;
    gitdiff_t *diff;
    gittext_t *text;
    git_mailmap *mailmap; //  the repository's .mailmap (empty without one)
} s_worker_t;

struct _gitpool_t {
    s_worker_t *workers;
    gitpack_t *packs; //  the pack files, read by all the workers' handles
    size_t nworkers;
    int64_t since;
    gitpool_source_fn *source;
    void *source_arg;
    size_t count; //  SIZE_MAX until the source ended
    s_slot_t *ring;
    size_t next_chunk; //  the next chunk to hand out
    size_t taken;      //  results returned to the caller
    atomic_bool stop;
    pthread_mutex_t lock;
    pthread_cond_t work; //  slots were freed, or stop
    pthread_cond_t done; //  a result is ready
};

size_t
gitpool_threads (int64_t configured)
{
    if (configured > 0)
        return configured > 64 ? 64 : (size_t) configured;
    //  Measured (bench/git_collector.py, 2 CPUs): a second thread brings the
    //  wall time from 1.5x to 1.2x git log's, for 25 % more CPU
    long cpus = sysconf (_SC_NPROCESSORS_ONLN);
    return cpus >= 2 ? 2 : 1;
}

gitpool_t *
gitpool_new (const char *path, size_t threads, int64_t since, char *error, size_t error_size)
{
    gitpool_t *self = calloc (1, sizeof *self);
    assert (self);
    self->since = since;
    self->nworkers = threads ? threads : 1;
    self->workers = calloc (self->nworkers, sizeof *self->workers);
    self->ring = calloc (GITPOOL_AHEAD, sizeof *self->ring);
    assert (self->workers && self->ring);
    for (size_t i = 0; i < GITPOOL_AHEAD; i++)
        msgpack_sbuffer_init (&self->ring[i].body);
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->work, NULL);
    pthread_cond_init (&self->done, NULL);
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        w->pool = self;
        if (git_repository_open_ext (&w->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL)) {
            const git_error *e = git_error_last ();
            snprintf (error, error_size, "cannot open repository %s: %s", path,
                      e && e->message ? e->message : "?");
            gitpool_destroy (&self);
            return NULL;
        }
        //  One pack reader and delta-base cache for all the threads
        if (i == 0)
            self->packs = gitpack_new (w->repo, GITPACK_CACHE);
        if (self->packs && gitpack_attach (self->packs, w->repo))
            git_error_clear (); //  libgit2 reads the packs itself
        w->diff = gitdiff_new (w->repo);
        //  One tree cache: the threads take turns at runs of commits
        if (i > 0)
            gitdiff_share_trees (w->diff, self->workers[0].diff);
        w->text = gittext_new ();
        //  Read where git reads it: .mailmap in the work tree (HEAD's in a
        //  bare repository), mailmap.file, mailmap.blob
        if (git_mailmap_from_repository (&w->mailmap, w->repo)) {
            git_error_clear ();
            w->mailmap = NULL;
        }
    }
    return self;
}

void
gitpool_set_tree_cache (gitpool_t *self, size_t bytes)
{
    gitdiff_set_tree_cache (self->workers[0].diff, bytes);
}

void
gitpool_attach_packs (gitpool_t *self, git_repository *repo)
{
    if (self->packs && gitpack_attach (self->packs, repo))
        git_error_clear ();
}

bool
gitpool_pack_stats (gitpool_t *self, gitpack_stats_t *stats)
{
    if (!self->packs)
        return false;
    gitpack_stats (self->packs, stats);
    return true;
}

void
gitpool_destroy (gitpool_t **self_p)
{
    gitpool_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    atomic_store (&self->stop, true);
    pthread_cond_broadcast (&self->work);
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        if (w->running)
            pthread_join (w->thread, NULL);
        gitdiff_destroy (&w->diff);
        git_mailmap_free (w->mailmap);
        gittext_destroy (&w->text);
        git_repository_free (w->repo);
    }
    gitpack_destroy (&self->packs);
    for (size_t i = 0; i < GITPOOL_AHEAD; i++)
        msgpack_sbuffer_destroy (&self->ring[i].body);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->work);
    pthread_cond_destroy (&self->done);
    free (self->ring);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

//  ---------------------------------------------------------------------------
//  One commit

static void
s_pack_text (msgpack_packer *pk, gittext_str_t t)
{
    msgpack_pack_str (pk, t.len);
    msgpack_pack_str_body (pk, t.ptr, t.len);
}

//  A signature's four fields, under `keys`: name, email, time and tz.
static void
s_pack_signature (msgpack_packer *pk, const char *const keys[4], gittext_str_t name,
                  gittext_str_t email, const git_signature *sig)
{
    omni_record_pack_str (pk, keys[0]);
    s_pack_text (pk, name);
    omni_record_pack_str (pk, keys[1]);
    s_pack_text (pk, email);
    omni_record_pack_str (pk, keys[2]);
    msgpack_pack_int64 (pk, sig->when.time);
    omni_record_pack_str (pk, keys[3]);
    msgpack_pack_int (pk, sig->when.offset);
}

static void
s_pack_bool (msgpack_packer *pk, bool value)
{
    if (value)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
}

enum { T_AUTHOR_NAME, T_AUTHOR_EMAIL, T_COMMITTER_NAME, T_COMMITTER_EMAIL, T_MESSAGE, T_COUNT };
static const char *s_text_names[T_COUNT] = {"author_name", "author_email", "committer_name",
                                            "committer_email", "message"};
#define S_PATH_SLOT    T_COUNT
#define S_OLD_SLOT     (T_COUNT + 1)
#define S_MAILMAP_SLOT (T_COUNT + 2) //  four of them

static const char *s_mailmap_names[4] = {"author_name_mailmap", "author_email_mailmap",
                                         "committer_name_mailmap", "committer_email_mailmap"};

//  The mailmap's canonical name and e-mail of `who`, where they differ from
//  what git stores (count returned; the rest of `out` is unset).
static size_t
s_mailmap (s_worker_t *w, const git_signature *who, size_t first, gittext_str_t *out, bool *present)
{
    present[0] = present[1] = false;
    const char *name = NULL, *email = NULL;
    if (!w->mailmap || git_mailmap_resolve (&name, &email, w->mailmap, who->name, who->email)) {
        git_error_clear ();
        return 0;
    }
    size_t n = 0;
    if (name && strcmp (name, who->name) != 0) {
        out[0] = gittext_get (w->text, S_MAILMAP_SLOT + first, NULL, name, strlen (name));
        present[0] = true;
        n++;
    }
    if (email && strcmp (email, who->email) != 0) {
        out[1] = gittext_get (w->text, S_MAILMAP_SLOT + first + 1, NULL, email, strlen (email));
        present[1] = true;
        n++;
    }
    return n;
}

//  Packs the body of the commit just diffed; `max_files` and `max_message`
//  bound what a huge commit lists. Returns true when something was cut.
static bool
s_pack_commit (s_worker_t *w, msgpack_packer *pk, const git_commit *commit, size_t max_files,
               size_t max_message)
{
    gitdiff_t *diff = w->diff;
    const char *encoding = git_commit_message_encoding (commit);
    const git_signature *author = git_commit_author (commit);
    const git_signature *committer = git_commit_committer (commit);
    const char *message = git_commit_message_raw (commit);
    size_t message_len = strlen (message);
    bool message_cut = message_len > max_message;
    if (message_cut)
        message_len = max_message;
    gittext_str_t texts[T_COUNT] = {
        gittext_get (w->text, 0, encoding, author->name, strlen (author->name)),
        gittext_get (w->text, 1, encoding, author->email, strlen (author->email)),
        gittext_get (w->text, 2, encoding, committer->name, strlen (committer->name)),
        gittext_get (w->text, 3, encoding, committer->email, strlen (committer->email)),
        gittext_get (w->text, 4, encoding, message, message_len)};
    if (message_cut) {
        //  Never cut inside a UTF-8 sequence of what is sent
        size_t len = texts[T_MESSAGE].len;
        while (len > 0 && ((uint8_t) texts[T_MESSAGE].ptr[len - 1] & 0xC0) == 0x80)
            len--;
        if (len > 0 && (uint8_t) texts[T_MESSAGE].ptr[len - 1] >= 0xC0)
            len--;
        texts[T_MESSAGE].len = len;
    }
    size_t nraw = 0;
    for (int i = 0; i < T_COUNT; i++)
        nraw += texts[i].changed;
    size_t nfiles = gitdiff_files (diff);
    bool files_cut = nfiles > max_files;
    if (files_cut)
        nfiles = max_files;
    bool shallow = gitdiff_parent_missing (diff);
    gittext_str_t mapped[4];
    bool present[4];
    size_t nmapped = s_mailmap (w, author, 0, mapped, present) +
                     s_mailmap (w, committer, 2, mapped + 2, present + 2);

    char hex[GIT_OID_HEXSZ + 1];
    msgpack_pack_map (pk, 15 + (nraw > 0) + shallow + files_cut + message_cut + nmapped);
    omni_record_pack_str (pk, "sha");
    omni_record_pack_str (pk, git_oid_tostr (hex, sizeof hex, git_commit_id (commit)));
    omni_record_pack_str (pk, "parents");
    unsigned nparents = git_commit_parentcount (commit);
    msgpack_pack_array (pk, nparents);
    for (unsigned i = 0; i < nparents; i++)
        omni_record_pack_str (pk,
                              git_oid_tostr (hex, sizeof hex, git_commit_parent_id (commit, i)));
    static const char *const author_keys[4] = {"author_name", "author_email", "author_time",
                                               "author_tz"};
    static const char *const committer_keys[4] = {"committer_name", "committer_email",
                                                  "committer_time", "committer_tz"};
    s_pack_signature (pk, author_keys, texts[T_AUTHOR_NAME], texts[T_AUTHOR_EMAIL], author);
    s_pack_signature (pk, committer_keys, texts[T_COMMITTER_NAME], texts[T_COMMITTER_EMAIL],
                      committer);
    omni_record_pack_str (pk, "message");
    s_pack_text (pk, texts[T_MESSAGE]);
    omni_record_pack_str (pk, "files_changed");
    msgpack_pack_uint64 (pk, gitdiff_files (diff));
    omni_record_pack_str (pk, "insertions");
    msgpack_pack_uint64 (pk, gitdiff_insertions (diff));
    omni_record_pack_str (pk, "deletions");
    msgpack_pack_uint64 (pk, gitdiff_deletions (diff));
    omni_record_pack_str (pk, "files");
    msgpack_pack_array (pk, nfiles);
    for (size_t i = 0; i < nfiles; i++) {
        gitdiff_file_t f = gitdiff_file (diff, i);
        gittext_str_t path = gittext_get (w->text, S_PATH_SLOT, NULL, f.path, f.path_len);
        msgpack_pack_map (pk, 4 + path.changed + (f.old_path != NULL));
        omni_record_pack_str (pk, "path");
        s_pack_text (pk, path);
        omni_record_pack_str (pk, "insertions");
        msgpack_pack_uint64 (pk, f.insertions);
        omni_record_pack_str (pk, "deletions");
        msgpack_pack_uint64 (pk, f.deletions);
        omni_record_pack_str (pk, "binary");
        s_pack_bool (pk, f.binary);
        if (path.changed) {
            //  The path's bytes, where they are not UTF-8
            omni_record_pack_str (pk, "path_raw");
            msgpack_pack_bin (pk, f.path_len);
            msgpack_pack_bin_body (pk, f.path, f.path_len);
        }
        if (f.old_path) {
            omni_record_pack_str (pk, "old_path");
            s_pack_text (pk, gittext_get (w->text, S_OLD_SLOT, NULL, f.old_path, f.old_path_len));
        }
    }
    for (int i = 0; i < 4; i++)
        if (present[i]) {
            omni_record_pack_str (pk, s_mailmap_names[i]);
            s_pack_text (pk, mapped[i]);
        }
    if (nraw) {
        omni_record_pack_str (pk, "raw");
        msgpack_pack_map (pk, nraw);
        for (int i = 0; i < T_COUNT; i++)
            if (texts[i].changed) {
                omni_record_pack_str (pk, s_text_names[i]);
                msgpack_pack_bin (pk, texts[i].orig_len);
                msgpack_pack_bin_body (pk, texts[i].orig, texts[i].orig_len);
            }
    }
    if (shallow) {
        //  The parent is not in this shallow clone: numbers are against the
        //  empty tree, as git shows them here
        omni_record_pack_str (pk, "shallow");
        msgpack_pack_true (pk);
    }
    if (files_cut) {
        omni_record_pack_str (pk, "files_truncated");
        msgpack_pack_true (pk);
    }
    if (message_cut) {
        omni_record_pack_str (pk, "message_truncated");
        msgpack_pack_true (pk);
    }
    return files_cut || message_cut;
}

//  How many files fit the body budget (SIZE_MAX: all).
static size_t
s_files_that_fit (gitdiff_t *diff, const git_commit *commit)
{
    size_t used = 1024 + 2 * strlen (git_commit_message_raw (commit));
    if (used > S_BODY_BUDGET / 2)
        used = S_BODY_BUDGET / 2;
    size_t n = gitdiff_files (diff);
    for (size_t i = 0; i < n; i++) {
        //  path, maybe path_raw, keys and numbers
        gitdiff_file_t f = gitdiff_file (diff, i);
        used += 2 * f.path_len + 2 * f.old_path_len + 64;
        if (used > S_BODY_BUDGET)
            return i;
    }
    return SIZE_MAX;
}

static void
s_process (s_worker_t *w, s_slot_t *slot)
{
    gitpool_t *pool = w->pool;
    gitpool_result_t *r = &slot->result;
    memset (r, 0, sizeof *r);
    r->oid = &slot->oid;
    if (slot->body.alloc > S_BODY_KEEP) {
        msgpack_sbuffer_destroy (&slot->body);
        msgpack_sbuffer_init (&slot->body);
    } else
        msgpack_sbuffer_clear (&slot->body);
    char hex[GIT_OID_HEXSZ + 1];
    //  Mostly the parent the last diff read
    git_commit *commit = gitdiff_take_parent (w->diff, r->oid);
    if (!commit && git_commit_lookup (&commit, w->repo, r->oid)) {
        const git_error *e = git_error_last ();
        snprintf (slot->error, sizeof slot->error, "%s", e && e->message ? e->message : "?");
        r->status = GITPOOL_UNREADABLE;
        r->error = slot->error;
        git_error_clear ();
        return;
    }
    r->ts = (int64_t) git_commit_committer (commit)->when.time * 1000000000LL;
    if (pool->since != GITPOOL_NO_SINCE && git_commit_time (commit) < pool->since)
        r->status = GITPOOL_OLDER;
    else if (gitdiff_commit (w->diff, commit)) {
        const git_error *e = git_error_last ();
        snprintf (slot->error, sizeof slot->error, "cannot diff commit %s: %s",
                  git_oid_tostr (hex, sizeof hex, r->oid), e && e->message ? e->message : "?");
        r->status = GITPOOL_FAILED;
        r->error = slot->error;
    } else {
        //  Tighter limits until the record fits
        static const size_t limits[][2] = {{SIZE_MAX, S_MESSAGE_MAX}, {1000, 64 * 1024}, {0, 4096}};
        msgpack_packer pk;
        msgpack_packer_init (&pk, &slot->body, msgpack_sbuffer_write);
        for (size_t attempt = 0; attempt < 3; attempt++) {
            msgpack_sbuffer_clear (&slot->body);
            size_t max_files = attempt ? limits[attempt][0] : s_files_that_fit (w->diff, commit);
            r->trimmed = s_pack_commit (w, &pk, commit, max_files, limits[attempt][1]);
            if (slot->body.size <= S_RECORD_ROOM)
                break;
        }
        r->status = GITPOOL_COMMIT;
        r->body = slot->body.data;
        r->body_len = slot->body.size;
    }
    git_commit_free (commit);
}

static void *
s_worker (void *arg)
{
    s_worker_t *w = (s_worker_t *) arg;
    gitpool_t *pool = w->pool;
    pthread_mutex_lock (&pool->lock);
    while (!atomic_load (&pool->stop)) {
        size_t start = pool->next_chunk * S_CHUNK;
        if (start >= pool->count)
            break;
        //  The caller holds its last result until its next call
        size_t released = pool->taken ? pool->taken - 1 : 0;
        if (start + S_CHUNK > released + GITPOOL_AHEAD) {
            pthread_cond_wait (&pool->work, &pool->lock);
            continue;
        }
        size_t end = start;
        while (end < start + S_CHUNK &&
               pool->source (pool->source_arg, &pool->ring[end % GITPOOL_AHEAD].oid))
            end++;
        if (end < start + S_CHUNK) {
            //  The caller may be waiting for a result that will not come
            pool->count = end;
            pthread_cond_broadcast (&pool->done);
        }
        pool->next_chunk++;
        pthread_mutex_unlock (&pool->lock);
        for (size_t i = start; i < end && !atomic_load (&pool->stop); i++) {
            s_slot_t *slot = &pool->ring[i % GITPOOL_AHEAD];
            s_process (w, slot);
            pthread_mutex_lock (&pool->lock);
            slot->ready = true;
            pthread_cond_broadcast (&pool->done);
            pthread_mutex_unlock (&pool->lock);
        }
        pthread_mutex_lock (&pool->lock);
    }
    pthread_mutex_unlock (&pool->lock);
    return NULL;
}

void
gitpool_start (gitpool_t *self, gitpool_source_fn *source, void *arg)
{
    assert (!self->workers[0].running);
    self->source = source;
    self->source_arg = arg;
    self->count = SIZE_MAX;
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *w = &self->workers[i];
        int rc = pthread_create (&w->thread, NULL, s_worker, w);
        assert (rc == 0);
        w->running = true;
    }
}

const gitpool_result_t *
gitpool_next (gitpool_t *self)
{
    pthread_mutex_lock (&self->lock);
    if (self->taken > 0) {
        self->ring[(self->taken - 1) % GITPOOL_AHEAD].ready = false;
        pthread_cond_broadcast (&self->work);
    }
    s_slot_t *slot = &self->ring[self->taken % GITPOOL_AHEAD];
    while (!slot->ready && self->taken < self->count)
        pthread_cond_wait (&self->done, &self->lock);
    if (self->taken == self->count) {
        pthread_mutex_unlock (&self->lock);
        return NULL;
    }
    self->taken++;
    pthread_mutex_unlock (&self->lock);
    return &slot->result;
}

//  ---------------------------------------------------------------------------
//  Self-test: a history longer than the ring, through 1 and 3 threads,
//  gives the same bodies in the same order as git's own list.

static char *
s_make_repo (size_t commits)
{
    char *dir = selftest_tmpdir ("gitpool");
    char *cmd;
    //  fast-import: one file changed per commit, a huge commit at the end
    assert (
        asprintf (&cmd,
                  "cd '%s' && git init -q -b main . && "
                  "for i in $(seq 1 %zu); do "
                  "printf 'commit refs/heads/main\\ncommitter C <c@x> %%d +0000\\n"
                  "data 2\\nm\\n' $((1600000000 + i)); "
                  "printf 'M 100644 inline f%%d\\ndata 2\\n%%d\\n\\n' $((i %% 7)) $((i %% 10)); "
                  "done | git fast-import --quiet",
                  dir, commits) > 0);
    assert (system (cmd) == 0);
    free (cmd);
    return dir;
}

typedef struct {
    const git_oid *oids;
    size_t count, next;
} s_array_t;

static bool
s_array_next (void *arg, git_oid *oid)
{
    s_array_t *a = (s_array_t *) arg;
    if (a->next == a->count)
        return false;
    *oid = a->oids[a->next++];
    return true;
}

void
gitpool_test (bool verbose)
{
    (void) verbose;
    git_libgit2_init ();
    assert (gitpool_threads (3) == 3);
    assert (gitpool_threads (0) >= 1);
    char *dir = s_make_repo (GITPOOL_AHEAD + 300);
    git_repository *repo;
    assert (git_repository_open (&repo, dir) == 0);
    git_revwalk *walk;
    assert (git_revwalk_new (&walk, repo) == 0);
    git_revwalk_sorting (walk, GIT_SORT_TIME);
    assert (git_revwalk_push_head (walk) == 0);
    size_t count = 0;
    git_oid *oids = calloc (GITPOOL_AHEAD + 300, sizeof *oids);
    while (git_revwalk_next (&oids[count], walk) == 0)
        count++;
    assert (count == GITPOOL_AHEAD + 300);
    git_revwalk_free (walk);

    char error[256];
    s_array_t array = {oids, count, 0};
    uint64_t sums[2] = {0, 0};
    size_t threads[2] = {1, 3};
    for (int run = 0; run < 2; run++) {
        gitpool_t *pool = gitpool_new (dir, threads[run], 1600000000 + 100, error, sizeof error);
        assert (pool);
        array.next = 0;
        gitpool_start (pool, s_array_next, &array);
        size_t n = 0, older = 0;
        const gitpool_result_t *r;
        while ((r = gitpool_next (pool))) {
            assert (git_oid_equal (r->oid, &oids[n]));
            n++;
            if (r->status == GITPOOL_OLDER) {
                older++;
                continue;
            }
            assert (r->status == GITPOOL_COMMIT && r->body_len > 0);
            msgpack_unpacked msg;
            msgpack_unpacked_init (&msg);
            assert (msgpack_unpack_next (&msg, r->body, r->body_len, NULL) ==
                    MSGPACK_UNPACK_SUCCESS);
            assert (msg.data.type == MSGPACK_OBJECT_MAP);
            //  sha first, equal to the commit's
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr (hex, sizeof hex, r->oid);
            msgpack_object_kv *kv = msg.data.via.map.ptr;
            assert (kv[0].val.via.str.size == 40 && memcmp (kv[0].val.via.str.ptr, hex, 40) == 0);
            for (size_t k = 0; k < r->body_len; k++)
                sums[run] = sums[run] * 31 + (uint8_t) r->body[k];
            msgpack_unpacked_destroy (&msg);
        }
        assert (n == count);
        assert (older == 99); //  commits 1..99 are older than the cutoff
        gitpool_destroy (&pool);
        assert (pool == NULL);
    }
    assert (sums[0] == sums[1]);

    //  Destroyed early, while workers wait for the caller: no hang
    gitpool_t *pool = gitpool_new (dir, 2, GITPOOL_NO_SINCE, error, sizeof error);
    array.next = 0;
    gitpool_start (pool, s_array_next, &array);
    assert (gitpool_next (pool) && gitpool_next (pool));
    gitpool_destroy (&pool);

    assert (gitpool_new ("/nonexistent", 2, GITPOOL_NO_SINCE, error, sizeof error) == NULL);
    assert (strstr (error, "/nonexistent"));
    free (oids);
    git_repository_free (repo);
    selftest_rmtree (dir);
    free (dir);
    git_libgit2_shutdown ();
}
