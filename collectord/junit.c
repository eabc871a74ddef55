/*  junit: JUnit XML test reports into ci.test and ci.build records.

    Why the reports are read twice (junit_parse_check, then
    junit_parse_file): a report that does not parse whole must give nothing,
    the build id made from the reports must be known before their first
    result is sent, and memory must not grow with a report. The first
    reading checks every report and hashes it; the second sends. The build's
    counts are taken from what was sent, so they equal its stored rows.    */
#include "collectord/junit.h"
#include "common/buf.h"
#include "collectord/junit_files.h"
#include "collectord/junit_parse.h"
#include "collectord/srcname.h"
#include "proto/record.h"
#include "collectord/builds.h"
#include "testsupport/testpeer.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "collectord/state.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

//  The pipeline of reports no CI and no flag names
#define S_PIPELINE "junit"

//  ---------------------------------------------------------------------------
//  The collector

static struct {
    char *pipeline;
    char *build_id;
    char **branch;
    char *sha;
    char *source;
    char **report_pattern;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"pipeline", CONFIG_STRING, NULL,
     "junit: the pipeline (workflow, job) of the build the reports belong to; default from "
     "the CI's environment, else \"junit\"",
     &s_settings.pipeline},
    {"build_id", CONFIG_STRING, NULL,
     "junit: the CI's id of that build; default from the CI's environment, else made from "
     "the reports (earliest timestamp and a hash of their contents)",
     &s_settings.build_id},
    {"branch", CONFIG_LIST, NULL,
     "junit: the branch that build ran on (one; git: the branches to collect)", &s_settings.branch},
    {"sha", CONFIG_STRING, NULL, "junit: the commit that build ran on", &s_settings.sha},
    {"source", CONFIG_STRING, NULL,
     "the records' src; junit default: the CI project, else the first PATH", &s_settings.source},
    {"report_pattern", CONFIG_LIST, "*.xml",
     "junit: names of report files in the directories given", &s_settings.report_pattern},
    {NULL}};

//  Build metadata from the CI's environment (GitHub Actions, GitLab CI,
//  Jenkins), or NULLs.
typedef struct {
    const char *system, *pipeline, *build_id, *branch, *sha, *trigger;
    char project[512];
} s_ci_t;

typedef const char *(s_getenv_fn) (const char *name);

static const char *
s_env (s_getenv_fn *get, const char *name)
{
    const char *v = get (name);
    return v && *v ? v : NULL;
}

//  A project URL as the git collector names the repository (srcname_t)
static void
s_strip_scheme (const char *url, char *out, size_t size)
{
    if (!srcname_from_url (url, out, size))
        out[0] = 0;
}

static const char *
s_ci_trigger (const char *word)
{
    if (!word)
        return NULL;
    if (strcmp (word, "workflow_dispatch") == 0 || strcmp (word, "web") == 0)
        return "manual";
    if (strcmp (word, "pull_request_target") == 0 || strcmp (word, "merge_request_event") == 0)
        return "pull_request";
    return word;
}

static void
s_ci_detect (s_getenv_fn *get, s_ci_t *ci)
{
    memset (ci, 0, sizeof *ci);
    if (s_env (get, "GITHUB_ACTIONS") || s_env (get, "GITHUB_RUN_ID")) {
        ci->system = "github";
        ci->pipeline = s_env (get, "GITHUB_WORKFLOW");
        ci->build_id = s_env (get, "GITHUB_RUN_ID");
        ci->branch = s_env (get, "GITHUB_HEAD_REF");
        if (!ci->branch)
            ci->branch = s_env (get, "GITHUB_REF_NAME");
        ci->sha = s_env (get, "GITHUB_SHA");
        ci->trigger = s_ci_trigger (s_env (get, "GITHUB_EVENT_NAME"));
        const char *repo = s_env (get, "GITHUB_REPOSITORY");
        if (repo) {
            char server[256];
            s_strip_scheme (s_env (get, "GITHUB_SERVER_URL") ? s_env (get, "GITHUB_SERVER_URL")
                                                             : "https://github.com",
                            server, sizeof server);
            char url[sizeof ci->project];
            snprintf (url, sizeof url, "%s/%s", server, repo);
            s_strip_scheme (url, ci->project, sizeof ci->project);
        }
    } else if (s_env (get, "GITLAB_CI") || s_env (get, "CI_PIPELINE_ID")) {
        ci->system = "gitlab";
        ci->pipeline = s_env (get, "CI_PIPELINE_NAME");
        if (!ci->pipeline)
            ci->pipeline = s_env (get, "CI_PROJECT_PATH");
        ci->build_id = s_env (get, "CI_PIPELINE_ID");
        ci->branch = s_env (get, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME");
        if (!ci->branch)
            ci->branch = s_env (get, "CI_COMMIT_REF_NAME");
        ci->sha = s_env (get, "CI_COMMIT_SHA");
        ci->trigger = s_ci_trigger (s_env (get, "CI_PIPELINE_SOURCE"));
        if (s_env (get, "CI_PROJECT_URL"))
            s_strip_scheme (s_env (get, "CI_PROJECT_URL"), ci->project, sizeof ci->project);
    } else if (s_env (get, "JENKINS_URL") ||
               (s_env (get, "JOB_NAME") &&
                (s_env (get, "BUILD_NUMBER") || s_env (get, "BUILD_ID")))) {
        ci->system = "jenkins";
        ci->pipeline = s_env (get, "JOB_NAME");
        ci->build_id = s_env (get, "BUILD_NUMBER");
        if (!ci->build_id)
            ci->build_id = s_env (get, "BUILD_ID");
        ci->branch = s_env (get, "BRANCH_NAME");
        if (!ci->branch && (ci->branch = s_env (get, "GIT_BRANCH")) &&
            strncmp (ci->branch, "origin/", 7) == 0)
            ci->branch += 7;
        ci->sha = s_env (get, "GIT_COMMIT");
        //  The git plugin's repository names the project as its commits do
        if (s_env (get, "GIT_URL"))
            s_strip_scheme (s_env (get, "GIT_URL"), ci->project, sizeof ci->project);
        else if (s_env (get, "JOB_URL"))
            s_strip_scheme (s_env (get, "JOB_URL"), ci->project, sizeof ci->project);
    }
}

typedef struct {
    collector_names_t names;
    char **args;
    size_t nargs;
    char **patterns;
    //  build_id NULL: made from the reports of each run
    char *system, *pipeline, *build_id, *branch, *sha, *trigger;
    char *state_dir;
    //  "<size> <mtime ns> <path>" of every report read (or skipped as read
    //  before) in this run: the state once it is acknowledged
    char **read;
    size_t nread, read_cap;
} s_junit_t;

static char *
s_dup (const char *s)
{
    return s ? strdup (s) : NULL;
}

static const char *
s_flag (const char *value)
{
    return value && *value ? value : NULL;
}

static void *
s_open_env (const collector_env_t *env, s_getenv_fn *get, char *error, size_t size)
{
    if (env->nargs == 0) {
        snprintf (error, size, "no PATH: name report files, directories or globs");
        return NULL;
    }
    size_t nbranches = 0;
    while (s_settings.branch && s_settings.branch[nbranches])
        nbranches++;
    if (nbranches > 1) {
        snprintf (error, size, "collectord.branch: one branch, please (junit)");
        return NULL;
    }
    for (size_t i = 0; i < env->nargs; i++) {
        struct stat st;
        if (stat (env->args[i], &st) != 0 && !junit_is_glob (env->args[i])) {
            snprintf (error, size, "cannot read %s: %s", env->args[i], strerror (errno));
            return NULL;
        }
    }
    s_junit_t *self = calloc (1, sizeof *self);
    assert (self);
    self->state_dir = strdup (env->state_dir ? env->state_dir : "");
    self->args = calloc (env->nargs + 1, sizeof (char *));
    for (size_t i = 0; i < env->nargs; i++)
        self->args[self->nargs++] = strdup (env->args[i]);
    size_t npatterns = 0;
    while (s_settings.report_pattern && s_settings.report_pattern[npatterns])
        npatterns++;
    self->patterns = calloc (npatterns + 2, sizeof (char *));
    for (size_t i = 0; i < npatterns; i++)
        self->patterns[i] = strdup (s_settings.report_pattern[i]);
    if (npatterns == 0)
        self->patterns[0] = strdup ("*.xml");

    s_ci_t ci;
    s_ci_detect (get, &ci);
    //  Flags win over the environment; what the CI says is its own only
    //  when no flag names the build
    const char *flag_pipeline = s_flag (s_settings.pipeline);
    const char *flag_build = s_flag (s_settings.build_id);
    bool from_ci = ci.system && !flag_pipeline && !flag_build;
    self->pipeline = strdup (flag_pipeline ? flag_pipeline
                             : ci.pipeline ? ci.pipeline
                                           : S_PIPELINE);
    self->build_id = s_dup (flag_build ? flag_build : ci.build_id);
    self->system = strdup (from_ci ? ci.system : "junit");
    self->trigger = from_ci ? s_dup (ci.trigger) : NULL;
    self->branch = s_dup (nbranches ? s_settings.branch[0] : ci.branch);
    self->sha = s_dup (s_flag (s_settings.sha) ? s_settings.sha : ci.sha);

    //  target: the first PATH (the root of a glob)
    char *first = strdup (self->args[0]);
    if (junit_is_glob (first)) {
        char *wild = strpbrk (first, "*?[");
        *wild = 0;
        char *slash = strrchr (first, '/');
        if (slash)
            slash[slash == first ? 1 : 0] = 0;
        else
            snprintf (first, strlen (first) + 1, "%s", "");
        if (!*first) {
            free (first);
            first = strdup (".");
        }
    }
    self->names.target = realpath (first, NULL);
    if (!self->names.target)
        self->names.target = strdup (first);
    free (first);
    if (s_flag (s_settings.source))
        self->names.src = strdup (s_settings.source);
    else if (*ci.project)
        self->names.src = strdup (ci.project);
    else
        self->names.src = strdup (self->names.target);
    return self;
}

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    return s_open_env (env, (s_getenv_fn *) getenv, error, size);
}

static void
s_close (void **self_p)
{
    s_junit_t *self = (s_junit_t *) *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nargs; i++)
        free (self->args[i]);
    free (self->args);
    for (size_t i = 0; self->patterns && self->patterns[i]; i++)
        free (self->patterns[i]);
    free (self->patterns);
    collector_names_free (&self->names);
    free (self->system);
    free (self->pipeline);
    free (self->build_id);
    free (self->branch);
    free (self->sha);
    free (self->trigger);
    free (self->state_dir);
    for (size_t i = 0; i < self->nread; i++)
        free (self->read[i]);
    free (self->read);
    free (self);
    *self_p = NULL;
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_junit_t *self = (s_junit_t *) handle;
    msgpack_pack_map (pk,
                      4 + (self->build_id != NULL) + (self->branch != NULL) + (self->sha != NULL));
    omni_record_pack_str (pk, "paths");
    msgpack_pack_array (pk, self->nargs);
    for (size_t i = 0; i < self->nargs; i++)
        omni_record_pack_str (pk, self->args[i]);
    omni_record_pack_str (pk, "report_pattern");
    omni_record_pack_strv (pk, (const char *const *) self->patterns);
    omni_record_pack_kv (pk, "pipeline", self->pipeline);
    omni_record_pack_kv (pk, "system", self->system);
    if (self->build_id)
        omni_record_pack_kv (pk, "build_id", self->build_id);
    if (self->branch)
        omni_record_pack_kv (pk, "branch", self->branch);
    if (self->sha)
        omni_record_pack_kv (pk, "sha", self->sha);
}

//  One report file of a run, as the first reading found it
typedef enum { R_UNCHANGED, R_READ, R_OTHER, R_BROKEN } s_state_t;

typedef struct {
    char *path;
    char *key; //  for the state; NULL when it cannot be stat'ed
    s_state_t state;
    bool named; //  given as a PATH itself, not found in a directory or glob
    junit_report_t report;
} s_file_t;

//  Counts of what was sent, per status
typedef struct {
    uint64_t status[JUNIT_STATUSES];
    uint64_t retried, flaky, total;
} s_counts_t;

typedef struct {
    s_junit_t *self;
    session_t *session;
    const char *build_id;
    s_counts_t sent;
    uint64_t invalid;
    bool broken;
} s_send_t;

static int
s_send_case (void *arg, const junit_case_t *tc)
{
    s_send_t *ctx = (s_send_t *) arg;
    s_junit_t *self = ctx->self;
    msgpack_packer *pk = session_record (ctx->session, "ci.test", tc->ts);
    size_t n = 8 + (tc->class_name != NULL) + (tc->failure_type != NULL) +
               (tc->failure_message != NULL) + (tc->occurrence > 0) + tc->retried;
    msgpack_pack_map (pk, n);
    omni_record_pack_kv (pk, "suite", tc->suite);
    if (tc->class_name)
        omni_record_pack_kv (pk, "class", tc->class_name);
    omni_record_pack_kv (pk, "name", tc->name);
    //  Absent for the first: ids of results stored before occurrences were
    //  counted stay the same
    if (tc->occurrence > 0) {
        omni_record_pack_str (pk, "occurrence");
        msgpack_pack_uint32 (pk, tc->occurrence);
    }
    omni_record_pack_kv (pk, "status", junit_status_name (tc->status));
    omni_record_pack_str (pk, "duration");
    msgpack_pack_double (pk, tc->duration);
    omni_record_pack_kv (pk, "pipeline", self->pipeline);
    omni_record_pack_kv (pk, "build_id", ctx->build_id);
    omni_record_pack_kv (pk, "file", tc->file);
    if (tc->failure_type)
        omni_record_pack_kv (pk, "failure_type", tc->failure_type);
    if (tc->failure_message)
        omni_record_pack_kv (pk, "failure_message", tc->failure_message);
    omni_record_pack_str (pk, "flaky");
    if (tc->flaky)
        msgpack_pack_true (pk);
    else
        msgpack_pack_false (pk);
    if (tc->retried) {
        omni_record_pack_str (pk, "retried");
        msgpack_pack_true (pk);
    }
    int rc = session_send (ctx->session);
    if (rc > 0) {
        log_error ("junit.unsendable", "file=\"%s\" name=\"%s\" reason=\"%s\"", tc->file, tc->name,
                   session_detail (ctx->session));
        ctx->invalid++;
        return 0;
    }
    if (rc < 0) {
        ctx->broken = true;
        return -1;
    }
    s_counts_t *c = &ctx->sent;
    c->total++;
    if (tc->retried)
        c->retried++;
    else
        c->status[tc->status]++;
    c->flaky += tc->flaky;
    return 0;
}

//  A report's identity for the state: what changes when it is rewritten
static char *
s_report_key (const char *path)
{
    struct stat st;
    if (stat (path, &st) != 0)
        return NULL;
    char *key;
    assert (asprintf (&key, "%lld %lld %s", (long long) st.st_size,
                      (long long) st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec, path) > 0);
    return key;
}

static void
s_remember (s_junit_t *self, char *key)
{
    *omni_array_push (self->read, self->nread, self->read_cap) = key;
}

//  The reports the last acknowledged run read, as a set of keys.
static zhashx_t *
s_load_state (s_junit_t *self)
{
    zhashx_t *done = zhashx_new ();
    state_t *state = state_new (self->state_dir, "junit", self->names.src);
    char error[512];
    if (state_load (state, error, sizeof error))
        log_warn ("junit.state_unreadable", "error=\"%s\" effect=\"every report read\"", error);
    else
        for (size_t i = 0; i < state_size (state); i++)
            zhashx_insert (done, state_entry (state, i), (void *) 1);
    state_destroy (&state);
    return done;
}

static int
s_digest_cmp (const void *a, const void *b)
{
    return memcmp (a, b, 32);
}

//  A build id from the reports read: earliest timestamp and content hash
static char *
s_derive_build_id (const s_file_t *files, size_t nfiles)
{
    uint8_t (*digests)[32] = calloc (nfiles ? nfiles : 1, 32);
    assert (digests);
    size_t n = 0;
    int64_t started = JUNIT_NO_TIME;
    for (size_t i = 0; i < nfiles; i++) {
        if (files[i].state != R_READ)
            continue;
        memcpy (digests[n++], files[i].report.digest, 32);
        int64_t t = files[i].report.started;
        if (t != JUNIT_NO_TIME && (started == JUNIT_NO_TIME || t < started))
            started = t;
    }
    qsort (digests, n, 32, s_digest_cmp);
    uint8_t sum[32];
    unsigned int len = 0;
    EVP_Digest (digests, n * 32, sum, &len, EVP_sha256 (), NULL);
    free (digests);
    char hex[17];
    omni_util_hex (sum, 8, hex);
    char *id;
    if (started != JUNIT_NO_TIME) {
        time_t secs = (time_t) (started / 1000000000);
        struct tm tm;
        gmtime_r (&secs, &tm);
        char stamp[32];
        strftime (stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        assert (asprintf (&id, "%s-%s", stamp, hex) > 0);
    } else
        id = strdup (hex);
    return id;
}

//  Was `path` named as a PATH argument itself?
static bool
s_named (s_junit_t *self, const char *path)
{
    for (size_t i = 0; i < self->nargs; i++)
        if (strcmp (self->args[i], path) == 0)
            return true;
    return false;
}

static void
s_send_build (s_junit_t *self, session_t *session, const char *build_id, const s_file_t *files,
              size_t nfiles, const s_counts_t *sent, uint64_t broken, int *rc, char *error,
              size_t size)
{
    int64_t started = JUNIT_NO_TIME, finished = JUNIT_NO_TIME, newest = JUNIT_NO_TIME;
    double declared = 0;
    for (size_t i = 0; i < nfiles; i++) {
        const junit_report_t *r = &files[i].report;
        if (files[i].state != R_READ)
            continue;
        if (r->started != JUNIT_NO_TIME && (started == JUNIT_NO_TIME || r->started < started))
            started = r->started;
        if (r->finished != JUNIT_NO_TIME && (finished == JUNIT_NO_TIME || r->finished > finished))
            finished = r->finished;
        if (newest == JUNIT_NO_TIME || r->mtime > newest)
            newest = r->mtime;
        declared += r->root_time >= 0 ? r->root_time : r->case_time;
    }
    builds_tests_t tests = {sent->total,
                            sent->status[JUNIT_PASSED],
                            sent->status[JUNIT_FAILED],
                            sent->status[JUNIT_ERROR],
                            sent->status[JUNIT_SKIPPED],
                            sent->status[JUNIT_DISABLED],
                            sent->retried,
                            broken};
    bool failing = tests.failed || tests.error || broken;
    builds_build_t b = {self->system,  self->pipeline,
                        build_id,      failing ? "failure" : tests.total ? "success" : "other",
                        self->branch,  self->sha,
                        self->trigger, started,
                        finished,      declared,
                        &tests,        JUNIT_NO_TIME,
                        NULL};
    if (started != JUNIT_NO_TIME && finished != JUNIT_NO_TIME)
        b.duration = (double) (finished - started) / 1e9;
    //  The time of the reports: the CI's own record of the build (builds
    //  collector), written when it ended, is the later state
    b.ts = finished != JUNIT_NO_TIME ? finished
           : newest != JUNIT_NO_TIME ? newest
                                     : omni_util_now_ns ();
    builds_pack (session_record (session, "ci.build", b.ts), &b);
    int send_rc = session_send (session);
    if (send_rc > 0)
        log_error ("junit.unsendable", "kind=ci.build reason=\"%s\"", session_detail (session));
    else if (send_rc < 0) {
        *rc = collector_broken (session, error, size);
    }
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_junit_t *self = (s_junit_t *) handle;
    for (size_t i = 0; i < self->nread; i++)
        free (self->read[i]);
    self->nread = 0;
    char **paths = junit_find_files ((const char *const *) self->args, self->nargs, self->patterns);
    size_t nfiles = 0;
    while (paths[nfiles])
        nfiles++;
    s_file_t *files = calloc (nfiles ? nfiles : 1, sizeof *files);
    assert (files);
    zhashx_t *done = s_load_state (self);
    junit_parse_t *parser = junit_parse_new ();
    //  First reading: what parses whole, what it holds
    //  broken: did not parse whole; refused: named, and not JUnit
    size_t broken = 0, refused = 0, reports = 0, unchanged = 0, other = 0, empty = 0;
    uint64_t cases = 0;
    char first_error[700] = "", first_refused[700] = "";
    for (size_t i = 0; i < nfiles; i++) {
        s_file_t *f = &files[i];
        f->path = paths[i];
        f->key = s_report_key (f->path);
        f->named = s_named (self, f->path);
        if (f->key && zhashx_lookup (done, f->key)) {
            //  Read by an earlier run, unchanged since
            f->state = R_UNCHANGED;
            unchanged++;
            continue;
        }
        char err[700];
        if (junit_parse_check (parser, f->path, &f->report, err, sizeof err)) {
            f->state = R_BROKEN;
            log_error ("junit.report_unreadable", "error=\"%s\" effect=\"nothing of it sent\"",
                       err);
            if (!broken++)
                snprintf (first_error, sizeof first_error, "%s", err);
        } else if (!f->report.junit) {
            f->state = R_OTHER;
            other++;
            if (f->named) {
                snprintf (err, sizeof err,
                          "%s: not a JUnit report (root element <%s>, expected <testsuite> or "
                          "<testsuites>)",
                          f->path, f->report.root);
                log_error ("junit.not_a_report", "error=\"%s\"", err);
                if (!refused++)
                    snprintf (first_refused, sizeof first_refused, "%s", err);
            } else
                log_warn ("junit.not_a_report", "path=\"%s\" root=\"%s\" effect=\"skipped\"",
                          f->path, f->report.root);
        } else {
            f->state = R_READ;
            reports++;
            cases += f->report.cases;
            if (f->report.cases == 0) {
                empty++;
                log_warn ("junit.empty_report", "path=\"%s\" reason=\"no test case in it\"",
                          f->path);
            }
        }
    }
    zhashx_destroy (&done);
    junit_parse_destroy (&parser);

    //  The build, then the second reading: the results
    char *build_id = self->build_id ? strdup (self->build_id) : s_derive_build_id (files, nfiles);
    s_send_t ctx = {self, session, build_id, {{0}, 0, 0, 0}, 0, false};
    progress_t *progress = session_progress (session);
    progress_start (progress, "report files", nfiles);
    parser = junit_parse_new ();
    for (size_t i = 0; i < nfiles && !ctx.broken; i++) {
        s_file_t *f = &files[i];
        if (f->state == R_READ && f->report.cases) {
            char err[700];
            int rc =
                junit_parse_file (parser, f->path, &f->report, s_send_case, &ctx, err, sizeof err);
            if (rc == -1) {
                f->state = R_BROKEN;
                log_error ("junit.report_unreadable", "error=\"%s\"", err);
                if (!broken++)
                    snprintf (first_error, sizeof first_error, "%s", err);
            }
        }
        //  Broken reports are read again next time: they may be complete by then
        if (f->state != R_BROKEN && f->key) {
            s_remember (self, f->key);
            f->key = NULL;
        }
        progress_update (progress, i + 1);
    }
    progress_finish (progress);
    junit_parse_destroy (&parser);

    int rc = 0;
    if (ctx.broken) {
        rc = collector_broken (session, error, size);
    } else if (ctx.sent.total || broken)
        s_send_build (self, session, build_id, files, nfiles, &ctx.sent, broken, &rc, error, size);
    const s_counts_t *t = &ctx.sent;
    log_info ("junit.collected",
              "files=%zu reports=%zu unchanged=%zu failed_files=%zu other_xml=%zu"
              " empty_reports=%zu build_id=\"%s\" tests=%" PRIu64 " passed=%" PRIu64
              " failed=%" PRIu64 " error=%" PRIu64 " skipped=%" PRIu64 " disabled=%" PRIu64
              " retried=%" PRIu64 " flaky=%" PRIu64 " invalid=%" PRIu64,
              nfiles, reports, unchanged, broken, other, empty, build_id, t->total,
              t->status[JUNIT_PASSED], t->status[JUNIT_FAILED], t->status[JUNIT_ERROR],
              t->status[JUNIT_SKIPPED], t->status[JUNIT_DISABLED], t->retried, t->flaky,
              ctx.invalid);
    if (rc == 0 && broken) {
        snprintf (error, size, "%zu of %zu report files unreadable, first: %s", broken, nfiles,
                  first_error);
        rc = -1;
    } else if (rc == 0 && refused) {
        snprintf (error, size, "%s", first_refused);
        rc = -1;
    } else if (rc == 0 && nfiles == 0)
        //  A folder watched with --interval may be empty for a while
        log_warn ("junit.no_reports", "paths=%zu reason=\"no report file found\"", self->nargs);
    else if (rc == 0 && cases == 0 && (reports || other)) {
        //  Nothing to trust: as Jenkins, a run of no results fails
        snprintf (error, size,
                  "no test case in the %zu report files read (%zu JUnit reports without test "
                  "cases, %zu other XML files): were the tests run?",
                  reports + other, reports, other);
        rc = -1;
    }
    free (build_id);
    for (size_t i = 0; i < nfiles; i++) {
        free (files[i].path);
        free (files[i].key);
    }
    free (files);
    free (paths);
    return rc;
}

//  After every record was acknowledged: the reports read need not be read
//  again while they stay as they are.
static int
s_commit (void *handle, char *error, size_t size)
{
    s_junit_t *self = (s_junit_t *) handle;
    state_t *state = state_new (self->state_dir, "junit", self->names.src);
    for (size_t i = 0; i < self->nread; i++)
        state_add (state, self->read[i]);
    int rc = state_save (state, error, size);
    state_destroy (&state);
    return rc;
}

const collector_t junit_collector = {
    .name = "junit",
    .usage = "PATH...",
    .summary = "test reports in JUnit XML (Surefire, Gradle, pytest, Go, Jest, ctest ...)",
    .options = s_options,
    .open = s_open,
    .close = s_close,
    .source = collector_source,
    .target = collector_target,
    .pack_config = s_pack_config,
    .collect = s_collect,
    .commit = s_commit,
    .keeps_state = true,
};

//  ---------------------------------------------------------------------------
//  Self-test

static const char *s_fake_env[][2] = {{"GITHUB_ACTIONS", "true"},
                                      {"GITHUB_WORKFLOW", "CI"},
                                      {"GITHUB_RUN_ID", "7001"},
                                      {"GITHUB_REF_NAME", "main"},
                                      {"GITHUB_SHA", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
                                      {"GITHUB_EVENT_NAME", "push"},
                                      {"GITHUB_REPOSITORY", "acme/widget"},
                                      {"GITHUB_SERVER_URL", "https://github.com"},
                                      {NULL, NULL}};

static const char *
s_fake_getenv (const char *name)
{
    for (size_t i = 0; s_fake_env[i][0]; i++)
        if (strcmp (s_fake_env[i][0], name) == 0)
            return s_fake_env[i][1];
    return NULL;
}

static const char *
s_no_env (const char *name)
{
    (void) name;
    return NULL;
}

static const char *s_jenkins_env[][2] = {{"JENKINS_URL", "https://ci.example.com/"},
                                         {"JOB_NAME", "team/widget"},
                                         {"BUILD_NUMBER", "42"},
                                         {"GIT_BRANCH", "origin/dev"},
                                         {"JOB_URL", "https://ci.example.com/job/team/job/widget/"},
                                         {NULL, NULL}};

static const char *
s_jenkins_getenv (const char *name)
{
    for (size_t i = 0; s_jenkins_env[i][0]; i++)
        if (strcmp (s_jenkins_env[i][0], name) == 0)
            return s_jenkins_env[i][1];
    return NULL;
}

//  What the fake ingestd holds: ci.test per status, the ci.build's counts
typedef struct {
    int64_t tests, build[8]; //  build: total passed failed error skipped disabled retried
    size_t builds;
    char build_id[128], status[32];
    double duration;
} s_got_t;

static void
s_got (testpeer_t *fake, s_got_t *got)
{
    memset (got, 0, sizeof *got);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1 << 16);
    static const char *counts[] = {"total",   "passed",   "failed", "error",
                                   "skipped", "disabled", "retried"};
    for (size_t k = 0; k < testpeer_count (fake); k++) {
        omni_record_t rec;
        testpeer_record (fake, k, &rec, &zone);
        omni_record_str_t s;
        if (omni_record_str_eq (rec.kind, "ci.build")) {
            got->builds++;
            assert (omni_record_field_str (rec.body, "build_id", &s));
            snprintf (got->build_id, sizeof got->build_id, "%.*s", (int) s.len, s.ptr);
            assert (omni_record_field_str (rec.body, "status", &s));
            snprintf (got->status, sizeof got->status, "%.*s", (int) s.len, s.ptr);
            assert (omni_record_field_num (rec.body, "duration", &got->duration));
            const msgpack_object *tests = omni_record_field (rec.body, "tests");
            for (size_t c = 0; c < 7; c++)
                assert (tests && omni_record_field_int (tests, counts[c], &got->build[c]));
        } else if (omni_record_str_eq (rec.kind, "ci.test")) {
            got->tests++;
            assert (omni_record_field_str (rec.body, "build_id", &s));
        }
    }
    msgpack_zone_destroy (&zone);
}

//  One run of the collector on `handle` against the fake ingestd
static int
s_run (s_junit_t *handle, session_t *session, testpeer_t *fake, bool commit, char *err, size_t size)
{
    testpeer_clear (fake);
    collector_test_begin (session, &junit_collector, handle);
    int rc = s_collect (handle, session, err, size);
    assert (session_end (session, rc ? "failed" : "ok", rc ? err : NULL) == 0);
    if (rc == 0 && commit)
        assert (s_commit (handle, err, size) == 0);
    return rc;
}

void
junit_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("junit");
    char *dirs_root = selftest_fixture ("junit");
    char err[800];
    char *big = selftest_write (dir, "big.xml",
                                "<testsuite name=\"s\"><testcase name=\"t\"><failure>x</failure>"
                                "</testcase></testsuite>");

    //  Build metadata from the environment: GitHub, Jenkins; flags win
    s_settings.pipeline = s_settings.build_id = s_settings.sha = s_settings.source = NULL;
    s_settings.branch = NULL;
    static char *patterns[] = {"*.xml", NULL};
    s_settings.report_pattern = patterns;
    const char *args3[] = {dirs_root, big};
    collector_env_t env = {
        .args = args3, .nargs = 2, .state_dir = "/nonexistent", .instance = "test"};
    s_junit_t *handle = (s_junit_t *) s_open_env (&env, s_fake_getenv, err, sizeof err);
    assert (handle);
    assert (strcmp (handle->names.src, "github.com/acme/widget") == 0);
    assert (strcmp (handle->pipeline, "CI") == 0 && strcmp (handle->build_id, "7001") == 0);
    assert (strcmp (handle->system, "github") == 0 && strcmp (handle->trigger, "push") == 0);
    assert (strcmp (handle->branch, "main") == 0);
    s_close ((void **) &handle);
    handle = (s_junit_t *) s_open_env (&env, s_jenkins_getenv, err, sizeof err);
    assert (handle && strcmp (handle->names.src, "ci.example.com/job/team/job/widget") == 0);
    assert (strcmp (handle->pipeline, "team/widget") == 0);
    assert (strcmp (handle->build_id, "42") == 0 && strcmp (handle->branch, "dev") == 0);
    s_close ((void **) &handle);
    //  No CI, no flags: pipeline "junit", the build id made from the reports
    handle = (s_junit_t *) s_open_env (&env, s_no_env, err, sizeof err);
    assert (handle && strcmp (handle->pipeline, "junit") == 0 && !handle->build_id);
    assert (strcmp (handle->names.src, handle->names.target) == 0 &&
            strcmp (handle->system, "junit") == 0);
    s_close ((void **) &handle);
    s_settings.pipeline = "release";
    handle = (s_junit_t *) s_open_env (&env, s_no_env, err, sizeof err);
    assert (handle && strcmp (handle->pipeline, "release") == 0 && !handle->build_id);
    s_close ((void **) &handle);
    s_settings.build_id = "r-9";
    static char *branch[] = {"rel", NULL};
    s_settings.branch = branch;
    s_settings.source = "acme/widget";
    handle = (s_junit_t *) s_open_env (&env, s_fake_getenv, err, sizeof err);
    assert (handle && strcmp (handle->pipeline, "release") == 0);
    assert (strcmp (handle->system, "junit") == 0 && !handle->trigger);
    assert (strcmp (handle->branch, "rel") == 0 && strcmp (handle->names.src, "acme/widget") == 0);
    const char *missing[] = {"/nonexistent/reports"};
    collector_env_t env_missing = {
        .args = missing, .nargs = 1, .state_dir = "/nonexistent", .instance = "test"};
    assert (s_open_env (&env_missing, s_no_env, err, sizeof err) == NULL);
    assert (strstr (err, "/nonexistent/reports"));

    //  The collector against the fake ingestd: every report under the
    //  fixtures plus the big one; the malformed file fails the run and gives
    //  nothing, the rest is sent, and one ci.build sums up what was sent
    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("junit", testpeer_endpoint (fake), 7);
    assert (s_run (handle, session, fake, false, err, sizeof err) == -1);
    assert (strstr (err, "1 of 13 report files unreadable") && strstr (err, "malformed.xml:5:"));
    s_got_t got;
    s_got (fake, &got);
    //  7 + 2 + 4 + 6 + 4 + 5 + 5 + 4 + 4 + 1 (big): gotestsum's rerun is a result
    int64_t expect = 7 + 2 + 4 + 6 + 4 + 5 + 5 + 4 + 4 + 1;
    assert (got.tests == expect && got.builds == 1);
    assert (strcmp (got.build_id, "r-9") == 0 && strcmp (got.status, "failure") == 0);
    assert (got.build[0] == expect);
    //  Per report, as in the order of the counts above
    assert (got.build[1] == 4 + 1 + 2 + 2 + 2 + 2 + 3 + 1 + 4);
    assert (got.build[2] == 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1);
    assert (got.build[3] == 1 + 1);
    assert (got.build[4] == 1 + 1 + 2 + 1 + 1 + 1 + 1);
    assert (got.build[5] == 1 && got.build[6] == 1);
    assert (got.build[0] == got.build[1] + got.build[2] + got.build[3] + got.build[4] +
                                got.build[5] + got.build[6]);
    s_close ((void **) &handle);
    s_settings.pipeline = s_settings.build_id = s_settings.source = NULL;
    s_settings.branch = NULL;

    //  A build id made from the reports: the same reports, the same build;
    //  incremental: a second run reads only what changed since the first
    char *gradle;
    assert (asprintf (&gradle, "%s/gradle", dirs_root) > 0);
    const char *args4[] = {gradle, big};
    collector_env_t env4 = {.args = args4, .nargs = 2, .state_dir = dir, .instance = "test"};
    handle = (s_junit_t *) s_open_env (&env4, s_no_env, err, sizeof err);
    assert (handle);
    char first_id[128] = "";
    for (int round = 0; round < 3; round++) {
        if (round == 2) {
            //  The report rewritten: read again, another build
            free (selftest_write (dir, "big.xml",
                                  "<testsuite name=\"s\"><testcase name=\"t2\"/></testsuite>"));
        }
        assert (s_run (handle, session, fake, true, err, sizeof err) == 0);
        s_got (fake, &got);
        assert (got.tests == (round == 0 ? 4 + 1 : round == 1 ? 0 : 1));
        assert (got.builds == (round == 1 ? 0u : 1u));
        if (round == 0) {
            //  Gradle's timestamp 2024-03-01T12:00:00 and a digest
            assert (strncmp (got.build_id, "20240301T120000Z-", 17) == 0);
            assert (strlen (got.build_id) == 17 + 16);
            snprintf (first_id, sizeof first_id, "%s", got.build_id);
            //  Without timestamps the root's declared time (0.75 s for Gradle)
        }
        if (round == 2)
            assert (strlen (got.build_id) == 16 && strcmp (got.build_id, first_id) != 0);
    }
    s_close ((void **) &handle);
    state_set_full (true);
    handle = (s_junit_t *) s_open_env (&env4, s_no_env, err, sizeof err);
    free (selftest_write (dir, "big.xml",
                          "<testsuite name=\"s\"><testcase name=\"t\"/></testsuite>"));
    assert (s_run (handle, session, fake, false, err, sizeof err) == 0);
    s_got (fake, &got);
    char again[128];
    snprintf (again, sizeof again, "%s", got.build_id);
    assert (s_run (handle, session, fake, false, err, sizeof err) == 0);
    s_got (fake, &got);
    assert (strcmp (got.build_id, again) == 0);
    state_set_full (false);
    s_close ((void **) &handle);

    //  Root-only time: the build's duration is the root's declared time
    char *timed =
        selftest_write (dir, "timed.xml",
                        "<testsuites time=\"4.5\"><testsuite name=\"t\">"
                        "<testcase name=\"a\"/><testcase name=\"b\"/></testsuite></testsuites>");
    const char *args5[] = {timed};
    collector_env_t env5 = {.args = args5, .nargs = 1, .state_dir = dir, .instance = "test"};
    handle = (s_junit_t *) s_open_env (&env5, s_no_env, err, sizeof err);
    assert (s_run (handle, session, fake, false, err, sizeof err) == 0);
    s_got (fake, &got);
    assert (got.tests == 2 && got.duration == 4.5 && strcmp (got.status, "success") == 0);
    s_close ((void **) &handle);
    //  No test case at all, or a named file that is not JUnit: the run fails
    free (selftest_write (dir, "timed.xml",
                          "<testsuites><testsuite name=\"t\" tests=\"0\"/></testsuites>"));
    handle = (s_junit_t *) s_open_env (&env5, s_no_env, err, sizeof err);
    assert (s_run (handle, session, fake, false, err, sizeof err) == -1);
    assert (strstr (err, "no test case in the 1 report files read"));
    s_got (fake, &got);
    assert (got.tests == 0 && got.builds == 0);
    free (
        selftest_write (dir, "timed.xml", "<project><modelVersion>4.0.0</modelVersion></project>"));
    assert (s_run (handle, session, fake, false, err, sizeof err) == -1);
    assert (strstr (err, "timed.xml: not a JUnit report (root element <project>"));
    s_close ((void **) &handle);
    free (timed);

    session_destroy (&session);
    testpeer_destroy (&fake);
    free (gradle);
    free (dirs_root);
    free (big);
    selftest_rmtree (dir);
    free (dir);
}
