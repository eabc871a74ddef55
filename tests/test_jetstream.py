"""journal: jetstream (issue 19): ingestd journals into a NATS JetStream
stream replicated by a three-node cluster the test makes on loopback ports.
A collector's batch is acknowledged once the stream stored its records; the
stream drops a record sent twice (its id is the message id) and keeps each
one for every configured writer's durable consumer. Wrong or unreachable
clusters stop ingestd at start with a clear error."""
import os
import re
import subprocess

import pytest

from natscluster import NatsCluster
from omni import (IntakeClient, Loadgen, Pipeline, Tap, archive_lines, binary, free_port,
                  make_record_metric, query, send, stop_pipelines, synthetic_commits, wait_until)


@pytest.fixture
def cluster(workdir):
    with NatsCluster(workdir) as c:
        yield c


def _jetstream(cluster, replicas=3, stream="OMNI"):
    return ["--journal=jetstream", f"--nats-urls={cluster.urls}", f"--stream={stream}",
            f"--replicas={replicas}"]


def _stream_state(ingestd):
    """What ingestd's /health says of the stream: messages, and per consumer
    what it has pending."""
    status, text = ingestd.health()
    assert status == 200, text
    m = re.search(r"stream \S+: messages=(\d+) bytes=\d+ replicas=(\d+) current=(\d+)", text)
    assert m, text
    pending = {c: int(n) for c, n in re.findall(r"consumer (\w+): pending=(\d+)", text)}
    return int(m.group(1)), int(m.group(2)), pending


def test_records_go_to_the_stream_once_each(workdir, cluster):
    p = Pipeline(workdir, writers=("archive", "relational", "metrics"),
                 extra=_jetstream(cluster))
    with p:
        p.ingestd.start()
        # omni-tap works as with the LMDB journal: what ingestd accepted and rejected
        tap = Tap(workdir, "points", p.tap, "--kind=metric", "--rejects")
        try:
            wait_until(tap.subscribed, 20, "tap.subscribed")
            warm = []

            def warmed():  # a subscription reaches ingestd a moment after connect
                warm.append(make_record_metric("warm", 1_600_000_000_000_000_000 + len(warm),
                                               "cpu", 1))
                send(p.intake, warm[-1:])
                return tap.text()
            wait_until(warmed, 30, "the tap to see the warm-up")
            n = 3000
            frames = [f for _, f in synthetic_commits(n, src="js")]
            send(p.intake, frames)
            # A collector that sends again what was acknowledged: the stream
            # drops it by its id
            send(p.intake, frames[:1000])
            # Points go to the archive and metricsd, not relationald
            points = [make_record_metric("h1", 1_700_000_000_000_000_000 + i * 10**9, "cpu", i)
                      for i in range(500)]
            send(p.intake, points)
            w = len(warm)
            # A message per batch of 500 and route (the points: one), each
            # warm-up record one
            nb = n // 500
            messages, replicas, pending = _stream_state(p.ingestd)
            assert (messages, replicas) == (nb + 1 + w, 3)
            assert pending == {"archive": nb + 1 + w, "relational": nb, "metrics": nb + 1 + w}
            m = p.ingestd.metrics()
            assert m["omni_ingestd_records_accepted_total"] == n + 1000 + 500 + w
            assert m['omni_ingestd_journal_fault{cause="stream"}'] == 0
            # What the stream acknowledged, the batch sent again (dropped as
            # duplicates) included
            assert m["omni_ingestd_stream_published_records_total"] == n + 1000 + 500 + w
            assert m["omni_ingestd_stream_published_messages_total"] == nb + 2 + 1 + w
            # /metrics has the same, refreshed every 2 s
            wait_until(lambda: p.ingestd.metrics().get(
                'omni_ingestd_consumer_pending{writer="relational"}') == nb, 10, "the gauges")
            m = p.ingestd.metrics()
            assert m["omni_ingestd_stream_messages"] == nb + 1 + w
            assert m["omni_ingestd_stream_replicas_current"] == 3
            assert m['omni_ingestd_consumer_pending{writer="metrics"}'] == nb + 1 + w
            # Rejects stay in ingestd's dead-letter area and counts, and on its tap
            client = IntakeClient(p.intake)
            try:
                assert client.batch([b"\x81\xa1v\x02"] * 3) == (0, 3)
            finally:
                client.close()
            assert _stream_state(p.ingestd)[0] == nb + 1 + w
            m = p.ingestd.metrics()
            assert m['omni_ingestd_records_rejected_total{reason="bad_version"}'] == 3
            wait_until(lambda: sum("reject" in d for d in tap.lines()) == 3, 10, "3 rejects tapped")
            assert sum(d.get("src") == "h1" for d in tap.lines()) == 500
        finally:
            tap.stop()


def test_unreachable_cluster_stops_ingestd_at_start(workdir):
    ports = [free_port(), free_port()]
    urls = ",".join(f"nats://127.0.0.1:{port}" for port in ports)
    out = subprocess.run([binary("ingestd"), "--journal=jetstream", f"--nats-urls={urls}",
                          f"--journal-dir={workdir}/journal", "--http=",
                          f"--intake=tcp://127.0.0.1:{free_port()}",
                          f"--delivery=tcp://127.0.0.1:{free_port()}",
                          f"--tap=tcp://127.0.0.1:{free_port()}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, out.stderr
    assert f"no NATS server of {urls} answered" in out.stderr, out.stderr


def test_stream_with_other_settings_is_a_config_error(workdir, cluster):
    first = Pipeline(os.path.join(workdir, "a"), writers=("archive",),
                     extra=_jetstream(cluster, replicas=1))
    os.makedirs(first.workdir)
    with first:
        first.ingestd.start()
    # The stream now has one replica; an ingestd configured for three
    # must not write into it
    args = [binary("ingestd"), *_jetstream(cluster, replicas=3), f"--journal-dir={workdir}/j2",
            "--http=", f"--intake=tcp://127.0.0.1:{free_port()}",
            f"--delivery=tcp://127.0.0.1:{free_port()}", f"--tap=tcp://127.0.0.1:{free_port()}"]
    out = subprocess.run(args + ["--writers=archive"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "stream OMNI exists with" in out.stderr and "replicas=1" in out.stderr, out.stderr
    # Records larger than the servers take: said at start, not at the first big record
    args[1:5] = _jetstream(cluster, replicas=1)
    out = subprocess.run(args + ["--writers=archive", "--max-record-size=16M",
                                 "--max-batch-bytes=64M"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "max_payload" in out.stderr, out.stderr


def _from_stream(p, cluster, name, args=()):
    """A writer daemon that takes its records from the stream (its consumer)."""
    return p.writer(name, [f"--nats-urls={cluster.urls}", "--stream=OMNI", *args])


def _archiverd(p, cluster):
    return _from_stream(p, cluster, "archiverd",
                        [f"--archive-dir={p.archive_dir}", "--compress-after=0"])


def _relationald(p, cluster, dsn):
    return _from_stream(p, cluster, "relationald", [f"--dsn={dsn}", "--batch-size=500"])


def _commit_ids(dsn):
    return [bytes(r[0]).hex() for r in query(dsn, "SELECT id FROM commits")]


def _archived_ids(p):
    return [line["id"] for line in archive_lines(p.archive_dir)]


def test_writers_take_every_record_once_from_the_stream(workdir, cluster, pg_database):
    p = Pipeline(workdir, writers=("archive", "relational"), extra=_jetstream(cluster))
    with p:
        p.ingestd.start()
        archiverd = _archiverd(p, cluster)
        relationald = _relationald(p, cluster, pg_database)
        archiverd.start()
        relationald.start()
        records = synthetic_commits(4000, src="js-writers")
        frames = [f for _, f in records]
        send(p.intake, frames)
        send(p.intake, frames[:500])  # sent again: dropped by the stream
        wait_until(lambda: len(_commit_ids(pg_database)) >= 4000, 60, "4000 commits stored")
        wait_until(lambda: len(_archived_ids(p)) >= 4000, 60, "4000 records archived")
        # Every writer acknowledged: the stream holds nothing (interest retention)
        wait_until(lambda: _stream_state(p.ingestd)[0] == 0, 30, "an empty stream")
        ids = _commit_ids(pg_database)
        assert len(ids) == len(set(ids)) == 4000
        archived = _archived_ids(p)
        assert len(archived) == len(set(archived)) == 4000
        status, text = relationald.health()
        assert status == 200, text
        # omnictl status shows the stream and the consumers
        out = subprocess.run([binary("omnictl"), "status",
                              f"--targets=ingestd=127.0.0.1:{p.ingestd.http_port}", "--sample=0"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "jetstream journal of ingestd" in out.stdout, out.stdout
        assert re.search(r"stream OMNI: messages=0 .*replicas=3", out.stdout), out.stdout
        assert re.search(r"consumer relational: pending=0 ack_pending=0", out.stdout), out.stdout


def test_records_wait_in_the_stream_for_a_writer_not_started(workdir, cluster, pg_database):
    p = Pipeline(workdir, writers=("archive", "relational"), extra=_jetstream(cluster))
    with p:
        p.ingestd.start()
        archiverd = _archiverd(p, cluster)
        archiverd.start()
        frames = [f for _, f in synthetic_commits(2000, src="js-wait")]
        send(p.intake, frames)
        wait_until(lambda: len(_archived_ids(p)) >= 2000, 60, "2000 records archived")
        # The archive took them all; relationald never connected: every
        # record waits for it in the stream (a message per batch of 500)
        wait_until(lambda: _stream_state(p.ingestd)[2]["archive"] == 0, 30, "archive caught up")
        messages, _, pending = _stream_state(p.ingestd)
        assert messages == 4 and pending["relational"] == 4
        relationald = _relationald(p, cluster, pg_database)
        relationald.start()
        wait_until(lambda: len(_commit_ids(pg_database)) >= 2000, 60, "2000 commits stored")
        wait_until(lambda: _stream_state(p.ingestd)[0] == 0, 30, "an empty stream")
        assert len(set(_commit_ids(pg_database))) == len(_commit_ids(pg_database)) == 2000


def test_kill9_of_a_nats_node_an_ingestd_and_a_writer_loses_nothing(workdir, cluster,
                                                                     pg_database):
    """Two ingestd instances on one stream of three replicas, the loader
    given both; two relationald instances share the writer's consumer. One
    NATS node, the ingestd the loader uses and one relationald are killed
    (kill -9) at different moments: every record is stored once."""
    pipelines = []
    for name in ("a", "b"):
        path = os.path.join(workdir, name)
        os.makedirs(path)
        p = Pipeline(path, writers=("relational",),
                     extra=_jetstream(cluster) + ["--writer-ack-wait=3s"])
        p.ingestd.start()
        pipelines.append(p)
    a, b = pipelines
    writers = [_relationald(p, cluster, pg_database) for p in pipelines]
    for w in writers:
        w.start()
    n = 20_000
    ids_path = os.path.join(workdir, "ids")
    try:
        with Loadgen(workdir, f"{a.intake},{b.intake}", "--kind=git.commit", f"--count={n}",
                     "--rate=4000", "--batch=200", f"--ids-out={ids_path}",
                     "--give-up=60s") as loadgen:
            stored = lambda: len(_commit_ids(pg_database))  # noqa: E731
            wait_until(lambda: stored() >= n // 5, 60, "a fifth stored")
            cluster.kill9(0)
            wait_until(lambda: a.ingestd.metrics().get("omni_ingestd_records_accepted_total", 0)
                       >= n * 2 // 5, 60, "two fifths accepted by the first ingestd")
            a.ingestd.kill9()
            wait_until(lambda: stored() >= n * 3 // 5, 60, "three fifths stored")
            writers[0].kill9()
            assert loadgen.finish()["sent"] == str(n)
        wait_until(lambda: len(_commit_ids(pg_database)) >= n, 90, f"{n} commits stored")
        with open(ids_path) as f:
            sent = {line.strip() for line in f if line.strip()}
        ids = _commit_ids(pg_database)
        assert len(sent) == n and len(ids) == n and set(ids) == sent
        # What the killed relationald held came to the other one; nothing waits
        wait_until(lambda: _stream_state(b.ingestd)[0] == 0, 30, "an empty stream")
    finally:
        stop_pipelines(pipelines)


def test_quorum_lost_mid_stream_pauses_intake_and_loses_nothing(workdir, cluster, pg_database):
    """Two of the three NATS nodes killed while records come: the stream
    cannot store a round, so ingestd acknowledges nothing, says why in
    /health (503) and its fault gauge, and resumes by itself once the nodes
    are back; every record is then stored once."""
    p = Pipeline(workdir, writers=("relational",),
                 extra=_jetstream(cluster) + ["--publish-timeout=2s"])
    with p:
        p.ingestd.start()
        _relationald(p, cluster, pg_database).start()
        n = 8000
        ids_path = os.path.join(workdir, "ids")
        with Loadgen(workdir, p.intake, "--kind=git.commit", f"--count={n}", "--rate=2000",
                     "--batch=200", f"--ids-out={ids_path}", "--give-up=120s") as loadgen:
            wait_until(lambda: len(_commit_ids(pg_database)) >= n // 5, 60, "a fifth stored")
            cluster.kill9(1)
            cluster.kill9(2)

            def paused():
                status, text = p.ingestd.health()
                return status == 503 and "stream OMNI" in text
            wait_until(paused, 30, "ingestd paused on the stream")
            m = p.ingestd.metrics()
            assert m['omni_ingestd_journal_fault{cause="stream"}'] == 1
            accepted = m["omni_ingestd_records_accepted_total"]
            assert loadgen.running()
            cluster.start(1)
            cluster.start(2)
            assert loadgen.finish(150)["sent"] == str(n)
        assert accepted < n
        wait_until(lambda: len(_commit_ids(pg_database)) >= n, 90, f"{n} commits stored")
        with open(ids_path) as f:
            sent = {line.strip() for line in f if line.strip()}
        ids = _commit_ids(pg_database)
        assert len(ids) == n and set(ids) == sent
        assert p.ingestd.metrics()['omni_ingestd_journal_fault{cause="stream"}'] == 0
