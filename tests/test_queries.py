"""The views of docs/queries.md against answers computed here.

Seeded random inputs go through the real pipeline (ingestd -> relationald,
and metricsd where a view of each is compared): CI builds and test runs and
code counts as records, a git history through `collectord git`. Each test
computes what its views must say from the same inputs (for git, from git's
own output), following the definitions in docs/queries.md, and compares
every row."""
import collections
import datetime
import os
import random
import subprocess
from decimal import ROUND_HALF_UP, Decimal

import pytest

from omni import BIN, commit_to, git, init_repo, make_record, query, send, wait_until

DAY = 86400
MON = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
SRC = "github.com/acme/queries"
COLLECTORD = os.path.join(BIN, "collectord")


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


def week_of(seconds):
    d = utc(seconds).date()
    return d - datetime.timedelta(days=d.weekday())


def rate(num, den):
    """PostgreSQL's round(num::numeric / den, 4), or None for den 0."""
    if not den:
        return None
    return (Decimal(num) / Decimal(den)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


def relational(pipeline, dsn, writers=("relational",)):
    p = pipeline(writers=writers)
    p.ingestd.start()
    p.writer("relationald", [f"--dsn={dsn}"]).start()
    return p


def store(p, kind, series):
    """Records of `kind` from (body, ts) pairs, sent; waits until relationald
    stored them. Returns them."""
    frames = [make_record(kind, SRC, body, ts) for body, ts in series]
    send(p.intake, frames)
    p.wait_acked("relational", len(frames))
    return frames


# ---------------------------------------------------------------------------
# Tests: slowest_tests and flakiest_tests


def ci_test_runs(seed=11, builds=15):
    """ci.test bodies (with their ts in ns) of `builds` builds: six tests,
    random outcomes, durations and reruns, each run observed at its own time."""
    rnd = random.Random(seed)
    names = [("unit", "Parser", "t_parse"), ("unit", "Parser", "t_empty"),
             ("unit", "Lexer", "t_tokens"), ("it", "Db", "t_migrate"),
             ("it", "Db", "t_backup"), ("it", None, "t_smoke")]
    weights = {"t_parse": [95, 3, 1, 1], "t_empty": [100, 0, 0, 0], "t_tokens": [60, 25, 10, 5],
               "t_migrate": [70, 10, 10, 10], "t_backup": [0, 80, 20, 0], "t_smoke": [50, 0, 0, 50]}
    runs = []
    for b in range(builds):
        for i, (suite, cls, name) in enumerate(names):
            status = rnd.choices(["passed", "failed", "error", "skipped"], weights[name])[0]
            body = {"suite": suite, "name": name, "status": status,
                    "duration": 0.0 if status == "skipped" else round(rnd.uniform(0.01, 30), 3),
                    "pipeline": "ci", "build_id": str(b)}
            if cls:
                body["class"] = cls
            if status == "passed" and name != "t_empty" and rnd.random() < 0.2:
                body["flaky"] = True  # passed on a rerun
            elif rnd.random() < 0.3:
                body["flaky"] = False
            runs.append((body, (MON + b * 3 * 3600 + i * 7) * 10**9))
    return runs


def percentile_cont(values, fraction):
    s = sorted(values)
    pos = fraction * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def expected_slowest(runs):
    groups = collections.defaultdict(list)
    for body, ts in runs:
        if body["status"] != "skipped":
            groups[(body["suite"], body.get("class"), body["name"])].append((body["duration"], ts))
    out = {}
    for key, rows in groups.items():
        d = [r[0] for r in rows]
        out[key] = (len(d), sum(d) / len(d), max(d), percentile_cont(d, 0.95),
                    utc(max(r[1] for r in rows) / 1e9))
    return out


def expected_flakiest(runs):
    groups = collections.defaultdict(list)
    for body, ts in sorted(runs, key=lambda r: r[1]):  # observation order
        if body["status"] in ("passed", "failed", "error"):
            groups[(body["suite"], body.get("class"), body["name"])].append(body)
    out = {}
    for key, rows in groups.items():
        passed = sum(r["status"] == "passed" for r in rows)
        flaky = sum(bool(r.get("flaky")) for r in rows)
        flips = sum((a["status"] == "passed") != (b["status"] == "passed")
                    for a, b in zip(rows, rows[1:]))
        if flaky or flips:
            out[key] = (len(rows), passed, len(rows) - passed, flaky, flips,
                        rate(flaky + flips, len(rows)))
    return out


def test_slowest_and_flakiest_tests(pipeline, pg_database):
    runs = ci_test_runs()
    p = relational(pipeline, pg_database)
    store(p, "ci.test", runs)

    want = expected_slowest(runs)
    got = {tuple(r[:3]): r[3:] for r in query(pg_database, """
        SELECT suite, class, name, runs, avg_duration, max_duration, p95_duration, last_run
        FROM slowest_tests WHERE source = %s""", (SRC,))}
    assert got.keys() == want.keys()
    for key, (n, avg, mx, p95, last) in want.items():
        g = got[key]
        assert g[0] == n and g[2] == mx and g[4] == last, key
        assert g[1] == pytest.approx(avg, rel=1e-12) and g[3] == pytest.approx(p95, rel=1e-12), key
    # the order the docs give: by avg_duration, slowest first
    order = [tuple(r) for r in query(pg_database, "SELECT suite, class, name FROM slowest_tests "
                                                  "ORDER BY avg_duration DESC")]
    assert order == sorted(want, key=lambda k: -want[k][1])

    want = expected_flakiest(runs)
    got = {tuple(r[:3]): tuple(r[3:]) for r in query(pg_database, """
        SELECT suite, class, name, runs, passed, failed, flaky_runs, flips, flakiness
        FROM flakiest_tests WHERE source = %s""", (SRC,))}
    assert got == want
    # a test that never flipped nor ran flaky is not listed, one that did is
    assert ("unit", "Parser", "t_empty") not in got and len(got) >= 3


# ---------------------------------------------------------------------------
# Builds: build_success_rate per week (and metricsd's build_success_weekly)


def builds(seed=5, n=80, weeks=5):
    """(body, record ts ns): two pipelines over `weeks` weeks, every status,
    some builds known only by their end, some by neither (then the week is
    when the build was observed)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        pipeline = rnd.choice(["build", "deploy"])
        status = rnd.choices(["success", "failure", "cancelled", "other"], [6, 3, 1, 1])[0]
        start = MON + rnd.randrange(weeks * 7 * DAY)
        body = {"pipeline": pipeline, "build_id": str(i), "status": status}
        observed = start + rnd.randrange(3 * DAY)  # may fall in the next week
        when = rnd.random()
        if when < 0.6:
            body["started"] = start * 10**9
            if status != "other":
                body["finished"] = (start + 600) * 10**9
        elif when < 0.8:
            body["finished"] = (start + 600) * 10**9  # across midnight sometimes
        if status != "other":
            body["duration"] = float(rnd.randrange(10, 900))
        out.append((body, observed * 10**9))
    return out


def build_week(body, ts):
    return week_of((body.get("started") or body.get("finished") or ts) // 10**9)


def expected_rates(series):
    groups = collections.defaultdict(collections.Counter)
    for body, ts in series:
        groups[(body["pipeline"], build_week(body, ts))][body["status"]] += 1
    return {k: (sum(c.values()), c["success"], c["failure"], c["cancelled"],
                rate(c["success"], c["success"] + c["failure"]), c["other"])
            for k, c in groups.items()}


def test_build_success_rate_by_week(pipeline, pg_database):
    series = builds()
    p = relational(pipeline, pg_database)
    store(p, "ci.build", series)
    got = {(r[0], r[1]): tuple(r[2:]) for r in query(pg_database, """
        SELECT pipeline, week, builds, succeeded, failed, cancelled, success_rate, other
        FROM build_success_rate WHERE source = %s""", (SRC,))}
    want = expected_rates(series)
    assert got == want
    # every case is exercised: weeks by end and by observation, a week
    # whose builds have no result (no rate)
    assert len({w for _, w in want}) >= 5
    assert any(b.get("started") is None and b.get("finished") for b, _ in series)
    assert any(b.get("started") is None and b.get("finished") is None for b, _ in series)


def test_build_success_weekly_agrees_with_build_success_rate(pipeline, pg_database):
    """docs/queries.md: for the same source, pipeline and week, metricsd's
    builds = relationald's succeeded + failed, and succeeded, success_rate
    and the week are equal. One ingestd feeds both writers."""
    series = builds(seed=9, n=120)
    p = relational(pipeline, pg_database, writers=("relational", "metrics"))
    p.writer("metricsd", [f"--dsn={pg_database}"]).start()
    frames = store(p, "ci.build", series)
    p.wait_acked("metrics", len(frames))
    rel = {(r[0], r[1]): tuple(r[2:]) for r in query(pg_database, """
        SELECT pipeline, week, succeeded + failed, succeeded, success_rate
        FROM build_success_rate WHERE source = %s AND succeeded + failed > 0""", (SRC,))}
    met = {(r[0], r[1]): tuple(r[2:]) for r in query(pg_database, """
        SELECT pipeline, week, builds, succeeded, success_rate
        FROM build_success_weekly WHERE source = %s AND builds > 0""", (SRC,))}
    assert met == rel
    want = {k: (v[1] + v[2], v[1], v[4]) for k, v in expected_rates(series).items()
            if v[1] + v[2]}
    assert rel == want
    # builds without a result count in relationald only
    extra = query(pg_database, "SELECT sum(cancelled + other) FROM build_success_rate")[0][0]
    assert extra == sum(b["status"] in ("cancelled", "other") for b, _ in series) > 0


# ---------------------------------------------------------------------------
# Code size over time


def test_code_size_over_time(pipeline, pg_database):
    rnd = random.Random(3)
    revs = [(f"{i:040x}", MON + i * 5 * DAY + 3600) for i in range(1, 6)]
    frames, want = [], {}
    for rev, at in revs:
        for language in ("C", "Python", "Shell")[:rnd.randint(1, 3)]:
            files = rnd.randint(1, 4)
            per_file = [(f"src/{language.lower()}{k}", rnd.randint(1, 500), rnd.randint(0, 80),
                         rnd.randint(0, 60)) for k in range(files)]
            total = {"rev": rev, "language": language, "files": files,
                     "code": sum(f[1] for f in per_file), "comment": sum(f[2] for f in per_file),
                     "blank": sum(f[3] for f in per_file)}
            frames.append(make_record("code.stats", SRC, total, at * 10**9))
            # per-file records are not totals: the view leaves them out
            for path, code, comment, blank in per_file:
                frames.append(make_record("code.stats", SRC, {
                    "rev": rev, "language": language, "path": path, "files": 1, "code": code,
                    "comment": comment, "blank": blank}, at * 10**9))
            want[(rev, language)] = (utc(at), files, total["code"], total["comment"],
                                     total["blank"])
    p = relational(pipeline, pg_database)
    send(p.intake, frames)
    p.wait_acked("relational", len(frames))
    rows = query(pg_database, "SELECT rev, language, at, files, code, comment, blank "
                              "FROM code_size WHERE source = %s ORDER BY at, language", (SRC,))
    assert {(r[0], r[1]): tuple(r[2:]) for r in rows} == want
    assert [(r[0], r[1]) for r in rows] == sorted(want, key=lambda k: (want[k][0], k[1]))


# ---------------------------------------------------------------------------
# A git history through collectord: commit_activity_weekly and file_churn


def make_history(repo, seed=4, commits=60):
    """A linear history over ~14 weeks with empty weeks between: files
    edited, added, deleted, renamed (often with an edit, sometimes to a
    name an earlier file had), binary files."""
    rnd = random.Random(seed)
    init_repo(repo)
    authors = [("Ann", "ann@example.org"), ("Bob", "bob@example.org"),
               ("Cy", "cy@example.org")]
    pool = [f"{d}/f{i}.txt" for d in ("src", "doc") for i in range(8)]
    files = {}
    when = MON + 3600
    for n in range(commits):
        # a gap of two or three weeks now and then: empty weeks
        when += rnd.choice([3600, 7 * 3600, DAY, 2 * DAY]) + (
            rnd.choice([15, 22]) * DAY if rnd.random() < 0.08 else 0)
        change = {}
        free = [p for p in pool if p not in files]
        op = rnd.random() if files else 0
        if op < 0.2 and free:
            path = rnd.choice(free)
            files[path] = [f"{path} line {k}\n" for k in range(rnd.randint(20, 40))]
            change[path] = "".join(files[path])
        elif op < 0.3 and len(files) > 2:
            path = rnd.choice(sorted(files))
            del files[path]
            change[path] = None
        elif op < 0.45 and free:
            # a move, often with an edit: git pairs them (50 % similarity)
            old, new = rnd.choice(sorted(files)), rnd.choice(free)
            lines = files.pop(old)
            if rnd.random() < 0.6:
                lines[rnd.randrange(len(lines))] = f"edited in {n}\n"
            files[new] = lines
            change[old] = None
            change[new] = "".join(lines)
        elif op < 0.5:
            change["assets/logo.bin"] = bytes(rnd.randrange(256) for _ in range(64)) + b"\0"
        else:
            for path in rnd.sample(sorted(files), min(len(files), rnd.randint(1, 3))):
                lines = files[path]
                for _ in range(rnd.randint(1, 4)):
                    k = rnd.randrange(len(lines) + 1)
                    if rnd.random() < 0.3 and len(lines) > 5:
                        del lines[min(k, len(lines) - 1)]
                    else:
                        lines.insert(k, f"added in {n}\n")
                change[path] = "".join(lines)
        name, email = rnd.choice(authors)
        commit_to(repo, name, email, when, rnd.choice(["+0000", "+0200", "-0500"]), f"c{n}",
                  change)


def git_log(repo):
    """[(sha, author email, author time, [(path, ins|None, del|None)], {new: old})]
    of every commit: numstat --no-renames, and git's default rename pairs."""
    out = git(repo, "log", "--all", "--no-renames", "--numstat", "--format=@%H %ae %at").decode()
    commits = []
    for line in out.splitlines():
        if line.startswith("@"):
            sha, email, at = line[1:].split()
            commits.append([sha, email, int(at), [], {}])
        elif line:
            ins, dels, path = line.split("\t")
            commits[-1][3].append((path, None if ins == "-" else int(ins),
                                   None if dels == "-" else int(dels)))
    for c in commits:
        parent = git(repo, "rev-list", "--parents", "-n1", c[0]).decode().split()[1:]
        if parent:
            status = git(repo, "diff", "-M", "--name-status", parent[0], c[0]).decode()
            for row in status.splitlines():
                parts = row.split("\t")
                if parts[0].startswith("R"):
                    c[4][parts[2]] = parts[1]
    return commits


def expected_weekly(commits):
    groups = collections.defaultdict(list)
    for sha, email, at, changes, _ in commits:
        groups[week_of(at)].append((email, changes))
    out = {}
    week, last = min(groups), max(groups)
    while week <= last:
        rows = groups.get(week, [])
        out[week] = (len(rows), len({e for e, _ in rows}),
                     sum(i or 0 for _, ch in rows for _, i, _ in ch),
                     sum(d or 0 for _, ch in rows for _, _, d in ch))
        week += datetime.timedelta(days=7)
    return out


def expected_churn(commits):
    """docs/queries.md's file_churn: each path followed through its renames
    (a path renamed away more than once follows its latest rename)."""
    renamed = {}
    for sha, _, at, _, pairs in sorted(commits, key=lambda c: (-c[2], c[0])):
        for new, old in pairs.items():
            if old != new:
                renamed.setdefault(old, new)  # the latest rename of `old`
    def final(path):
        seen = [path]
        while path in renamed and renamed[path] not in seen:
            path = renamed[path]
            seen.append(path)
        return path
    rows = collections.defaultdict(list)
    for sha, _, at, changes, _ in commits:
        for path, ins, dels in changes:
            rows[final(path)].append((sha, at, path, ins, dels))
    out = {}
    for path, touched in rows.items():
        former = sorted({t[2] for t in touched if t[2] != path})
        out[path] = (len({t[0] for t in touched}), sum(t[3] or 0 for t in touched),
                     sum(t[4] or 0 for t in touched), sum(t[3] is None for t in touched),
                     utc(min(t[1] for t in touched)), utc(max(t[1] for t in touched)),
                     former or None)
    return out


def test_weekly_activity_with_empty_weeks_and_file_churn(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "history")
    make_history(repo)
    p = relational(pipeline, pg_database)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "GITHUB_", "CI"))}
    out = subprocess.run([COLLECTORD, "git", "--once", f"--intake={p.intake}", "--progress=off",
                          "--give-up=60s", f"--state-dir={workdir}/state", f"--source={SRC}",
                          repo], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    commits = git_log(repo)
    wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_records_acked_by_all_total", -1) ==
               p.ingestd.metrics().get("omni_ingestd_records_accepted_total") > len(commits),
               120, "every record stored")

    want = expected_weekly(commits)
    got = {r[0]: tuple(r[1:]) for r in query(pg_database, """
        SELECT week, commits, authors, insertions, deletions FROM commit_activity_weekly
        WHERE source = %s""", (SRC,))}
    assert got == want
    assert sum(1 for v in want.values() if v[0] == 0) >= 2, "the history has empty weeks"

    want = expected_churn(commits)
    got = {r[0]: tuple(r[1:]) for r in query(pg_database, """
        SELECT path, commits, insertions, deletions, binary_changes, first_change, last_change,
               former_paths FROM file_churn WHERE source = %s""", (SRC,))}
    assert got == want
    assert any(c[4] for c in commits), "the history has renames"
    assert any(v[6] for v in want.values()) and "assets/logo.bin" in want
