/*  junit_parse: one JUnit XML report into neutral test results, read as a
    stream (libxml2's xmlTextReader: memory does not grow with the size of a
    report). It knows the dialects, not the pipeline: the collector
    (junit.c) decides what a run sends.

    The dialects: Maven Surefire/Failsafe, Gradle, pytest --junitxml, Go
    (go-junit-report, gotestsum), Jest (jest-junit), mocha, ctest
    --output-junit, tst; nested <testsuites>/<testsuite>, <properties>,
    <system-out>/<system-err> (skipped over, never held). The rules:

    - Every <testcase> element is one result, and so is every <error> or
      <failure> directly inside a <testsuite> (a class that failed to load):
      a case named "<init>" of the suite's class, as Jenkins shows it.
    - suite: the innermost enclosing <testsuite> (or <testsuites>) with a
      name, else the report's file name without its extension.
    - status, whatever the order of the elements: <error> -> error, else
      <failure> -> failed, else status="disabled" (ctest, tst: never run) ->
      disabled, else <skipped> -> skipped, else passed. Surefire's
      <flakyFailure>/<flakyError> without a final <failure>/<error>: passed,
      flaky. <rerunFailure>/<rerunError> beside a <failure>/<error>: failed.
    - Reruns as separate elements (gotestsum --rerun-fails): a case that
      failed (or errored) and is later in the same report again under the
      same suite, class and name, passing or failing the same way, was run
      again. Every attempt is a result: the earlier ones have `retried`, the
      last one holds the outcome; passed after failing is flaky. A different
      outcome (pytest's second <testcase> for a teardown error after a failed
      call) is a result of its own, not a rerun.
    - occurrence: how many results with the same suite, class and name this
      parser gave before, counted in document order over every report it
      read (0 for the first): repeated cases (aggregated Surefire reports,
      mocha's repeated titles, reruns) stay apart and keep their index when
      the same reports are read again.
    - failure_type: the type attribute. failure_message: the message
      attribute, or the element's text (trimmed) when the attribute is
      missing, empty or a bare "Failed"/"Error" (Go's reports); for a skipped
      test its reason; for a flaky one the failure that was retried.
      Truncated to JUNIT_MESSAGE_MAX bytes on a UTF-8 character boundary.
    - duration: the time attribute in seconds ("1,234.5" as Surefire writes
      it is 1234.5); missing or bad: 0.
    - ts: the innermost suite timestamp, else the report file's modification
      time. A timestamp before 1970 or from 2200 on (gotestsum writes
      0001-01-01) is not used, with a warning: it cannot be a test run's.

    A report is taken whole or not at all: junit_parse_check reads it
    without giving results, and names what is wrong in words ("file ends
    inside <testcase name="t"> opened at line 7", "unclosed CDATA section
    opened at line 5") with the file and line; junit_parse_file then gives
    its results.                                                          */
#ifndef OMNI_COLLECTORD_JUNIT_PARSE_H
#define OMNI_COLLECTORD_JUNIT_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JUNIT_MESSAGE_MAX 4096
#define JUNIT_NO_TIME     INT64_MIN

//  By rank: a higher one wins when a case holds several outcomes
typedef enum {
    JUNIT_PASSED = 0,
    JUNIT_SKIPPED,
    JUNIT_DISABLED,
    JUNIT_FAILED,
    JUNIT_ERROR,
    JUNIT_STATUSES
} junit_status_t;

//  passed | skipped | disabled | failed | error
const char *junit_status_name (junit_status_t status);

//  One result; strings valid until the callback returns.
typedef struct {
    const char *file; //  the report
    const char *suite;
    const char *class_name; //  NULL when absent
    const char *name;
    junit_status_t status;
    double duration;             //  seconds
    const char *failure_type;    //  NULL when absent
    const char *failure_message; //  NULL when absent; at most JUNIT_MESSAGE_MAX bytes
    bool flaky;                  //  passed after failing
    bool retried;                //  an attempt run again later in the report
    uint32_t occurrence;
    int64_t ts; //  ns since the epoch
} junit_case_t;

//  What one report holds beyond its results.
typedef struct {
    bool junit;         //  the root is <testsuite> or <testsuites>
    char root[64];      //  the root element's name
    uint64_t cases;     //  results
    double case_time;   //  sum of the results' durations
    double root_time;   //  the root's declared time; < 0 when it declares none
    int64_t started;    //  earliest suite timestamp; JUNIT_NO_TIME when none
    int64_t finished;   //  latest suite timestamp + its time; JUNIT_NO_TIME when none
    int64_t mtime;      //  the file's modification time, ns
    uint64_t bad_time;  //  timestamps refused (out of 1970-2200)
    uint8_t digest[32]; //  SHA-256 of the file's bytes
} junit_report_t;

//  Returns 0 to go on, non-zero to stop reading.
typedef int (junit_case_fn) (void *arg, const junit_case_t *result);

typedef struct _junit_parse_t junit_parse_t;

junit_parse_t *junit_parse_new (void);
void junit_parse_destroy (junit_parse_t **self_p);

//  Reads a report whole, giving no results. Returns 0 when it parses whole
//  (`report` says whether it is a JUnit report and what it holds), -1 with
//  `error` ("path:line: what is wrong") when it is unreadable or malformed.
int junit_parse_check (junit_parse_t *self, const char *path, junit_report_t *report, char *error,
                       size_t error_size);

//  Reads a report and gives each result to `fn` (failed attempts are held
//  until the report shows whether they were run again). Returns 0, -1 with
//  `error` (unreadable, malformed, or changed since `expect` was read: its
//  digest differs), -2 when `fn` stopped it. Occurrences count on from the
//  reports this parser read before.
int junit_parse_file (junit_parse_t *self, const char *path, const junit_report_t *expect,
                      junit_case_fn *fn, void *arg, char *error, size_t error_size);

void junit_parse_test (bool verbose);

#endif
