/*  codestats: line counts per language at a revision (git tree via libgit2,
    or a plain directory) into code.stats records.                         */
#include "collectord/codestats.h"
#include "common/buf.h"
#include "collectord/srcname.h"
#include "proto/record.h"
#include "testsupport/testpeer.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "collectord/utf8.h"
#include "common/util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_DEFAULT_EXCLUDE                                                                          \
    "vendor,node_modules,third_party,third-party,thirdparty,bower_components,dist,build,"          \
    ".git,.hg,.svn,__pycache__,.venv,venv,.tox"

typedef struct {
    char *path;
    git_oid oid;
} s_entry_t;

struct _codestats_t {
    char *path;   //  as given
    char *source; //  the canonical src
    bool guessed; //  a repository without origin: named by its directory
    char **exclude;
    git_repository *repo; //  NULL: a plain directory
    git_oid commit;
    int64_t time; //  ns
    char rev[64];
    s_entry_t *entries; //  the tree's blobs, before counting
    size_t nentries, entries_cap;
    codestats_file_t *files;
    size_t nfiles, files_cap;
    codestats_total_t *totals;
    size_t ntotals, totals_cap;
    omni_buf_t text;
    EVP_MD_CTX *hash; //  a plain directory's rev
    uint64_t done;
    void (*progress) (void *arg, uint64_t done);
    bool (*stop) (void *arg);
    void *arg;
    bool stopped;
};

static const char *
s_git_error (void)
{
    const git_error *e = git_error_last ();
    return e && e->message ? e->message : "unknown libgit2 error";
}

static char *
s_canonical (const char *path)
{
    char *real = realpath (path, NULL);
    if (!real)
        real = strdup (path);
    size_t len = strlen (real);
    while (len > 1 && real[len - 1] == '/')
        real[--len] = 0;
    return real;
}

codestats_t *
codestats_new (const char *path, const char *rev, char *const *exclude, char *error,
               size_t error_size)
{
    struct stat st;
    if (stat (path, &st) != 0) {
        snprintf (error, error_size, "cannot read %s: %s", path, strerror (errno));
        return NULL;
    }
    if (!S_ISDIR (st.st_mode)) {
        snprintf (error, error_size, "%s: not a directory", path);
        return NULL;
    }
    git_libgit2_init ();
    codestats_t *self = calloc (1, sizeof *self);
    assert (self);
    self->path = strdup (path);
    size_t n = 0;
    while (exclude && exclude[n])
        n++;
    self->exclude = calloc (n + 1, sizeof (char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (*exclude[i]) {
            //  "a/b/" is "a/b"
            self->exclude[k] = strdup (exclude[i]);
            size_t len = strlen (self->exclude[k]);
            while (len > 1 && self->exclude[k][len - 1] == '/')
                self->exclude[k][--len] = 0;
            k++;
        }
    int rc = git_repository_open_ext (&self->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL);
    if (rc == 0) {
        git_object *obj = NULL, *commit = NULL;
        const char *spec = rev && *rev ? rev : "HEAD";
        if (git_revparse_single (&obj, self->repo, spec) != 0 ||
            git_object_peel (&commit, obj, GIT_OBJECT_COMMIT) != 0) {
            snprintf (error, error_size, "%s: no commit \"%s\" (%s)", path, spec, s_git_error ());
            git_object_free (obj);
            codestats_destroy (&self);
            return NULL;
        }
        self->commit = *git_object_id (commit);
        git_oid_tostr (self->rev, sizeof self->rev, &self->commit);
        self->time = (int64_t) git_commit_time ((git_commit *) commit) * 1000000000;
        git_object_free (commit);
        git_object_free (obj);
        //  Named as the git collector names it: by its origin, else its
        //  directory
        bool from_remote;
        self->source = srcname_from_repo (self->repo, &from_remote);
        self->guessed = !from_remote;
    } else if (rc == GIT_ENOTFOUND) {
        git_error_clear ();
        self->repo = NULL;
        if (rev && *rev) {
            snprintf (error, error_size, "%s: not a git repository (--rev needs one)", path);
            codestats_destroy (&self);
            return NULL;
        }
        self->source = s_canonical (path);
    } else {
        snprintf (error, error_size, "cannot open repository %s: %s", path, s_git_error ());
        self->repo = NULL;
        codestats_destroy (&self);
        return NULL;
    }
    return self;
}

static void
s_clear (codestats_t *self)
{
    for (size_t i = 0; i < self->nentries; i++)
        free (self->entries[i].path);
    self->nentries = 0;
    for (size_t i = 0; i < self->nfiles; i++)
        free ((char *) self->files[i].path);
    self->nfiles = 0;
    self->ntotals = 0;
}

void
codestats_destroy (codestats_t **self_p)
{
    codestats_t *self = *self_p;
    if (!self)
        return;
    s_clear (self);
    free (self->entries);
    free (self->files);
    free (self->totals);
    for (size_t i = 0; self->exclude && self->exclude[i]; i++)
        free (self->exclude[i]);
    free (self->exclude);
    git_repository_free (self->repo);
    omni_buf_release (&self->text);
    if (self->hash)
        EVP_MD_CTX_free (self->hash);
    free (self->path);
    free (self->source);
    free (self);
    *self_p = NULL;
    git_libgit2_shutdown ();
}

//  A directory `name` at `rel` (its path from the top) is left out
static bool
s_excluded (codestats_t *self, const char *rel, const char *name)
{
    for (size_t i = 0; self->exclude[i]; i++) {
        const char *e = self->exclude[i];
        if (strchr (e, '/') ? strcmp (rel, e) == 0 : strcmp (name, e) == 0)
            return true;
    }
    return false;
}

static void
s_add_total (codestats_t *self, const lang_t *lang, const lang_lines_t *lines)
{
    const char *name = lang_name (lang);
    codestats_total_t *t = NULL;
    for (size_t i = 0; i < self->ntotals && !t; i++)
        if (self->totals[i].language == name)
            t = &self->totals[i];
    if (!t) {
        t = omni_array_push (self->totals, self->ntotals, self->totals_cap);
        memset (t, 0, sizeof *t);
        t->language = name;
    }
    t->files++;
    t->blank += lines->blank;
    t->comment += lines->comment;
    t->code += lines->code;
}

//  Counts one file's content.
static void
s_count (codestats_t *self, const char *path, const char *data, size_t len)
{
    //  An empty file is not counted (nor by cloc: "zero sized file")
    const lang_t *lang = len ? lang_detect (path, data, len) : NULL;
    if (!lang)
        return;
    lang_lines_t lines = {0, 0, 0};
    lang_count (lang, data, len, &lines);
    if (self->hash) {
        uint64_t size = len;
        EVP_DigestUpdate (self->hash, path, strlen (path) + 1);
        EVP_DigestUpdate (self->hash, &size, sizeof size);
        EVP_DigestUpdate (self->hash, data, len);
    }
    //  Paths are bytes in git and on disk; records want UTF-8
    char *copy;
    if (omni_util_utf8_valid (path, strlen (path)))
        copy = strdup (path);
    else {
        utf8_repair (path, strlen (path), &self->text);
        copy = strndup (self->text.data, self->text.size);
    }
    codestats_file_t *f = omni_array_push (self->files, self->nfiles, self->files_cap);
    f->path = copy;
    f->lang = lang;
    f->lines = lines;
    s_add_total (self, lang, &lines);
}

static void
s_tick (codestats_t *self)
{
    self->done++;
    if (self->progress)
        self->progress (self->arg, self->done);
    if (self->stop && (self->done & 63) == 0 && self->stop (self->arg))
        self->stopped = true;
}

//  ---------------------------------------------------------------------------
//  A git tree

static int
s_tree_cb (const char *root, const git_tree_entry *entry, void *payload)
{
    codestats_t *self = (codestats_t *) payload;
    const char *name = git_tree_entry_name (entry);
    git_filemode_t mode = git_tree_entry_filemode (entry);
    char *rel;
    assert (asprintf (&rel, "%s%s", root, name) > 0);
    int rc = 0;
    if (mode == GIT_FILEMODE_TREE)
        rc = s_excluded (self, rel, name) ? 1 : 0;
    else if (mode == GIT_FILEMODE_BLOB || mode == GIT_FILEMODE_BLOB_EXECUTABLE) {
        s_entry_t *e = omni_array_push (self->entries, self->nentries, self->entries_cap);
        e->path = rel;
        e->oid = *git_tree_entry_id (entry);
        return 0;
    }
    //  Links and submodules are not code here
    free (rel);
    return rc;
}

static int
s_run_git (codestats_t *self, char *error, size_t size)
{
    git_commit *commit;
    git_tree *tree;
    if (git_commit_lookup (&commit, self->repo, &self->commit)) {
        snprintf (error, size, "commit %s: %s", self->rev, s_git_error ());
        return -1;
    }
    int rc = git_commit_tree (&tree, commit);
    git_commit_free (commit);
    if (rc) {
        snprintf (error, size, "tree of %s: %s", self->rev, s_git_error ());
        return -1;
    }
    rc = git_tree_walk (tree, GIT_TREEWALK_PRE, s_tree_cb, self);
    git_tree_free (tree);
    if (rc) {
        snprintf (error, size, "walking %s: %s", self->rev, s_git_error ());
        return -1;
    }
    for (size_t i = 0; i < self->nentries && !self->stopped; i++) {
        s_entry_t *e = &self->entries[i];
        //  Most files are known by name: no need to read the others beyond
        //  their #! line, but a blob is read whole anyway
        git_blob *blob;
        if (git_blob_lookup (&blob, self->repo, &e->oid)) {
            snprintf (error, size, "%s (%s): %s", e->path, self->rev, s_git_error ());
            return -1;
        }
        s_count (self, e->path, (const char *) git_blob_rawcontent (blob),
                 (size_t) git_blob_rawsize (blob));
        git_blob_free (blob);
        s_tick (self);
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  A plain directory

static int
s_name_cmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

static char *
s_read_file (const char *path, size_t *len)
{
    FILE *file = fopen (path, "re");
    if (!file)
        return NULL;
    struct stat st;
    omni_buf_t buf = {0};
    int rc = fstat (fileno (file), &st);
    if (rc == 0) {
        omni_buf_reserve (&buf, (size_t) st.st_size); //  read in one go
        rc = omni_buf_read_file (&buf, file);
    }
    int error = errno;
    fclose (file);
    if (rc) {
        omni_buf_release (&buf);
        errno = error;
        return NULL;
    }
    *len = buf.size;
    return omni_buf_detach (&buf);
}

static void
s_walk_dir (codestats_t *self, const char *dir, const char *rel)
{
    DIR *d = opendir (dir);
    if (!d) {
        log_warn ("code.unreadable", "path=\"%s\" error=\"%s\"", dir, strerror (errno));
        return;
    }
    //  Sorted, so that the rev hash does not depend on the directory's order
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        *omni_array_push (names, n, cap) = strdup (e->d_name);
    }
    closedir (d);
    if (n)
        qsort (names, n, sizeof (char *), s_name_cmp);
    for (size_t i = 0; i < n; i++) {
        char *path, *sub;
        assert (asprintf (&path, "%s/%s", dir, names[i]) > 0);
        assert (asprintf (&sub, "%s%s%s", rel, *rel ? "/" : "", names[i]) > 0);
        struct stat st;
        if (!self->stopped && lstat (path, &st) == 0) {
            if (S_ISDIR (st.st_mode)) {
                if (!s_excluded (self, sub, names[i]))
                    s_walk_dir (self, path, sub);
            } else if (S_ISREG (st.st_mode)) {
                size_t len;
                char *data = s_read_file (path, &len);
                if (data) {
                    s_count (self, sub, data, len);
                    free (data);
                } else
                    log_warn ("code.unreadable", "path=\"%s\" error=\"%s\"", path,
                              strerror (errno));
                s_tick (self);
            }
        }
        free (path);
        free (sub);
        free (names[i]);
    }
    free (names);
}

static int
s_total_cmp (const void *a, const void *b)
{
    return strcmp (((const codestats_total_t *) a)->language,
                   ((const codestats_total_t *) b)->language);
}

static int
s_file_cmp (const void *a, const void *b)
{
    return strcmp (((const codestats_file_t *) a)->path, ((const codestats_file_t *) b)->path);
}

int
codestats_run (codestats_t *self, void (*progress) (void *arg, uint64_t done),
               bool (*stop) (void *arg), void *arg, char *error, size_t error_size)
{
    s_clear (self);
    self->done = 0;
    self->progress = progress;
    self->stop = stop;
    self->arg = arg;
    self->stopped = false;
    int rc;
    if (self->repo)
        rc = s_run_git (self, error, error_size);
    else {
        self->hash = EVP_MD_CTX_new ();
        EVP_DigestInit_ex (self->hash, EVP_sha256 (), NULL);
        char *top = strdup (self->path);
        size_t len = strlen (top);
        while (len > 1 && top[len - 1] == '/')
            top[--len] = 0;
        s_walk_dir (self, top, "");
        free (top);
        uint8_t digest[32];
        char hex[65];
        EVP_DigestFinal_ex (self->hash, digest, NULL);
        EVP_MD_CTX_free (self->hash);
        self->hash = NULL;
        omni_util_hex (digest, 20, hex);
        snprintf (self->rev, sizeof self->rev, "fs:%.40s", hex);
        self->time = omni_util_now_ns ();
        rc = 0;
    }
    if (rc == 0 && self->stopped) {
        snprintf (error, error_size, "interrupted");
        rc = -1;
    }
    if (self->ntotals)
        qsort (self->totals, self->ntotals, sizeof *self->totals, s_total_cmp);
    if (self->nfiles)
        qsort (self->files, self->nfiles, sizeof *self->files, s_file_cmp);
    return rc;
}

const char *
codestats_rev (codestats_t *self)
{
    return self->rev;
}

int64_t
codestats_time (codestats_t *self)
{
    return self->time;
}

bool
codestats_is_repo (codestats_t *self)
{
    return self->repo != NULL;
}

size_t
codestats_ntotals (codestats_t *self)
{
    return self->ntotals;
}

const codestats_total_t *
codestats_total (codestats_t *self, size_t index)
{
    return index < self->ntotals ? &self->totals[index] : NULL;
}

size_t
codestats_nfiles (codestats_t *self)
{
    return self->nfiles;
}

const codestats_file_t *
codestats_file (codestats_t *self, size_t index)
{
    return index < self->nfiles ? &self->files[index] : NULL;
}

//  ---------------------------------------------------------------------------
//  The collector

static struct {
    char *rev;
    bool per_file;
    char **exclude_dir;
    char *source;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"rev", CONFIG_STRING, NULL, "code: the revision to count (default HEAD); repositories only",
     &s_settings.rev},
    {"per_file", CONFIG_BOOL, "false", "code: a code.stats record per file too",
     &s_settings.per_file},
    {"exclude_dir", CONFIG_LIST, S_DEFAULT_EXCLUDE,
     "code: directories left out, by name (or by path from the top when it holds a /)",
     &s_settings.exclude_dir},
    {"source", CONFIG_STRING, NULL,
     "the records' src; code default: the repository's origin URL normalized (as git's), else "
     "its directory's name; a plain directory: its path",
     &s_settings.source},
    {NULL}};

typedef struct {
    collector_names_t names;
    char *path, *rev;
    char **exclude;
    bool per_file;
} s_code_t;

static void s_close (void **self_p);

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    if (env->nargs != 1) {
        snprintf (error, size, "%s",
                  env->nargs ? "one PATH, please"
                             : "the PATH (repository or directory) is missing");
        return NULL;
    }
    //  The path and the revision are checked now, and read again each run
    codestats_t *probe =
        codestats_new (env->args[0], s_settings.rev, s_settings.exclude_dir, error, size);
    if (!probe)
        return NULL;
    s_code_t *self = calloc (1, sizeof *self);
    assert (self);
    self->path = strdup (env->args[0]);
    self->names.target = s_canonical (env->args[0]);
    self->names.src =
        strdup (s_settings.source && *s_settings.source ? s_settings.source : probe->source);
    if (!(s_settings.source && *s_settings.source) && probe->guessed)
        log_info ("code.source_fallback",
                  "path=%s source=\"%s\" reason=\"no origin remote: the directory's name is "
                  "the source; --source names it\"",
                  env->args[0], self->names.src);
    self->rev = s_settings.rev && *s_settings.rev ? strdup (s_settings.rev) : NULL;
    size_t n = 0;
    while (s_settings.exclude_dir && s_settings.exclude_dir[n])
        n++;
    self->exclude = calloc (n + 1, sizeof (char *));
    for (size_t i = 0; i < n; i++)
        self->exclude[i] = strdup (s_settings.exclude_dir[i]);
    self->per_file = s_settings.per_file;
    codestats_destroy (&probe);
    return self;
}

static void
s_close (void **self_p)
{
    s_code_t *self = (s_code_t *) *self_p;
    if (!self)
        return;
    free (self->path);
    collector_names_free (&self->names);
    free (self->rev);
    for (size_t i = 0; self->exclude[i]; i++)
        free (self->exclude[i]);
    free (self->exclude);
    free (self);
    *self_p = NULL;
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_code_t *self = (s_code_t *) handle;
    msgpack_pack_map (pk, 3 + (self->rev != NULL));
    omni_record_pack_str (pk, "path");
    omni_record_pack_str (pk, self->names.target);
    omni_record_pack_kv_bool (pk, "per_file", self->per_file);
    omni_record_pack_str (pk, "exclude_dir");
    omni_record_pack_strv (pk, (const char *const *) self->exclude);
    if (self->rev) {
        omni_record_pack_str (pk, "rev");
        omni_record_pack_str (pk, self->rev);
    }
}

static void
s_progress (void *arg, uint64_t done)
{
    progress_update (session_progress ((session_t *) arg), done);
}

static bool
s_stop (void *arg)
{
    return session_interrupted ((session_t *) arg);
}

static int
s_send_stats (session_t *session, const char *rev, int64_t ts, const char *language,
              const char *path, uint64_t files, uint64_t blank, uint64_t comment, uint64_t code)
{
    msgpack_packer *pk = session_record (session, "code.stats", ts);
    msgpack_pack_map (pk, 6 + (path != NULL));
    omni_record_pack_str (pk, "rev");
    omni_record_pack_str (pk, rev);
    omni_record_pack_str (pk, "language");
    omni_record_pack_str (pk, language);
    if (path) {
        omni_record_pack_str (pk, "path");
        omni_record_pack_str (pk, path);
    }
    omni_record_pack_str (pk, "files");
    msgpack_pack_uint64 (pk, files);
    omni_record_pack_str (pk, "blank");
    msgpack_pack_uint64 (pk, blank);
    omni_record_pack_str (pk, "comment");
    msgpack_pack_uint64 (pk, comment);
    omni_record_pack_str (pk, "code");
    msgpack_pack_uint64 (pk, code);
    int rc = session_send (session);
    if (rc > 0)
        log_error ("code.unsendable", "language=\"%s\" path=\"%s\" reason=\"%s\"", language,
                   path ? path : "", session_detail (session));
    return rc < 0 ? -1 : 0;
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_code_t *self = (s_code_t *) handle;
    codestats_t *stats = codestats_new (self->path, self->rev, self->exclude, error, size);
    if (!stats)
        return -1;
    progress_t *progress = session_progress (session);
    progress_start (progress, "code files", 0);
    int rc = codestats_run (stats, s_progress, s_stop, session, error, size);
    progress_finish (progress);
    const char *rev = codestats_rev (stats);
    int64_t ts = codestats_time (stats);
    uint64_t lines = 0;
    for (size_t i = 0; rc == 0 && i < codestats_ntotals (stats); i++) {
        const codestats_total_t *t = codestats_total (stats, i);
        lines += t->blank + t->comment + t->code;
        if (s_send_stats (session, rev, ts, t->language, NULL, t->files, t->blank, t->comment,
                          t->code))
            rc = -1;
    }
    for (size_t i = 0; rc == 0 && self->per_file && i < codestats_nfiles (stats); i++) {
        const codestats_file_t *f = codestats_file (stats, i);
        if (s_send_stats (session, rev, ts, lang_name (f->lang), f->path, 1, f->lines.blank,
                          f->lines.comment, f->lines.code))
            rc = -1;
    }
    if (rc && !*error)
        collector_broken (session, error, size);
    if (rc == 0)
        log_info ("code.collected", "rev=%s languages=%zu files=%zu lines=%" PRIu64 " per_file=%s",
                  rev, codestats_ntotals (stats), codestats_nfiles (stats), lines,
                  self->per_file ? "yes" : "no");
    codestats_destroy (&stats);
    return rc;
}

const collector_t codestats_collector = {
    .name = "code",
    .usage = "PATH",
    .summary = "lines of code per language (and file) at HEAD or --rev (cloc's conventions)",
    .options = s_options,
    .open = s_open,
    .close = s_close,
    .source = collector_source,
    .target = collector_target,
    .pack_config = s_pack_config,
    .collect = s_collect,
};

//  ---------------------------------------------------------------------------
//  Self-test

static void
s_write (const char *dir, const char *rel, const char *text, size_t len)
{
    char *path;
    assert (asprintf (&path, "%s/%s", dir, rel) > 0);
    char *slash = strrchr (path, '/');
    *slash = 0;
    assert (omni_util_mkdirs (path) == 0);
    *slash = '/';
    FILE *f = fopen (path, "wb");
    assert (f);
    assert (fwrite (text, 1, len, f) == len);
    fclose (f);
    free (path);
}

#define S_WRITE(dir, rel, text) s_write (dir, rel, text, sizeof (text) - 1)

#define S_GIT_ENV                                                                                  \
    "GIT_AUTHOR_NAME=Ann GIT_AUTHOR_EMAIL=ann@x GIT_COMMITTER_NAME=Cy "                            \
    "GIT_COMMITTER_EMAIL=cy@x GIT_AUTHOR_DATE='@1700000000 +0000' "                                \
    "GIT_COMMITTER_DATE='@1700000000 +0000'"

static void
s_sh (const char *dir, const char *script)
{
    selftest_sh (dir, S_GIT_ENV, script);
}

//  Checks one language's totals.
static void
s_expect (codestats_t *stats, const char *language, uint64_t files, uint64_t blank,
          uint64_t comment, uint64_t code)
{
    for (size_t i = 0; i < codestats_ntotals (stats); i++) {
        const codestats_total_t *t = codestats_total (stats, i);
        if (strcmp (t->language, language) != 0)
            continue;
        if (t->files != files || t->blank != blank || t->comment != comment || t->code != code)
            fprintf (stderr,
                     "%s: files %" PRIu64 " blank %" PRIu64 " comment %" PRIu64 " code %" PRIu64
                     "\n",
                     language, t->files, t->blank, t->comment, t->code);
        assert (t->files == files && t->blank == blank && t->comment == comment && t->code == code);
        return;
    }
    fprintf (stderr, "no %s\n", language);
    assert (false);
}

static codestats_t *
s_stats (const char *path, const char *rev, char **exclude)
{
    char error[512];
    codestats_t *stats = codestats_new (path, rev, exclude, error, sizeof error);
    if (!stats)
        fprintf (stderr, "%s\n", error);
    assert (stats);
    assert (codestats_run (stats, NULL, NULL, NULL, error, sizeof error) == 0);
    return stats;
}

void
codestats_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("codestats");
    char *repo, *plain;
    assert (asprintf (&repo, "%s/repo", dir) > 0 && asprintf (&plain, "%s/plain", dir) > 0);
    assert (omni_util_mkdirs (repo) == 0);
    //  Every comment style, markers inside strings, blank lines of spaces
    S_WRITE (repo, "src/main.c",
             "/* header\n"
             " * comment\n"
             " */\n"
             "#include <stdio.h>\n"
             "\n"
             "int main (void)\n"
             "{\n"
             "    // a comment\n"
             "    printf (\"// not a comment /* either */\\n\"); // code\n"
             "    char c = '\"';\n"
             "  \t  \n"
             "    return 0; /* trailing */\n"
             "}\n");
    S_WRITE (repo, "src/util.h",
             "#ifndef U_H\n#define U_H\n/** doc */\nint f (void); /* decl */\n\n#endif\n");
    S_WRITE (repo, "tools/deploy.py",
             "#!/usr/bin/env python3\n"
             "\"\"\"Deploy things.\n"
             "\n"
             "Usage: deploy\n"
             "\"\"\"\n"
             "import sys  # comment\n"
             "\n"
             "URL = \"http://example.com/#anchor\"\n"
             "# a comment\n"
             "def main():\n"
             "    '''Docstring.'''\n"
             "    return 0\n");
    S_WRITE (repo, "tools/run",
             "#!/bin/bash\n"
             "# run it\n"
             "set -e\n"
             "echo \"# not a comment\" # but this is\n"
             "   \n"
             "cat <<'EOF'\n"
             "# inside a here-document\n"
             "EOF\n");
    S_WRITE (repo, "db/schema.sql",
             "-- schema\n"
             "CREATE TABLE t (\n"
             "    a text DEFAULT '-- not a comment', -- trailing\n"
             "    /* block */\n"
             "    b int\n"
             ");\n");
    S_WRITE (repo, "Makefile", "# build\nall:\n\tcc -o x x.c # compile\n\n");
    S_WRITE (repo, "docs/index.html", "<html>\n<!-- comment -->\n<body></body>\n</html>\n");
    S_WRITE (repo, "config.yaml", "# config\nkey: value # note\nurl: \"http://x/#y\"\n");
    //  Left out: vendored, generated, ignored, binary, unknown, links
    S_WRITE (repo, "vendor/lib.c", "int v;\n");
    S_WRITE (repo, "node_modules/x/index.js", "var x;\n");
    S_WRITE (repo, "src/build/gen.c", "int g;\n");
    S_WRITE (repo, "secret.c", "int s;\n");
    S_WRITE (repo, ".gitignore", "secret.c\n");
    S_WRITE (repo, "logo.png", "\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    S_WRITE (repo, "README", "Read me\n");
    s_sh (repo, "git init -q -b main . && ln -s src/main.c link.c && chmod +x tools/run && "
                "git add -A && git commit -q -m one");
    S_WRITE (repo, "src/extra.c", "int x;\n");
    s_sh (repo, "git add -A && git commit -q -m two");
    //  Not committed: not counted
    S_WRITE (repo, "src/main.c", "int changed;\n");

    codestats_t *stats = s_stats (repo, NULL, (char **) NULL);
    //  Without exclusions vendor/ and the rest count
    assert (codestats_is_repo (stats));
    s_expect (stats, "C", 4, 2, 4, 10);
    codestats_destroy (&stats);
    char *exclude[] = {"vendor", "node_modules", "build", NULL};
    stats = s_stats (repo, NULL, exclude);
    assert (strlen (codestats_rev (stats)) == 40);
    assert (codestats_time (stats) == INT64_C (1700000000) * 1000000000);
    assert (codestats_ntotals (stats) == 8);
    s_expect (stats, "Bourne Again Shell", 1, 1, 2, 5); //  here-document # lines: comments (cloc)
    s_expect (stats, "C", 2, 2, 4, 8);
    s_expect (stats, "C/C++ Header", 1, 1, 1, 4);
    s_expect (stats, "HTML", 1, 0, 1, 3);
    s_expect (stats, "make", 1, 1, 1, 2);
    s_expect (stats, "Python", 1, 2, 5, 5);
    s_expect (stats, "SQL", 1, 0, 2, 4);
    s_expect (stats, "YAML", 1, 0, 1, 2);
    //  Sorted by language, files by path
    for (size_t i = 0; i + 1 < codestats_ntotals (stats); i++)
        assert (strcmp (codestats_total (stats, i)->language,
                        codestats_total (stats, i + 1)->language) < 0);
    assert (codestats_nfiles (stats) == 9);
    assert (strcmp (codestats_file (stats, 0)->path, "Makefile") == 0);
    assert (strcmp (codestats_file (stats, 8)->path, "tools/run") == 0);
    const codestats_file_t *f = codestats_file (stats, 5);
    assert (strcmp (f->path, "src/main.c") == 0 && f->lines.code == 7 && f->lines.comment == 4 &&
            f->lines.blank == 2);
    codestats_destroy (&stats);
    //  An older revision; a path to exclude
    char *by_path[] = {"vendor", "node_modules", "src/build", "docs", NULL};
    stats = s_stats (repo, "HEAD~1", by_path);
    s_expect (stats, "C", 1, 2, 4, 7);
    assert (codestats_ntotals (stats) == 7); //  no HTML
    codestats_destroy (&stats);
    char error[512];
    assert (codestats_new (repo, "no-such-rev", exclude, error, sizeof error) == NULL);
    assert (strstr (error, "no-such-rev"));
    assert (codestats_new ("/nonexistent/omni", NULL, exclude, error, sizeof error) == NULL);
    assert (strstr (error, "/nonexistent/omni"));

    //  A plain directory: what is there, ignore files or not
    char *script;
    //  (the archive holds the link link.c -> src/main.c: left out)
    assert (asprintf (&script,
                      "mkdir '%s' && git archive HEAD | tar -x -C '%s' && "
                      "cp secret.c '%s/' && test -L '%s/link.c'",
                      plain, plain, plain, plain) > 0);
    s_sh (repo, script);
    free (script);
    stats = s_stats (plain, NULL, exclude);
    assert (!codestats_is_repo (stats));
    assert (strncmp (codestats_rev (stats), "fs:", 3) == 0 && strlen (codestats_rev (stats)) == 43);
    s_expect (stats, "C", 3, 2, 4, 9);
    s_expect (stats, "Python", 1, 2, 5, 5);
    char rev[64];
    snprintf (rev, sizeof rev, "%s", codestats_rev (stats));
    codestats_destroy (&stats);
    stats = s_stats (plain, NULL, exclude);
    assert (strcmp (rev, codestats_rev (stats)) == 0); //  same files, same rev
    codestats_destroy (&stats);
    S_WRITE (plain, "src/extra.c", "int y;\n");
    stats = s_stats (plain, NULL, exclude);
    assert (strcmp (rev, codestats_rev (stats)) != 0);
    codestats_destroy (&stats);
    assert (codestats_new (plain, "HEAD", exclude, error, sizeof error) == NULL);
    assert (strstr (error, "not a git repository"));

    //  The collector: one record per language, and per file when asked
    static char *exclude_setting[] = {"vendor", "node_modules", "build", NULL};
    s_settings.exclude_dir = exclude_setting;
    s_settings.per_file = true;
    s_settings.rev = NULL;
    s_settings.source = NULL;
    const char *args[] = {repo};
    collector_env_t env = {
        .args = args, .nargs = 1, .state_dir = "/nonexistent", .instance = "test"};
    void *handle = s_open (&env, error, sizeof error);
    assert (handle);
    assert (strcmp (collector_source (handle), "repo") == 0);
    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("code", testpeer_endpoint (fake), 4);
    collector_test_begin (session, &codestats_collector, handle);
    assert (s_collect (handle, session, error, sizeof error) == 0);
    assert (session_end (session, "ok", NULL) == 0);
    assert (testpeer_count_kind (fake, "code.stats") == 8 + 9);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 8192);
    size_t per_file = 0;
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, &zone);
        if (!omni_record_str_eq (rec.kind, "code.stats"))
            continue;
        omni_record_str_t s, path;
        int64_t n;
        assert (omni_record_field_str (rec.body, "rev", &s) && s.len == 40);
        assert (rec.ts == INT64_C (1700000000) * 1000000000);
        if (omni_record_field_str (rec.body, "path", &path)) {
            per_file++;
            assert (omni_record_field_int (rec.body, "files", &n) && n == 1);
            if (omni_record_str_eq (path, "tools/deploy.py")) {
                assert (omni_record_field_str (rec.body, "language", &s) &&
                        omni_record_str_eq (s, "Python"));
                assert (omni_record_field_int (rec.body, "comment", &n) && n == 5);
            }
        } else if (omni_record_field_str (rec.body, "language", &s) &&
                   omni_record_str_eq (s, "SQL")) {
            assert (omni_record_field_int (rec.body, "code", &n) && n == 4);
            assert (omni_record_field_int (rec.body, "comment", &n) && n == 2);
            assert (omni_record_field_int (rec.body, "blank", &n) && n == 0);
        }
    }
    assert (per_file == 9);
    msgpack_zone_destroy (&zone);
    s_close (&handle);
    env.nargs = 0;
    assert (s_open (&env, error, sizeof error) == NULL);
    s_settings.rev = "nope";
    env.nargs = 1;
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "nope"));
    s_settings.rev = NULL;
    s_settings.per_file = false;
    s_settings.exclude_dir = NULL;

    session_destroy (&session);
    testpeer_destroy (&fake);
    selftest_rmtree (dir);
    free (dir);
    free (repo);
    free (plain);
}
