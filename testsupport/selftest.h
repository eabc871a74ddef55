/*  selftest: runs a table of class self-tests, each in its own child process,
    so that one failing assert is reported and the others still run.
    Prints "ok NAME" / "FAIL NAME" / "skip NAME" per test, exits non-zero if
    any failed.                                                                */
#ifndef OMNI_SELFTEST_H
#define OMNI_SELFTEST_H

#include <stdbool.h>

typedef struct {
    const char *name;
    void (*test) (bool verbose);
} selftest_t;

//  Runs the tests named on the command line (all when none), -v for verbose.
int selftest_run (const selftest_t *tests, int argc, char **argv);

//  A test that cannot run here (no server to test against) says why and
//  ends as "skip NAME", never as "ok NAME". Where the services are required
//  ($OMNI_REQUIRE_SERVICES, set by `make test`), it fails instead: a
//  missing capability in CI is a broken CI, not a pass. Does not return.
_Noreturn void selftest_skip (const char *why);

//  A fresh temporary directory for a test; caller frees the string.
char *selftest_tmpdir (const char *prefix);

//  Removes a directory tree made by selftest_tmpdir.
void selftest_rmtree (const char *path);

//  Writes `text` to <dir>/<name> (replacing it); returns the path, which the
//  caller frees. Asserts on failure: a test cannot go on without its file.
char *selftest_write (const char *dir, const char *name, const char *text);

//  Runs the shell `script` in `dir`, its output discarded, asserting that
//  it succeeds (the command is printed when not). For the tests that make
//  git repositories: the machine's and the user's git config are kept out,
//  and `env` ("NAME=value ...", exported) names the author and committer.
void selftest_sh (const char *dir, const char *env, const char *script);

//  The path of tests/fixtures/<name> in the source tree: from the working
//  directory (make runs the self-tests from the top), else from above the
//  binary's build directory (<top>/<build>/test/x-selftest). Caller frees.
char *selftest_fixture (const char *name);

//  The same for any path of the source tree (e.g. "proto/fuzz_seeds").
char *selftest_source (const char *path);

#endif
