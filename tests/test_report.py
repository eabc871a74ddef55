"""omni-report against the real pipeline: a generated history with known answers
(commits per week with gaps, authors with hostile names, builds with known
outcomes, a flaky test, code snapshots, host points) goes through ingestd,
relationald and metricsd into a real PostgreSQL; the report's JSON must hold
exactly the expected numbers, and the same as direct SQL over relationald's
views; the HTML is opened by a real headless Chromium (DevTools protocol over
a small stdlib WebSocket client): no console error, no network request,
charts that are not blank, hostile names verbatim and inert; the PDF is read
back with pdftotext and pdfinfo. The dashboard serves the same JSON, and a
store that is down gives a clear error (CLI) or a 503 page (dashboard)."""
import base64
import datetime
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal

import msgpack
import pytest

from omni import (archive_lines, binary, free_port, guarded, http_get, make_record,
                  make_record_metric, query, record_id, send)
from test_documentd import mongo_db, mongo_uri  # noqa: F401 (fixtures)

DAY = 86400
MON = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
REPO = "file:///srv/repos/sample"
HOST = "sample-host"
CI_ONLY = "ci-only"
CROWD = "file:///srv/repos/crowd"
CROWD_AUTHORS = 130
# Per-project access: two sources of one team and one of another
ACME = "github.com/acme/%"
ACME_SOURCES = {"github.com/acme/api": 4, "github.com/acme/web": 2}  # commits each
OTHER = "github.com/other/tool"
# stored figures of earlier reports: (day, since, bus factor, success rate)
HISTORY = [("2024-02-01", None, 3, 0.5), ("2024-02-08", None, 2, 0.6667),
           ("2024-02-08", MON * 10**9, 1, 1.0)]

HOSTILE = '<script>document.title="pwned"</script>'
AUTHORS = [("Alice", "alice@example.org"), (HOSTILE, "mallory@example.org"),
           ("O'Brien \"Bob\" & co", "bob@example.org"), ("שלום עולם", "shalom@example.org"),
           ("Zoë 😀", "zoe@example.org")]
# author index per commit, per week; weeks 1 and 3 have none
PLAN = {0: [0, 1, 0], 2: [0, 2, 3, 1, 4, 0], 4: [2, 0]}
FILES = ["src/main.c", "src/util.c", "README.md", "docs/guide.md"]


def ts(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def pgtime(seconds):
    """PostgreSQL's text of a timestamptz in a UTC session."""
    return ts(seconds).strftime("%Y-%m-%d %H:%M:%S+00")


def rate(num, den):
    if not den:
        return None
    return float((Decimal(num) / Decimal(den)).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def percentile(values, q):
    """percentile_cont."""
    v = sorted(values)
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def sha_of(n, src=REPO):
    import hashlib
    return hashlib.sha1(f"{src}/{n}".encode()).hexdigest()


# ---------------------------------------------------------------------------
# The history


def history():
    commits, n = [], 0
    for week, authors in PLAN.items():
        for i, a in enumerate(authors):
            when = MON + week * 7 * DAY + i * 3600 * 7 + 600
            files = []
            for k in range(1 + n % 3):
                path = FILES[(n + k) % len(FILES)]
                files.append({"path": path, "insertions": 10 * (n + 1) + k, "deletions": n + k,
                              "binary": False})
            name, email = AUTHORS[a]
            commits.append({
                "sha": sha_of(n), "parents": [sha_of(n - 1)] if n else [],
                "author_name": name, "author_email": email, "author_time": when, "author_tz": 60,
                "committer_name": name, "committer_email": email, "committer_time": when,
                "committer_tz": 60, "message": f"change {n}", "files_changed": len(files),
                "insertions": sum(f["insertions"] for f in files),
                "deletions": sum(f["deletions"] for f in files), "files": files})
            n += 1
    # The first commit's author under an old name and e-mail that the
    # .mailmap maps to Alice: counted as Alice, as the views count her
    commits[0].update({"author_name": "A. Old", "author_email": "alice@old.example",
                       "author_name_mailmap": "Alice",
                       "author_email_mailmap": "alice@example.org"})
    # builds: (week, status, sha index); two builds of commit 1 (the flaky one);
    # one still running (status other: no result, out of the success rate)
    plan = [(0, "success", 0), (0, "failure", 1), (0, "success", 1), (1, "success", 2),
            (1, "cancelled", 2), (3, "failure", 3), (3, "success", 4), (3, "other", 4)]
    builds = []
    for i, (week, status, c) in enumerate(plan):
        started = MON + week * 7 * DAY + DAY + i * 3600
        builds.append({"pipeline": "ci", "build_id": str(i + 1), "status": status,
                       "sha": sha_of(c), "branch": "main", "started": started * 10**9,
                       "duration": 60.0 + i})
    tests = []
    for b in builds:
        if b["status"] in ("cancelled", "other"):
            continue
        i = int(b["build_id"])
        start = b["started"]
        net_failed = b["build_id"] == "2"  # fails on commit 1, passes on its rerun (build 3)
        for name, cls, duration, status in (
                ("test_net", "net", 2.5 + i, "failed" if net_failed else "passed"),
                ("test_math", "math", 0.25 * i, "passed"),
                ("test_slow", "io", 10.0 + i, "passed"),
                ("test_skip", "io", 0.0, "skipped")):
            tests.append(({"suite": "unit", "class": cls, "name": name, "status": status,
                           "duration": duration, "pipeline": "ci", "build_id": b["build_id"]},
                          start + 10**9))
    snapshots = [("a" * 40, MON + 2 * DAY, {"C": (4, 1000), "Python": (2, 500)}),
                 ("b" * 40, MON + 20 * DAY, {"C": (5, 1200), "Python": (2, 400), "Shell": (1, 50)})]
    host = []
    for day in range(2):
        for k in range(6):
            t = (MON + 30 * DAY + day * DAY + k * 600) * 10**9
            host.append((t, {"host.cpu.user": 10.0 + day * 20 + k * 3, "host.cpu.system": 2.0 + k,
                             "host.mem.used": float((1 + day) * 2**30 + k * 2**20),
                             "host.load.1": 0.5 + 0.25 * k + day}))
    return commits, builds, tests, snapshots, host


def email(c):
    """The canonical e-mail (the .mailmap's when it has one)."""
    return c.get("author_email_mailmap", c["author_email"])


def plain_commit(src, n, when, author, address, files=()):
    return {"sha": sha_of(n, src), "parents": [], "author_name": author,
            "author_email": address, "author_time": when, "author_tz": 0,
            "committer_name": "x", "committer_email": "x@x", "committer_time": when,
            "committer_tz": 0, "message": "m", "files_changed": len(files),
            "insertions": sum(f["insertions"] for f in files),
            "deletions": sum(f["deletions"] for f in files), "files": list(files)}


def frames_of(commits, builds, tests, snapshots, host):
    frames = [make_record("git.commit", REPO, c, c["committer_time"] * 10**9) for c in commits]
    # A commit amended away: sent, then no longer reachable. The views (and
    # so the report) leave it out; it sits in week 1, which stays empty.
    ghost = plain_commit(REPO, 999, MON + 8 * DAY, "Ghost", "ghost@example.org",
                         [{"path": "src/ghost.c", "insertions": 5, "deletions": 0,
                           "binary": False}])
    frames.append(make_record("git.commit", REPO, ghost, ghost["committer_time"] * 10**9))
    at = (MON + 9 * DAY) * 10**9
    frames.append(msgpack.packb({
        "v": 1, "id": record_id("git.unreachable", REPO, (ghost["sha"], at)),
        "kind": "git.unreachable", "src": REPO, "col": "git", "run": "run-2", "ts": at,
        "body": {"sha": ghost["sha"]}}, use_bin_type=True))
    frames += [make_record("ci.build", REPO, b, b["started"]) for b in builds]
    frames += [make_record("ci.test", REPO, t, when) for t, when in tests]
    for rev, when, langs in snapshots:
        for lang, (files, code) in langs.items():
            body = {"rev": rev, "language": lang, "files": files, "blank": code // 10,
                    "comment": code // 5, "code": code}
            frames.append(make_record("code.stats", REPO, body, when * 10**9))
        body = {"rev": rev, "language": "C", "path": "src/main.c", "files": 1, "blank": 1,
                "comment": 1, "code": 7}
        frames.append(make_record("code.stats", REPO, body, when * 10**9))
    for t, values in host:
        frames += [make_record_metric(HOST, t, name, v) for name, v in values.items()]
    # Figures stored by two earlier reports of the whole history (omni-report
    # --intake), and one of a period, which the history leaves out
    for day, since, bus, success in HISTORY:
        body = {"day": day, "commits": 10, "authors": 5, "files": 4, "builds": 6,
                "success_rate": success, "test_runs": 20, "tests": 3, "bus_factor": bus}
        if since:
            body["since"] = since
        at = (MON + 40 * DAY) * 10**9
        frames.append(msgpack.packb({
            "v": 1, "id": record_id("analysis.summary", REPO, (day, since, None)),
            "kind": "analysis.summary", "src": REPO, "col": "omni-report", "run": "r", "ts": at,
            "body": body}, use_bin_type=True))
    # a CI-only project, and a crowd of one-commit authors
    for i in range(3):
        b = {"pipeline": "nightly", "build_id": str(i), "status": "success" if i else "failure",
             "sha": "c" * 40, "started": (MON + i * DAY) * 10**9}
        frames.append(make_record("ci.build", CI_ONLY, b, b["started"]))
        t = {"suite": "smoke", "name": "boot", "status": "passed", "duration": 1.0 + i,
             "pipeline": "nightly", "build_id": str(i)}
        frames.append(make_record("ci.test", CI_ONLY, t, b["started"] + 1))
    for i in range(CROWD_AUTHORS):
        when = MON + i * 3600
        body = plain_commit(CROWD, i, when, f"Crowd Member {i:03d}", f"m{i:03d}@crowd.example")
        frames.append(make_record("git.commit", CROWD, body, when * 10**9))
    # The teams' sources: commits, a build and host points each
    for k, (src, n) in enumerate([*ACME_SOURCES.items(), (OTHER, 3)]):
        for i in range(n):
            when = MON + k * DAY + i * 3600
            body = plain_commit(src, i, when, f"Dev {k}{i}", f"dev{k}{i}@{src.split('/')[1]}.example",
                                [{"path": f"f{i}.c", "insertions": i + 1, "deletions": 0,
                                  "binary": False}])
            frames.append(make_record("git.commit", src, body, when * 10**9))
        b = {"pipeline": "ci", "build_id": "1", "status": "success", "sha": sha_of(0, src),
             "started": (MON + k * DAY) * 10**9}
        frames.append(make_record("ci.build", src, b, b["started"]))
        frames.append(make_record_metric(src, (MON + k * DAY) * 10**9, "host.load.1", 1.0 + k))
    return frames


@pytest.fixture(scope="module")
def store():
    """The history stored once for the module by the real pipeline."""
    from omni import Pipeline, scratch_database
    with scratch_database("omni_test_report_") as dsn:
        workdir = tempfile.mkdtemp(prefix="omni-report-")
        p = None
        try:
            p = Pipeline(workdir, writers=("relational", "metrics"))
            p.ingestd.start()
            p.writer("relationald", [f"--dsn={dsn}"]).start()
            p.writer("metricsd", [f"--dsn={dsn}"]).start()
            data = history()
            frames = frames_of(*data)
            send(p.intake, frames)
            # ingestd routes each kind to the writers that store it (proto/kinds.c)
            kinds = [msgpack.unpackb(f)["kind"] for f in frames]
            rel = sum(k != "metric" for k in kinds)
            met = sum(k in ("metric", "git.commit", "ci.build", "ci.test") for k in kinds)
            p.wait_acked("relational", rel)
            p.wait_acked("metrics", met)
            yield {"dsn": dsn, "workdir": workdir, "data": data}
        finally:
            for d in p.daemons if p else ():
                if d.running():
                    d.stop()
            shutil.rmtree(workdir, ignore_errors=True)


def report(dsn, kind, *args, check=True):
    out = subprocess.run([binary("omni-report"), kind, f"--dsn={dsn}", *args],
                         capture_output=True, text=True, timeout=60)
    if check:
        assert out.returncode == 0, out.stderr
    return out


def json_report(dsn, *args):
    out = report(dsn, "json", "-o", "-", *args)
    return json.loads(out.stdout)


def rows(doc, section, table):
    return doc["sections"][section]["tables"][table]["rows"]


# ---------------------------------------------------------------------------
# Expected answers, computed here from the inputs


def expected(data):
    commits, builds, tests, snapshots, host = data
    e = {}
    emails = Counter(email(c) for c in commits)
    latest = snapshots[-1][2]
    ran = [t for t, _ in tests]
    # success rate = succeeded / (succeeded + failed), as build_success_rate
    builds_ok = [b for b in builds if b["status"] in ("success", "failure")]
    e["summary"] = {
        "commits": len(commits), "authors": len(emails),
        "files": len({f["path"] for c in commits for f in c["files"]}),
        "first_commit": pgtime(min(c["author_time"] for c in commits)),
        "last_commit": pgtime(max(c["author_time"] for c in commits)),
        "builds": len(builds),
        "success_rate": rate(sum(b["status"] == "success" for b in builds), len(builds_ok)),
        "test_runs": len(ran), "tests": len({(t["suite"], t["class"], t["name"]) for t in ran}),
        "code_lines": sum(code for _, code in latest.values())}
    weeks = []
    last = max(PLAN)
    for w in range(last + 1):
        cs = [c for c in commits if (c["author_time"] - MON) // (7 * DAY) == w]
        weeks.append({"week": str(ts(MON + w * 7 * DAY).date()), "commits": len(cs),
                      "authors": len({email(c) for c in cs}),
                      "insertions": sum(c["insertions"] for c in cs),
                      "deletions": sum(c["deletions"] for c in cs)})
    e["weeks"] = weeks
    order = sorted(emails, key=lambda m: (-emails[m], m))
    total, cum, bus = len(commits), 0, None
    for k, m in enumerate(order, 1):
        cum += emails[m]
        if bus is None and 2 * cum >= total:
            bus = k
    e["bus_factor"] = bus
    e["contributors"] = [(m, emails[m], rate(emails[m], total)) for m in order]
    files = defaultdict(lambda: [0, 0, 0])
    for c in commits:
        for f in c["files"]:
            files[f["path"]][0] += 1
            files[f["path"]][1] += f["insertions"]
            files[f["path"]][2] += f["deletions"]
    e["files"] = sorted(((p, n, i, d, i + d) for p, (n, i, d) in files.items()),
                        key=lambda r: (-r[4], r[0]))
    bweeks = []
    for w in range(4):
        bs = [b for b in builds if (b["started"] // 10**9 - MON) // (7 * DAY) == w]
        ok = [b for b in bs if b["status"] in ("success", "failure")]
        bweeks.append({"week": str(ts(MON + w * 7 * DAY).date()), "builds": len(bs),
                       "succeeded": sum(b["status"] == "success" for b in bs),
                       "failed": sum(b["status"] == "failure" for b in bs),
                       "cancelled": sum(b["status"] == "cancelled" for b in bs),
                       "success_rate": rate(sum(b["status"] == "success" for b in bs), len(ok))})
    e["build_weeks"] = bweeks
    durations = defaultdict(list)
    for t in ran:
        if t["status"] != "skipped":
            durations[t["name"]].append(t["duration"])
    e["slowest"] = sorted(((n, len(d), round(sum(d) / len(d), 6), max(d))
                           for n, d in durations.items()), key=lambda r: (-r[2], r[0]))
    e["flaky"] = [("test_net", 1)]
    e["languages"] = sorted(((lang, files, code, rate(code, e["summary"]["code_lines"]))
                             for lang, (files, code) in latest.items()), key=lambda r: -r[2])
    days = defaultdict(lambda: defaultdict(list))
    for t, values in host:
        d = str(ts(t // 10**9).date())
        days[d]["cpu"].append(values["host.cpu.user"] + values["host.cpu.system"])
        days[d]["mem"].append(values["host.mem.used"])
        days[d]["load"].append(values["host.load.1"])
    e["host"] = {d: v for d, v in days.items()}
    return e


# ---------------------------------------------------------------------------
# Tests


# One connection, and the pool of connections in one snapshot that a large
# project's report uses (forced here: this history is small)
@pytest.mark.parametrize("connections", [1, 3])
def test_json_numbers_equal_expected_and_sql(store, connections):
    dsn, data = store["dsn"], store["data"]
    e = expected(data)
    pool = (f"--connections={connections}", "--pool-min-rows=0")
    doc = json_report(dsn, "--source=%sample%", "--project=sample", *pool)
    assert doc["project"] == "sample" and doc["pattern"] == "%sample%"
    s = doc["sections"]
    assert list(s) == ["summary", "activity", "contributors", "churn", "ci", "code", "host",
                       "history"]
    assert all(sec["empty"] is None for sec in s.values()), {k: v["empty"] for k, v in s.items()}
    assert s["summary"]["figures"] == e["summary"]
    # the per-source table: the same figures, here for the one source
    assert rows(doc, "summary", "sources") == [
        {"source": REPO, **{k: e["summary"][k] for k in (
            "commits", "authors", "files", "builds", "success_rate", "test_runs", "tests",
            "code_lines")}, "bus_factor": e["bus_factor"]}]
    assert rows(doc, "summary", "build_outcomes") == [
        {"status": st, "builds": n} for st, n in
        sorted(Counter(b["status"] for b in data[1]).items(), key=lambda x: (-x[1], x[0]))]

    # commits per week, gaps as zero, and the same as relationald's view
    assert rows(doc, "activity", "weekly") == [
        {k: w[k] for k in ("week", "commits", "authors")} for w in e["weeks"]]
    assert [w["commits"] for w in e["weeks"]] == [3, 0, 6, 0, 2]
    view = dict(query(dsn, "SELECT week::text, commits FROM commit_activity_weekly "
                           "WHERE source = %s", (REPO,)))
    # the view has the empty weeks too (migration 3), as the report does
    assert {w["week"]: w["commits"] for w in rows(doc, "activity", "weekly")} == view
    assert rows(doc, "churn", "weekly") == e["weeks"]

    # contributors: top, share, bus factor; names verbatim
    c = s["contributors"]
    assert c["figures"]["bus_factor"] == e["bus_factor"] == 2
    top = rows(doc, "contributors", "top")
    assert [(r["author_email"], r["commits"], r["share"]) for r in top] == e["contributors"]
    assert {r["author_name"] for r in top} == {a[0] for a in AUTHORS}
    view = {r[0]: (r[1], r[2], r[3], r[4]) for r in query(dsn, """
        SELECT author_email, author_name, commits, insertions, deletions FROM contributors
        WHERE source = %s""", (REPO,))}
    assert {r["author_email"]: (r["author_name"], r["commits"], r["insertions"], r["deletions"])
            for r in top} == view
    assert [tuple(r.values()) for r in rows(doc, "churn", "files")] == e["files"]

    # CI: weekly success rate (a week without builds is a zero row), slowest, flaky
    assert rows(doc, "ci", "weekly") == e["build_weeks"]
    view = {(r[0], r[1]): float(r[2]) for r in query(dsn, """
        SELECT week::text, builds, success_rate FROM build_success_rate WHERE source = %s""",
        (REPO,))}
    assert {(w["week"], w["builds"]): w["success_rate"] for w in rows(doc, "ci", "weekly")
            if w["builds"]} == view
    assert [w["success_rate"] for w in rows(doc, "ci", "weekly")] == [
        rate(2, 3), 1.0, None, rate(1, 2)]  # the running build is left out
    # and metricsd's build_success_weekly agrees (it has no point for a
    # build without a result)
    view = {r[0]: round(float(r[1]), 4) for r in query(dsn, """
        SELECT week::date::text, success_rate FROM build_success_weekly WHERE source = %s""",
        (REPO,))}
    assert {w["week"]: w["success_rate"] for w in rows(doc, "ci", "weekly")
            if w["success_rate"] is not None} == view
    slow = rows(doc, "ci", "slowest")
    assert [(r["name"], r["runs"], r["avg_duration"], r["max_duration"]) for r in slow] == \
        e["slowest"]
    view = {r[0]: (r[1], round(r[2], 6), r[3], round(r[4], 6)) for r in query(dsn, """
        SELECT name, runs, avg_duration, max_duration, p95_duration FROM slowest_tests
        WHERE source = %s""", (REPO,))}
    assert {r["name"]: (r["runs"], r["avg_duration"], r["max_duration"], r["p95_duration"])
            for r in slow} == view
    flaky = rows(doc, "ci", "flakiest")
    assert [(r["name"], r["flaky_commits"]) for r in flaky] == e["flaky"]
    assert flaky[0]["runs"] == 6 and flaky[0]["failures"] == 1

    # code: the latest snapshot (per-file records left out) and the trend
    assert [(r["language"], r["files"], r["code"], r["share"])
            for r in rows(doc, "code", "languages")] == e["languages"]
    trend = rows(doc, "code", "trend")
    assert [(r["snapshot"][11:], r["language"], r["code"]) for r in trend] == [
        ("a" * 8, "C", 1000), ("a" * 8, "Python", 500), ("b" * 8, "C", 1200),
        ("b" * 8, "Python", 400), ("b" * 8, "Shell", 50)]

    # host: per-day p50 / p95, equal to a percentile over metricsd's own view
    host = rows(doc, "host", "daily")
    assert [r["day"] for r in host] == sorted(e["host"])
    for r in host:
        v = e["host"][r["day"]]
        assert r["cpu_p50"] == round(percentile(v["cpu"], 0.5), 4)
        assert r["cpu_p95"] == round(percentile(v["cpu"], 0.95), 4)
        assert r["mem_p95"] == round(percentile(v["mem"], 0.95))
        assert r["load_p50"] == round(percentile(v["load"], 0.5), 4)
    view = {str(r[0]): (round(r[1], 4), round(r[2], 4)) for r in query(dsn, """
        SELECT minute::date, percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_user + cpu_system),
               percentile_cont(0.95) WITHIN GROUP (ORDER BY load_1)
        FROM host_per_minute WHERE host = %s GROUP BY 1""", (HOST,))}
    assert {r["day"]: (r["cpu_p50"], r["load_p95"]) for r in host} == view

    # the figures of earlier reports (whole history only), as stored
    assert [(r["day"], r["source"], r["bus_factor"], r["success_rate"])
            for r in rows(doc, "history", "reports")] == [
        (day, REPO, bus, success) for day, since, bus, success in HISTORY if since is None]

    # every chart draws columns of a table of its section
    for sec in s.values():
        for chart in sec["charts"].values():
            cols = {c["id"] for c in sec["tables"][chart["table"]]["columns"]}
            assert {chart["label"], *chart["values"]} <= cols

    # a period: only weeks 2..3 of commits
    doc = json_report(dsn, "--source=%sample%", "--since=2024-01-15", "--until=2024-01-29",
                      *pool)
    assert doc["sections"]["summary"]["figures"]["commits"] == 6
    assert [w["week"] for w in rows(doc, "activity", "weekly")] == ["2024-01-15"]


def test_empty_ci_only_and_store_down(store, workdir):
    dsn = store["dsn"]
    doc = json_report(dsn, "--source=nothing-matches")
    for sec in doc["sections"].values():
        assert sec["empty"] and not sec["charts"], sec
    assert doc["sections"]["summary"]["figures"]["commits"] == 0

    doc = json_report(dsn, f"--source={CI_ONLY}")
    s = doc["sections"]
    assert s["activity"]["empty"] == "no commits in this period"
    assert s["ci"]["empty"] is None
    assert [(w["builds"], w["succeeded"]) for w in rows(doc, "ci", "weekly")] == [(3, 2)]
    assert s["summary"]["figures"]["success_rate"] == rate(2, 3)
    html = os.path.join(workdir, "ci.html")
    report(dsn, "html", f"--source={CI_ONLY}", "-o", html)
    assert "no commits in this period" in open(html, encoding="utf-8").read()

    # PostgreSQL on a closed port: a clear error naming it, exit 1, no file
    port = free_port()
    for kind in ("json", "html", "pdf"):
        out = report(f"postgresql://postgres@127.0.0.1:{port}/x", kind, "-o",
                     os.path.join(workdir, "down." + kind), check=False)
        assert out.returncode == 1, out
        assert f"port={port}" in out.stderr and "not available" in out.stderr
        assert not os.path.exists(os.path.join(workdir, "down." + kind))


def test_default_path_beside_archive(store, workdir):
    archive = os.path.join(workdir, "var", "archive")
    out = report(store["dsn"], "json", f"--source={REPO}", f"--archive-dir={archive}")
    path = out.stdout.strip()
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert path == os.path.join(workdir, "var", "reports", f"sample-{day}.json")
    assert json.load(open(path))["project"] == REPO


# ---------------------------------------------------------------------------
# Chromium over the DevTools protocol (stdlib WebSocket client)


class WebSocket:
    def __init__(self, url):
        m = re.match(r"ws://([^:/]+):(\d+)(/.*)", url)
        self.sock = socket.create_connection((m.group(1), int(m.group(2))), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "DevTools closed the connection"
            data += chunk
        return data

    def send(self, text):
        payload = text.encode()
        mask = os.urandom(4)
        n = len(payload)
        head = b"\x81" + (bytes([0x80 | n]) if n < 126 else
                          bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                          bytes([0x80 | 127]) + struct.pack(">Q", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            message += self._read(n)
            if b0 & 0x80:
                return message.decode()


class Browser:
    """A headless Chromium of its own (profile in a temporary directory)."""

    def __init__(self, tmp):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        self.proc = subprocess.Popen(guarded(
            [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             "about:blank"]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        for line in self.proc.stderr:
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "chromium did not start"
        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank",
                                     method="PUT")
        target = json.load(urllib.request.urlopen(req, timeout=30))
        self.ws = WebSocket(target["webSocketDebuggerUrl"])
        self.next_id = 0
        self.events = []

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg["result"]
            self.events.append(msg)

    def wait_event(self, method, since=0):
        """The first `method` event from events[since] on (waits for it)."""
        for e in self.events[since:]:
            if e["method"] == method:
                return e
        while True:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == method:
                    return msg

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stderr.close()


def png_pixels(png):
    """RGB(A) rows of a PNG (8-bit truecolour), decoded with zlib."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8 and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return width, height, bpp, rows


def coloured_pixels(png):
    """Pixels that are neither grey nor white: bars and lines of a series."""
    width, height, bpp, rows = png_pixels(png)
    n = 0
    for line in rows:
        for x in range(0, width * bpp, bpp):
            r, g, b = line[x], line[x + 1], line[x + 2]
            n += max(r, g, b) - min(r, g, b) > 40
    return n


def test_html_in_chromium(store, workdir):
    path = os.path.join(workdir, "sample.html")
    report(store["dsn"], "html", "--source=%sample%", "-o", path)
    text = open(path, encoding="utf-8").read()
    assert "<script" not in text and "src=" not in text
    browser = Browser(workdir)
    try:
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable")
        browser.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                     deviceScaleFactor=1, mobile=False)
        url = "file://" + path
        browser.call("Page.navigate", url=url)
        browser.wait_event("Page.loadEventFired")
        assert browser.eval("document.title") == "OmniAudit report: %sample%"
        assert browser.eval("document.scripts.length") == 0
        names = browser.eval("Array.from(document.querySelectorAll("
                             "'#contributors td bdi')).map(e => e.textContent)")
        for name, _ in AUTHORS:
            assert name in names
        charts = browser.eval("""Array.from(document.querySelectorAll('figure svg')).map(s => {
            const r = s.getBoundingClientRect();
            return {id: s.parentNode.dataset.chart, x: r.x + scrollX, y: r.y + scrollY,
                    w: r.width, h: r.height}; })""")
        assert len(charts) == 13, charts
        for c in charts:
            assert c["w"] > 300 and c["h"] > 100, c
            shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                                clip={"x": c["x"], "y": c["y"], "width": c["w"],
                                      "height": c["h"], "scale": 0.5})
            assert coloured_pixels(base64.b64decode(shot["data"])) > 60, c
        # a phone: the page does not scroll sideways (wide tables scroll in their box)
        browser.call("Emulation.setDeviceMetricsOverride", width=390, height=800,
                     deviceScaleFactor=1, mobile=True)
        mark = len(browser.events)
        browser.call("Page.reload")
        browser.wait_event("Page.loadEventFired", mark)
        assert browser.eval("document.documentElement.scrollWidth") <= 391
        requests = [e["params"]["request"]["url"] for e in browser.events
                    if e["method"] == "Network.requestWillBeSent"]
        assert set(requests) == {url}, requests
        errors = [e for e in browser.events
                  if e["method"] == "Runtime.exceptionThrown"
                  or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                  or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
        assert not errors, errors
    finally:
        browser.close()


def pdf_pages(path):
    info = subprocess.run(["pdfinfo", path], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def test_pdf_text_and_pages(store, workdir):
    dsn = store["dsn"]
    e = expected(store["data"])
    path = os.path.join(workdir, "sample.pdf")
    report(dsn, "pdf", "--source=%sample%", "-o", path)
    pages = pdf_pages(path)
    assert pages >= 8  # each section starts a page
    text = subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True, text=True,
                          check=True).stdout
    for label, key in (("Commits", "commits"), ("Authors", "authors"),
                       ("Files touched", "files"), ("Builds", "builds"),
                       ("Lines of code", "code_lines")):
        assert re.search(rf"{label}\s+{e['summary'][key]}\b", text), label
    assert str(e["summary"]["success_rate"]) in text
    assert HOSTILE[:20] in text  # the author column may cut the name
    fonts = subprocess.run(["pdffonts", path], capture_output=True, text=True, check=True).stdout
    assert "DejaVu" in fonts and all(" yes " in line for line in fonts.splitlines()[2:])

    for n in range(1, pages + 1):
        assert f"page {n}" in text
    for title in ("Summary", "Commit activity per week", "Contributors", "Churn",
                  "Continuous integration", "Code composition", "Host performance",
                  "Figures across reports"):
        assert title in text

    # a long contributor table goes on over pages, header repeated: the
    # layout of pdfout.h (PDFOUT_*): the section's first page holds its
    # title (28), one figure row (22), the chart (228), the table's title
    # (16) and header (13); a next page its "(continued)" title (24) and
    # the header again.
    short = os.path.join(workdir, "crowd1.pdf")
    report(dsn, "pdf", f"--source={CROWD}", "--top=1", "-o", short)
    path = os.path.join(workdir, "crowd.pdf")
    report(dsn, "pdf", f"--source={CROWD}", f"--top={CROWD_AUTHORS}", "-o", path)
    bottom, top, row = 841.89 - 50, 60, 13
    first = int((bottom - top - 28 - 22 - 228 - 16 - row) // row)
    more = int((bottom - top - 24 - row) // row)
    continued = -(-(CROWD_AUTHORS - first) // more)
    assert pdf_pages(path) == pdf_pages(short) + continued
    text = subprocess.run(["pdftotext", path, "-"], capture_output=True, text=True,
                          check=True).stdout
    for i in range(CROWD_AUTHORS):
        assert text.count(f"m{i:03d}@crowd.example") == 1, (i, text[:3000])
    assert text.count("Contributors (continued)") == continued


def test_dashboard(store, workdir):
    dsn = store["dsn"]
    proc = subprocess.Popen([binary("omni-report"), "serve", "--http=127.0.0.1:0",
                             f"--dsn={dsn}", "--statement-timeout=5s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        base = re.match(r"listening on (http://127\.0\.0\.1:\d+)/", line).group(1)
        status, body = http_get(base + "/json/")
        assert status == 200
        assert json.loads(body)["projects"] == sorted([REPO, HOST, CI_ONLY, CROWD, OTHER,
                                                       *ACME_SOURCES])
        status, body = http_get(base + "/")
        assert status == 200 and "/p/file%3A%2F%2F%2Fsrv%2Frepos%2Fsample" in body
        # The page's content: every section, the summary's figures as
        # expected (its time is bench/report.py's, not a test's)
        status, page = http_get(base + "/p/file%3A%2F%2F%2Fsrv%2Frepos%2Fsample")
        assert status == 200
        assert "<script" not in page and "&lt;script&gt;" in page
        for title in ("Summary", "Commit activity per week", "Contributors", "Churn",
                      "Continuous integration", "Code composition", "Host performance"):
            assert f"<h2>{title}</h2>" in page, title
        figures = expected(store["data"])["summary"]
        for key in ("commits", "authors", "files", "builds", "test_runs", "tests"):
            assert f'<dd data-id="{key}">{figures[key]}</dd>' in page, key
        status, body = http_get(base + "/json/file%3A%2F%2F%2Fsrv%2Frepos%2Fsample")
        served = json.loads(body)
        cli = json_report(dsn, f"--source={REPO}")
        served.pop("generated"), cli.pop("generated")
        cli["project"] = REPO
        assert served == cli
        # a name with LIKE wildcards matches itself only
        status, body = http_get(base + "/json/%25sample%25")
        assert json.loads(body)["sections"]["summary"]["figures"]["commits"] == 0
        assert http_get(base + "/nope")[0] == 404
    finally:
        proc.terminate()
        try:
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:  # not stopped: failed above, and not left running
                proc.kill()
                proc.wait()

    # PostgreSQL down: 503 pages that say which and why, at once
    port = free_port()
    proc = subprocess.Popen([binary("omni-report"), "serve", "--http=127.0.0.1:0",
                             f"--dsn=postgresql://postgres@127.0.0.1:{port}/x"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = re.match(r"listening on (http://[^/]+)/", proc.stdout.readline()).group(1)
        started = time.monotonic()
        status, body = http_get(base + "/p/anything")
        assert status == 503 and f"port={port}" in body and "Store unavailable" in body
        status, body = http_get(base + "/json/anything")
        assert status == 503 and "not available" in json.loads(body)["error"]
        assert time.monotonic() - started < 5
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ---------------------------------------------------------------------------
# Per-project access: the report and the dashboard as login roles


def serve(dsn, *args):
    """A dashboard as the role of dsn; its base URL and process."""
    proc = subprocess.Popen([binary("omni-report"), "serve", "--http=127.0.0.1:0",
                             f"--dsn={dsn}", "--statement-timeout=10s", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.match(r"listening on (http://127\.0\.0\.1:\d+)/", line)
    if not m:
        proc.kill()
        proc.wait()
        raise AssertionError(f"omni-report serve did not start: {line!r} {proc.stderr.read()}")
    return m.group(1), proc


def stop(proc):
    proc.terminate()
    assert proc.wait(10) == 0
    proc.stdout.close()
    proc.stderr.close()


def test_roles_see_only_their_projects(store, workdir):
    """A role granted github.com/acme/% (omnictl grant) gets, for --source=%,
    exactly the report the owner gets for the acme pattern, and a dashboard
    that lists the acme sources only; a role whose grant was revoked gets an
    empty report and index, and a role never granted anything too (its
    sections say it may not read the tables): exit 0, not an error."""
    from test_access import Roles, as_role, omnictl
    dsn = store["dsn"]
    roles = Roles(dsn)
    try:
        team = roles.make("acme")
        rc, out, err = omnictl("grant", team, ACME, f"--dsn={dsn}")
        assert rc == 0 and "2 of" in out, err
        revoked = roles.make("revoked")
        assert omnictl("grant", revoked, ACME, f"--dsn={dsn}")[0] == 0
        assert omnictl("revoke", revoked, ACME, f"--dsn={dsn}")[0] == 0
        nobody = roles.make("nobody")

        def same(doc):
            return {k: v for k, v in doc.items() if k not in ("generated", "pattern", "project")}

        mine = json_report(as_role(dsn, team), "--source=%")
        owner = json_report(dsn, f"--source={ACME}")
        assert same(mine) == same(owner)
        figures = mine["sections"]["summary"]["figures"]
        assert figures["commits"] == sum(ACME_SOURCES.values()) and figures["builds"] == 2
        assert [r["source"] for r in rows(mine, "summary", "sources")] == sorted(ACME_SOURCES)
        assert {r["author_email"].split("@")[1] for r in rows(mine, "contributors", "top")} == \
            {"acme.example"}
        assert [r["load_p50"] for r in rows(mine, "host", "daily")] == [1.0, 2.0]
        # the HTML of everything, as the team: not a trace of the others
        path = os.path.join(workdir, "team.html")
        report(as_role(dsn, team), "html", "--source=%", "-o", path)
        html = open(path, encoding="utf-8").read()
        assert "github.com/acme/api" in html and "dev00@acme.example" in html
        for theirs in (OTHER, "other.example", "alice@example.org", "m000@crowd.example", HOST):
            assert theirs not in html, theirs

        for role, why in ((revoked, "no commits"), (nobody, "may not read")):
            doc = json_report(as_role(dsn, role), "--source=%")
            # zeros where it may read the tables, no figure where it may not
            assert doc["sections"]["summary"]["figures"].get("commits", 0) == 0, role
            for sec in doc["sections"].values():
                assert sec["empty"] and not sec["tables"], (role, sec)
            assert why in doc["sections"]["activity"]["empty"]

        base, proc = serve(as_role(dsn, team))
        try:
            status, body = http_get(base + "/json/")
            assert status == 200 and json.loads(body)["projects"] == sorted(ACME_SOURCES)
            status, body = http_get(base + "/")
            assert status == 200 and "github.com%2Facme%2Fapi" in body and "other" not in body
            # a source of another team: a page of zeros, nothing of it
            status, body = http_get(base + "/json/" + urllib.parse.quote(OTHER, safe=""))
            assert status == 200
            assert json.loads(body)["sections"]["summary"]["figures"]["commits"] == 0
        finally:
            stop(proc)
        for role in (revoked, nobody):
            base, proc = serve(as_role(dsn, role))
            try:
                status, body = http_get(base + "/json/")
                assert status == 200 and json.loads(body)["projects"] == [], body
                status, body = http_get(base + "/")
                assert status == 200 and "no project yet" in body
            finally:
                stop(proc)
    finally:
        # the grants table is dropped with the database; the roles are the cluster's
        roles.drop()


# ---------------------------------------------------------------------------
# Stored analysis results: --intake through the real pipeline


def test_figures_stored_through_the_pipeline(pipeline, pg_database, mongo_db):
    """omni-report --intake sends each source's figures as an analysis.summary
    record through ingestd: a row of analysis_summaries in PostgreSQL (and of
    the analysis_trend view), a document in MongoDB, a line in the archive.
    A second report of the same day and period replaces the first in every
    store; another period is a record of its own."""
    mongo_uri, mongo_name, mongo = mongo_db
    p = pipeline(writers=("archive", "relational", "document"))
    p.ingestd.start()
    p.archiverd().start()
    p.writer("relationald", [f"--dsn={pg_database}"]).start()
    p.writer("documentd", [f"--uri={mongo_uri}", f"--database={mongo_name}"],
             binary_name="documentd").start()
    src = "github.com/acme/api"
    commits = [plain_commit(src, i, MON + i * DAY, f"Dev {i % 2}", f"dev{i % 2}@acme.example")
               for i in range(3)]
    build = {"pipeline": "ci", "build_id": "1", "status": "success", "started": MON * 10**9}
    frames = [make_record("git.commit", src, c, c["author_time"] * 10**9) for c in commits]
    frames.append(make_record("ci.build", src, build, build["started"]))
    send(p.intake, frames)
    sent = len(frames)
    for writer in ("archive", "relational", "document"):
        p.wait_acked(writer, sent)

    def report_and_store(*args):
        nonlocal sent
        out = report(pg_database, "json", "-o", "-", f"--source={src}",
                     f"--intake={p.intake}", *args)
        assert "1 analysis.summary records accepted" in out.stderr, out.stderr
        sent += 1
        for writer in ("archive", "relational", "document"):
            p.wait_acked(writer, sent)
        return json.loads(out.stdout)

    doc = report_and_store()
    shown = rows(doc, "summary", "sources")
    assert shown == [{"source": src, "commits": 3, "authors": 2, "files": 0, "builds": 1,
                      "success_rate": 1.0, "test_runs": 0, "tests": 0, "code_lines": None,
                      "bus_factor": 1}]
    columns = ["commits", "authors", "files", "builds", "success_rate", "test_runs", "tests",
               "code_lines", "bus_factor"]
    today = datetime.datetime.now(datetime.timezone.utc).date()

    def stored():
        return query(pg_database, f"""SELECT source, day, since, {", ".join(columns)}, project
                                     FROM analysis_trend ORDER BY since NULLS FIRST""")
    assert stored() == [(src, today, None, *[shown[0][c] for c in columns], src)]
    lines = [line for line in archive_lines(p.archive_dir) if line["kind"] == "analysis.summary"]
    assert len(lines) == 1 and lines[0]["src"] == src
    assert lines[0]["body"] == {"day": str(today), **{c: shown[0][c] for c in columns
                                                      if shown[0][c] is not None}}
    docs = list(mongo["analysis_summaries"].find({}))
    assert len(docs) == 1 and docs[0]["src"] == src and docs[0]["body"]["commits"] == 3

    # A fourth commit, reported again the same day: replaced, not added
    late = plain_commit(src, 3, MON + 3 * DAY, "Dev 2", "dev2@acme.example")
    send(p.intake, [make_record("git.commit", src, late, late["author_time"] * 10**9)])
    sent += 1
    for writer in ("archive", "relational", "document"):
        p.wait_acked(writer, sent)
    report_and_store()
    assert [(r[0], r[3], r[4]) for r in stored()] == [(src, 4, 3)]
    assert [d["body"]["commits"] for d in mongo["analysis_summaries"].find({})] == [4]
    lines = [line for line in archive_lines(p.archive_dir) if line["kind"] == "analysis.summary"]
    assert [line["body"]["commits"] for line in lines] == [3, 4]  # the archive keeps both
    assert lines[0]["id"] == lines[1]["id"]

    # Another period: a row of its own, its start stored
    report_and_store("--since=2024-01-02")
    rows_now = stored()
    assert [(r[2], r[3]) for r in rows_now] == [
        (None, 4), (datetime.datetime(2024, 1, 2, tzinfo=datetime.timezone.utc), 3)]
    assert mongo["analysis_summaries"].count_documents({}) == 2
    # the record's key is (source, day, since, until): ids differ
    assert len({line["id"] for line in archive_lines(p.archive_dir)
                if line["kind"] == "analysis.summary"}) == 2

    # ingestd away: the report is written, the figures are not, exit 1
    port = free_port()
    out = report(pg_database, "json", "-o", os.path.join(p.workdir, "r.json"), f"--source={src}",
                 f"--intake=tcp://127.0.0.1:{port}", "--give-up=300ms", check=False)
    assert out.returncode == 1 and "figures not stored" in out.stderr, out.stderr
    assert os.path.exists(os.path.join(p.workdir, "r.json"))


def execute(dsn, sql, params=None):
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        conn.cursor().execute(sql, params)
    finally:
        conn.close()


def test_dashboard_cache(store):
    """serve --cache: a report page built once is served again from memory
    until it is that old; without it, every request reads the store."""
    dsn = store["dsn"]
    path = "/json/" + urllib.parse.quote(REPO, safe="")
    cached, cached_proc = serve(dsn, "--cache=1h")
    live, live_proc = serve(dsn)
    try:
        def builds(base):
            status, body = http_get(base + path)
            assert status == 200
            doc = json.loads(body)
            return doc["sections"]["summary"]["figures"]["builds"], doc["generated"]

        before, stamp = builds(cached)
        assert builds(live)[0] == before
        execute(dsn, """INSERT INTO ci_builds (id, source_id, pipeline, build_id, status, observed,
                                             run_id)
                      SELECT '\\x00112233445566778899aabbccddeeff', id, 'probe', '1', 'success',
                             now (), 'probe' FROM sources WHERE name = %s""", (REPO,))
        try:
            assert builds(cached) == (before, stamp)  # the same page, as it was built
            assert builds(live)[0] == before + 1
            # another period is another page
            status, body = http_get(cached + path + "?since=2000-01-01")
            assert json.loads(body)["sections"]["summary"]["figures"]["builds"] == before + 1
        finally:
            execute(dsn, "DELETE FROM ci_builds WHERE pipeline = 'probe'")
    finally:
        stop(cached_proc)
        stop(live_proc)


def test_output_into_a_fifo_stays_a_fifo(store, workdir):
    """`-o` naming a device or a FIFO (/dev/null, a pipe) writes into it: the
    temporary-file-and-rename used for regular files would replace it with a
    file (run as root, `-o /dev/null` replaced /dev/null)."""
    import stat
    import threading
    for kind, magic in (("html", b"<!DOCTYPE html>"), ("pdf", b"%PDF-")):
        fifo = os.path.join(workdir, f"out-{kind}.fifo")
        os.mkfifo(fifo)
        got = {}

        def drain():
            with open(fifo, "rb") as f:
                got["bytes"] = f.read()
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        out = report(store["dsn"], kind, "--source=%sample%", "-o", fifo)
        reader.join(timeout=60)
        assert not reader.is_alive()
        assert stat.S_ISFIFO(os.stat(fifo).st_mode), "the FIFO was replaced by a file"
        assert got["bytes"].startswith(magic) and len(got["bytes"]) > 10000, kind
        assert out.stdout.strip() == fifo
        assert not [n for n in os.listdir(workdir) if ".tmp." in n]


# ---------------------------------------------------------------------------
# Figures kept as rows are written (relationald 8's totals, metricsd 7's
# host days) equal the figures computed from the rows, whatever comes late


KEPT_REPO = "file:///srv/repos/kept"
KEPT_HOST = "kept-host"


def host_day_rows(points):
    """The host section's rows expected from (time ns, {name: value}) samples."""
    days = defaultdict(lambda: defaultdict(list))
    for t, values in points:
        d = days[str(ts(t // 10**9).date())]
        d["cpu"].append(values["host.cpu.user"] + values["host.cpu.system"])
        d["mem"].append(values["host.mem.used"])
        d["load"].append(values["host.load.1"])
    return [{"day": d, "cpu_p50": round(percentile(v["cpu"], 0.5), 4),
             "cpu_p95": round(percentile(v["cpu"], 0.95), 4),
             "mem_p50": round(percentile(v["mem"], 0.5)),
             "mem_p95": round(percentile(v["mem"], 0.95)),
             "load_p50": round(percentile(v["load"], 0.5), 4),
             "load_p95": round(percentile(v["load"], 0.95), 4)} for d, v in sorted(days.items())]


def host_frames(samples):
    return [make_record_metric(KEPT_HOST, t, name, v) for t, values in samples
            for name, v in values.items()]


def without_generated(doc):
    doc.pop("generated", None)
    return doc


def test_kept_figures_exact_after_late_points_and_redelivery(pipeline, pg_database):
    p = pipeline(writers=("relational", "metrics"))
    p.ingestd.start()
    p.writer("relationald", [f"--dsn={pg_database}"]).start()
    metricsd = p.writer("metricsd", [f"--dsn={pg_database}"])
    metricsd.start()
    # Three closed days of host samples, every two hours
    samples = [((MON + day * DAY + k * 7200) * 10**9,
                {"host.cpu.user": 10.0 + (k * 7 + day * 3) % 40, "host.cpu.system": 1.0 + k % 3,
                 "host.mem.used": float(2**30 + (k * 5 % 12) * 2**20),
                 "host.load.1": 0.25 * ((k * 11 + day) % 9)})
               for day in range(3) for k in range(12)]
    commits = [plain_commit(KEPT_REPO, n, MON + n * 3600, f"Dev {n % 3}", f"dev{n % 3}@x.example",
                            [{"path": f"f{n % 4}.c", "insertions": n + 1, "deletions": n % 2,
                              "binary": False}]) for n in range(12)]
    builds = [{"pipeline": "ci", "build_id": str(i), "status": ("success", "failure")[i % 2],
               "sha": sha_of(i, KEPT_REPO), "started": (MON + i * 3600) * 10**9}
              for i in range(5)]
    tests = [{"suite": "unit", "class": None if i % 2 else "C", "name": f"t{i % 3}",
              "status": "passed", "duration": 0.5 * i, "pipeline": "ci", "build_id": str(i)}
             for i in range(5)]
    relational = ([make_record("git.commit", KEPT_REPO, c, c["committer_time"] * 10**9)
                   for c in commits] +
                  [make_record("ci.build", KEPT_REPO, b, b["started"]) for b in builds] +
                  [make_record("ci.test", KEPT_REPO, t, (MON + 3600 * i) * 10**9 + 1)
                   for i, t in enumerate(tests)])
    metric_records = len(host_frames(samples)) + len(commits) + len(builds) + len(tests)
    send(p.intake, relational + host_frames(samples))
    p.wait_acked("relational", len(relational))
    p.wait_acked("metrics", metric_records)
    # metricsd computes the pending closed days when it starts (and after
    # batches, when due)
    metricsd.stop()
    metricsd.start()
    assert query(pg_database, "SELECT count(*) FROM host_daily WHERE source = %s",
                 (KEPT_HOST,)) == [(3,)]
    assert query(pg_database, "SELECT count(*) FROM host_daily_pending") == [(0,)]

    def both(src):
        kept = without_generated(json_report(pg_database, f"--source={src}"))
        live = without_generated(json_report(pg_database, f"--source={src}", "--live=true"))
        assert kept == live
        return kept

    assert rows(both(KEPT_HOST), "host", "daily") == host_day_rows(samples)
    figures = both(KEPT_REPO)["sections"]["summary"]["figures"]
    assert (figures["commits"], figures["authors"], figures["files"], figures["builds"],
            figures["test_runs"], figures["tests"]) == (12, 3, 4, 5, 5, 5)

    # Late points in the second day, which was computed: marked pending in
    # their batch's transaction, so the report reads that day from the
    # points at once, and metricsd computes it again (when due: here at a
    # start)
    late = [((MON + DAY + k * 7200 + 3600) * 10**9,
             {"host.cpu.user": 90.0 + k, "host.cpu.system": 5.0, "host.mem.used": float(2**33),
              "host.load.1": 8.0 + k}) for k in range(6)]
    send(p.intake, host_frames(late))
    metric_records += len(host_frames(late))
    p.wait_acked("metrics", metric_records)
    assert query(pg_database, "SELECT day::text FROM host_daily_pending") == [
        (str(ts(MON + DAY).date()),)]
    expected_rows = host_day_rows(samples + late)
    assert expected_rows != host_day_rows(samples)
    assert rows(both(KEPT_HOST), "host", "daily") == expected_rows
    metricsd.stop()
    metricsd.start()
    assert query(pg_database, "SELECT count(*) FROM host_daily_pending") == [(0,)]
    assert rows(both(KEPT_HOST), "host", "daily") == expected_rows
    # A period that cuts a day: the kept days inside it, the cut day from
    # its points
    cut = [f"--since={pgtime(MON + DAY + 5 * 3600)}", f"--until={pgtime(MON + 2 * DAY)}"]
    assert without_generated(json_report(pg_database, f"--source={KEPT_HOST}", *cut)) == \
        without_generated(json_report(pg_database, f"--source={KEPT_HOST}", "--live=true", *cut))

    # The same batch delivered again: relationald stores nothing twice, so
    # its totals do not move; the report is the same
    totals = "SELECT (SELECT sum(commits) FROM commit_author_totals), (SELECT sum(commits) " \
             "FROM commit_path_totals), (SELECT sum(builds) FROM ci_build_totals), " \
             "(SELECT sum(runs) FROM ci_test_totals)"
    before = query(pg_database, totals)
    assert before == [(12, 12, 5, 5)]
    doc = both(KEPT_REPO)
    send(p.intake, relational)
    p.wait_acked("relational", 2 * len(relational))
    assert query(pg_database, totals) == before
    assert both(KEPT_REPO) == doc
    # A commit made unreachable leaves the totals (and the report) as it
    # leaves the views
    at = (MON + DAY) * 10**9
    send(p.intake, [msgpack.packb({
        "v": 1, "id": record_id("git.unreachable", KEPT_REPO, (commits[0]["sha"], at)),
        "kind": "git.unreachable", "src": KEPT_REPO, "col": "git", "run": "run-2", "ts": at,
        "body": {"sha": commits[0]["sha"]}}, use_bin_type=True)])
    p.wait_acked("relational", 2 * len(relational) + 1)
    assert query(pg_database, totals) == [(11, 11, 5, 5)]
    assert both(KEPT_REPO)["sections"]["summary"]["figures"]["commits"] == 11
