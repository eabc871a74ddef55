"""relationald through the whole pipeline: records sent to ingestd's intake end
up as rows in a real PostgreSQL, exactly once, whatever fails in between.

Git histories are built by the tests and read back with git itself; the
records are made from git's own output (the same fields collectord git sends),
so the rows can be checked against git. PostgreSQL is $OMNI_TEST_PG_DSN's or
127.0.0.1:5432 (a fresh database per test); the outage test runs a private
server (initdb in a temporary directory, its own port) that it can stop."""
import datetime
import os
import signal
import subprocess
import time

import msgpack
import psycopg2

# private_pg is a fixture; record_id stays importable from here for the modules
# that still take these helpers from test_relationald (they live in omni.py).
from omni import (collect, collect_and_send, commit_to, deliver_again, free_port,  # noqa: F401
                  git, init_repo, make_record, private_pg, query, record_id, sample_history,
                  scalar, send, stream_disrupted, synthetic_commits, wait_until)

# ---------------------------------------------------------------------------
# PostgreSQL


def count_rows(dsn, table):
    try:
        return scalar(dsn, f"SELECT count(*) FROM {table}")
    except psycopg2.Error:
        return -1  # not migrated yet, or the server is away


def public_tables(dsn):
    return [r[0] for r in query(dsn, "SELECT table_name FROM information_schema.tables "
                                     "WHERE table_schema = 'public' ORDER BY 1")]


def wait_acked(p, n, timeout=120):
    """Until relationald acknowledged n records to ingestd (so they are committed)."""
    p.wait_acked("relational", n, timeout)


def start_relationald(p, dsn, *args, name="relationald"):
    d = p.writer(name, [f"--dsn={dsn}", *args], binary_name="relationald")
    return d.start()


# ---------------------------------------------------------------------------
# Tests


def test_git_history_exact_rows_and_no_duplicates(pipeline, workdir, pg_database):
    repo = sample_history(os.path.join(workdir, "repo"), "'); DROP TABLE commits; --")
    src = "file://" + repo

    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = start_relationald(p, pg_database, "--batch-size=3")
    frames, commits, branches, tags = collect(repo, src)
    assert len(commits) == 5
    send(p.intake, frames)
    wait_acked(p, len(frames))
    assert count_rows(pg_database, "runs WHERE status = 'ok'") == 1
    assert count_rows(pg_database, "commits") == len(commits)

    rows = query(pg_database, """
        SELECT sha, parents, author_name, author_email, extract(epoch FROM author_time)::bigint,
               author_tz, committer_name, committer_email,
               extract(epoch FROM committer_time)::bigint, committer_tz, message, files_changed,
               insertions, deletions, s.name
        FROM commits c JOIN sources s ON s.id = c.source_id""")
    assert len(rows) == len(commits)
    for r in rows:
        c = commits[r[0]]
        assert list(r[1:14]) == [c["parents"], c["author_name"], c["author_email"],
                                 c["author_time"], c["author_tz"], c["committer_name"],
                                 c["committer_email"], c["committer_time"], c["committer_tz"],
                                 c["message"], c["files_changed"], c["insertions"],
                                 c["deletions"]], r[0]
        assert r[14] == src
    files = query(pg_database, """
        SELECT c.sha, f.path, f.insertions, f.deletions, f.is_binary
        FROM commit_files f JOIN commits c ON c.id = f.commit_id""")
    expected_files = sorted((sha, f["path"], f.get("insertions"), f.get("deletions"), f["binary"])
                            for sha, c in commits.items() for f in c["files"])
    assert sorted(files) == expected_files
    assert any(f[4] for f in files), "the binary file is marked binary"
    merge = [c for c in commits.values() if len(c["parents"]) == 2]
    assert len(merge) == 1
    assert query(pg_database, "SELECT name, target, head FROM branches ORDER BY name") == \
        sorted((b["name"], b["target"], b["head"]) for b in branches.values())
    assert query(pg_database, "SELECT name, target, annotated FROM tags ORDER BY name") == \
        sorted((t["name"], t["target"], t["annotated"]) for t in tags.values())
    assert scalar(pg_database, "SELECT counts->>'git.commit' FROM runs") == "5"

    # The same records delivered again, and the history collected again in
    # a new run: not one more row.
    def snapshot():
        return {t: count_rows(pg_database, t) for t in
                ("sources", "commits", "commit_files", "branches", "tags", "runs",
                 "rejected_records")}
    before = snapshot()
    deliver_again(p, "relational", repo, src, frames)
    after = snapshot()
    assert after == dict(before, runs=2)
    assert "commits" in public_tables(pg_database)
    assert rel.health()[0] == 200


def test_branch_moves_and_build_status_updates(pipeline, workdir, pg_database):
    repo = init_repo(os.path.join(workdir, "repo"))
    first = commit_to(repo, "A", "a@example.org", 1_700_000_000, "+0000", "one", {"a": "1\n"})
    src = "file://" + repo
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    start_relationald(p, pg_database)
    sent = collect_and_send(p, "relational", repo, src, 0, now_ns=1_700_000_000 * 10**9)
    assert query(pg_database, "SELECT target FROM branches") == [(first,)]
    second = commit_to(repo, "A", "a@example.org", 1_700_000_100, "+0000", "two", {"a": "2\n"})
    sent = collect_and_send(p, "relational", repo, src, sent, "run-2", 1_700_000_100 * 10**9)
    assert query(pg_database, "SELECT target FROM branches") == [(second,)]
    # The first collection's branch record delivered again: it is older, no change
    old, _, _, _ = collect(repo, src, now_ns=1_700_000_000 * 10**9)
    send(p.intake, [f for f in old if msgpack.unpackb(f)["kind"] == "git.branch"])
    sent += 1
    wait_acked(p, sent)
    assert query(pg_database, "SELECT target FROM branches") == [(second,)]
    assert count_rows(pg_database, "branches") == 1
    assert count_rows(pg_database, "commits") == 2

    build = {"pipeline": "ci", "build_id": "42", "status": "running"}
    send(p.intake, [make_record("ci.build", src, build, 1_700_000_200 * 10**9)])
    wait_acked(p, sent + 1)
    assert scalar(pg_database, "SELECT status FROM ci_builds") == "running"
    send(p.intake, [make_record("ci.build", src, dict(build, status="success", duration=3.5),
                                1_700_000_300 * 10**9)])
    wait_acked(p, sent + 2)
    assert scalar(pg_database, "SELECT status FROM ci_builds") == "success"
    assert scalar(pg_database, "SELECT duration FROM ci_builds") == 3.5
    assert count_rows(pg_database, "ci_builds") == 1


def test_views_answer_for_known_repository(pipeline, workdir, pg_database):
    repo = init_repo(os.path.join(workdir, "repo"))
    day = 86400
    mon = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
    # (author, when UTC, tz, files) with known line counts
    commit_to(repo, "Alice", "alice@example.org", mon + 9 * 3600, "+0100", "a1",
              {"a.txt": "".join(f"line {i}\n" for i in range(10))})          # +10
    commit_to(repo, "Alice", "alice@example.org", mon + 15 * 3600, "+0000", "a2",
              {"b.txt": "".join(f"b {i}\n" for i in range(5))})              # +5
    commit_to(repo, "Bob", "bob@example.org", mon + 2 * day + 17 * 3600, "-0500", "b1",
              {"a.txt": "".join(f"line {i}\n" if i > 1 else f"LINE {i}\n"
                                for i in range(10))})                        # +2 -2
    # 2024-01-09 23:30 at -0300 is 2024-01-10 02:30 UTC: counted on the 10th
    commit_to(repo, "Alice", "alice@example.org", mon + 9 * day + 2 * 3600 + 1800, "-0300",
              "a3", {"b.txt": None})                                          # -5
    commit_to(repo, "Bob", "bob@example.org", mon + 9 * day + 8 * 3600, "+0000", "b2",
              {"bin.dat": b"\0\1\2\3"})                                       # binary
    src = "known"
    frames, commits, _, _ = collect(repo, src)

    # CI: pipeline "build" has 3 builds in week 1 (2 successes) and 2 in week 2
    # (a success and a cancelled one); "deploy" one failure.
    builds = [("build", "1", "success", mon + 3600), ("build", "2", "failure", mon + day),
              ("build", "3", "success", mon + 2 * day), ("build", "4", "success", mon + 8 * day),
              ("build", "5", "cancelled", mon + 9 * day), ("deploy", "1", "failure", mon + day)]
    for pipe, bid, status, started in builds:
        frames.append(make_record("ci.build", src, {"pipeline": pipe, "build_id": bid,
                                                    "status": status,
                                                    "started": started * 10**9},
                                  started * 10**9))
    # Tests in builds 1..4 of "build": t_slow 3, 5, 7, 9 s; t_fast 0.1 s;
    # t_flaky passed, failed, passed (flaky rerun), passed; t_fail always fails.
    flaky = [("passed", False), ("failed", False), ("passed", True), ("passed", False)]
    for n in range(4):
        bid, ts = str(n + 1), (mon + n * day + 7200) * 10**9
        cases = [("t_slow", "passed", 3.0 + 2 * n, None), ("t_fast", "passed", 0.1, None),
                 ("t_flaky", flaky[n][0], 1.0, flaky[n][1]), ("t_fail", "failed", 0.5, None)]
        for name, status, duration, is_flaky in cases:
            body = {"suite": "unit", "class": "Suite", "name": name, "status": status,
                    "duration": duration, "pipeline": "build", "build_id": bid}
            if is_flaky is not None:
                body["flaky"] = is_flaky
            frames.append(make_record("ci.test", src, body, ts + n))
    # A skipped run is not a duration
    frames.append(make_record("ci.test", src, {"suite": "unit", "class": "Suite", "name": "t_slow",
                                               "status": "skipped", "duration": 0.0,
                                               "build_id": "5"}, (mon + 9 * day) * 10**9))

    p = pipeline(writers=("relational",))
    p.ingestd.start()
    start_relationald(p, pg_database)
    send(p.intake, frames)
    wait_acked(p, len(frames))
    assert count_rows(pg_database, "ci_tests") == 17

    def ts(s):
        return datetime.datetime.fromtimestamp(s, datetime.timezone.utc)

    assert query(pg_database, """
        SELECT author_name, author_email, commits, merges, insertions, deletions,
               first_commit, last_commit FROM contributors WHERE source = 'known'
        ORDER BY author_email""") == [
        ("Alice", "alice@example.org", 3, 0, 15, 5, ts(mon + 9 * 3600),
         ts(mon + 9 * day + 2 * 3600 + 1800)),
        ("Bob", "bob@example.org", 2, 0, 2, 2, ts(mon + 2 * day + 17 * 3600),
         ts(mon + 9 * day + 8 * 3600))]
    d = datetime.date
    assert query(pg_database, """
        SELECT day, commits, authors, insertions, deletions FROM commit_activity_daily
        WHERE source = 'known' ORDER BY day""") == [
        (d(2024, 1, 1), 2, 1, 15, 0), (d(2024, 1, 3), 1, 1, 2, 2), (d(2024, 1, 10), 2, 2, 0, 5)]
    assert query(pg_database, """
        SELECT week, commits, authors, insertions, deletions FROM commit_activity_weekly
        WHERE source = 'known' ORDER BY week""") == [
        (d(2024, 1, 1), 3, 2, 17, 2), (d(2024, 1, 8), 2, 2, 0, 5)]
    rates = query(pg_database, """
        SELECT pipeline, week, builds, succeeded, failed, cancelled, success_rate::text
        FROM build_success_rate WHERE source = 'known' ORDER BY pipeline, week""")
    assert rates == [("build", d(2024, 1, 1), 3, 2, 1, 0, "0.6667"),
                     ("build", d(2024, 1, 8), 2, 1, 0, 1, "1.0000"),
                     ("deploy", d(2024, 1, 1), 1, 0, 1, 0, "0.0000")]
    slow = query(pg_database, """
        SELECT name, runs, avg_duration, max_duration FROM slowest_tests
        WHERE source = 'known' ORDER BY avg_duration DESC""")
    assert slow == [("t_slow", 4, 6.0, 9.0), ("t_flaky", 4, 1.0, 1.0), ("t_fail", 4, 0.5, 0.5),
                    ("t_fast", 4, 0.1, 0.1)]
    flakiest = query(pg_database, """
        SELECT name, runs, passed, failed, flaky_runs, flips, flakiness::text FROM flakiest_tests
        WHERE source = 'known' ORDER BY flakiness DESC""")
    assert flakiest == [("t_flaky", 4, 3, 1, 1, 2, "0.7500")]


def test_hostile_strings_stored_verbatim(pipeline, workdir, pg_database):
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    start_relationald(p, pg_database)
    tables = None
    wait_until(lambda: count_rows(pg_database, "commits") == 0, 30, "schema migrated")
    tables = public_tables(pg_database)
    hostile = "'); DROP TABLE commits; --\t\"quoted\" \\backslash\\ \\x00 \\N\n$$ E'\\'' \u2603"
    big = "".join(chr(32 + i % 95) for i in range(1 << 20))  # 1 MiB
    body = {"sha": "f" * 40, "parents": [], "author_name": hostile, "author_email": "nul\0@x",
            "author_time": 1_700_000_000, "author_tz": 0, "committer_name": hostile,
            "committer_email": "e", "committer_time": 1_700_000_000, "committer_tz": 0,
            "message": big + "\0end", "files_changed": 0, "insertions": 0, "deletions": 0}
    frames = [make_record("git.commit", hostile, body, 1),
              make_record("git.branch", hostile, {"name": hostile, "target": "f" * 40,
                                                  "head": False}, 1)]
    send(p.intake, frames)
    wait_acked(p, len(frames))
    row = query(pg_database, "SELECT author_name, author_email, message, s.name FROM commits c "
                             "JOIN sources s ON s.id = c.source_id")[0]
    assert row[0] == hostile
    assert row[1] == "nul\ufffd@x"  # the NUL rule
    assert row[2] == big + "\ufffdend"
    assert row[3] == hostile
    assert scalar(pg_database, "SELECT name FROM branches") == hostile
    assert public_tables(pg_database) == tables


def test_out_of_range_record_rejected_rest_stored(pipeline, pg_database):
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = start_relationald(p, pg_database, "--batch-size=100")
    good = synthetic_commits(99, src="r")
    bad_body = {"sha": "bad", "parents": [], "author_name": "x", "author_email": "x",
                "author_time": 1, "author_tz": 99999, "committer_name": "x",
                "committer_email": "x", "committer_time": 1, "committer_tz": 0, "message": "",
                "files_changed": 0, "insertions": 0, "deletions": 0}
    frames = [f for _, f in good[:50]] + [make_record("git.commit", "r", bad_body, 1)] + \
             [f for _, f in good[50:]]
    send(p.intake, frames, batch=1000)
    wait_acked(p, len(frames))
    assert count_rows(pg_database, "rejected_records") == 1
    assert count_rows(pg_database, "commits") == 99
    kind, error, sqlstate, sha = query(pg_database, "SELECT kind, error, sqlstate, "
                                                    "record->'body'->>'sha' FROM rejected_records")[0]
    assert (kind, sqlstate, sha) == ("git.commit", "22003", "bad")
    assert "out of range" in error
    assert rel.metrics()["omni_relationald_records_rejected_total"] == 1
    assert rel.health()[0] == 200


def _stream_and_check(p, dsn, n, disrupt):
    """Sends n commits in two halves, calls disrupt() once about 1/5 are stored,
    sends the rest during the disruption, then checks every record is stored once."""
    records = stream_disrupted(p, n, lambda: count_rows(dsn, "commits"), disrupt)
    shas = {r[0] for r in query(dsn, "SELECT sha FROM commits")}
    assert shas == {sha for sha, _ in records}
    assert count_rows(dsn, "commit_files") == 2 * n
    assert count_rows(dsn, "rejected_records") == 0


def test_postgres_stopped_20s_mid_stream(pipeline, private_pg):
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = start_relationald(p, private_pg.dsn, "--batch-size=500", "--retry-max=1s")
    wait_until(lambda: rel.health()[0] == 200 or count_rows(private_pg.dsn, "commits") == 0, 30,
               "relationald up")

    def outage(send_rest):
        private_pg.stop()
        stopped = time.monotonic()
        send_rest()  # ingestd journals them meanwhile
        wait_until(lambda: rel.health()[0] == 503, 30, "/health failing while PostgreSQL is down")
        time.sleep(max(0.0, 20 - (time.monotonic() - stopped)))  # the outage itself
        private_pg.start()

    _stream_and_check(p, private_pg.dsn, 20_000, outage)
    m = rel.metrics()
    assert m["omni_relationald_store_retries_total"] > 0
    wait_until(lambda: rel.health()[0] == 200, 30, "/health recovered")


def test_relationald_kill9_mid_stream(pipeline, pg_database):
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = start_relationald(p, pg_database, "--batch-size=500")

    def crash(send_rest):
        rel.kill9()
        send_rest()
        rel.start()

    _stream_and_check(p, pg_database, 20_000, crash)


def test_two_relationalds_migrate_at_once_and_config(pipeline, workdir, pg_database):
    p = pipeline(writers=("relational",))
    # Two processes migrating the same fresh database at the same moment
    a = p.writer("rel-a", [f"--dsn={pg_database}"], binary_name="relationald")
    b = p.writer("rel-b", [f"--dsn={pg_database}"], binary_name="relationald")
    a.start(wait=False)
    b.start(wait=False)
    a.wait_ready()
    b.wait_ready()
    assert scalar(pg_database, "SELECT count(*) FROM schema_migrations") >= 1
    a.stop()
    b.stop()
    # Passwords never reach the log (the dsn comes from the environment, as
    # it should, since command lines are public); a bad dsn names the key.
    secret_dsn = f"postgresql://omni:s3cr3t-pw@127.0.0.1:{free_port()}/db"
    c = p.writer("rel-c", [], binary_name="relationald",
                 env={"OMNI_RELATIONALD_DSN": secret_dsn})
    c.start()
    wait_until(lambda: "pg.down" in c.log(), 30, "connection failure logged")
    assert c.health()[0] == 503
    c.proc.send_signal(signal.SIGTERM)
    assert c.proc.wait(30) == 0
    assert "s3cr3t-pw" not in c.log()
    assert "password=***" in c.log()
    out = subprocess.run([c.args[0], "--dsn=host='unterminated", "--http="], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "relationald.dsn" in out.stderr
