/*  selftest: runs a table of class self-tests, each in its own child process,
    so that one failing assert is reported and the others still run.
    This file is the runner; each directory's selftest.c holds the table and
    main(), and is kept out of libomni.a by the Makefile.                      */
#include "testsupport/selftest.h"

#include <assert.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

//  A hung test must not hang the whole suite (or CI); generous because the
//  same tests run under valgrind. OMNI_SELFTEST_TIMEOUT overrides, 0 = none.
#define SELFTEST_TIMEOUT_DEFAULT 600

//  The child's exit code for a skipped test (automake's)
#define SELFTEST_SKIPPED 77

void
selftest_skip (const char *why)
{
    const char *required = getenv ("OMNI_REQUIRE_SERVICES");
    if (required && *required && strcmp (required, "0") != 0) {
        fprintf (stderr, "cannot run: %s (OMNI_REQUIRE_SERVICES is set)\n", why);
        abort ();
    }
    fprintf (stderr, "skipped: %s\n", why);
    fflush (stdout);
    fflush (stderr);
    //  _exit: what the test allocated before is not a leak to report
    _exit (SELFTEST_SKIPPED);
}

static unsigned
s_timeout (void)
{
    const char *text = getenv ("OMNI_SELFTEST_TIMEOUT");
    if (text && *text) {
        char *end;
        unsigned long seconds = strtoul (text, &end, 10);
        if (*end == 0 && seconds <= UINT_MAX)
            return (unsigned) seconds;
    }
    return SELFTEST_TIMEOUT_DEFAULT;
}

static int64_t
s_mono_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef enum { S_PASSED, S_FAILED, S_SKIPPED } s_outcome_t;

//  Runs one test in a child; fills `why` when it failed.
static s_outcome_t
s_run_one (const selftest_t *test, bool verbose, char *why, size_t size)
{
    //  Anything buffered would otherwise be printed twice, by parent and child
    fflush (stdout);
    fflush (stderr);
    pid_t pid = fork ();
    if (pid < 0) {
        snprintf (why, size, "fork: %s", strerror (errno));
        return S_FAILED;
    }
    if (pid == 0) {
        unsigned timeout = s_timeout ();
        if (timeout)
            alarm (timeout);
        test->test (verbose);
        //  exit (not _exit) so that the test's stdio output is flushed
        exit (0);
    }
    int status;
    while (waitpid (pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf (why, size, "waitpid: %s", strerror (errno));
            return S_FAILED;
        }
    }
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return S_PASSED;
    if (WIFEXITED (status) && WEXITSTATUS (status) == SELFTEST_SKIPPED)
        return S_SKIPPED;
    if (WIFSIGNALED (status)) {
        int sig = WTERMSIG (status);
        snprintf (why, size, "signal %d: %s%s", sig, strsignal (sig),
                  sig == SIGALRM ? ", timed out" : "");
    } else
        snprintf (why, size, "exit code %d", WEXITSTATUS (status));
    return S_FAILED;
}

int
selftest_run (const selftest_t *tests, int argc, char **argv)
{
    assert (tests);
    bool verbose = false;
    size_t ntests = 0;
    while (tests[ntests].name)
        ntests++;

    //  Which tests to run, in table order whatever the order of the arguments
    bool *selected = calloc (ntests ? ntests : 1, sizeof (bool));
    assert (selected);
    bool any_named = false;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp (arg, "-v") == 0 || strcmp (arg, "--verbose") == 0)
            verbose = true;
        else if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            printf ("usage: %s [-v] [TEST...]\ntests:", argv[0]);
            for (size_t t = 0; t < ntests; t++)
                printf (" %s", tests[t].name);
            printf ("\n");
            free (selected);
            return 0;
        } else if (arg[0] == '-') {
            fprintf (stderr, "%s: unknown option %s\n", argv[0], arg);
            rc = 2;
        } else {
            bool found = false;
            for (size_t t = 0; t < ntests; t++)
                if (strcmp (tests[t].name, arg) == 0) {
                    selected[t] = true;
                    found = true;
                }
            if (!found) {
                fprintf (stderr, "%s: no test named %s\n", argv[0], arg);
                rc = 2;
            }
            any_named = true;
        }
    }
    if (rc) {
        free (selected);
        return rc;
    }
    size_t passed = 0, failed = 0, skipped = 0;
    for (size_t t = 0; t < ntests; t++) {
        if (any_named && !selected[t])
            continue;
        char why[128] = "";
        int64_t started = s_mono_us ();
        s_outcome_t outcome = s_run_one (&tests[t], verbose, why, sizeof why);
        int64_t elapsed = s_mono_us () - started;
        if (outcome == S_SKIPPED) {
            skipped++;
            printf ("skip %s\n", tests[t].name);
        } else if (outcome == S_PASSED) {
            passed++;
            if (verbose)
                printf ("ok %s (%.3fs)\n", tests[t].name, elapsed / 1e6);
            else
                printf ("ok %s\n", tests[t].name);
        } else {
            failed++;
            printf ("FAIL %s (%s)\n", tests[t].name, why);
        }
        fflush (stdout);
    }
    if (verbose)
        printf ("%zu passed, %zu failed, %zu skipped\n", passed, failed, skipped);
    free (selected);
    return failed ? 1 : 0;
}

char *
selftest_tmpdir (const char *prefix)
{
    const char *base = getenv ("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char path[PATH_MAX];
    int len = snprintf (path, sizeof path, "%s/%s-XXXXXX", base, prefix ? prefix : "omni");
    if (len < 0 || (size_t) len >= sizeof path)
        return NULL;
    if (!mkdtemp (path))
        return NULL;
    return strdup (path);
}

char *
selftest_write (const char *dir, const char *name, const char *text)
{
    char *path;
    assert (asprintf (&path, "%s/%s", dir, name) > 0);
    FILE *file = fopen (path, "w");
    assert (file);
    assert (fputs (text, file) >= 0 && fclose (file) == 0);
    return path;
}

void
selftest_sh (const char *dir, const char *env, const char *script)
{
    char *cmd;
    assert (asprintf (&cmd,
                      "cd '%s' && export GIT_CONFIG_NOSYSTEM=1 HOME=/nonexistent %s && (%s) "
                      "> /dev/null 2>&1",
                      dir, env, script) > 0);
    int rc = system (cmd);
    if (rc)
        fprintf (stderr, "failed: %s\n", cmd);
    assert (rc == 0);
    free (cmd);
}

static int
s_remove_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    //  Carry on past failures so that as much as possible is removed
    if (remove (path) && errno != ENOENT)
        fprintf (stderr, "selftest: cannot remove %s: %s\n", path, strerror (errno));
    return 0;
}

void
selftest_rmtree (const char *path)
{
    if (!path || !*path)
        return;
    //  FTW_DEPTH: children before their directory; FTW_PHYS: never follow a
    //  symlink out of the tree
    nftw (path, s_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *
selftest_source (const char *name)
{
    char *path;
    assert (asprintf (&path, "%s", name) > 0);
    if (access (path, R_OK) == 0)
        return path;
    free (path);
    char exe[PATH_MAX];
    ssize_t n = readlink ("/proc/self/exe", exe, sizeof exe - 1);
    assert (n > 0);
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {
        char *slash = strrchr (exe, '/');
        assert (slash);
        *slash = 0;
    }
    assert (asprintf (&path, "%s/%s", exe, name) > 0);
    return path;
}

char *
selftest_fixture (const char *name)
{
    char *path;
    assert (asprintf (&path, "tests/fixtures/%s", name) > 0);
    char *found = selftest_source (path);
    free (path);
    return found;
}
