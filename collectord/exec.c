/*  exec: a command's JSON Lines into records of a declared kind.          */
#include "collectord/exec.h"
#include "common/buf.h"
#include "proto/record.h"
#include "testsupport/testpeer.h"
#include "proto/kinds.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

//  ---------------------------------------------------------------------------
//  JSON -> msgpack

static int
s_keycmp (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

void
exec_pack_json (msgpack_packer *pk, json_t *value)
{
    switch (json_typeof (value)) {
    case JSON_OBJECT: {
        size_t n = json_object_size (value), i = 0;
        const char **keys = malloc ((n ? n : 1) * sizeof *keys);
        assert (keys);
        const char *key;
        json_t *member;
        json_object_foreach (value, key, member) keys[i++] = key;
        qsort (keys, n, sizeof *keys, s_keycmp);
        msgpack_pack_map (pk, n);
        for (i = 0; i < n; i++) {
            size_t len = strlen (keys[i]);
            msgpack_pack_str (pk, len);
            msgpack_pack_str_body (pk, keys[i], len);
            exec_pack_json (pk, json_object_get (value, keys[i]));
        }
        free (keys);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size (value);
        msgpack_pack_array (pk, n);
        for (size_t i = 0; i < n; i++)
            exec_pack_json (pk, json_array_get (value, i));
        break;
    }
    case JSON_STRING: {
        size_t len = json_string_length (value);
        msgpack_pack_str (pk, len);
        msgpack_pack_str_body (pk, json_string_value (value), len);
        break;
    }
    case JSON_INTEGER: msgpack_pack_int64 (pk, json_integer_value (value)); break;
    case JSON_REAL: msgpack_pack_double (pk, json_real_value (value)); break;
    case JSON_TRUE: msgpack_pack_true (pk); break;
    case JSON_FALSE: msgpack_pack_false (pk); break;
    default: msgpack_pack_nil (pk); break;
    }
}

bool
exec_kind_valid (const char *kind)
{
    if (!kind)
        return false;
    size_t len = strlen (kind);
    if (len > 2 && kind[0] == 'x' && kind[1] == '.') {
        //  Kinds name archive files and collections: nothing that walks paths
        if (len > 128)
            return false;
        for (size_t i = 2; i < len; i++)
            if (!isalnum ((unsigned char) kind[i]) && !strchr ("._-", kind[i]))
                return false;
        return kind[len - 1] != '.';
    }
    const omni_kind_spec_t *spec = omni_kinds_lookup (kind, len);
    return spec && strncmp (kind, "run.", 4) != 0;
}

//  ---------------------------------------------------------------------------
//  Running the command

int
exec_run (char *const *argv, exec_line_fn *fn, exec_stop_fn *stop, void *arg, char *error,
          size_t error_size)
{
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC)) {
        snprintf (error, error_size, "pipe: %s", strerror (errno));
        return -1;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen (&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    //  Its own process group: a stop reaches what a shell command started;
    //  default signal handling and mask, whatever collectord's are
    sigset_t none, all;
    sigemptyset (&none);
    sigfillset (&all);
    posix_spawnattr_setsigmask (&attr, &none);
    posix_spawnattr_setsigdefault (&attr, &all);
    posix_spawnattr_setpgroup (&attr, 0);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF);
    pid_t pid;
    int rc = posix_spawnp (&pid, argv[0], &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attr);
    close (fds[1]);
    if (rc) {
        close (fds[0]);
        snprintf (error, error_size, "cannot run %s: %s", argv[0], strerror (rc));
        return -1;
    }
    size_t lineno = 0;
    omni_buf_t line = {0};
    omni_buf_reserve (&line, 1 << 16);
    bool too_long = false, stopped = false, done = false;
    char chunk[1 << 16];
    while (!done) {
        if (stop && stop (arg)) {
            stopped = true;
            break;
        }
        struct pollfd p = {fds[0], POLLIN, 0};
        int ready = poll (&p, 1, 200);
        if (ready < 0 && errno != EINTR) {
            snprintf (error, error_size, "poll: %s", strerror (errno));
            stopped = true;
            break;
        }
        if (ready <= 0)
            continue;
        ssize_t n = read (fds[0], chunk, sizeof chunk);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) {
            done = true;
            //  The last line may lack its newline
            if (line.size || too_long) {
                lineno++;
                if (fn (arg, too_long ? NULL : line.data, too_long ? 0 : line.size, lineno))
                    stopped = true;
            }
            break;
        }
        for (ssize_t i = 0; i < n && !stopped; i++) {
            char c = chunk[i];
            if (c == '\n') {
                lineno++;
                if (fn (arg, too_long ? NULL : line.data, too_long ? 0 : line.size, lineno))
                    stopped = true;
                omni_buf_reset (&line);
                too_long = false;
                continue;
            }
            if (too_long)
                continue;
            if (line.size == EXEC_LINE_MAX) {
                too_long = true;
                omni_buf_reset (&line);
                continue;
            }
            omni_buf_append_char (&line, c);
        }
        if (stopped)
            break;
    }
    omni_buf_release (&line);
    if (stopped)
        kill (-pid, SIGTERM);
    close (fds[0]);
    int status;
    while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (stopped) {
        if (!*error)
            snprintf (error, error_size, "stopped");
        return -1;
    }
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    if (WIFEXITED (status))
        snprintf (error, error_size, "%s exited with status %d%s", argv[0], WEXITSTATUS (status),
                  WEXITSTATUS (status) == 127 ? " (command not found?)" : "");
    else if (WIFSIGNALED (status))
        snprintf (error, error_size, "%s killed by signal %d", argv[0], WTERMSIG (status));
    else
        snprintf (error, error_size, "%s ended abnormally", argv[0]);
    return -1;
}

//  ---------------------------------------------------------------------------
//  The collector

static struct {
    char *kind;
    char *source;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"kind", CONFIG_STRING, NULL,
     "exec: the kind of the records the command prints: x.<name>, or a declared kind "
     "(metric ...)",
     &s_settings.kind},
    {"source", CONFIG_STRING, NULL, "the records' src; exec default: the command line",
     &s_settings.source},
    {NULL}};

typedef struct {
    collector_names_t names; //  target: the command line, for src and logs
    char **argv;
    size_t argc;
    char *kind;
} s_exec_t;

static void s_close (void **self_p);

//  The program as the spawn will look for it: with a '/' as is, else in PATH.
static bool
s_findable (const char *program)
{
    if (strchr (program, '/'))
        return access (program, X_OK) == 0;
    const char *path = getenv ("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char *copy = strdup (path), *save = NULL;
    bool found = false;
    for (char *dir = strtok_r (copy, ":", &save); dir && !found;
         dir = strtok_r (NULL, ":", &save)) {
        char *candidate;
        assert (asprintf (&candidate, "%s/%s", *dir ? dir : ".", program) > 0);
        found = access (candidate, X_OK) == 0;
        free (candidate);
    }
    free (copy);
    return found;
}

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    if (!s_settings.kind || !*s_settings.kind) {
        snprintf (error, size, "collectord.kind: missing (--kind x.NAME)");
        return NULL;
    }
    if (!exec_kind_valid (s_settings.kind)) {
        snprintf (error, size,
                  "collectord.kind: bad value \"%s\" (expected x.<name> with letters, digits, "
                  ". _ -, or a declared kind other than run.*)",
                  s_settings.kind);
        return NULL;
    }
    if (env->nargs == 0) {
        snprintf (error, size, "no command: collectord exec --kind %s -- COMMAND [ARG...]",
                  s_settings.kind);
        return NULL;
    }
    if (!s_findable (env->args[0])) {
        snprintf (error, size, "cannot run %s: not found or not executable", env->args[0]);
        return NULL;
    }
    s_exec_t *self = calloc (1, sizeof *self);
    assert (self);
    self->argv = calloc (env->nargs + 1, sizeof (char *));
    size_t len = 0;
    for (size_t i = 0; i < env->nargs; i++) {
        self->argv[self->argc++] = strdup (env->args[i]);
        len += strlen (env->args[i]) + 1;
    }
    self->names.target = calloc (len + 1, 1);
    for (size_t i = 0; i < self->argc; i++) {
        if (i)
            strcat (self->names.target, " ");
        strcat (self->names.target, self->argv[i]);
    }
    self->kind = strdup (s_settings.kind);
    self->names.src =
        strdup (s_settings.source && *s_settings.source ? s_settings.source : self->names.target);
    return self;
}

static void
s_close (void **self_p)
{
    s_exec_t *self = (s_exec_t *) *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->argc; i++)
        free (self->argv[i]);
    free (self->argv);
    free (self->kind);
    collector_names_free (&self->names);
    free (self);
    *self_p = NULL;
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_exec_t *self = (s_exec_t *) handle;
    msgpack_pack_map (pk, 2);
    omni_record_pack_str (pk, "kind");
    omni_record_pack_str (pk, self->kind);
    omni_record_pack_str (pk, "command");
    msgpack_pack_array (pk, self->argc);
    for (size_t i = 0; i < self->argc; i++)
        omni_record_pack_str (pk, self->argv[i]);
}

typedef struct {
    s_exec_t *self;
    session_t *session;
    uint64_t sent, bad;
    bool broken;
} s_run_t;

static void
s_bad (s_run_t *run, size_t lineno, const char *why)
{
    run->bad++;
    log_warn ("exec.bad_line", "line=%zu kind=%s error=\"%s\"", lineno, run->self->kind, why);
}

static int
s_line (void *arg, const char *line, size_t len, size_t lineno)
{
    s_run_t *run = (s_run_t *) arg;
    if (!line) {
        s_bad (run, lineno, "longer than 4 MiB");
        return 0;
    }
    size_t i = 0;
    while (i < len && isspace ((unsigned char) line[i]))
        i++;
    if (i == len)
        return 0; //  blank
    json_error_t jerr;
    json_t *value = json_loadb (line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!value) {
        char why[300];
        snprintf (why, sizeof why, "not JSON: %s at column %d", jerr.text, jerr.column);
        s_bad (run, lineno, why);
        return 0;
    }
    if (!json_is_object (value)) {
        json_decref (value);
        s_bad (run, lineno, "not a JSON object");
        return 0;
    }
    msgpack_packer *pk = session_record (run->session, run->self->kind, omni_util_now_ns ());
    exec_pack_json (pk, value);
    json_decref (value);
    int rc = session_send (run->session);
    if (rc > 0) {
        s_bad (run, lineno, session_detail (run->session));
        return 0;
    }
    if (rc < 0) {
        run->broken = true;
        return -1;
    }
    run->sent++;
    return 0;
}

static bool
s_stop (void *arg)
{
    return session_interrupted (((s_run_t *) arg)->session);
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_exec_t *self = (s_exec_t *) handle;
    s_run_t run = {self, session, 0, 0, false};
    char err[512] = "";
    int64_t started = omni_util_mono_ms ();
    int rc = exec_run (self->argv, s_line, s_stop, &run, err, sizeof err);
    if (run.bad)
        session_count_add (session, "bad_lines", run.bad);
    //  The program only: a command line is full of quotes
    //  The error as a value of its own, so that the log escapes it
    int64_t duration_ms = omni_util_mono_ms () - started;
    if (rc)
        log_info ("exec.collected",
                  "program=\"%s\" kind=%s records=%" PRIu64 " bad_lines=%" PRIu64
                  " duration_ms=%" PRId64 " error=\"%s\"",
                  self->argv[0], self->kind, run.sent, run.bad, duration_ms, err);
    else
        log_info ("exec.collected",
                  "program=\"%s\" kind=%s records=%" PRIu64 " bad_lines=%" PRIu64
                  " duration_ms=%" PRId64,
                  self->argv[0], self->kind, run.sent, run.bad, duration_ms);
    if (run.broken || session_interrupted (session)) {
        return collector_broken (session, error, size);
    }
    if (rc) {
        snprintf (error, size, "%s", err);
        return -1;
    }
    //  The good lines are sent and stored; the run still fails, so that a
    //  script running it (and run.end) says that some of the output was lost
    if (run.bad) {
        snprintf (error, size,
                  "%" PRIu64 " of %" PRIu64 " lines were not %s records and were not sent "
                  "(each logged as exec.bad_line); the other %" PRIu64 " were",
                  run.bad, run.bad + run.sent, self->kind, run.sent);
        return -1;
    }
    return 0;
}

const collector_t exec_collector = {
    .name = "exec",
    .usage = "-- COMMAND",
    .summary = "a command's JSON Lines, one record of --kind each (once or every --interval)",
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

typedef struct {
    size_t lines;
    char last[64];
    size_t too_long;
} s_lines_t;

static int
s_count_line (void *arg, const char *line, size_t len, size_t lineno)
{
    s_lines_t *l = (s_lines_t *) arg;
    l->lines = lineno;
    if (!line)
        l->too_long++;
    else
        snprintf (l->last, sizeof l->last, "%.*s", (int) (len < 63 ? len : 63), line);
    return 0;
}

//  One run through the session; returns collect's rc.
static int
s_run_once (testpeer_t *fake, session_t *session, const char *kind, char **argv, char *error,
            size_t size)
{
    testpeer_clear (fake);
    s_settings.kind = (char *) kind;
    s_settings.source = NULL;
    size_t argc = 0;
    while (argv[argc])
        argc++;
    collector_env_t env = {.args = (const char *const *) argv,
                           .nargs = argc,
                           .state_dir = "/nonexistent",
                           .instance = "test"};
    void *handle = s_open (&env, error, size);
    assert (handle);
    collector_test_begin (session, &exec_collector, handle);
    int rc = s_collect (handle, session, error, size);
    assert (session_end (session, rc ? "failed" : "ok", rc ? error : NULL) == 0);
    s_close (&handle);
    return rc;
}

void
exec_test (bool verbose)
{
    (void) verbose;
    assert (exec_kind_valid ("x.deploy") && exec_kind_valid ("x.team-a.deploy_v2"));
    assert (exec_kind_valid ("metric") && exec_kind_valid ("ci.build"));
    assert (!exec_kind_valid ("x.") && !exec_kind_valid ("x.a/b") && !exec_kind_valid ("x.a."));
    assert (!exec_kind_valid ("run.end") && !exec_kind_valid ("deploy"));
    assert (!exec_kind_valid (NULL) && !exec_kind_valid ("x.a b"));

    //  Pack: key order does not matter, ints stay ints, floats floats
    json_error_t jerr;
    json_t *a = json_loads ("{\"b\":1,\"a\":{\"y\":[1,2.5,\"s\",null,true]},\"c\":1.0}", 0, &jerr);
    json_t *b = json_loads ("{\"c\":1.0,\"a\":{\"y\":[1,2.5,\"s\",null,true]},\"b\":1}", 0, &jerr);
    assert (a && b);
    msgpack_sbuffer sa, sb;
    msgpack_sbuffer_init (&sa);
    msgpack_sbuffer_init (&sb);
    msgpack_packer pa, pb;
    msgpack_packer_init (&pa, &sa, msgpack_sbuffer_write);
    msgpack_packer_init (&pb, &sb, msgpack_sbuffer_write);
    exec_pack_json (&pa, a);
    exec_pack_json (&pb, b);
    assert (sa.size == sb.size && memcmp (sa.data, sb.data, sa.size) == 0);
    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    assert (msgpack_unpack_next (&up, sa.data, sa.size, NULL) == MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *o = &up.data;
    assert (o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 3);
    assert (o->via.map.ptr[0].key.via.str.size == 1 && o->via.map.ptr[0].key.via.str.ptr[0] == 'a');
    assert (o->via.map.ptr[1].val.type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert (o->via.map.ptr[2].val.type == MSGPACK_OBJECT_FLOAT64);
    const msgpack_object *y = &o->via.map.ptr[0].val.via.map.ptr[0].val;
    assert (y->type == MSGPACK_OBJECT_ARRAY && y->via.array.size == 5);
    assert (y->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert (y->via.array.ptr[1].type == MSGPACK_OBJECT_FLOAT64);
    assert (y->via.array.ptr[3].type == MSGPACK_OBJECT_NIL);
    assert (y->via.array.ptr[4].type == MSGPACK_OBJECT_BOOLEAN);
    msgpack_unpacked_destroy (&up);
    msgpack_sbuffer_destroy (&sa);
    msgpack_sbuffer_destroy (&sb);
    json_decref (a);
    json_decref (b);

    //  The runner: lines, a last one without newline, one too long
    char error[512] = "";
    s_lines_t lines = {0};
    char *printf_argv[] = {"sh", "-c", "printf 'one\\ntwo\\n\\nlast'", NULL};
    assert (exec_run (printf_argv, s_count_line, NULL, &lines, error, sizeof error) == 0);
    assert (lines.lines == 4 && strcmp (lines.last, "last") == 0);
    memset (&lines, 0, sizeof lines);
    char *long_argv[] = {"sh", "-c", "head -c 4200000 /dev/zero | tr '\\0' a; echo; echo ok", NULL};
    assert (exec_run (long_argv, s_count_line, NULL, &lines, error, sizeof error) == 0);
    assert (lines.lines == 2 && lines.too_long == 1 && strcmp (lines.last, "ok") == 0);
    char *fail_argv[] = {"sh", "-c", "echo '{}'; exit 3", NULL};
    assert (exec_run (fail_argv, s_count_line, NULL, &lines, error, sizeof error) == -1);
    assert (strstr (error, "exited with status 3"));
    char *missing_argv[] = {"/nonexistent/omni-cmd", NULL};
    assert (exec_run (missing_argv, s_count_line, NULL, &lines, error, sizeof error) == -1);
    assert (strstr (error, "/nonexistent/omni-cmd"));

    //  Open: the kind and the command are checked first
    collector_env_t env = {.args = (const char *const *) printf_argv,
                           .nargs = 3,
                           .state_dir = "/nonexistent",
                           .instance = "test"};
    s_settings.kind = NULL;
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "collectord.kind"));
    s_settings.kind = "deploys";
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "deploys"));
    s_settings.kind = "x.deploy";
    env.args = (const char *const *) missing_argv;
    env.nargs = 1;
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "omni-cmd"));
    env.nargs = 0;
    assert (s_open (&env, error, sizeof error) == NULL);

    //  Through the session: 3 good lines, 1 bad, a blank one
    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("exec", testpeer_endpoint (fake), 2);
    char *good_argv[] = {"sh", "-c",
                         "echo '{\"env\":\"prod\",\"n\":1,\"ok\":true}'; "
                         "echo '{\"env\":\"dev\",\"ms\":2.5,\"tags\":[\"a\",\"b\"]}'; "
                         "echo 'not json'; echo; "
                         "echo '{\"env\":\"qa\",\"nested\":{\"deep\":{\"n\":-7}}}'",
                         NULL};
    //  The good lines are sent, and the run fails saying how many were not
    assert (s_run_once (fake, session, "x.deploy", good_argv, error, sizeof error) == -1);
    assert (strstr (error, "1 of 4 lines were not x.deploy records"));
    assert (testpeer_count_kind (fake, "x.deploy") == 3);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 8192);
    int found = 0;
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, &zone);
        omni_record_str_t s;
        if (!omni_record_str_eq (rec.kind, "x.deploy"))
            continue;
        //  src: the command line
        assert (strncmp (rec.src.ptr, "sh -c echo '{", 13) == 0);
        assert (rec.src.len == 6 + strlen (good_argv[2]));
        assert (omni_record_field_str (rec.body, "env", &s));
        int64_t n;
        double d;
        if (omni_record_str_eq (s, "prod")) {
            const msgpack_object *v = omni_record_field (rec.body, "n");
            assert (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == 1);
            found++;
        } else if (omni_record_str_eq (s, "dev")) {
            const msgpack_object *v = omni_record_field (rec.body, "ms");
            assert (v && v->type == MSGPACK_OBJECT_FLOAT64);
            assert (omni_record_field_num (rec.body, "ms", &d) && d == 2.5);
            v = omni_record_field (rec.body, "tags");
            assert (v && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 2);
            found++;
        } else if (omni_record_str_eq (s, "qa")) {
            const msgpack_object *v = omni_record_field (rec.body, "nested");
            v = v ? omni_record_field (v, "deep") : NULL;
            assert (v && omni_record_field_int (v, "n", &n) && n == -7);
            found++;
        }
    }
    assert (found == 3);
    msgpack_zone_clear (&zone);

    //  A declared kind: bodies are validated (the second line lacks value)
    char *metric_argv[] = {"sh", "-c",
                           "echo '{\"name\":\"deploy.time\",\"value\":12}'; "
                           "echo '{\"name\":\"deploy.time\"}'; "
                           "echo '[1,2]'; echo '{\"a\":1,\"a\":2}'",
                           NULL};
    assert (s_run_once (fake, session, "metric", metric_argv, error, sizeof error) == -1);
    assert (strstr (error, "3 of 4 lines were not metric records"));
    assert (testpeer_count_kind (fake, "metric") == 1);
    //  A failing command fails the run, after its lines were sent
    assert (s_run_once (fake, session, "x.deploy", fail_argv, error, sizeof error) == -1);
    assert (strstr (error, "status 3"));
    assert (testpeer_count_kind (fake, "x.deploy") == 1);

    msgpack_zone_destroy (&zone);
    session_destroy (&session);
    testpeer_destroy (&fake);
    s_settings.kind = NULL;
}
