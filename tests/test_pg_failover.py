"""PostgreSQL failover (issue 19): the PostgreSQL writers, relationald and
metricsd, given a multi-host dsn with target_session_attrs=read-write,
follow the primary when it dies and a standby is promoted, and every record
is stored exactly once.

The servers are the test's own: a primary and a streaming standby made from
it by pg_basebackup, with synchronous replication (synchronous_standby_names
names the standby, synchronous_commit = on), because only then is a commit
the primary confirmed also on the standby. A commit in flight when the
primary dies has no answer: the writer counts it as failed, ingestd delivers
the batch again, and the store, idempotent on record ids, takes it once."""
import contextlib
import os
import threading

import psycopg2
import pytest

from omni import (Pipeline, PrivatePostgres, query, scalar, send, synthetic_commits,
                  wait_until)

N = 20_000
POINTS_PER_COMMIT = 4
PRIMARY = ["wal_level = replica", "max_wal_senders = 4",
           "synchronous_standby_names = 'standby'", "synchronous_commit = on"]
# The promoted standby has no standby of its own: waiting for one would hold
# every commit (what a real deployment does after a failover is its choice:
# attach another standby, or let the new primary commit alone)
STANDBY = ["synchronous_standby_names = ''"]


@pytest.fixture
def pair():
    """A primary and its synchronous standby, both started; both stopped and
    removed after the test, whatever happened to them."""
    made = []
    try:
        try:
            primary = PrivatePostgres(PRIMARY)
        except (FileNotFoundError, KeyError) as e:
            if os.environ.get("OMNI_REQUIRE_SERVICES"):
                raise
            pytest.skip(f"no PostgreSQL server tools to run private servers ({e})")
        made.append(primary)
        primary.start()
        standby = PrivatePostgres(STANDBY, standby_of=primary, name="standby")
        made.append(standby)
        standby.start()
        wait_until(lambda: scalar(primary.dsn, "SELECT count(*) FROM pg_stat_replication "
                                               "WHERE application_name = 'standby' "
                                               "AND sync_state = 'sync'") == 1,
                   30, "the standby streaming synchronously")
        yield primary, standby
    finally:
        for server in reversed(made):
            server.destroy()


def _dsn(primary, standby, dbname="audit"):
    return (f"host=127.0.0.1,127.0.0.1 port={primary.port},{standby.port} user=postgres "
            f"dbname={dbname} target_session_attrs=read-write")


def _audit(server):
    """The database on one server (for reading back, not the writers' dsn)."""
    return server.dsn.rsplit("/", 1)[0] + "/audit"


def _count(dsn, sql):
    try:
        return scalar(dsn, sql)
    except psycopg2.Error:
        return -1  # not migrated yet, or no primary at this moment


@contextlib.contextmanager
def _pipeline(workdir, primary, standby):
    """ingestd, relationald and metricsd on the pair's multi-host dsn, and the
    records to send: (pipeline, writers, records, frames)."""
    p = Pipeline(workdir, writers=("relational", "metrics"))
    with p:
        p.ingestd.start()
        # Both make the database (on the primary, through the multi-host dsn)
        args = [f"--dsn={_dsn(primary, standby)}", "--create-database=true", "--batch-size=500",
                "--retry-max=500ms"]
        writers = [p.writer(name, args).start() for name in ("relationald", "metricsd")]
        records = synthetic_commits(N, src="stream", files=2)
        yield p, writers, records, [f for _, f in records]


def _check_every_row_once(dsn, records):
    shas = [r[0] for r in query(dsn, "SELECT sha FROM commits")]
    assert len(shas) == len(set(shas)) == N
    assert set(shas) == {sha for sha, _ in records}
    assert scalar(dsn, "SELECT count(*) FROM commit_files") == 2 * N
    assert scalar(dsn, "SELECT count(*) FROM rejected_records") == 0
    assert scalar(dsn, "SELECT count(*) FROM points") == POINTS_PER_COMMIT * N
    assert scalar(dsn, "SELECT count(*) FROM (SELECT DISTINCT name, source, tags, time "
                       "FROM points) d") == POINTS_PER_COMMIT * N


def test_primary_killed_standby_promoted_mid_stream_every_row_once(workdir, pair):
    primary, standby = pair
    dsn = _dsn(primary, standby)
    with _pipeline(workdir, primary, standby) as (p, writers, records, frames):
        sender = threading.Thread(target=send, args=(p.intake, frames[:N // 2]))
        sender.start()
        try:
            wait_until(lambda: _count(dsn, "SELECT count(*) FROM commits") >= N // 5, 60,
                       "a fifth of the commits stored")
            primary.kill9()
            send(p.intake, frames[N // 2:])  # journalled by ingestd meanwhile
            standby.promote()  # returns once it takes writes
        finally:
            sender.join()
        assert not scalar(standby.dsn, "SELECT pg_is_in_recovery()")
        p.wait_acked("relational", N, 60)
        p.wait_acked("metrics", N, 60)
        _check_every_row_once(_audit(standby), records)
        for writer in writers:
            m = writer.metrics()
            name = writer.name
            assert m[f"omni_{name}_postgres_connects_total"] >= 2, m
            assert m[f"omni_{name}_store_retries_total"] >= 1, m
            log = writer.log()
            last = log.rsplit("event=pg.connected", 1)[-1]
            assert f"server=127.0.0.1:{standby.port}" in last, log[-3000:]
            assert writer.health()[0] == 200


def test_commit_the_standby_did_not_confirm_is_not_acknowledged(workdir, pair):
    """A commit waiting for the synchronous standby that is cancelled (by an
    operator, or statement_timeout) returns COMMIT with a warning: committed
    on the primary only. The writer must not acknowledge it: when that
    primary then dies, only a redelivery brings those records to the
    promoted standby."""
    primary, standby = pair
    with _pipeline(workdir, primary, standby) as (p, writers, records, frames):
        send(p.intake, frames[:N // 4])
        p.wait_acked("relational", N // 4, 60)
        p.wait_acked("metrics", N // 4, 60)
        standby.stop()  # the primary's commits wait for it from now on
        send(p.intake, frames[N // 4:])
        waiting = ("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                   "AND datname = 'audit'")
        wait_until(lambda: len(query(primary.dsn, waiting)) >= 2, 30,
                   "both writers' commits waiting for the standby")
        acked = {w: p.acked(w) for w in ("relational", "metrics")}
        cancelled = {pid for (pid,) in query(primary.dsn, waiting)}
        for pid in cancelled:
            scalar(primary.dsn, "SELECT pg_cancel_backend (%s)", (pid,))
        # Each writer tries again (on a new session) and waits again
        wait_until(lambda: len({pid for (pid,) in query(primary.dsn, waiting)} - cancelled) >= 2,
                   30, "both writers waiting again, on new sessions")
        assert {w: p.acked(w) for w in acked} == acked
        for writer in writers:
            assert "event=pg.unconfirmed" in writer.log(), writer.log()[-3000:]
        # The primary dies with rows committed there only, and not acknowledged
        only_primary = scalar(_audit(primary), "SELECT count(*) FROM commits")
        assert only_primary > acked["relational"]
        primary.kill9()
        standby.start()
        assert scalar(_audit(standby), "SELECT count(*) FROM commits") < only_primary
        standby.promote()
        p.wait_acked("relational", N, 60)
        p.wait_acked("metrics", N, 60)
        _check_every_row_once(_audit(standby), records)
