/*  junit: `collectord junit [options] PATH...`. Test reports in JUnit XML,
    read as a stream (libxml2's xmlTextReader: memory does not grow with the
    size of a report), into

        ci.test   one per test case: suite, class, name, status (passed |
                  failed | error | skipped), duration (s), failure_type,
                  failure_message, flaky, pipeline, build_id, file
        ci.build  one summary per run (the report set) when the build is
                  known: --pipeline and --build-id, or the CI's environment
                  (GitHub Actions, GitLab CI, Jenkins); test counts in
                  body.tests, status failure when a test failed or errored

    PATH: a report file, a directory (searched recursively for files whose
    name matches --report-pattern, default *.xml), or a quoted glob where a
    `**` segment matches any number of directories (`**` then `TEST-*.xml`
    finds Surefire reports at any depth). Files whose
    root element is not <testsuite> or <testsuites> are skipped.

    The dialects: Maven Surefire/Failsafe, Gradle, pytest --junitxml, Go
    (go-junit-report, gotestsum), Jest (jest-junit), ctest --output-junit;
    nested <testsuites>/<testsuite>, <properties>, <system-out>/<system-err>
    (skipped over, never held). The rules:

    - suite: the innermost enclosing <testsuite> (or <testsuites>) with a
      name, else the report's file name without its extension.
    - status: <error> -> error, <failure> -> failed, <skipped> -> skipped,
      else passed. Surefire's <flakyFailure>/<flakyError> without a final
      <failure>/<error>: passed, flaky = true. <rerunFailure>/<rerunError>
      beside a <failure>/<error>: still failed. A test case that fails and is
      later in the same report passed under the same suite, class and name
      (gotestsum --rerun-fails): one record, passed, flaky = true.
    - failure_type: the type attribute. failure_message: the message
      attribute, or the element's text (trimmed) when the attribute is
      missing, empty or a bare "Failed"/"Error" (Go's reports); for a skipped
      test its reason; for a flaky one the failure that was retried.
      Truncated to JUNIT_MESSAGE_MAX bytes on a UTF-8 character boundary.
    - duration: the time attribute in seconds ("1,234.5" as Surefire writes
      it is 1234.5); missing or bad: 0.
    - a record's ts: the suite's timestamp attribute, else the report
      file's modification time.

    Incremental: once a run is acknowledged, the reports it read (path,
    size, modification time) are remembered (state_t); the next run skips
    those unchanged since. An empty folder is a warning (a folder watched
    with --interval may be empty for a while), not an error.

    Malformed XML: an error naming the file and line; the test cases
    delivered before it are sent (libxml2 parses ahead, so the last ones
    before the error may not be), the other files are still collected, and
    the run ends failed. src: --source, else the CI project (github.com/O/R, the
    GitLab project URL, the Jenkins job URL, without scheme), else the
    absolute path of the first PATH.                                      */
#ifndef OMNI_COLLECTORD_JUNIT_H
#define OMNI_COLLECTORD_JUNIT_H

#include "collector.h"

#include <stdbool.h>
#include <stdint.h>

#define JUNIT_MESSAGE_MAX 4096

//  One test case as read; strings valid until the callback returns.
typedef struct {
    const char *file; //  the report
    const char *suite;
    const char *class_name; //  NULL when absent
    const char *name;
    const char *status;          //  passed | failed | error | skipped
    double duration;             //  seconds
    const char *failure_type;    //  NULL when absent
    const char *failure_message; //  NULL when absent; at most JUNIT_MESSAGE_MAX bytes
    bool flaky;
    int64_t ts; //  ns since the epoch
} junit_case_t;

//  Totals over the reports read since junit_new.
typedef struct {
    uint64_t total, passed, failed, error, skipped, flaky;
    double duration;           //  sum of the test cases' durations
    int64_t started, finished; //  from suite timestamps; INT64_MIN when none
    int64_t newest_file;       //  newest report mtime, ns
} junit_totals_t;

//  Returns 0 to go on, non-zero to stop reading.
typedef int (junit_case_fn) (void *arg, const junit_case_t *test);

typedef struct _junit_t junit_t;

junit_t *junit_new (junit_case_fn *fn, void *arg);
void junit_destroy (junit_t **self_p);

//  Reads one report. Returns the number of test cases passed to the
//  callback; 0 for a file that is not a JUnit report; -1 with `error`
//  ("path:line: message") when the file is unreadable or malformed (cases
//  read before were passed on); -2 when the callback stopped it.
int64_t junit_read_file (junit_t *self, const char *path, char *error, size_t error_size);

const junit_totals_t *junit_totals (junit_t *self);

//  The report files PATH arguments name: files, directories searched
//  recursively for names matching one of `patterns`, globs with `**`;
//  sorted, without duplicates, NULL-terminated (free each and the array).
//  An argument that names nothing is logged as a warning.
char **junit_find_files (const char *const *args, size_t nargs, char *const *patterns);

//  Truncates `len` bytes of UTF-8 to at most `max` bytes without cutting a
//  character; returns the new length.
size_t junit_utf8_cut (const char *s, size_t len, size_t max);

extern const collector_t junit_collector;

void junit_test (bool verbose);

#endif
