"""collectord junit exact to the row: every <testcase> one result in PostgreSQL.

Each test writes its reports (in the producers' own formats: an aggregated
Surefire report with repeated cases, pytest's second <testcase> for a teardown
error, mocha's repeated titles, gotestsum reruns, outcome elements in every
order, ctest/tst disabled cases, a suite-level <error>, a root that alone
declares its time, a gotestsum 0001-01-01 timestamp, a cut-off file, an unclosed
CDATA section, an empty report, a root that is not JUnit) or has real tools
write them (pytest --junitxml, ctest --output-junit), collects them through
ingestd, archiverd and relationald, and compares the rows with what
xml.etree finds in the files: the expected numbers are computed here, from the
documented rules, never by the collector. Every test ends with the corpus
check: each stored ci_builds row's counts equal its ci_tests rows."""
import collections
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from omni import query, scalar
from test_collectors import COLLECTORD, archived, clean_env, drained, start

STATUSES = ("passed", "failed", "error", "skipped", "disabled")


# ---------------------------------------------------------------------------
# The expectation, from the files alone


def expected_results(path):
    """[(suite, class, name, status, retried)] of one report, in document
    order: every <testcase>, every <error>/<failure> directly in a
    <testsuite> (a case "<init>" of the suite's class); status by precedence
    error > failure > disabled > skipped > passed; a failing case whose key
    comes again passing or failing the same way was retried."""
    root = ET.parse(path).getroot()
    base = os.path.splitext(os.path.basename(path))[0]
    out = []

    def walk(el, suite):
        for child in el:
            if child.tag in ("testsuite", "testsuites"):
                walk(child, child.get("name") or suite)
            elif child.tag == "testcase":
                tags = {c.tag for c in child}
                if "error" in tags:
                    status = "error"
                elif "failure" in tags:
                    status = "failed"
                elif (child.get("status") or "").lower() == "disabled":
                    status = "disabled"
                elif "skipped" in tags:
                    status = "skipped"
                else:
                    status = "passed"
                out.append([suite, child.get("classname") or None, child.get("name") or "",
                            status, False])
            elif child.tag in ("error", "failure") and el.tag == "testsuite":
                out.append([suite, suite, "<init>", "error" if child.tag == "error" else "failed",
                            False])

    assert root.tag in ("testsuite", "testsuites"), root.tag
    walk(root, root.get("name") or base)
    held = {}
    for r in out:
        key = tuple(r[:3])
        h = held.pop(key, None)
        if h is not None and (r[3] == "passed" or r[3] == h[3]):
            h[4] = True
        if r[3] in ("failed", "error"):
            held[key] = r
    return [tuple(r) for r in out]


def expected_build(paths):
    results = [r for p in paths for r in expected_results(p)]
    counts = collections.Counter(r[3] for r in results if not r[4])
    build = {s: counts.get(s, 0) for s in STATUSES}
    build["retried"] = sum(r[4] for r in results)
    build["total"] = len(results)
    return results, build


def stored_rows(dsn, build_id):
    return query(dsn, "SELECT suite, class, name, status, retried, occurrence FROM ci_tests "
                      f"WHERE build_id = '{build_id}' ORDER BY suite, class, name, occurrence")


def check_build(dsn, build_id, paths):
    """The rows of the build and its counts equal what the files hold."""
    results, build = expected_build(paths)
    rows = stored_rows(dsn, build_id)
    assert len(rows) == len(results)
    assert collections.Counter(r[:5] for r in rows) == collections.Counter(results)
    # Occurrences number each key's results 0, 1, ...
    per_key = collections.defaultdict(list)
    for r in rows:
        per_key[r[:3]].append(r[5])
    assert all(sorted(v) == list(range(len(v))) for v in per_key.values())
    ((tests,),) = query(dsn, f"SELECT tests FROM ci_builds WHERE build_id = '{build_id}'")
    assert {k: v for k, v in tests.items() if k != "unreadable"} == build
    return rows, build


def check_corpus(dsn):
    """Every stored build's counts equal its stored rows."""
    builds = query(dsn, "SELECT b.source_id, b.pipeline, b.build_id, b.tests FROM ci_builds b")
    assert builds
    for source_id, pipeline, build_id, tests in builds:
        rows = query(dsn, "SELECT status, retried FROM ci_tests WHERE source_id = %s AND "
                          "pipeline = %s AND build_id = %s" % (source_id, _lit(pipeline),
                                                               _lit(build_id)))
        assert tests["total"] == len(rows), (build_id, tests, len(rows))
        assert tests["retried"] == sum(r[1] for r in rows)
        counts = collections.Counter(r[0] for r in rows if not r[1])
        assert {s: tests[s] for s in STATUSES} == {s: counts.get(s, 0) for s in STATUSES}


def _lit(s):
    return "'" + s.replace("'", "''") + "'"


def collect(p, *args, rc=0, env=None):
    cmd = [COLLECTORD, "junit", "--once", f"--intake={p.intake}", "--progress=off",
           "--give-up=60s", "--instance=test", f"--state-dir={p.workdir}/state", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env or clean_env(),
                         timeout=300)
    assert out.returncode == rc, f"{cmd} exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out


def build_ids(dsn):
    return [r[0] for r in query(dsn, "SELECT build_id FROM ci_builds ORDER BY build_id")]


# ---------------------------------------------------------------------------
# The producers' reports


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def surefire_aggregated(path):
    """Three forks of the same classes in one aggregated report: every case
    three times, one of them failing in one fork."""
    suites = []
    for fork in range(3):
        for cls in ("com.acme.CalcTest", "com.acme.DbTest"):
            cases = []
            for i in range(8):
                body = ""
                if cls == "com.acme.DbTest" and i == 3 and fork == 1:
                    body = '<failure message="timeout" type="java.net.SocketTimeoutException">' \
                           'at Db.connect</failure>'
                cases.append(f'<testcase name="test{i}" classname="{cls}" time="0.0{i}">'
                             f'{body}</testcase>')
            suites.append(f'<testsuite name="{cls}" tests="8" time="0.5">{"".join(cases)}'
                          '</testsuite>')
    return write(path, '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>'
                 + "\n".join(suites) + "</testsuites>\n")


def pytest_teardown(path):
    """pytest writes a second <testcase> when teardown fails after a failed
    call (failed, then error); after a passed call the one <testcase> has the
    <error> (as pytest 7 writes them, test_real_pytest_report)."""
    return write(path, """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="2" failures="1" skipped="0" tests="3" time="0.8"
 timestamp="2024-05-02T10:00:00.000000" hostname="ci">
<testcase classname="tests.test_db" name="test_write" time="0.1">
  <failure message="assert 0 == 1">assert 0 == 1</failure></testcase>
<testcase classname="tests.test_db" name="test_write" time="0.0">
  <error message="failed on teardown with &quot;RuntimeError: conn&quot;">teardown</error></testcase>
<testcase classname="tests.test_db" name="test_read" time="0.1">
  <error message="failed on teardown with &quot;RuntimeError: conn&quot;">teardown</error></testcase>
<testcase classname="tests.test_db" name="test_other" time="0.2"/>
</testsuite></testsuites>
""")


def mocha_repeated(path):
    """mocha-junit-reporter: the same title in two describe blocks of one suite."""
    return write(path, """<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="Mocha Tests" time="0.3" tests="5" failures="0">
<testsuite name="Root Suite" timestamp="2024-05-02T10:01:00" tests="0" time="0.000"/>
<testsuite name="api" timestamp="2024-05-02T10:01:00" tests="5" time="0.3" failures="0">
<testcase name="api returns 200" time="0.1" classname="returns 200"/>
<testcase name="api returns 200" time="0.1" classname="returns 200"/>
<testcase name="api returns 200" time="0.05" classname="returns 200"/>
<testcase name="api handles errors" time="0.02" classname="handles errors"/>
<testcase name="api handles errors" time="0.03" classname="handles errors">
  <skipped/></testcase>
</testsuite></testsuites>
""")


def gotestsum_reruns(path):
    """gotestsum --rerun-fails: failed then passed; failed twice then passed;
    failed three times; the rerun attempts in later suites of the report."""
    return write(path, """<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="9" failures="5" errors="0" time="2.0">
<testsuite tests="5" failures="3" time="1.0" name="example.com/w" timestamp="2024-05-02T10:02:00Z">
  <testcase classname="example.com/w" name="TestOK" time="0.1"/>
  <testcase classname="example.com/w" name="TestFlaky" time="0.2"><failure message="Failed">x</failure></testcase>
  <testcase classname="example.com/w" name="TestTwice" time="0.2"><failure message="Failed">y</failure></testcase>
  <testcase classname="example.com/w" name="TestBroken" time="0.2"><failure message="Failed">z</failure></testcase>
</testsuite>
<testsuite tests="4" failures="2" time="1.0" name="example.com/w" timestamp="2024-05-02T10:02:05Z">
  <testcase classname="example.com/w" name="TestFlaky" time="0.3"/>
  <testcase classname="example.com/w" name="TestTwice" time="0.2"><failure message="Failed">y2</failure></testcase>
  <testcase classname="example.com/w" name="TestTwice" time="0.3"/>
  <testcase classname="example.com/w" name="TestBroken" time="0.2"><failure message="Failed">z2</failure></testcase>
  <testcase classname="example.com/w" name="TestBroken" time="0.2"><failure message="Failed">z3</failure></testcase>
</testsuite></testsuites>
""")


def element_order(path):
    return write(path, """<testsuite name="order" timestamp="2024-05-02T10:03:00">
<testcase classname="o" name="skip_fail_error"><skipped/><failure message="f"/><error message="e"/></testcase>
<testcase classname="o" name="fail_skip"><failure message="f"/><skipped/></testcase>
<testcase classname="o" name="skip_fail"><skipped message="later"/><failure message="f"/></testcase>
<testcase classname="o" name="error_failure"><error message="e"/><failure message="f"/></testcase>
<testcase classname="o" name="skip_only"><skipped/></testcase>
</testsuite>
""")


def disabled_cases(path):
    """ctest and tst: status="disabled", with or without <skipped>."""
    return write(path, """<testsuite name="Linux-c++" tests="4" disabled="2" time="0"
 timestamp="2024-05-02T10:04:00">
<testcase name="unit" classname="unit" time="0.5" status="run"/>
<testcase name="off" classname="off" time="0" status="disabled"><system-out>Disabled</system-out></testcase>
<testcase name="off2" classname="off2" time="0" status="disabled"><skipped message="Disabled"/></testcase>
<testcase name="notrun" classname="notrun" time="0" status="notrun"><skipped message="Unable to find executable"/></testcase>
</testsuite>
""")


def suite_error(path):
    """Surefire/Ant: a class that failed to load: an <error> in the suite."""
    return write(path, """<testsuites>
<testsuite name="com.acme.BrokenTest" tests="1" errors="1" time="0.01">
  <error message="java.lang.NoClassDefFoundError: com/acme/Gone"
   type="java.lang.NoClassDefFoundError">at com.acme.BrokenTest</error>
</testsuite>
<testsuite name="com.acme.FineTest" tests="1" time="0.02">
  <testcase name="works" classname="com.acme.FineTest" time="0.02"/>
</testsuite></testsuites>
""")


# ---------------------------------------------------------------------------
# The tests


def test_every_testcase_one_result(pipeline, pg_database, workdir):
    p = start(pipeline, pg_database)
    reports = os.path.join(workdir, "reports")
    paths = [surefire_aggregated(os.path.join(reports, "TEST-aggregated.xml")),
             pytest_teardown(os.path.join(reports, "pytest.xml")),
             mocha_repeated(os.path.join(reports, "mocha.xml")),
             gotestsum_reruns(os.path.join(reports, "gotestsum.xml")),
             element_order(os.path.join(reports, "order.xml")),
             disabled_cases(os.path.join(reports, "ctest.xml")),
             suite_error(os.path.join(reports, "suite-error.xml"))]
    out = collect(p, "--source=acme/widget", reports)
    drained(p)
    (build_id,) = build_ids(pg_database)
    # No CI, no flag: the earliest timestamp and the reports' digest
    assert build_id.startswith("20240502T100000Z-") and len(build_id) == 17 + 16, build_id
    assert f'build_id="{build_id}"' in out.stderr
    rows, build = check_build(pg_database, build_id, paths)
    # Nothing merged: 48 Surefire cases (16 three times), both pytest
    # results of a case, three mocha "returns 200"
    assert build["total"] == 48 + 4 + 5 + 9 + 5 + 4 + 2 == len(rows) == 77
    # By hand, report by report as above: DbTest.test3 failed in one fork and
    # passed in the next, a rerun by the rule (flaky on the same commit)
    assert build == {"passed": 47 + 1 + 4 + 3 + 0 + 1 + 1, "failed": 1 + 1 + 2,
                     "error": 2 + 2 + 1, "skipped": 1 + 1 + 1, "disabled": 2, "retried": 1 + 5,
                     "total": 77}
    counts = dict(query(pg_database, "SELECT name, count(*) FROM ci_tests GROUP BY name"))
    assert counts["test3"] == 6 and counts["test_write"] == 2 and counts["api returns 200"] == 3
    # Outcome precedence whatever the order
    assert dict(query(pg_database, "SELECT name, status FROM ci_tests WHERE class = 'o'")) == {
        "skip_fail_error": "error", "fail_skip": "failed", "skip_fail": "failed",
        "error_failure": "error", "skip_only": "skipped"}
    # Reruns: every attempt, the last holds the outcome
    assert query(pg_database, "SELECT name, occurrence, status, retried, flaky FROM ci_tests "
                              "WHERE suite = 'example.com/w' AND name <> 'TestOK' "
                              "ORDER BY name, occurrence") == [
        ("TestBroken", 0, "failed", True, False), ("TestBroken", 1, "failed", True, False),
        ("TestBroken", 2, "failed", False, False),
        ("TestFlaky", 0, "failed", True, False), ("TestFlaky", 1, "passed", False, True),
        ("TestTwice", 0, "failed", True, False), ("TestTwice", 1, "failed", True, False),
        ("TestTwice", 2, "passed", False, True)]
    # A suite-level error: a failing case, and the build fails
    assert query(pg_database, "SELECT class, status, failure_type FROM ci_tests "
                              "WHERE name = '<init>'") == [
        ("com.acme.BrokenTest", "error", "java.lang.NoClassDefFoundError")]
    assert scalar(pg_database, "SELECT status FROM ci_builds") == "failure"
    # The views: disabled and retried attempts are not runs
    assert scalar(pg_database, "SELECT runs FROM slowest_tests WHERE name = 'TestTwice'") == 1
    assert scalar(pg_database, "SELECT count(*) FROM slowest_tests WHERE name LIKE 'off%'") == 0
    assert sorted(query(pg_database, "SELECT name, runs, flaky_runs, flips FROM flakiest_tests")) \
        == [("TestFlaky", 1, 1, 0), ("TestTwice", 1, 1, 0), ("test3", 2, 1, 0)]
    check_corpus(pg_database)

    # Collected again from scratch (--full): the same build, the same rows
    collect(p, "--source=acme/widget", "--full", reports)
    drained(p)
    assert build_ids(pg_database) == [build_id]
    assert len(stored_rows(pg_database, build_id)) == 77
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests") == 77

    # The next test run's reports (other times): another build, history kept
    next_paths = []
    for path in paths:
        with open(path) as f:
            text = f.read().replace("2024-05-02T10:", "2024-05-03T10:").replace(
                'time="0.1"', 'time="0.15"')
        next_paths.append(write(path.replace("/reports/", "/reports2/"), text))
    collect(p, "--source=acme/widget", os.path.join(workdir, "reports2"))
    drained(p)
    ids = build_ids(pg_database)
    assert len(ids) == 2 and ids[1].startswith("20240503T100000Z-")
    check_build(pg_database, ids[1], next_paths)
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests") == 2 * 77
    assert scalar(pg_database, "SELECT runs FROM slowest_tests WHERE name = 'TestTwice'") == 2
    check_corpus(pg_database)


def test_broken_reports_store_nothing_and_fail(pipeline, pg_database, workdir):
    p = start(pipeline, pg_database)
    reports = os.path.join(workdir, "reports")
    good = element_order(os.path.join(reports, "a-good.xml"))
    # Cut off in the fifth case, which fails; then an unclosed CDATA section
    whole = "".join(f'<testcase classname="c" name="t{i}" time="0.1"/>\n' for i in range(4))
    write(os.path.join(reports, "b-truncated.xml"),
          '<?xml version="1.0"?>\n<testsuite name="cut">\n' + whole
          + '<testcase classname="c" name="t4" time="0.1">\n<failure message="boom">at')
    write(os.path.join(reports, "c-cdata.xml"),
          '<testsuite name="cdata">\n<testcase classname="c" name="x"/>\n'
          '<testcase classname="c" name="y"><failure><![CDATA[trace\n'
          '</failure></testcase>\n</testsuite>\n')
    out = collect(p, "--source=acme/widget", "--pipeline=nightly", "--build-id=7", reports, rc=1)
    # (the log escapes the quotes of a quoted value)
    assert "b-truncated.xml:8: file ends inside <failure> opened at line 8 of " \
           '<testcase name=\\"t4\\"> opened at line 7' in out.stderr, out.stderr
    assert 'c-cdata.xml:5: unclosed CDATA section opened at line 3 of <testcase name=\\"y\\">' \
           in out.stderr, out.stderr
    assert "Extra content" not in out.stderr
    drained(p)
    # Nothing of the broken reports, all of the good one
    assert scalar(pg_database, "SELECT count(*) FROM ci_tests WHERE suite IN ('cut', 'cdata')") \
        == 0
    check_build(pg_database, "7", [good])
    ((status, tests),) = query(pg_database, "SELECT status, tests FROM ci_builds")
    assert status == "failure" and tests["unreadable"] == 2
    assert query(pg_database, "SELECT status, error LIKE '2 of 3 report files unreadable%' "
                              "FROM runs") == [("failed", True)]
    check_corpus(pg_database)


def test_times_out_of_range_and_root_time(pipeline, pg_database, workdir):
    p = start(pipeline, pg_database)
    reports = os.path.join(workdir, "reports")
    zero = write(os.path.join(reports, "gotestsum.xml"), """<testsuites tests="2">
<testsuite name="example.com/z" tests="2" time="0.5" timestamp="0001-01-01T00:00:00Z">
<testcase classname="example.com/z" name="TestA" time="0.2"/>
<testcase classname="example.com/z" name="TestB" time="0.3"/>
</testsuite></testsuites>
""")
    out = collect(p, "--source=acme/zero", zero)
    assert "junit.timestamp_refused" in out.stderr and "0001-01-01" in out.stderr
    drained(p)
    mtime = os.stat(zero).st_mtime
    observed = query(pg_database, "SELECT DISTINCT extract(epoch FROM observed) FROM ci_tests")
    assert len(observed) == 1 and abs(float(observed[0][0]) - mtime) < 1
    assert query(pg_database, "SELECT started FROM ci_builds") == [(None,)]
    # No archive file for a day before 1970
    days = [f for _, _, files in os.walk(p.archive_dir) for f in files
            if f[:4].isdigit() and int(f[:4]) < 1970]
    assert days == []
    (build_id,) = build_ids(pg_database)
    check_build(pg_database, build_id, [zero])
    # The root alone declares the time: the build's duration
    timed = write(os.path.join(workdir, "timed", "report.xml"),
                  '<testsuites time="4.5"><testsuite name="t">'
                  + "".join(f'<testcase classname="t" name="c{i}"/>' for i in range(3))
                  + "</testsuite></testsuites>")
    collect(p, "--source=acme/timed", timed)
    drained(p)
    assert query(pg_database, "SELECT b.duration FROM ci_builds b JOIN sources s "
                              "ON s.id = b.source_id WHERE s.name = 'acme/timed'") == [(4.5,)]
    check_corpus(pg_database)


def test_empty_and_foreign_reports_fail(pipeline, workdir):
    p = start(pipeline)
    empty = write(os.path.join(workdir, "empty", "report.xml"),
                  '<?xml version="1.0"?>\n<testsuites tests="0"><testsuite name="none" '
                  'tests="0"/></testsuites>\n')
    out = collect(p, empty, rc=1)
    assert "no test case in the 1 report files read" in out.stderr, out.stderr
    pom = write(os.path.join(workdir, "pom", "pom.xml"), "<project><modelVersion>4.0.0"
                "</modelVersion></project>")
    out = collect(p, pom, rc=1)
    assert "pom.xml: not a JUnit report (root element <project>, expected <testsuite> or " \
           "<testsuites>)" in out.stderr, out.stderr
    # Found in a directory beside real reports: a warning, the reports count
    shutil.copy(pom, os.path.join(workdir, "empty", "pom.xml"))
    element_order(os.path.join(workdir, "empty", "order.xml"))
    out = collect(p, os.path.join(workdir, "empty"))
    assert "junit.not_a_report" in out.stderr and "junit.empty_report" in out.stderr
    drained(p)
    assert len(archived(p, "ci.test")) == 5
    ends = [e["body"]["status"] for e in archived(p, "run.end")]
    assert sorted(ends) == ["failed", "failed", "ok"]


def test_real_pytest_report(pipeline, pg_database, workdir):
    p = start(pipeline, pg_database)
    suite = os.path.join(workdir, "suite")
    write(os.path.join(suite, "test_sample.py"), '''
import pytest

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown fails")

def test_pass():
    pass

def test_fail():
    assert 1 == 2

def test_fail_then_teardown(broken_teardown):
    assert False

def test_pass_then_teardown(broken_teardown):
    pass

@pytest.mark.skip(reason="not today")
def test_skip():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n != 2

class TestGroup:
    def test_pass(self):
        pass
''')
    report = os.path.join(workdir, "out", "junit.xml")
    os.makedirs(os.path.dirname(report))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          f"--junitxml={report}", "-o", "junit_family=xunit2", suite],
                         capture_output=True, text=True, cwd=suite, timeout=120)
    assert run.returncode == 1, run.stdout[-2000:]
    # pytest's own count of <testcase> elements, by xml.etree
    cases = ET.parse(report).getroot().findall(".//testcase")
    # 10 tests + the teardown error after a failed call
    assert len(cases) == 11
    collect(p, "--source=acme/py", report)
    drained(p)
    (build_id,) = build_ids(pg_database)
    rows, build = check_build(pg_database, build_id, [report])
    assert build["total"] == 11 and build["error"] == 2 and build["failed"] == 3
    assert build["skipped"] == 2 and build["passed"] == 4
    assert query(pg_database, "SELECT status FROM ci_tests WHERE name = 'test_fail_then_teardown' "
                              "ORDER BY occurrence") == [("failed",), ("error",)]
    check_corpus(pg_database)


def test_real_ctest_report(pipeline, pg_database, workdir):
    cmake = shutil.which("cmake")
    assert cmake, "cmake (tools/install-deps.sh --test)"
    src = os.path.join(workdir, "proj")
    write(os.path.join(src, "CMakeLists.txt"), """cmake_minimum_required(VERSION 3.13)
project(t NONE)
enable_testing()
add_test(NAME passes COMMAND ${CMAKE_COMMAND} -E true)
add_test(NAME fails COMMAND ${CMAKE_COMMAND} -E false)
add_test(NAME off COMMAND ${CMAKE_COMMAND} -E true)
set_tests_properties(off PROPERTIES DISABLED TRUE)
add_test(NAME missing COMMAND /nonexistent/prog)
add_test(NAME skips COMMAND ${CMAKE_COMMAND} -E echo SKIPME)
set_tests_properties(skips PROPERTIES SKIP_REGULAR_EXPRESSION SKIPME)
""")
    b = os.path.join(workdir, "build")
    subprocess.run([cmake, "-S", src, "-B", b], check=True, capture_output=True, timeout=120)
    report = os.path.join(b, "ctest.xml")
    subprocess.run(["ctest", "--output-junit", report], cwd=b, capture_output=True, timeout=120)
    assert len(ET.parse(report).getroot().findall(".//testcase")) == 5
    p = start(pipeline, pg_database)
    collect(p, "--source=acme/c", report)
    drained(p)
    (build_id,) = build_ids(pg_database)
    rows, build = check_build(pg_database, build_id, [report])
    assert build == {"total": 5, "passed": 1, "failed": 1, "error": 0, "skipped": 2,
                     "disabled": 1, "retried": 0}
    assert scalar(pg_database, "SELECT status FROM ci_tests WHERE name = 'off'") == "disabled"
    check_corpus(pg_database)
