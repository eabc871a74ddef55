"""collectord junit, builds, code and exec through the whole pipeline:
collectord -> ingestd -> archiverd (JSON Lines) and relationald (PostgreSQL),
every record counted at both ends.

The JUnit and CI fixtures are under tests/fixtures/ (one report per dialect,
one export per CI system; their exact contents are checked field by field by
collectord-selftest); here they go through real processes (code counts:
test_code_stats.py). A JUnit report of 100,000 test cases is collected with
bounded memory (peak RSS from wait4)."""
import collections
import os
import shutil
import signal
import subprocess
import time

import pytest

from omni import BIN, ROOT, archive_lines, junit_big_report, query, scalar, wait_until

COLLECTORD = os.path.join(BIN, "collectord")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
JUNIT = os.path.join(FIXTURES, "junit")
BUILDS = os.path.join(FIXTURES, "builds")
# The JUnit fixtures that are well formed, and what they hold (suites as the
# self-test checks them): 41 results, a gotestsum rerun's failed attempt (its
# status failed, retried) among them; tests/test_junit_exact.py checks more.
JUNIT_DIALECTS = ["surefire", "gradle", "pytest", "go", "jest", "ctest", "nested"]
JUNIT_COUNTS = {"passed": 21, "failed": 9, "error": 2, "skipped": 8, "disabled": 1}
# The build's counts: the retried attempt is counted as retried, not failed
JUNIT_BUILD = {"total": 41, "passed": 21, "failed": 8, "error": 2, "skipped": 8, "disabled": 1,
               "retried": 1}
# The builds fixtures (broken.json aside): 4 + 3 GitHub, 4 GitLab, 4 + 3 Jenkins
BUILD_FILES = ["github_runs.json", "github_paginated.json", "gitlab_pipelines.json",
               "jenkins_builds.json", "jenkins_folder.json"]
BUILD_STATUSES = {"success": 5, "failure": 5, "cancelled": 3, "other": 5}


def _modes():
    if not os.path.exists(COLLECTORD):
        return set()
    out = subprocess.run([COLLECTORD, "--help"], capture_output=True, text=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.startswith("  ")}


MODES = _modes()
pytestmark = pytest.mark.skipif(
    not {"junit", "builds", "code", "exec"} <= MODES
    or not all(os.path.exists(os.path.join(BIN, b)) for b in ("ingestd", "archiverd")),
    reason=f"collectord with junit, builds, code and exec, ingestd and archiverd in {BIN}")


def clean_env(**extra):
    """The environment without any CI's variables (the tests may run in CI)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GITHUB_", "CI_", "GITLAB_", "BUILD_", "JENKINS_", "JOB_",
                                "GIT_", "OMNI_COLLECTORD_"))
           and k not in ("BRANCH_NAME", "CI")}
    env.update(extra)
    return env


def run_collector(p, mode, *args, env=None, rc=0, timeout=600):
    """collectord MODE --once against the pipeline's intake; returns its output."""
    cmd = [COLLECTORD, mode, "--once", f"--intake={p.intake}", "--progress=off",
           "--give-up=60s", "--instance=test", f"--state-dir={p.workdir}/state", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env or clean_env(),
                         timeout=timeout)
    assert out.returncode == rc, f"{cmd} exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out


def drained(p, timeout=180):
    """Until every writer stored every record ingestd accepted."""
    def done():
        m = p.ingestd.metrics()
        return m.get("omni_ingestd_records_accepted_total", 0) > 0 and \
            m.get("omni_ingestd_records_acked_by_all_total") == \
            m.get("omni_ingestd_records_accepted_total")
    wait_until(done, timeout, "every record stored by every writer", interval=0.05)


def archived(p, kind=None):
    lines = archive_lines(p.archive_dir)
    return [x for x in lines if kind is None or x["kind"] == kind]


def start(pipeline, pg_database=None):
    """ingestd, archiverd and (with a database) relationald."""
    writers = ("archive", "relational") if pg_database else ("archive",)
    p = pipeline(writers=writers)
    p.ingestd.start()
    p.archiverd().start()
    if pg_database:
        p.writer("relationald", [f"--dsn={pg_database}"]).start()
    return p


def rows(dsn, sql):
    return query(dsn, sql)


# ---------------------------------------------------------------------------
# junit


def test_junit_every_dialect_in_archive_and_postgres(pipeline, pg_database):
    p = start(pipeline, pg_database)
    paths = [os.path.join(JUNIT, d) for d in JUNIT_DIALECTS]
    run_collector(p, "junit", "--pipeline=widget-ci", "--build-id=42", "--branch=main",
                  "--sha=" + "a" * 40, "--source=acme/widget", *paths)
    drained(p)
    tests = archived(p, "ci.test")
    assert len(tests) == sum(JUNIT_COUNTS.values()) == 41
    assert collections.Counter(t["body"]["status"] for t in tests) == JUNIT_COUNTS
    assert len({t["id"] for t in tests}) == 41
    assert [t["body"]["name"] for t in tests if t["body"].get("retried")] == ["TestFlaky"]
    assert all(t["src"] == "acme/widget" and t["body"]["build_id"] == "42" for t in tests)
    flaky = sorted(t["body"]["name"] for t in tests if t["body"]["flaky"])
    assert flaky == ["TestFlaky", "testFlaky"]
    builds = archived(p, "ci.build")
    assert len(builds) == 1
    b = builds[0]["body"]
    assert b["pipeline"] == "widget-ci" and b["status"] == "failure" and b["system"] == "junit"
    assert b["tests"] == JUNIT_BUILD
    # The same in PostgreSQL
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests") == 41
    assert dict(rows(pg_database, "SELECT status, count(*) FROM ci_tests GROUP BY 1")) \
        == JUNIT_COUNTS
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests WHERE flaky") == 2
    assert rows(pg_database, "SELECT failure_message FROM ci_tests WHERE name = 'TestB'") \
        == [("a_test.go:12: boom\n    a_test.go:13: got 2, want 3",)]
    assert rows(pg_database, "SELECT duration FROM ci_tests WHERE name = 'testSlow'") \
        == [(1234.5,)]
    assert rows(pg_database, "SELECT pipeline, build_id, status, (tests->>'total')::int, "
                             "branch FROM ci_builds") == [("widget-ci", "42", "failure", 41,
                                                           "main")]
    assert rows(pg_database, "SELECT collector, status FROM runs") == [("junit", "ok")]
    # Collected again: the reports are unchanged, none is read
    out = run_collector(p, "junit", "--pipeline=widget-ci", "--build-id=42", "--branch=main",
                        "--sha=" + "a" * 40, "--source=acme/widget", *paths)
    assert "reports=0 unchanged=10 " in out.stderr, out.stderr
    drained(p)
    assert len(archived(p, "ci.test")) == 41
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests") == 41


def test_junit_malformed_report_named_rest_collected(pipeline, workdir):
    p = start(pipeline)
    reports = os.path.join(workdir, "reports")
    shutil.copytree(os.path.join(JUNIT, "gradle"), os.path.join(reports, "gradle"))
    shutil.copytree(os.path.join(JUNIT, "bad"), os.path.join(reports, "bad"))
    out = run_collector(p, "junit", reports, rc=1)
    assert "malformed.xml:5:" in out.stderr, out.stderr
    drained(p)
    # pom.xml is not a report: skipped; the Gradle report is all there,
    # nothing of the malformed one
    assert len(archived(p, "ci.test")) == 4
    end = archived(p, "run.end")[0]["body"]
    assert end["status"] == "failed" and "malformed.xml:5:" in end["error"]
    # No build named: one made from the reports, failed for the unreadable one
    (build,) = archived(p, "ci.build")
    b = build["body"]
    assert b["pipeline"] == "junit" and b["build_id"].startswith("20240301T120000Z-")
    assert b["status"] == "failure" and b["tests"]["total"] == 4
    assert b["tests"]["unreadable"] == 1


def test_junit_build_from_ci_environment(pipeline, workdir):
    p = start(pipeline)
    env = clean_env(GITHUB_ACTIONS="true", GITHUB_WORKFLOW="CI", GITHUB_RUN_ID="9001",
                    GITHUB_REF_NAME="main", GITHUB_SHA="b" * 40, GITHUB_EVENT_NAME="push",
                    GITHUB_REPOSITORY="acme/widget", GITHUB_SERVER_URL="https://github.com")
    run_collector(p, "junit", os.path.join(JUNIT, "jest", "junit.xml"), env=env)
    drained(p)
    tests = archived(p, "ci.test")
    assert len(tests) == 5 and {t["src"] for t in tests} == {"github.com/acme/widget"}
    assert {t["body"]["build_id"] for t in tests} == {"9001"}
    (build,) = archived(p, "ci.build")
    assert build["body"]["pipeline"] == "CI" and build["body"]["system"] == "github"
    assert build["body"]["trigger"] == "push" and build["body"]["branch"] == "main"
    assert build["body"]["tests"]["total"] == 5


def _peak_rss_kb(cmd, env):
    """Runs cmd, returns (returncode, stderr, peak RSS in KiB). /usr/bin/time
    measures the program alone (wait4 in a forked Python would count the
    interpreter's memory from before the exec)."""
    if os.path.exists("/usr/bin/time"):
        out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                             env=env)
        rss = [int(line.split(":")[1]) for line in out.stderr.splitlines()
               if "Maximum resident set size" in line]
        return out.returncode, out.stderr, rss[0]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    stderr = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, stderr, usage.ru_maxrss


def _sanitized(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True)
    return "libasan" in out.stdout


def test_junit_100k_cases_bounded_memory(pipeline, workdir):
    # Under AddressSanitizer freed memory waits in a quarantine (256 MiB by
    # default): a small one, and a looser bound for ASan's own memory
    asan = _sanitized(COLLECTORD)
    env = clean_env(ASAN_OPTIONS="quarantine_size_mb=1:thread_local_quarantine_size_kb=64")
    p = start(pipeline)
    small, big = os.path.join(workdir, "small.xml"), os.path.join(workdir, "big.xml")
    junit_big_report(small, 10_000)
    junit_big_report(big, 100_000)
    assert os.path.getsize(big) > 20 << 20
    peaks = {}
    for name, path in (("small", small), ("big", big)):
        cmd = [COLLECTORD, "junit", "--once", f"--intake={p.intake}", "--progress=off",
               "--give-up=120s", f"--source={name}", f"--build-id={name}", "--pipeline=load",
               f"--state-dir={workdir}/state", path]
        rc, stderr, peaks[name] = _peak_rss_kb(cmd, env)
        assert rc == 0, stderr[-3000:]
    drained(p, timeout=600)
    tests = archived(p, "ci.test")
    assert collections.Counter(t["src"] for t in tests) == {"small": 10_000, "big": 100_000}
    big_tests = [t for t in tests if t["src"] == "big"]
    assert sum(t["body"]["status"] == "failed" for t in big_tests) == 1000
    # Bounded: ten times the report, about the same memory (the intake window
    # and libxml2's read buffer: about 20 MiB in all), not the report's size
    print(f"peak RSS: 10k cases {peaks['small']} KiB, 100k cases {peaks['big']} KiB")
    assert peaks["big"] < (128 if asan else 64) * 1024
    assert peaks["big"] < peaks["small"] + 8 * 1024


# ---------------------------------------------------------------------------
# builds


def test_builds_every_system_in_archive_and_postgres(pipeline, pg_database):
    p = start(pipeline, pg_database)
    run_collector(p, "builds", *[os.path.join(BUILDS, f) for f in BUILD_FILES])
    drained(p)
    builds = archived(p, "ci.build")
    assert len(builds) == 18
    assert {b["src"] for b in builds} == {"github.com/acme/widget"}
    assert collections.Counter(b["body"]["system"] for b in builds) == \
        {"github": 7, "gitlab": 4, "jenkins": 7}
    assert collections.Counter(b["body"]["status"] for b in builds) == BUILD_STATUSES
    assert scalar(pg_database, "SELECT count(*) FROM ci_builds") == 18
    assert dict(rows(pg_database, "SELECT status, count(*) FROM ci_builds GROUP BY 1")) \
        == BUILD_STATUSES
    assert rows(pg_database,
                "SELECT pipeline, status, branch, duration, trigger, "
                "started = '2024-01-01T10:00:00Z', finished = '2024-01-01T10:05:30Z' "
                "FROM ci_builds WHERE build_id = '7001'") == \
        [("CI", "success", "main", 330.0, "push", True, True)]
    assert rows(pg_database, "SELECT pipeline, status, duration, trigger FROM ci_builds "
                             "WHERE build_id = '42'") == \
        [("team/widget", "success", 61.5, "push")]
    assert rows(pg_database, "SELECT pipeline, status, duration FROM ci_builds "
                             "WHERE build_id = '501'") == [("group/project", "success", 125.0)]
    # A broken file: reported with its line, the others still collected
    out = run_collector(p, "builds", os.path.join(BUILDS, "broken.json"),
                        os.path.join(BUILDS, "jenkins_folder.json"), "--source=other", rc=1)
    assert "broken.json:4:" in out.stderr
    drained(p)
    assert scalar(pg_database, "SELECT count(*) FROM ci_builds b JOIN sources s "
                               "ON s.id = b.source_id WHERE s.name = 'other'") == 3


# ---------------------------------------------------------------------------
# exec


def test_exec_good_lines_sent_bad_line_reported(pipeline, pg_database):
    p = start(pipeline, pg_database)
    script = ("echo '{\"env\":\"prod\",\"n\":1,\"ok\":true}'; "
              "echo '{\"env\":\"dev\",\"ms\":2.5,\"tags\":[\"a\",\"b\"],\"m\":{\"k\":{\"d\":-1}}}'; "
              "echo 'not json'; "
              "echo '{\"env\":\"qa\",\"n\":3}'")
    # The good lines are sent, the run fails (exit 1) saying how many were not
    out = run_collector(p, "exec", "--kind=x.deploy", "--", "sh", "-c", script, rc=1)
    assert "event=exec.bad_line line=3" in out.stderr, out.stderr
    assert "1 of 4 lines were not x.deploy records and were not sent" in out.stderr, out.stderr
    drained(p)
    deploys = archived(p, "x.deploy")
    assert len(deploys) == 3
    bodies = {d["body"]["env"]: d["body"] for d in deploys}
    assert bodies["prod"] == {"env": "prod", "n": 1, "ok": True}
    assert bodies["dev"]["ms"] == 2.5 and bodies["dev"]["tags"] == ["a", "b"]
    assert bodies["dev"]["m"] == {"k": {"d": -1}}
    assert isinstance(bodies["qa"]["n"], int)
    end = archived(p, "run.end")[0]["body"]
    assert end["status"] == "failed" and end["counts"]["x.deploy"] == 3
    assert "1 of 4 lines" in end["error"], end
    # Custom kinds go to the archive (and documents), not to PostgreSQL; the
    # run is there
    assert rows(pg_database, "SELECT collector, status FROM runs") == [("exec", "failed")]
    assert end["counts"]["bad_lines"] == 1


def test_exec_declared_kind_validated_and_failing_command(pipeline, pg_database):
    p = start(pipeline, pg_database)
    # ci.build bodies: the second lacks its status and is refused
    script = ("echo '{\"pipeline\":\"deploy\",\"build_id\":\"1\",\"status\":\"success\"}'; "
              "echo '{\"pipeline\":\"deploy\",\"build_id\":\"2\"}'; exit 3")
    out = run_collector(p, "exec", "--kind=ci.build", "--source=deployer", "--", "sh", "-c",
                        script, rc=1)
    assert "line=2" in out.stderr and "status 3" in out.stderr, out.stderr
    drained(p)
    assert len(archived(p, "ci.build")) == 1
    assert rows(pg_database, "SELECT pipeline, build_id, status FROM ci_builds") == \
        [("deploy", "1", "success")]
    assert rows(pg_database, "SELECT status FROM runs") == [("failed",)]
    # Refused before anything runs: a kind that is neither x.* nor declared
    bad = subprocess.run([COLLECTORD, "exec", "--kind=deploys", f"--intake={p.intake}", "--",
                          "true"], capture_output=True, text=True, env=clean_env())
    assert bad.returncode == 2 and "collectord.kind" in bad.stderr


def test_exec_every_interval_until_sigterm(pipeline, workdir):
    p = start(pipeline)
    counter = os.path.join(workdir, "n")
    script = f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; " \
             "echo \"{\\\"tick\\\":$n}\""
    log = open(os.path.join(workdir, "exec.log"), "w")
    proc = subprocess.Popen([COLLECTORD, "exec", "--kind=x.tick", f"--intake={p.intake}",
                             "--interval=300ms", "--progress=off", "--", "sh", "-c", script],
                            stdout=log, stderr=log, env=clean_env())
    log.close()
    try:
        wait_until(lambda: len(archived(p, "x.tick")) >= 3, 60, "three ticks archived")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    drained(p)
    ticks = sorted(t["body"]["tick"] for t in archived(p, "x.tick"))
    assert ticks[:3] == [1, 2, 3]
    runs = archived(p, "run.start")
    assert len({r["run"] for r in runs}) == len(runs)
    # Every run that ended ok emitted its tick; SIGTERM may land between a
    # run's start and its tick: that run ends "interrupted" or "failed", said so.
    ended = {e["run"]: e["body"]["status"] for e in archived(p, "run.end")}
    assert set(ended) == {r["run"] for r in runs}
    assert sum(1 for st in ended.values() if st == "ok") == len(ticks)
    assert sum(1 for st in ended.values() if st != "ok") <= 1
