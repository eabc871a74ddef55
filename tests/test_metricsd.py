"""metricsd through the whole pipeline: records sent to ingestd's intake end up
as time-series points in a real PostgreSQL (no TimescaleDB here: the native
partitioned mode), each point once, whatever is delivered again.

Git histories are built by the tests and read back with git itself; build
series are generated; the dashboard answers (commits per day and week, build
success rate per week) are computed here in Python from the same inputs and
compared with metricsd's views. PostgreSQL is $OMNI_TEST_PG_DSN's or
127.0.0.1:5432 (a fresh database per test); the outage test runs a private
server that it can stop."""
import datetime
import os
import random
import subprocess
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

import pytest

from omni import (Pipeline, binary, free_port, git, init_repo, make_record,  # noqa: F401
                  make_record_metric, private_pg, query, read_commits, scalar, send, wait_until)

DAY = 86400
MON = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
ACKED = 'omni_ingestd_records_acked_total{writer="metrics"}'


# ---------------------------------------------------------------------------
# Inputs


def commit_at(repo, author, email, author_when, committer_when, message, files=None):
    """One commit whose author and committer dates differ (as after a rebase)."""
    for path, content in (files or {}).items():
        with open(os.path.join(repo, path), "w") as f:
            f.write(content)
        git(repo, "add", path)
    git(repo, "commit", "-q", "--allow-empty", "-m", message,
        env={"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email,
             "GIT_AUTHOR_DATE": f"{author_when} +0000",
             "GIT_COMMITTER_NAME": "Committer", "GIT_COMMITTER_EMAIL": "committer@example.org",
             "GIT_COMMITTER_DATE": f"{committer_when} +0200"})


def commit_frames(repo, src, run="run-1"):
    """git.commit records as collectord git sends them, and the commits."""
    commits = read_commits(repo)
    frames = [make_record("git.commit", src, body, body["committer_time"] * 10**9, run)
              for body in commits.values()]
    return frames, commits


def build_series(seed=7, weeks=4):
    """ci.build bodies over `weeks` weeks for two pipelines; some cancelled,
    some still running, two pairs started in the same second."""
    rnd = random.Random(seed)
    builds = []
    for n in range(40):
        pipeline = rnd.choice(["build", "deploy"])
        status = rnd.choices(["success", "failure", "cancelled", "running"], [6, 3, 1, 1])[0]
        started = MON + rnd.randrange(weeks * 7 * DAY)
        body = {"pipeline": pipeline, "build_id": str(n), "status": status, "branch": "main",
                "started": started * 10**9}
        if status != "running":
            body["duration"] = float(rnd.randrange(10, 600))
        builds.append(body)
    for a, b in ((0, 1), (2, 3)):
        builds[b]["started"] = builds[a]["started"]
        builds[b]["pipeline"] = builds[a]["pipeline"]
    return builds


def build_frames(builds, src="ci", run="run-1"):
    return [make_record("ci.build", src, b, b["started"], run) for b in builds]


# ---------------------------------------------------------------------------
# Expected answers, computed without metricsd


def day_of(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).date()


def week_of(seconds):
    d = day_of(seconds)
    return d - datetime.timedelta(days=d.weekday())


def expected_commits(commits, src, bucket):
    """{(bucket, repo): (commits, authors, insertions, deletions)} by committer time."""
    groups = defaultdict(list)
    for c in commits.values():
        groups[(bucket(c["committer_time"]), src)].append(c)
    return {k: (len(v), len({c["author_email"] for c in v}), sum(c["insertions"] for c in v),
                sum(c["deletions"] for c in v)) for k, v in groups.items()}


def expected_success(builds):
    """{(week, pipeline): (builds, succeeded, rate)}: finished builds only."""
    groups = defaultdict(lambda: [0, 0])
    for b in builds:
        if b["status"] not in ("success", "failure"):
            continue
        g = groups[(week_of(b["started"] // 10**9), b["pipeline"])]
        g[0] += 1
        g[1] += b["status"] == "success"
    return {k: (n, s, (Decimal(s) / Decimal(n)).quantize(Decimal("0.0001"), ROUND_HALF_UP))
            for k, (n, s) in groups.items()}


def views(dsn):
    daily = {(r[0], r[1]): tuple(r[2:]) for r in query(dsn, """
        SELECT day, repository, commits, authors, insertions, deletions FROM commits_per_day""")}
    weekly = {(r[0], r[1]): tuple(r[2:]) for r in query(dsn, """
        SELECT week, repository, commits, authors, insertions, deletions FROM commits_per_week""")}
    success = {(r[0], r[1]): tuple(r[2:]) for r in query(dsn, """
        SELECT week, pipeline, builds, succeeded, success_rate FROM build_success_weekly
        WHERE builds > 0""")}
    return daily, weekly, success


# ---------------------------------------------------------------------------
# Helpers


def wait_acked(p, n, timeout=120):
    """Until metricsd acknowledged n records to ingestd (so they are committed)."""
    p.wait_acked("metrics", n, timeout)


def start_metricsd(p, dsn, *args, name="metricsd"):
    return p.writer(name, [f"--dsn={dsn}", *args], binary_name="metricsd").start()


def point_count(dsn, where="true"):
    return scalar(dsn, f"SELECT count(*) FROM points WHERE {where}")


def partitions(dsn):
    return query(dsn, "SELECT part, lo, hi FROM metricsd_partitions() ORDER BY lo")


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)


# ---------------------------------------------------------------------------
# Tests


def test_git_history_and_builds_give_exact_answers_once(pipeline, workdir, pg_database):
    repo = init_repo(os.path.join(workdir, "repo"))
    old_author = MON - 500 * DAY  # author dates far away: the committer date must count
    plan = [  # (author, committer time, lines)
        ("ann", MON + 9 * 3600, 10), ("ann", MON + 9 * 3600, 3),      # same second, same author
        ("bob", MON + DAY - 1, 4), ("bob", MON + DAY, 1),              # either side of midnight
        ("cy", MON - 1, 2),                                            # Sunday: the week before
        ("ann", MON + 3 * DAY + 5, 7), ("bob", MON + 7 * DAY + 60, 20),
        ("cy", MON + 15 * DAY, 1), ("ann", MON + 15 * DAY + 1, 0)]
    for i, (who, when, lines) in enumerate(plan):
        files = {f"f{i}.txt": "".join(f"{who} {k}\n" for k in range(lines))} if lines else None
        commit_at(repo, who.title(), f"{who}@example.org", old_author + i, when, f"c{i}", files)
    # Far older than any partition made ahead of the data
    commit_at(repo, "Old", "old@example.org", 631_152_000, 636_508_800, "1990",
              {"old.txt": "x\n"})
    src = "file://" + repo
    frames, commits = commit_frames(repo, src)
    assert len(commits) == len(plan) + 1
    builds = build_series()
    frames += build_frames(builds)

    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, pg_database, "--batch-size=7")
    wait_until(lambda: m.health()[0] == 200, 30, "metricsd healthy")
    assert "mode=native" in m.log()
    before = partitions(pg_database)
    assert not any(lo.year == 1990 for _, lo, _ in before)
    send(p.intake, frames)
    wait_acked(p, len(frames))

    # 4 points per commit; a result for each finished build, a duration for
    # each build that reported one
    finished = sum(b["status"] in ("success", "failure") for b in builds)
    durations = sum("duration" in b for b in builds)
    total = 4 * len(commits) + finished + durations
    assert point_count(pg_database) == total

    daily, weekly, success = views(pg_database)
    assert daily == expected_commits(commits, src, day_of)
    assert weekly == expected_commits(commits, src, week_of)
    assert success == expected_success(builds)
    # Ann's two commits of the same second are two commits, plus Bob's
    assert daily[(day_of(MON), src)][:2] == (3, 2)

    # The 1990 commit: its partition appeared, its points are in it
    after = partitions(pg_database)
    old = [(part, lo, hi) for part, lo, hi in after if lo <= utc(636_508_800) < hi]
    assert len(old) == 1 and old[0] not in before
    assert query(pg_database, "SELECT count(*), min(tableoid::regclass::text) FROM points_data "
                              "WHERE time = %s", (utc(636_508_800),)) == [(4, old[0][0])]

    # Delivered again, then the history collected again in a new run (same
    # ids, same times): not one more point, the same answers
    send(p.intake, frames)
    frames2, _ = commit_frames(repo, src, run="run-2")
    frames2 += build_frames(builds, run="run-2")
    send(p.intake, frames2)
    wait_acked(p, 2 * len(frames) + len(frames2))
    assert point_count(pg_database) == total
    assert views(pg_database) == (daily, weekly, success)
    assert scalar(pg_database, """SELECT count(*) FROM (SELECT 1 FROM points
                                  GROUP BY name, source, tags, time HAVING count(*) > 1) d""") == 0

    # A build seen again with its final outcome: the rate moves, no new point
    running = next(b for b in builds if b["status"] == "running")
    running.update(status="success", duration=42.0)
    send(p.intake, build_frames([running], run="run-3"))
    wait_acked(p, 2 * len(frames) + len(frames2) + 1)
    assert point_count(pg_database) == total + 2
    assert views(pg_database)[2] == expected_success(builds)


def test_killed_metricsd_redelivers_and_every_point_stays_single(pipeline, pg_database):
    n = 20000
    base = MON * 10**9
    frames = [make_record_metric("web-1", base + i * 10**9, "host.cpu.user", float(i % 100))
              for i in range(n)]
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    send(p.intake, frames, batch=1000)
    m = start_metricsd(p, pg_database, "--batch-size=50")
    wait_until(lambda: p.ingestd.metrics().get(ACKED, 0) >= 2000, 60, "some acknowledged")
    m.kill9()  # batches in flight were committed or not: delivered again either way
    assert p.ingestd.metrics().get(ACKED, 0) < n, "killed too late to test anything"
    m.start()
    wait_until(lambda: p.ingestd.metrics().get(ACKED, 0) >= n, 120, "every record acknowledged")
    assert point_count(pg_database) == n
    rows = query(pg_database, "SELECT extract(epoch FROM time)::bigint, value FROM points "
                              "ORDER BY time")
    assert rows == [(MON + i, float(i % 100)) for i in range(n)]
    assert query(pg_database, "SELECT cpu_user FROM host_per_minute ORDER BY minute LIMIT 1") == \
        [(sum(i % 100 for i in range(60)) / 60,)]


def test_old_and_future_points_get_partitions(pipeline, pg_database):
    times = [-86_400, 636_508_800, 946_684_799, 9_000_000_000]  # 1969, 1990, 1999, 2255
    frames = [make_record_metric("h", t * 10**9, "legacy", float(i)) for i, t in enumerate(times)]
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, pg_database, "--partition-interval=year")
    send(p.intake, frames)
    wait_acked(p, len(frames))
    parts = partitions(pg_database)
    for i, t in enumerate(times):
        holding = [part for part, lo, hi in parts if lo <= utc(t) < hi]
        assert len(holding) == 1, t
        assert query(pg_database, "SELECT value, tableoid::regclass::text FROM points_data "
                                  "WHERE time = %s", (utc(t),)) == [(float(i), holding[0])]
        lo = [lo for part, lo, hi in parts if part == holding[0]][0]
        assert (lo.month, lo.day, lo.hour) == (1, 1, 0)  # whole UTC years
    assert "partition_interval=year" in m.log()


def test_two_metricsd_start_together_on_one_database(workdir, pg_database):
    """Two deployments (two ingestd) share one database: migrations and
    partitions made once, points written once."""
    frames = [make_record_metric("h", (315_532_800 + k * 40 * DAY) * 10**9, "legacy", float(k))
              for k in range(9)]
    pipes = []
    try:
        for i in range(2):
            home = os.path.join(workdir, f"p{i}")
            os.makedirs(home)
            p = Pipeline(home, writers=("metrics",))
            p.ingestd.start()
            p.writer("metricsd", [f"--dsn={pg_database}"]).start(wait=False)
            pipes.append(p)
        for p in pipes:
            p.daemons[-1].wait_ready()
            send(p.intake, frames)
        for p in pipes:
            wait_acked(p, len(frames))
        assert point_count(pg_database) == len(frames)
        # points, the shared access SQL, points' access: each applied once
        assert query(pg_database, "SELECT version, name FROM metricsd_migrations ORDER BY 1") == \
            [(1, "points"), (2, "access"), (3, "points_access"), (4, "series"),
             (5, "points_view"), (6, "series_view"), (7, "host_daily"),
             (8, "host_daily_epoch")]
        parts = partitions(pg_database)
        assert len({part for part, _, _ in parts}) == len(parts)
        assert all(sum(lo <= utc(315_532_800 + k * 40 * DAY) < hi for _, lo, hi in parts) == 1
                   for k in range(9))
    finally:
        for p in pipes:
            p.stop()


def test_postgres_outage_loses_and_doubles_nothing(pipeline, private_pg):
    dsn = private_pg.dsn
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, dsn, "--batch-size=100", "--retry-max=500ms")
    wait_until(lambda: m.health()[0] == 200, 30, "metricsd healthy")
    first = [make_record_metric("db", (MON + i) * 10**9, "host.mem.used", float(i))
             for i in range(1000)]
    send(p.intake, first)
    wait_acked(p, 1000)
    private_pg.stop()
    wait_until(lambda: m.health()[0] == 503, 30, "/health failing while PostgreSQL is down")
    second = [make_record_metric("db", (MON + 1000 + i) * 10**9, "host.mem.used", float(i))
              for i in range(1000)]
    send(p.intake, second)  # journaled by ingestd, not acknowledged by metricsd
    wait_until(lambda: m.metrics().get("omni_metricsd_store_retries_total", 0) >= 2, 30,
               "metricsd retrying")
    assert p.ingestd.metrics().get(ACKED, 0) < 2000
    private_pg.start()
    wait_acked(p, 2000)
    assert point_count(dsn) == 2000
    wait_until(lambda: m.health()[0] == 200, 30, "healthy again")


def test_health_fails_without_database_and_config_errors_name_the_key(pipeline, workdir):
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, "host=127.0.0.1 port=1 connect_timeout=1")
    status, text = m.health()
    assert status == 503 and "postgresql" in text
    assert "connected=no" in m.log()
    m.stop()
    for flag, key in (("--mode=hypertable", "metricsd.mode"),
                      ("--partition-interval=fortnight", "partition_interval"),
                      ("--batch-size=0", "batch_size"),
                      ("--compress-after=soon", "compress_after"),
                      ("--dsn=port='unterminated", "metricsd.dsn")):
        out = subprocess.run([binary("metricsd"), flag, f"--http=127.0.0.1:{free_port()}"],
                             capture_output=True, text=True, timeout=30, cwd=workdir)
        assert out.returncode == 2, (flag, out.stderr)
        assert key in out.stderr, (flag, out.stderr)


def run_metricsd_once(workdir, dsn, *args, timeout=30):
    """metricsd expected to stop at start-up: its exit code and log. The
    timeout is the assertion that it does not keep running."""
    return subprocess.run([binary("metricsd"), f"--dsn={dsn}",
                           f"--delivery=tcp://127.0.0.1:{free_port()}",
                           f"--http=127.0.0.1:{free_port()}", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=workdir)


def test_timescaledb_mode_without_timescaledb_exits_1_saying_why(pipeline, workdir, pg_database):
    """No TimescaleDB on this server: mode=timescaledb is a permanent start-up
    error naming the cause and the cure; auto goes native and says why at
    info level (plain PostgreSQL is a supported set-up, not a warning)."""
    if scalar(pg_database, "SELECT count(*) FROM pg_available_extensions "
                           "WHERE name = 'timescaledb'"):
        pytest.skip("this server has TimescaleDB")
    out = run_metricsd_once(workdir, pg_database, "--mode=timescaledb")
    assert out.returncode == 1, out.stderr
    assert "event=schema.no_timescaledb" in out.stderr and "permanent=yes" in out.stderr
    assert "not packaged" in out.stderr and "shared_preload_libraries" in out.stderr
    assert scalar(pg_database, "SELECT to_regclass('points') IS NULL")

    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, pg_database)
    assert "mode=native" in m.log()
    line = [x for x in m.log().splitlines() if "event=schema.timescaledb_unavailable" in x]
    assert len(line) == 1 and "level=info" in line[0] and "using=native" in line[0], line
    assert m.health()[0] == 200
    m.stop()
    # Once native, always native: mode=timescaledb now conflicts with the database
    out = run_metricsd_once(workdir, pg_database, "--mode=timescaledb")
    assert out.returncode == 1 and "event=schema.mode_conflict" in out.stderr, out.stderr


def test_database_set_up_with_timescaledb_is_refused_here(workdir, pg_database):
    """A database whose metricsd_settings say timescaledb (restored onto a
    server without it, or a server no longer preloading it) is never
    converted: every mode stops at start-up with exit 1, nothing created."""
    import psycopg2
    conn = psycopg2.connect(pg_database)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE metricsd_settings (key text PRIMARY KEY, value text NOT NULL);"
                    "INSERT INTO metricsd_settings VALUES ('mode', 'timescaledb')")
    conn.close()
    for mode in ("auto", "timescaledb"):
        out = run_metricsd_once(workdir, pg_database, f"--mode={mode}")
        assert out.returncode == 1, (mode, out.stderr)
        assert "set up with TimescaleDB" in out.stderr and "permanent=yes" in out.stderr, out.stderr
    assert scalar(pg_database, "SELECT to_regclass('points') IS NULL")


def test_retain_drops_old_partitions_and_old_points(pipeline, pg_database):
    import time
    now = int(time.time())
    old = [636_508_800, 946_684_799]  # 1990, 1999
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    m = start_metricsd(p, pg_database, "--partition-interval=year")
    send(p.intake, [make_record_metric("h", t * 10**9, "kept", 1.0) for t in old + [now]])
    wait_acked(p, 3)
    assert point_count(pg_database) == 3
    m.stop()
    p.daemons.remove(m)

    # nothing is dropped by default; with retain, at the first batch
    m = start_metricsd(p, pg_database, "--partition-interval=year", "--retain=365d")
    send(p.intake, [make_record_metric("h", (now + 1) * 10**9, "kept", 2.0),
                    make_record_metric("h", 788_918_400 * 10**9, "late", 3.0)])  # 1995
    wait_acked(p, 5)
    parts = partitions(pg_database)
    assert all(hi > utc(now - 366 * 86400) for _, _, hi in parts), parts
    assert point_count(pg_database) == 2
    assert point_count(pg_database, "time < now() - interval '365 days'") == 0
    metrics = m.metrics()
    assert metrics["omni_metricsd_partitions_dropped_total"] == 2
    assert metrics["omni_metricsd_points_expired_total"] == 1
    log = m.log()
    assert log.count("event=partition.dropped") == 2 and "event=points.expired count=1" in log
