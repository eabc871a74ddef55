/*  junit: `collectord junit [options] PATH...`. Test reports in JUnit XML
    (read by junit_parse_t; the dialects and their rules are there) into

        ci.test   one per result: suite, class, name, status (passed |
                  failed | error | skipped | disabled), duration (s),
                  failure_type, failure_message, flaky, retried, occurrence,
                  pipeline, build_id, file
        ci.build  one per run (the report set): the build's test counts in
                  body.tests {total, passed, failed, error, skipped,
                  disabled, retried}, status failure when a result failed or
                  errored (or a report could not be read), success when
                  there were results

    PATH: a report file, a directory or a glob (junit_files_t).

    Identity. A ci.test is (build_id, suite, class, name, occurrence):
    every <testcase> element is a result, and repeated ones are numbered
    in document order over the reports of a run, taken in path order, so
    reading the same reports again gives the same ids and nothing merges.
    The build's totals are the results sent: total = passed + failed +
    error + skipped + disabled + retried, and equal its ci.test rows.

    The build: --pipeline and --build-id, else the CI's environment
    (GitHub Actions, GitLab CI, Jenkins), else pipeline "junit" and a build
    id made from the reports themselves: the earliest suite timestamp
    (UTC, 20240301T120000Z) and the first 16 hex digits of a SHA-256 over
    the SHA-256 of each report's bytes (sorted: names and order do not
    matter), "20240301T120000Z-1a2b3c4d5e6f7a8b"; the digest alone when no
    suite has a timestamp. The same reports read again name the same build;
    another test run's reports another one, so history is kept.

    duration: the span of the suites' timestamps (start to start + time);
    without timestamps the sum over reports of the root's declared time
    (cases run in parallel, setup outside them), or of its cases' times when
    the root declares none. A record's ts: the suite's timestamp, else the
    report file's modification time.

    Incremental: once a run is acknowledged, the reports it read (path,
    size, modification time) are remembered (state_t); the next run skips
    those unchanged since. An empty folder is a warning (a folder watched
    with --interval may be empty for a while), not an error.

    The run fails (exit 1, run.end failed) when a report does not parse
    whole (nothing of it is sent; the others are, and the build counts it
    as unreadable and failed), when a report named as a PATH is not JUnit,
    or when the reports read hold no result at all (empty reports, only
    other XML): numbers nobody should trust. A report without results among
    others, or other XML found in a directory, is a warning. src: --source,
    else the CI project (github.com/O/R, the GitLab project URL, the Jenkins
    job URL, without scheme), else the absolute path of the first PATH.    */
#ifndef OMNI_COLLECTORD_JUNIT_H
#define OMNI_COLLECTORD_JUNIT_H

#include "collectord/collector.h"

#include <stdbool.h>

extern const collector_t junit_collector;

void junit_test (bool verbose);

#endif
