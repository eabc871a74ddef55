"""journal: jetstream (issue 19): ingestd journals into a NATS JetStream
stream replicated by a three-node cluster the test makes on loopback ports.
A collector's batch is acknowledged once the stream stored its records; the
stream drops a record sent twice (its id is the message id) and keeps each
one for every configured writer's durable consumer; what ingestd rejects
goes to a rejects stream, read back with omnictl rejects. Wrong or
unreachable clusters stop ingestd at start with a clear error."""
import json
import os
import re
import struct
import subprocess

import pytest

from natscluster import NatsCluster
from omni import (IntakeClient, Loadgen, Pipeline, Tap, archive_lines, binary, free_port,
                  make_record_metric, query, record, send, stop_pipelines, synthetic_commits,
                  wait_until)


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
    # The rejects stream, made by the first one with a week's age limit: an
    # ingestd that wants another limit says what differs
    out = subprocess.run(args[:1] + _jetstream(cluster, replicas=1) + args[5:] +
                         ["--writers=archive", "--rejects-max-age=1d"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "rejects stream OMNI_REJECTS exists with" in out.stderr, out.stderr
    assert "max_age=604800000ms" in out.stderr and "max_age=86400000ms" in out.stderr, out.stderr
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


def _omnictl_rejects(cluster, *args, text=True):
    out = subprocess.run([binary("omnictl"), "rejects", f"--nats-urls={cluster.urls}", *args],
                         capture_output=True, text=text, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _rejects(cluster, *args):
    """What omnictl rejects reads back from the rejects stream, as JSON."""
    return [json.loads(line) for line in
            _omnictl_rejects(cluster, "--format=json", *args).splitlines()]


def test_rejects_go_to_the_rejects_stream_with_reason_and_bytes(workdir, cluster):
    """Every input ingestd rejects is in the rejects stream, with its reason
    and its bytes, by the time the collector has the ACK that counts it; a
    batch sent again is not kept twice. /health, /metrics and omnictl status
    show the stream; omnictl rejects reads it back."""
    p = Pipeline(workdir, writers=("archive",),
                 extra=_jetstream(cluster) + ["--max-record-size=64k"])
    with p:
        p.ingestd.start()
        good = make_record_metric("h1", 1_700_000_000_000_000_000, "cpu", 1)
        bad_version = b"\x81\xa1v\x02"
        not_msgpack = b"\xc1"
        unknown = record("no.such.kind", "js-rejects", {"x": 1}, ts=1_700_000_000_000_000_000)
        oversize = bytes(range(256)) * 300  # 76,800 bytes, over 64 KiB
        frames = [good, bad_version, not_msgpack, unknown, oversize]
        client = IntakeClient(p.intake)
        try:
            assert client.batch(frames) == (1, 4)
            # Acknowledged, so stored: read back at once, in order
            rejects = _rejects(cluster)
            assert [r["reason"] for r in rejects] == ["bad_version", "not_msgpack",
                                                      "unknown_kind", "too_large"]
            for r, frame, place in zip(rejects, frames[1:], range(2, 6)):
                assert r["frame"] == place and r["batch_seq"] == 1, r
                assert r["size"] == len(frame) and r["peer"].startswith("127.0.0.1:"), r
                assert r["detail"] and r["ingestd"], r
            assert [bytes.fromhex(r["raw"]) for r in rejects[:3]] == frames[1:4]
            # Kept up to the record size limit
            assert bytes.fromhex(rejects[3]["raw"]) == oversize[:64 << 10]
            assert "is not declared" in rejects[2]["detail"]
            assert (rejects[2]["kind"], rejects[2]["src"]) == ("no.such.kind", "js-rejects")
            # A message that is no batch: bad_frame, its first frame kept
            client.send_raw([b"OI/1", b"NONSENSE", struct.pack(">Q", 9)])
            assert client.recv()[1] == b"ERROR"
            last = _rejects(cluster, "--limit=1")[0]
            assert last["reason"] == "bad_frame" and bytes.fromhex(last["raw"]) == b"OI/1"
            # A collector that had no ACK sends the batch again, same seq:
            # acknowledged and counted again, kept once
            client.seq = 0
            assert client.batch(frames) == (1, 4)
        finally:
            client.close()
        assert len(_rejects(cluster)) == 5
        m = p.ingestd.metrics()
        assert m['omni_ingestd_records_rejected_total{reason="bad_version"}'] == 2
        assert m['omni_ingestd_records_rejected_total{reason="bad_frame"}'] == 1
        # By reason, as text, and one reject's bytes alone
        text = _omnictl_rejects(cluster, "--reason=not_msgpack")
        assert re.match(r"#2 \S+ not_msgpack 1 bytes from 127\.0\.0\.1:\d+ batch=1 frame=3",
                        text), text
        assert text.splitlines()[2].strip() == "c1", text
        assert _omnictl_rejects(cluster, "--seq=4", "--raw", text=False) == oversize[:64 << 10]
        # /health, /metrics and omnictl status: the rejects stream beside the records'
        status, health = p.ingestd.health()
        assert status == 200, health
        assert re.search(r"\nrejects OMNI_REJECTS: messages=5 bytes=\d+ replicas=3 current=3 "
                         r"leader=n\d", health), health
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_rejects_stream_messages") == 5,
                   10, "the rejects gauges")
        assert p.ingestd.metrics()["omni_ingestd_rejects_stream_replicas_current"] == 3
        out = subprocess.run([binary("omnictl"), "status",
                              f"--targets=ingestd=127.0.0.1:{p.ingestd.http_port}", "--sample=0"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        assert re.search(r"stream OMNI: messages=1 .*replicas=3 current=3", out.stdout), out.stdout
        assert re.search(r"consumer archive: pending=1 ack_pending=0 redelivered=0", out.stdout), \
            out.stdout
        assert re.search(r"rejects OMNI_REJECTS: messages=5 .*replicas=3 current=3", out.stdout), \
            out.stdout
        # A node down: both streams name their replica on it as lagging
        cluster.kill9(2)

        def lagging():
            _, text = p.ingestd.health()
            return all(re.search(rf"\n{line}: .* current=2 leader=n[01] lagging=n2:(offline|\d+)",
                                 text) for line in ("stream OMNI", "rejects OMNI_REJECTS"))
        wait_until(lagging, 30, "the replicas on n2 shown as lagging")
        for gauge in ("stream_replicas_current", "rejects_stream_replicas_current"):
            wait_until(lambda: p.ingestd.metrics().get(f"omni_ingestd_{gauge}") == 2, 10,
                       f"{gauge} 2")


def test_rejects_not_stored_are_not_acknowledged(workdir, cluster):
    """Quorum lost: a batch of bad records cannot be stored in the rejects
    stream, so ingestd does not acknowledge it and says why; once the nodes
    are back the collector's resend is acknowledged and each reject is kept
    once."""
    p = Pipeline(workdir, writers=("archive",),
                 extra=_jetstream(cluster) + ["--publish-timeout=2s"])
    with p:
        p.ingestd.start()
        frames = [b"\x81\xa1v\x02", b"\xc1", b"\x81\xa1v\x03"]
        cluster.kill9(1)
        cluster.kill9(2)
        client = IntakeClient(p.intake)
        try:
            seq = client.send_batch(frames)

            def paused():
                status, text = p.ingestd.health()
                return status == 503 and "intake paused" in text
            wait_until(paused, 30, "ingestd paused")
            assert p.ingestd.metrics()['omni_ingestd_journal_fault{cause="stream"}'] == 1
            # The first failure named the rejects stream (the probes that
            # follow ask the records' stream first)
            assert re.search(r"journal\.fault cause=stream .*rejects stream OMNI_REJECTS",
                             p.ingestd.log()), p.ingestd.log()[-3000:]
            # Nothing came back for the batch: it is not acknowledged
            assert not client.sock.poll(0)
            cluster.start(1)
            cluster.start(2)
            wait_until(lambda: p.ingestd.health()[0] == 200, 60, "ingestd resumed")
            client.seq = seq - 1  # the collector sends its unacknowledged batch again
            assert client.batch(frames) == (0, 3)
        finally:
            client.close()
        rejects = _rejects(cluster)
        assert [bytes.fromhex(r["raw"]) for r in rejects] == frames
        assert [r["reason"] for r in rejects] == ["bad_version", "not_msgpack", "bad_version"]
