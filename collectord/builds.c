/*  builds: CI build history (GitHub Actions, GitLab, Jenkins JSON exports)
    into ci.build records, with jansson.                                    */
#include "collectord/builds.h"
#include "common/buf.h"
#include "collectord/srcname.h"
#include "proto/record.h"
#include "testsupport/testpeer.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  Settings from the config (section collectord)
static struct {
    char *pipeline;
    char *source;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"pipeline", CONFIG_STRING, NULL,
     "builds, junit: the pipeline name (builds: of GitLab pipelines, whose export has none; "
     "default the project path)",
     &s_settings.pipeline},
    {"source", CONFIG_STRING, NULL,
     "the records' src; builds default: the project of the first build (github.com/O/R ...)",
     &s_settings.source},
    {NULL}};

//  ---------------------------------------------------------------------------
//  Times

int
builds_parse_time (const char *text, int64_t *ns)
{
    if (!text)
        return -1;
    const char *p = text;
    while (*p == ' ')
        p++;
    omni_util_time_t when;
    if (omni_util_iso_time (&p, true, &when))
        return -1;
    while (*p == ' ')
        p++;
    if (*p)
        return -1;
    //  Outside it the ns would not fit in 64 bits (1677-2262) and wrap, or
    //  name no time a build or test ran (gotestsum writes 0001-01-01)
    if (when.year < 1969 || when.year > 2200)
        return -2;
    int64_t t = when.secs * 1000000000 + when.frac_ns;
    if (t < 0 || t >= BUILDS_TIME_MAX)
        return -2;
    *ns = t;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Packing

//  A count of the tests summary (msgpack's encoding of a count is the same
//  signed or unsigned).
static void
s_pack_count (msgpack_packer *pk, const char *key, uint64_t count)
{
    omni_record_pack_kv_int (pk, key, (int64_t) count);
}

//  An optional time: nothing for BUILDS_NO_TIME.
static void
s_pack_time (msgpack_packer *pk, const char *key, int64_t ns)
{
    if (ns != BUILDS_NO_TIME)
        omni_record_pack_kv_int (pk, key, ns);
}

//  An optional string: nothing for NULL.
static void
s_pack_opt (msgpack_packer *pk, const char *key, const char *value)
{
    if (value)
        omni_record_pack_kv (pk, key, value);
}

void
builds_pack (msgpack_packer *pk, const builds_build_t *b)
{
    size_t n = 3 + (b->system != NULL) + (b->branch != NULL) + (b->sha != NULL) +
               (b->trigger != NULL) + (b->started != BUILDS_NO_TIME) +
               (b->finished != BUILDS_NO_TIME) + (b->duration >= 0) + (b->tests != NULL);
    msgpack_pack_map (pk, n);
    omni_record_pack_kv (pk, "pipeline", b->pipeline);
    omni_record_pack_kv (pk, "build_id", b->build_id);
    omni_record_pack_kv (pk, "status", b->status);
    s_pack_opt (pk, "system", b->system);
    s_pack_opt (pk, "branch", b->branch);
    s_pack_opt (pk, "sha", b->sha);
    s_pack_time (pk, "started", b->started);
    s_pack_time (pk, "finished", b->finished);
    if (b->duration >= 0)
        omni_record_pack_kv_double (pk, "duration", b->duration);
    s_pack_opt (pk, "trigger", b->trigger);
    if (b->tests) {
        omni_record_pack_str (pk, "tests");
        msgpack_pack_map (pk, 7 + (b->tests->unreadable > 0));
        s_pack_count (pk, "total", b->tests->total);
        s_pack_count (pk, "passed", b->tests->passed);
        s_pack_count (pk, "failed", b->tests->failed);
        s_pack_count (pk, "error", b->tests->error);
        s_pack_count (pk, "skipped", b->tests->skipped);
        s_pack_count (pk, "disabled", b->tests->disabled);
        s_pack_count (pk, "retried", b->tests->retried);
        if (b->tests->unreadable)
            s_pack_count (pk, "unreadable", b->tests->unreadable);
    }
}

//  ---------------------------------------------------------------------------
//  JSON helpers

//  A non-empty string member, or NULL.
static const char *
s_str (json_t *obj, const char *key)
{
    json_t *v = json_object_get (obj, key);
    const char *s = json_is_string (v) ? json_string_value (v) : NULL;
    return s && *s ? s : NULL;
}

//  A string or integer member as text into `buf`; NULL when absent.
static const char *
s_id (json_t *obj, const char *key, char *buf, size_t size)
{
    json_t *v = json_object_get (obj, key);
    if (json_is_integer (v)) {
        snprintf (buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value (v));
        return buf;
    }
    if (json_is_string (v) && *json_string_value (v)) {
        snprintf (buf, size, "%s", json_string_value (v));
        return buf;
    }
    return NULL;
}

static int64_t
s_time (json_t *obj, const char *key)
{
    int64_t ns;
    const char *s = s_str (obj, key);
    return s && builds_parse_time (s, &ns) == 0 ? ns : BUILDS_NO_TIME;
}

//  The start (`started_key`, else created_at) into `b`; returns the last
//  update (updated_at), BUILDS_NO_TIME when there is none.
static int64_t
s_times (json_t *obj, const char *started_key, builds_build_t *b)
{
    b->started = s_time (obj, started_key);
    if (b->started == BUILDS_NO_TIME)
        b->started = s_time (obj, "created_at");
    return s_time (obj, "updated_at");
}

//  What GitHub and GitLab exports leave to derive: the duration from the
//  times when the export gives none, and the record's time, the last
//  update, else the start.
static void
s_derive (builds_build_t *b, bool has_duration, int64_t updated)
{
    if (!has_duration && b->started != BUILDS_NO_TIME && b->finished != BUILDS_NO_TIME &&
        b->finished >= b->started)
        b->duration = (double) (b->finished - b->started) / 1e9;
    b->ts = updated != BUILDS_NO_TIME ? updated : b->started;
}

//  "<prefix>-<the id at `key`>", else `bare`: the name of a pipeline the
//  export does not name.
static const char *
s_name_by_id (json_t *obj, const char *key, const char *prefix, const char *bare, char *buf,
              size_t size)
{
    char id[64];
    if (s_id (obj, key, id, sizeof id))
        snprintf (buf, size, "%s-%s", prefix, id);
    else
        snprintf (buf, size, "%s", bare);
    return buf;
}

//  "https://host/a/b/-/pipelines/3" with `cut` "/-/" -> "host/a/b" in buf,
//  normalized as the git collector names a repository (srcname_t), so a
//  build names the source its repository's commits have.
static const char *
s_project_from_url (const char *url, const char *cut, char *buf, size_t size)
{
    if (!url)
        return NULL;
    const char *start = strstr (url, "://");
    start = start ? start + 3 : url;
    const char *end = cut ? strstr (start, cut) : NULL;
    size_t len = end ? (size_t) (end - url) : strlen (url);
    char *head = strndup (url, len);
    assert (head);
    const char *name = srcname_from_url (head, buf, size);
    free (head);
    return name;
}

//  ---------------------------------------------------------------------------
//  GitHub Actions: a workflow run

static const char *
s_github_status (const char *status, const char *conclusion)
{
    if (status && strcmp (status, "completed") != 0)
        return "other";
    if (!conclusion)
        return "other";
    if (strcmp (conclusion, "success") == 0)
        return "success";
    if (strcmp (conclusion, "failure") == 0 || strcmp (conclusion, "timed_out") == 0 ||
        strcmp (conclusion, "startup_failure") == 0)
        return "failure";
    if (strcmp (conclusion, "cancelled") == 0)
        return "cancelled";
    return "other";
}

static const char *
s_trigger (const char *word)
{
    if (!word)
        return NULL;
    static const char *map[][2] = {{"workflow_dispatch", "manual"},
                                   {"web", "manual"},
                                   {"pull_request_target", "pull_request"},
                                   {"merge_request_event", "pull_request"},
                                   {"external_pull_request_event", "pull_request"},
                                   {NULL, NULL}};
    for (size_t i = 0; map[i][0]; i++)
        if (strcmp (word, map[i][0]) == 0)
            return map[i][1];
    return word;
}

static int
s_github_run (json_t *run, builds_fn *fn, void *arg, int64_t *count)
{
    char id[64], path[256], project[512];
    builds_build_t b = {"github",       NULL,           NULL, NULL, NULL,           NULL, NULL,
                        BUILDS_NO_TIME, BUILDS_NO_TIME, -1,   NULL, BUILDS_NO_TIME, NULL};
    b.build_id = s_id (run, "id", id, sizeof id);
    if (!b.build_id) {
        log_warn ("builds.skipped", "system=github reason=\"a workflow run without an id\"");
        return 0;
    }
    b.pipeline = s_str (run, "name");
    if (!b.pipeline)
        b.pipeline = s_str (run, "path");
    if (!b.pipeline)
        b.pipeline = s_name_by_id (run, "workflow_id", "workflow", "workflow", path, sizeof path);
    const char *status = s_str (run, "status");
    b.status = s_github_status (status, s_str (run, "conclusion"));
    b.branch = s_str (run, "head_branch");
    b.sha = s_str (run, "head_sha");
    b.trigger = s_trigger (s_str (run, "event"));
    int64_t updated = s_times (run, "run_started_at", &b);
    if (status && strcmp (status, "completed") == 0)
        b.finished = updated;
    s_derive (&b, false, updated);
    json_t *repo = json_object_get (run, "repository");
    b.project = s_project_from_url (s_str (repo, "html_url"), NULL, project, sizeof project);
    if (!b.project)
        b.project =
            s_project_from_url (s_str (run, "html_url"), "/actions/", project, sizeof project);
    if (!b.project && s_str (repo, "full_name")) {
        snprintf (project, sizeof project, "github.com/%s", s_str (repo, "full_name"));
        b.project = project;
    }
    (*count)++;
    return fn (arg, &b);
}

//  ---------------------------------------------------------------------------
//  GitLab: a pipeline

static const char *
s_gitlab_status (const char *status)
{
    if (!status)
        return "other";
    if (strcmp (status, "success") == 0)
        return "success";
    if (strcmp (status, "failed") == 0)
        return "failure";
    if (strcmp (status, "canceled") == 0 || strcmp (status, "canceling") == 0 ||
        strcmp (status, "cancelled") == 0)
        return "cancelled";
    return "other";
}

static bool
s_gitlab_finished (const char *status)
{
    return status && (strcmp (status, "success") == 0 || strcmp (status, "failed") == 0 ||
                      strcmp (status, "canceled") == 0 || strcmp (status, "skipped") == 0);
}

static int
s_gitlab_pipeline (json_t *pl, const char *pipeline, builds_fn *fn, void *arg, int64_t *count)
{
    char id[64], name[512], project[512];
    builds_build_t b = {"gitlab",       NULL,           NULL, NULL, NULL,           NULL, NULL,
                        BUILDS_NO_TIME, BUILDS_NO_TIME, -1,   NULL, BUILDS_NO_TIME, NULL};
    b.build_id = s_id (pl, "id", id, sizeof id);
    if (!b.build_id) {
        log_warn ("builds.skipped", "system=gitlab reason=\"a pipeline without an id\"");
        return 0;
    }
    b.project = s_project_from_url (s_str (pl, "web_url"), "/-/", project, sizeof project);
    b.pipeline = s_str (pl, "name");
    if (!b.pipeline)
        b.pipeline = pipeline;
    if (!b.pipeline && b.project) {
        //  The project path: the URL after the host
        const char *slash = strchr (b.project, '/');
        b.pipeline = slash ? slash + 1 : b.project;
    }
    if (!b.pipeline)
        b.pipeline = s_name_by_id (pl, "project_id", "project", "pipeline", name, sizeof name);
    const char *status = s_str (pl, "status");
    b.status = s_gitlab_status (status);
    b.branch = s_str (pl, "ref");
    b.sha = s_str (pl, "sha");
    b.trigger = s_trigger (s_str (pl, "source"));
    int64_t updated = s_times (pl, "started_at", &b);
    b.finished = s_time (pl, "finished_at");
    if (b.finished == BUILDS_NO_TIME && s_gitlab_finished (status))
        b.finished = updated;
    json_t *duration = json_object_get (pl, "duration");
    if (json_is_number (duration))
        b.duration = json_number_value (duration);
    s_derive (&b, json_is_number (duration), updated);
    (*count)++;
    return fn (arg, &b);
}

//  ---------------------------------------------------------------------------
//  Jenkins: a build of a job

static const char *
s_jenkins_status (json_t *build)
{
    if (json_is_true (json_object_get (build, "building")))
        return "other";
    const char *result = s_str (build, "result");
    if (!result)
        return "other";
    if (strcmp (result, "SUCCESS") == 0)
        return "success";
    if (strcmp (result, "FAILURE") == 0 || strcmp (result, "UNSTABLE") == 0)
        return "failure";
    if (strcmp (result, "ABORTED") == 0)
        return "cancelled";
    return "other";
}

//  The job's full name from a build or job URL: /job/a/job/b/12/ -> a/b
static const char *
s_jenkins_name_from_url (const char *url, char *buf, size_t size)
{
    if (!url || size == 0)
        return NULL;
    size_t used = 0;
    const char *p = url;
    buf[0] = 0;
    while ((p = strstr (p, "/job/"))) {
        p += 5;
        if (used && used + 1 < size)
            buf[used++] = '/';
        for (; *p && *p != '/' && used + 1 < size; p++) {
            //  Job names are percent-encoded in URLs
            if (*p == '%' && isxdigit ((unsigned char) p[1]) && isxdigit ((unsigned char) p[2])) {
                char hex[3] = {p[1], p[2], 0};
                buf[used++] = (char) strtol (hex, NULL, 16);
                p += 2;
            } else
                buf[used++] = *p;
        }
        buf[used] = 0;
    }
    return used ? buf : NULL;
}

static const char *
s_jenkins_trigger (json_t *build)
{
    json_t *actions = json_object_get (build, "actions"), *action;
    size_t i;
    json_array_foreach (actions, i, action)
    {
        json_t *causes = json_object_get (action, "causes"), *cause;
        size_t j;
        json_array_foreach (causes, j, cause)
        {
            const char *cls = s_str (cause, "_class");
            if (!cls)
                continue;
            if (strstr (cls, "UserIdCause") || strstr (cls, "UserCause"))
                return "manual";
            if (strstr (cls, "TimerTrigger"))
                return "schedule";
            if (strstr (cls, "PullRequest") || strstr (cls, "PRCause") ||
                strstr (cls, "ChangeRequest"))
                return "pull_request";
            if (strstr (cls, "SCMTrigger") || strstr (cls, "PushCause") ||
                strstr (cls, "BranchEventCause") || strstr (cls, "BranchIndexingCause"))
                return "push";
            if (strstr (cls, "UpstreamCause"))
                return "upstream";
            if (strstr (cls, "RemoteCause"))
                return "api";
        }
    }
    return NULL;
}

//  Branch and sha from the git plugin's BuildData action.
static void
s_jenkins_revision (json_t *build, const char **branch, const char **sha)
{
    json_t *actions = json_object_get (build, "actions"), *action;
    size_t i;
    json_array_foreach (actions, i, action)
    {
        json_t *rev = json_object_get (action, "lastBuiltRevision");
        if (!json_is_object (rev))
            continue;
        *sha = s_str (rev, "SHA1");
        json_t *branches = json_object_get (rev, "branch");
        const char *name = s_str (json_array_get (branches, 0), "name");
        if (name) {
            static const char *prefixes[] = {"refs/remotes/origin/", "refs/heads/", "origin/",
                                             NULL};
            for (size_t k = 0; prefixes[k]; k++)
                if (strncmp (name, prefixes[k], strlen (prefixes[k])) == 0) {
                    name += strlen (prefixes[k]);
                    break;
                }
            *branch = *name ? name : NULL;
        }
        return;
    }
}

static int
s_jenkins_build (json_t *build, json_t *job, const char *pipeline, builds_fn *fn, void *arg,
                 int64_t *count)
{
    char id[64], name[512], project[512];
    builds_build_t b = {"jenkins",      NULL,           NULL, NULL, NULL,           NULL, NULL,
                        BUILDS_NO_TIME, BUILDS_NO_TIME, -1,   NULL, BUILDS_NO_TIME, NULL};
    b.build_id = s_id (build, "id", id, sizeof id);
    if (!b.build_id)
        b.build_id = s_id (build, "number", id, sizeof id);
    if (!b.build_id) {
        log_warn ("builds.skipped", "system=jenkins reason=\"a build without id or number\"");
        return 0;
    }
    b.pipeline = s_str (job, "fullName");
    if (!b.pipeline)
        b.pipeline = s_jenkins_name_from_url (s_str (job, "url"), name, sizeof name);
    if (!b.pipeline)
        b.pipeline = s_jenkins_name_from_url (s_str (build, "url"), name, sizeof name);
    if (!b.pipeline)
        b.pipeline = s_str (job, "name");
    if (!b.pipeline) {
        //  "job #12"
        const char *full = s_str (build, "fullDisplayName");
        const char *hash = full ? strstr (full, " #") : NULL;
        if (hash && hash > full) {
            snprintf (name, sizeof name, "%.*s", (int) (hash - full), full);
            b.pipeline = name;
        }
    }
    if (!b.pipeline)
        b.pipeline = pipeline ? pipeline : "jenkins";
    b.status = s_jenkins_status (build);
    s_jenkins_revision (build, &b.branch, &b.sha);
    b.trigger = s_jenkins_trigger (build);
    json_t *ts = json_object_get (build, "timestamp");
    if (json_is_integer (ts))
        b.started = json_integer_value (ts) * 1000000;
    json_t *duration = json_object_get (build, "duration");
    if (!json_is_true (json_object_get (build, "building")) && json_is_integer (duration) &&
        b.started != BUILDS_NO_TIME) {
        b.duration = (double) json_integer_value (duration) / 1000.0;
        b.finished = b.started + json_integer_value (duration) * 1000000;
    }
    b.ts = b.finished != BUILDS_NO_TIME ? b.finished : b.started;
    //  The repository the git plugin checked out, else the job URL (the
    //  build's without its number)
    const char *url = s_str (job, "url");
    json_t *actions = json_object_get (build, "actions"), *action;
    size_t i;
    json_array_foreach (actions, i, action)
    {
        json_t *remote = json_array_get (json_object_get (action, "remoteUrls"), 0);
        if (!b.project && json_is_string (remote))
            b.project =
                s_project_from_url (json_string_value (remote), NULL, project, sizeof project);
    }
    if (!b.project && url)
        b.project = s_project_from_url (url, NULL, project, sizeof project);
    else if (!b.project && (url = s_str (build, "url"))) {
        s_project_from_url (url, NULL, project, sizeof project);
        char *slash = strrchr (project, '/');
        if (slash && slash > project)
            *slash = 0;
        b.project = project;
    }
    (*count)++;
    return fn (arg, &b);
}

static int s_value (json_t *value, const char *pipeline, builds_fn *fn, void *arg, int64_t *count,
                    int depth);

//  A Jenkins job (or folder) object: its builds, then its jobs.
static int
s_jenkins_job (json_t *job, const char *pipeline, builds_fn *fn, void *arg, int64_t *count,
               int depth)
{
    json_t *builds = json_object_get (job, "builds"), *build;
    size_t i;
    json_array_foreach (builds, i, build)
    {
        int rc = s_jenkins_build (build, job, pipeline, fn, arg, count);
        if (rc)
            return rc;
    }
    json_t *jobs = json_object_get (job, "jobs"), *sub;
    json_array_foreach (jobs, i, sub)
    {
        int rc = s_value (sub, pipeline, fn, arg, count, depth + 1);
        if (rc)
            return rc;
    }
    return 0;
}

//  ---------------------------------------------------------------------------
//  Shapes

typedef enum { S_UNKNOWN, S_GITHUB, S_GITLAB, S_JENKINS_BUILD, S_JENKINS_JOB } s_shape_t;

static s_shape_t
s_shape (json_t *obj)
{
    if (!json_is_object (obj))
        return S_UNKNOWN;
    if (json_object_get (obj, "builds") || json_object_get (obj, "jobs"))
        return S_JENKINS_JOB;
    if (json_object_get (obj, "conclusion") || json_object_get (obj, "run_number") ||
        json_object_get (obj, "workflow_id") || json_object_get (obj, "head_sha"))
        return S_GITHUB;
    if (json_object_get (obj, "result") || json_object_get (obj, "building") ||
        (json_object_get (obj, "number") && json_object_get (obj, "timestamp")))
        return S_JENKINS_BUILD;
    if (json_object_get (obj, "ref") && json_object_get (obj, "status") &&
        json_object_get (obj, "id"))
        return S_GITLAB;
    return S_UNKNOWN;
}

static int
s_value (json_t *value, const char *pipeline, builds_fn *fn, void *arg, int64_t *count, int depth)
{
    if (depth > 16)
        return 0;
    json_t *runs = json_object_get (value, "workflow_runs"), *item;
    size_t i;
    if (json_is_array (runs)) {
        json_array_foreach (runs, i, item)
        {
            int rc = s_github_run (item, fn, arg, count);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (json_is_array (value)) {
        json_array_foreach (value, i, item)
        {
            int rc = s_value (item, pipeline, fn, arg, count, depth + 1);
            if (rc)
                return rc;
        }
        return 0;
    }
    switch (s_shape (value)) {
    case S_GITHUB: return s_github_run (value, fn, arg, count);
    case S_GITLAB: return s_gitlab_pipeline (value, pipeline, fn, arg, count);
    case S_JENKINS_BUILD: return s_jenkins_build (value, NULL, pipeline, fn, arg, count);
    case S_JENKINS_JOB: return s_jenkins_job (value, pipeline, fn, arg, count, depth);
    default:
        log_warn ("builds.unknown",
                  "reason=\"not a GitHub run, GitLab pipeline or Jenkins "
                  "build\" depth=%d",
                  depth);
        return 0;
    }
}

//  Whole files are read: API exports are small (a page of 100 runs is a
//  few hundred KiB).
static char *
s_slurp (const char *path, size_t *size, char *error, size_t error_size)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        snprintf (error, error_size, "%s: %s", path, strerror (errno));
        return NULL;
    }
    omni_buf_t buf = {0};
    omni_buf_reserve (&buf, 1 << 16);
    bool failed = omni_buf_read_file (&buf, f) != 0;
    fclose (f);
    if (failed) {
        snprintf (error, error_size, "%s: read error", path);
        omni_buf_release (&buf);
        return NULL;
    }
    *size = buf.size;
    return omni_buf_detach (&buf);
}

int64_t
builds_read_file (const char *path, const char *pipeline, builds_fn *fn, void *arg, char *error,
                  size_t error_size)
{
    size_t size;
    char *data = s_slurp (path, &size, error, error_size);
    if (!data)
        return -1;
    int64_t count = 0;
    size_t off = 0;
    int line = 1, values = 0;
    int rc = 0;
    while (rc == 0) {
        while (off < size && isspace ((unsigned char) data[off])) {
            if (data[off] == '\n')
                line++;
            off++;
        }
        if (off == size)
            break;
        json_error_t jerr;
        json_t *value =
            json_loadb (data + off, size - off, JSON_DISABLE_EOF_CHECK | JSON_DECODE_ANY, &jerr);
        if (!value) {
            snprintf (error, error_size, "%s:%d: %s", path, line + jerr.line - 1, jerr.text);
            free (data);
            return -1;
        }
        values++;
        rc = s_value (value, pipeline, fn, arg, &count, 0);
        json_decref (value);
        size_t used = (size_t) jerr.position;
        if (used == 0 || used > size - off)
            break;
        for (size_t i = off; i < off + used; i++)
            line += data[i] == '\n';
        off += used;
    }
    free (data);
    if (values == 0) {
        snprintf (error, error_size, "%s: empty file", path);
        return -1;
    }
    return count;
}

//  ---------------------------------------------------------------------------
//  The collector

typedef struct {
    collector_names_t names; //  target: the first file's absolute path
    char **files;
    size_t nfiles;
    char *pipeline;
} s_builds_t;

static void s_close (void **self_p);

static int
s_first_project (void *arg, const builds_build_t *b)
{
    char **project = (char **) arg;
    if (b->project) {
        *project = strdup (b->project);
        return 1;
    }
    return 0;
}

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    if (env->nargs == 0) {
        snprintf (error, size, "no file: name one or more JSON exports");
        return NULL;
    }
    s_builds_t *self = calloc (1, sizeof *self);
    assert (self);
    self->files = calloc (env->nargs, sizeof (char *));
    for (size_t i = 0; i < env->nargs; i++) {
        FILE *f = fopen (env->args[i], "rb");
        if (!f) {
            snprintf (error, size, "cannot read %s: %s", env->args[i], strerror (errno));
            s_close ((void **) &self);
            return NULL;
        }
        fclose (f);
        self->files[self->nfiles++] = strdup (env->args[i]);
    }
    self->names.target = realpath (self->files[0], NULL);
    if (!self->names.target)
        self->names.target = strdup (self->files[0]);
    self->pipeline =
        s_settings.pipeline && *s_settings.pipeline ? strdup (s_settings.pipeline) : NULL;
    if (s_settings.source && *s_settings.source)
        self->names.src = strdup (s_settings.source);
    for (size_t i = 0; !self->names.src && i < self->nfiles; i++) {
        char ignored[512];
        builds_read_file (self->files[i], self->pipeline, s_first_project, &self->names.src,
                          ignored, sizeof ignored);
    }
    if (!self->names.src)
        self->names.src = strdup (self->names.target);
    return self;
}

static void
s_close (void **self_p)
{
    s_builds_t *self = (s_builds_t *) *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nfiles; i++)
        free (self->files[i]);
    free (self->files);
    collector_names_free (&self->names);
    free (self->pipeline);
    free (self);
    *self_p = NULL;
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_builds_t *self = (s_builds_t *) handle;
    msgpack_pack_map (pk, 1 + (self->pipeline != NULL));
    omni_record_pack_str (pk, "files");
    msgpack_pack_array (pk, self->nfiles);
    for (size_t i = 0; i < self->nfiles; i++)
        omni_record_pack_str (pk, self->files[i]);
    if (self->pipeline) {
        omni_record_pack_str (pk, "pipeline");
        omni_record_pack_str (pk, self->pipeline);
    }
}

typedef struct {
    session_t *session;
    uint64_t sent, invalid;
    bool broken;
} s_send_t;

static int
s_send (void *arg, const builds_build_t *b)
{
    s_send_t *ctx = (s_send_t *) arg;
    int64_t ts = b->ts != BUILDS_NO_TIME ? b->ts : omni_util_now_ns ();
    builds_pack (session_record (ctx->session, "ci.build", ts), b);
    int rc = session_send (ctx->session);
    if (rc > 0) {
        log_error ("builds.unsendable", "pipeline=\"%s\" build_id=\"%s\" reason=\"%s\"",
                   b->pipeline, b->build_id, session_detail (ctx->session));
        ctx->invalid++;
        return 0;
    }
    if (rc < 0) {
        ctx->broken = true;
        return -1;
    }
    ctx->sent++;
    return 0;
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_builds_t *self = (s_builds_t *) handle;
    s_send_t ctx = {session, 0, 0, false};
    size_t failed = 0;
    char first_error[512] = "";
    progress_t *progress = session_progress (session);
    progress_start (progress, "build files", self->nfiles);
    for (size_t i = 0; i < self->nfiles && !ctx.broken; i++) {
        char err[512];
        int64_t n =
            builds_read_file (self->files[i], self->pipeline, s_send, &ctx, err, sizeof err);
        if (n < 0 && !ctx.broken) {
            log_error ("builds.file_failed", "error=\"%s\"", err);
            if (!failed++)
                snprintf (first_error, sizeof first_error, "%s", err);
        } else if (n == 0)
            log_warn ("builds.file_empty",
                      "path=\"%s\" reason=\"no GitHub run, GitLab "
                      "pipeline or Jenkins build in it\"",
                      self->files[i]);
        progress_update (progress, i + 1);
    }
    progress_finish (progress);
    if (ctx.broken) {
        return collector_broken (session, error, size);
    }
    log_info ("builds.collected", "files=%zu failed_files=%zu builds=%" PRIu64 " invalid=%" PRIu64,
              self->nfiles, failed, ctx.sent, ctx.invalid);
    if (failed) {
        snprintf (error, size, "%zu of %zu files unreadable, first: %s", failed, self->nfiles,
                  first_error);
        return -1;
    }
    return 0;
}

const collector_t builds_collector = {
    .name = "builds",
    .usage = "FILE...",
    .summary = "CI build history: GitHub Actions runs, GitLab pipelines, Jenkins builds (JSON)",
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

#define S_MAX_SEEN 16

typedef struct {
    size_t count;
    struct {
        char system[16], pipeline[64], build_id[32], status[16], branch[64], sha[48], trigger[32],
            project[128];
        int64_t started, finished, ts;
        double duration;
    } b[S_MAX_SEEN];
} s_seen_t;

static void
s_copy (char *dst, size_t size, const char *src)
{
    snprintf (dst, size, "%s", src ? src : "(null)");
}

static int
s_remember (void *arg, const builds_build_t *b)
{
    s_seen_t *seen = (s_seen_t *) arg;
    assert (seen->count < S_MAX_SEEN);
    size_t i = seen->count++;
    s_copy (seen->b[i].system, sizeof seen->b[i].system, b->system);
    s_copy (seen->b[i].pipeline, sizeof seen->b[i].pipeline, b->pipeline);
    s_copy (seen->b[i].build_id, sizeof seen->b[i].build_id, b->build_id);
    s_copy (seen->b[i].status, sizeof seen->b[i].status, b->status);
    s_copy (seen->b[i].branch, sizeof seen->b[i].branch, b->branch);
    s_copy (seen->b[i].sha, sizeof seen->b[i].sha, b->sha);
    s_copy (seen->b[i].trigger, sizeof seen->b[i].trigger, b->trigger);
    s_copy (seen->b[i].project, sizeof seen->b[i].project, b->project);
    seen->b[i].started = b->started;
    seen->b[i].finished = b->finished;
    seen->b[i].duration = b->duration;
    seen->b[i].ts = b->ts;
    return 0;
}

static int64_t
s_read (const char *name, s_seen_t *seen, const char *pipeline)
{
    char *path = selftest_fixture (name), error[512];
    memset (seen, 0, sizeof *seen);
    int64_t n = builds_read_file (path, pipeline, s_remember, seen, error, sizeof error);
    if (n < 0)
        fprintf (stderr, "%s\n", error);
    free (path);
    return n;
}

#define S_SEC(x) ((int64_t) (x) *1000000000)

void
builds_test (bool verbose)
{
    (void) verbose;
    int64_t ns;
    assert (builds_parse_time ("2024-01-31T10:00:00Z", &ns) == 0 && ns == S_SEC (1706695200));
    assert (builds_parse_time ("2024-01-31T12:00:00+02:00", &ns) == 0 && ns == S_SEC (1706695200));
    assert (builds_parse_time ("2024-01-31T10:00:00.250Z", &ns) == 0 &&
            ns == S_SEC (1706695200) + 250000000);
    assert (builds_parse_time ("2024-01-31 10:00:00", &ns) == 0 && ns == S_SEC (1706695200));
    assert (builds_parse_time ("2024-01-31T09:00:00-0100", &ns) == 0 && ns == S_SEC (1706695200));
    assert (builds_parse_time ("2024-01-31", &ns) == 0 && ns == S_SEC (1706659200));
    assert (builds_parse_time ("2024-13-31T10:00:00Z", &ns) == -1);
    assert (builds_parse_time ("yesterday", &ns) == -1);
    //  Out of range is refused, never wrapped
    assert (builds_parse_time ("0001-01-01T00:00:00Z", &ns) == -2);
    assert (builds_parse_time ("1969-12-31T23:59:59Z", &ns) == -2);
    assert (builds_parse_time ("1970-01-01T01:00:00+02:00", &ns) == -2);
    assert (builds_parse_time ("2200-01-01T00:00:00Z", &ns) == -2);
    assert (builds_parse_time ("9999-12-31T23:59:59Z", &ns) == -2);
    assert (builds_parse_time ("1970-01-01T00:00:00Z", &ns) == 0 && ns == 0);
    assert (builds_parse_time ("2199-12-31T23:59:59Z", &ns) == 0 &&
            ns == BUILDS_TIME_MAX - S_SEC (1));
    assert (builds_parse_time ("2024-01-31T10:00:00Zjunk", &ns) == -1);

    s_seen_t *seen = calloc (1, sizeof *seen);
    assert (seen);

    //  GitHub: four runs, every conclusion family, in file order
    assert (s_read ("builds/github_runs.json", seen, NULL) == 4);
    assert (strcmp (seen->b[0].system, "github") == 0);
    assert (strcmp (seen->b[0].pipeline, "CI") == 0);
    assert (strcmp (seen->b[0].build_id, "7001") == 0);
    assert (strcmp (seen->b[0].status, "success") == 0);
    assert (strcmp (seen->b[0].branch, "main") == 0);
    assert (strcmp (seen->b[0].sha, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") == 0);
    assert (strcmp (seen->b[0].trigger, "push") == 0);
    assert (seen->b[0].started == S_SEC (1704103200));        //  2024-01-01T10:00:00Z
    assert (seen->b[0].finished == S_SEC (1704103200 + 330)); //  10:05:30
    assert (seen->b[0].duration == 330.0);
    assert (seen->b[0].ts == seen->b[0].finished);
    assert (strcmp (seen->b[0].project, "github.com/acme/widget") == 0);
    assert (strcmp (seen->b[1].status, "failure") == 0);
    assert (strcmp (seen->b[1].trigger, "pull_request") == 0);
    assert (strcmp (seen->b[1].branch, "feature/x") == 0);
    assert (strcmp (seen->b[2].status, "cancelled") == 0);
    assert (strcmp (seen->b[2].trigger, "manual") == 0);
    assert (strcmp (seen->b[2].pipeline, "Nightly") == 0);
    //  In progress: no finish, no duration
    assert (strcmp (seen->b[3].status, "other") == 0);
    assert (strcmp (seen->b[3].trigger, "schedule") == 0);
    assert (seen->b[3].finished == BUILDS_NO_TIME && seen->b[3].duration < 0);

    //  gh api --paginate: two pages one after the other
    assert (s_read ("builds/github_paginated.json", seen, NULL) == 3);
    assert (strcmp (seen->b[2].build_id, "8003") == 0);
    assert (strcmp (seen->b[2].status, "failure") == 0); //  timed_out

    //  GitLab: a list of pipelines; names from --pipeline, else the project path
    assert (s_read ("builds/gitlab_pipelines.json", seen, NULL) == 4);
    assert (strcmp (seen->b[0].system, "gitlab") == 0);
    assert (strcmp (seen->b[0].pipeline, "group/project") == 0);
    assert (strcmp (seen->b[0].build_id, "501") == 0);
    assert (strcmp (seen->b[0].status, "success") == 0);
    assert (strcmp (seen->b[0].branch, "main") == 0);
    assert (strcmp (seen->b[0].sha, "cccccccccccccccccccccccccccccccccccccccc") == 0);
    assert (strcmp (seen->b[0].trigger, "push") == 0);
    assert (seen->b[0].started == S_SEC (1704103200) + 500000000);
    assert (seen->b[0].finished == S_SEC (1704103200 + 125) + 500000000);
    assert (seen->b[0].duration == 125.0); //  the pipeline's own figure
    assert (strcmp (seen->b[0].project, "gitlab.example.com/group/project") == 0);
    assert (strcmp (seen->b[1].status, "failure") == 0);
    assert (strcmp (seen->b[1].trigger, "pull_request") == 0);
    assert (strcmp (seen->b[2].status, "cancelled") == 0);
    assert (strcmp (seen->b[2].trigger, "manual") == 0);
    assert (strcmp (seen->b[3].status, "other") == 0);              //  running
    assert (strcmp (seen->b[3].pipeline, "Release pipeline") == 0); //  its own name
    assert (seen->b[3].finished == BUILDS_NO_TIME);
    assert (s_read ("builds/gitlab_pipelines.json", seen, "deploy") == 4);
    assert (strcmp (seen->b[0].pipeline, "deploy") == 0);
    assert (strcmp (seen->b[3].pipeline, "Release pipeline") == 0);

    //  Jenkins: a job's builds
    assert (s_read ("builds/jenkins_builds.json", seen, NULL) == 4);
    assert (strcmp (seen->b[0].system, "jenkins") == 0);
    assert (strcmp (seen->b[0].pipeline, "team/widget") == 0);
    assert (strcmp (seen->b[0].build_id, "42") == 0);
    assert (strcmp (seen->b[0].status, "success") == 0);
    assert (strcmp (seen->b[0].branch, "main") == 0);
    assert (strcmp (seen->b[0].sha, "dddddddddddddddddddddddddddddddddddddddd") == 0);
    assert (strcmp (seen->b[0].trigger, "push") == 0);
    assert (seen->b[0].started == 1704103200123LL * 1000000);
    assert (seen->b[0].duration == 61.5);
    assert (seen->b[0].finished == (1704103200123LL + 61500) * 1000000);
    assert (strcmp (seen->b[0].project, "jenkins.example.com/job/team/job/widget") == 0);
    assert (strcmp (seen->b[1].status, "failure") == 0); //  UNSTABLE
    assert (strcmp (seen->b[1].trigger, "manual") == 0);
    assert (strcmp (seen->b[2].status, "cancelled") == 0);
    assert (strcmp (seen->b[2].trigger, "schedule") == 0);
    assert (strcmp (seen->b[3].status, "other") == 0); //  building
    assert (seen->b[3].duration < 0 && seen->b[3].finished == BUILDS_NO_TIME);
    //  Folders: jobs of jobs
    assert (s_read ("builds/jenkins_folder.json", seen, NULL) == 3);
    assert (strcmp (seen->b[0].pipeline, "folder/api") == 0);
    assert (strcmp (seen->b[2].pipeline, "folder/web") == 0);
    assert (strcmp (seen->b[2].build_id, "7") == 0);

    //  Bad files: the line of a syntax error; an empty file
    char *path = selftest_fixture ("builds/broken.json"), error[512];
    memset (seen, 0, sizeof *seen);
    assert (builds_read_file (path, NULL, s_remember, seen, error, sizeof error) == -1);
    assert (strstr (error, "broken.json:4:"));
    free (path);
    assert (builds_read_file ("/nonexistent/x.json", NULL, s_remember, seen, error, sizeof error) ==
            -1);
    assert (strstr (error, "/nonexistent/x.json"));

    //  The collector against the fake ingestd: every build, one record each,
    //  the broken file reported, the run failed, the rest still sent
    char *files[] = {selftest_fixture ("builds/github_runs.json"),
                     selftest_fixture ("builds/gitlab_pipelines.json"),
                     selftest_fixture ("builds/broken.json"),
                     selftest_fixture ("builds/jenkins_builds.json")};
    const char *args[] = {files[0], files[1], files[2], files[3]};
    s_settings.pipeline = NULL;
    s_settings.source = NULL;
    collector_env_t env = {
        .args = args, .nargs = 4, .state_dir = "/nonexistent", .instance = "test"};
    void *handle = s_open (&env, error, sizeof error);
    assert (handle);
    assert (strcmp (collector_source (handle), "github.com/acme/widget") == 0);
    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("builds", testpeer_endpoint (fake), 5);
    collector_test_begin (session, &builds_collector, handle);
    assert (s_collect (handle, session, error, sizeof error) == -1);
    assert (strstr (error, "broken.json:4:"));
    assert (session_end (session, "failed", error) == 0);
    assert (testpeer_count_kind (fake, "ci.build") == 12);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 8192);
    bool found = false;
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, &zone);
        omni_record_str_t s;
        if (!omni_record_str_eq (rec.kind, "ci.build") ||
            !omni_record_field_str (rec.body, "build_id", &s) || !omni_record_str_eq (s, "42"))
            continue;
        found = true;
        assert (omni_record_str_eq (rec.src, "github.com/acme/widget"));
        assert (omni_record_field_str (rec.body, "status", &s) &&
                omni_record_str_eq (s, "success"));
        assert (omni_record_field_str (rec.body, "system", &s) &&
                omni_record_str_eq (s, "jenkins"));
        double d;
        assert (omni_record_field_num (rec.body, "duration", &d) && d == 61.5);
        int64_t t;
        assert (omni_record_field_int (rec.body, "started", &t) && t == 1704103200123LL * 1000000);
        assert (rec.ts == (1704103200123LL + 61500) * 1000000);
        assert (!omni_record_field (rec.body, "tests"));
    }
    assert (found);
    msgpack_zone_destroy (&zone);
    s_close (&handle);
    //  --source wins; a missing file is refused at open
    s_settings.source = "ci/widget";
    handle = s_open (&env, error, sizeof error);
    assert (handle && strcmp (collector_source (handle), "ci/widget") == 0);
    s_close (&handle);
    s_settings.source = NULL;
    args[1] = "/nonexistent/runs.json";
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "/nonexistent/runs.json"));
    env.nargs = 0;
    assert (s_open (&env, error, sizeof error) == NULL);

    session_destroy (&session);
    testpeer_destroy (&fake);
    for (size_t i = 0; i < 4; i++)
        free (files[i]);
    free (seen);
}
