/*  builds: `collectord builds [options] FILE...`. CI build history exported
    as JSON from the CI systems' own APIs, one ci.build record per build:

        GitHub Actions  GET /repos/O/R/actions/runs: {"workflow_runs": [...]}
        GitLab          GET /projects/ID/pipelines (or /pipelines/N): [...]
        Jenkins         GET /job/J/api/json?tree=builds[...]: {"builds": [...]},
                        folders {"jobs": [{"name", "builds": [...]}, ...]}

    The shape is recognised per file; pages concatenated by `gh api
    --paginate` or `glab api --paginate` (JSON values one after the other)
    are read as one. Statuses are normalised to success | failure |
    cancelled | other:

        success    GitHub success, GitLab success, Jenkins SUCCESS
        failure    GitHub failure, timed_out, startup_failure;
                   GitLab failed; Jenkins FAILURE, UNSTABLE
        cancelled  GitHub cancelled; GitLab canceled, canceling; Jenkins ABORTED
        other      anything unfinished (queued, running, building), skipped,
                   neutral, manual, NOT_BUILT ...

    Triggers: push | pull_request | schedule | manual | the system's own word
    (GitHub event, GitLab source, Jenkins cause). Times are ns since the
    epoch, durations seconds. A record's ts is the time of the state it
    describes (updated_at, or Jenkins' start + duration), so a later export
    of a build replaces an earlier one in relationald and never the reverse.

    src: --source, else the project the first build belongs to
    (github.com/OWNER/REPO, gitlab.example.com/GROUP/PROJECT, the Jenkins job
    URL without its scheme), else the first file's absolute path. A file
    that cannot be read or parsed is reported (file and line), the others are
    still collected, and the run ends failed.                             */
#ifndef OMNI_COLLECTORD_BUILDS_H
#define OMNI_COLLECTORD_BUILDS_H

#include "collectord/collector.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#define BUILDS_NO_TIME INT64_MIN
//  2200-01-01T00:00:00Z in ns: times from then on are refused
#define BUILDS_TIME_MAX INT64_C (7258118400000000000)

//  Counts of the test results of a build (ci.build body.tests): total =
//  passed + failed + error + skipped + disabled + retried (attempts run
//  again, whose outcome a later result holds); unreadable: report files
//  that did not parse (packed only when some did not).
typedef struct {
    uint64_t total, passed, failed, error, skipped, disabled, retried, unreadable;
} builds_tests_t;

//  One build, as packed into a ci.build body. Strings may be NULL (absent)
//  except pipeline, build_id and status; times BUILDS_NO_TIME when unknown,
//  duration < 0 when unknown, tests NULL when not known.
typedef struct {
    const char *system; //  github | gitlab | jenkins | junit
    const char *pipeline;
    const char *build_id;
    const char *status; //  success | failure | cancelled | other
    const char *branch;
    const char *sha;
    const char *trigger;
    int64_t started, finished;
    double duration;
    const builds_tests_t *tests;
    int64_t ts;          //  record time: when this state was observed
    const char *project; //  the project it belongs to (a src), or NULL
} builds_build_t;

//  Called for every build found; returns 0 to go on, non-zero to stop.
typedef int (builds_fn) (void *arg, const builds_build_t *build);

//  Reads one exported JSON file and calls `fn` for each build, in the
//  file's order. `pipeline` names the builds of systems whose export does
//  not (GitLab before 16.x: no pipeline name; default the project path).
//  Returns the number of builds, or -1 with `error` naming the file (and the
//  line, for a JSON syntax error); builds found before the error were passed
//  to `fn`. Builds missing an id are skipped with a warning.
int64_t builds_read_file (const char *path, const char *pipeline, builds_fn *fn, void *arg,
                          char *error, size_t error_size);

//  Packs `build` as a ci.build body (one map).
void builds_pack (msgpack_packer *pk, const builds_build_t *build);

//  Parses an ISO 8601 / RFC 3339 time, "2024-01-31T10:00:00Z",
//  "2024-01-31 10:00:00.123+02:00", "2024-01-31T10:00:00" (no offset: UTC),
//  into ns since the epoch. Returns 0, -1 when `text` is not one, -2 when
//  it is before 1970 or from 2200 on (BUILDS_TIME_MAX) and so no time a build
//  ran (gotestsum writes 0001-01-01).
int builds_parse_time (const char *text, int64_t *ns);

extern const collector_t builds_collector;

void builds_test (bool verbose);

#endif
