"""ingestd on its own: intake acknowledgements, routing and credit on
delivery, durability of records and cursors across restarts, bad input."""
import os
import socket
import struct
import time

import msgpack

from netns import HostDaemon, network
from omni import (IntakeClient, WriterClient, binary, commit_record, free_port, metric_record,
                  record, wait_until)


def commit(i):
    return commit_record(i, tz=60, files_changed=1, insertions=2)


def test_ack_routing_and_trim(pipeline):
    p = pipeline(writers=("archive", "relational"))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    frames = [metric_record(i) for i in range(50)] + [commit(i) for i in range(30)]
    assert intake.batch(frames) == (80, 0)

    # relational does not take metric records: it gets the 30 commits only,
    # archive gets all 80, each in journal order.
    archive, relational = WriterClient(p.delivery, "archive"), WriterClient(p.delivery, "relational")
    assert archive.hello() == 1 and relational.hello() == 1
    got = relational.receive(30)
    assert [msgpack.unpackb(r)["kind"] for r in got] == ["git.commit"] * 30
    assert got == frames[50:]
    assert archive.receive(80, ack=False) == frames

    # Nothing leaves the journal until both acknowledged.
    m = p.ingestd.metrics()
    assert m["omni_ingestd_records_accepted_total"] == 80
    # The gauge is refreshed on ingestd's housekeeping tick
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_journal_records"] == 80, 10,
               "the journal gauge to count the 80 records")
    archive.ack()
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"] == 80,
               10, "all records acknowledged by both writers")
    status, text = p.ingestd.health()
    assert status == 200 and "in_journal=0" in text, text
    for c in (intake, archive, relational):
        c.close()


def test_unacked_records_survive_restart(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    frames = [metric_record(i) for i in range(100)]
    assert intake.batch(frames[:60]) == (60, 0)
    assert intake.batch(frames[60:]) == (40, 0)
    w = WriterClient(p.delivery, "archive", window=60)
    w.hello()
    first = w.receive(60, ack=False)
    w.ack(60)  # only the first 60 are stored
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"] == 60, 10,
               "cursor at 61")
    p.ingestd.kill9()
    p.ingestd.start()
    w.close()
    w = WriterClient(p.delivery, "archive")
    assert w.hello() == 61
    assert w.receive(40) == frames[60:]
    assert first == frames[:60]
    intake.close()
    w.close()


def test_credit_bounds_delivery(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    assert intake.batch([metric_record(i) for i in range(500)]) == (500, 0)
    w = WriterClient(p.delivery, "archive", window=100)
    w.hello()
    got = w.receive(100, ack=False)
    assert len(got) == 100
    # Without an ACK no more records come.
    assert not w.sock.poll(500)
    w.ack()
    assert len(w.receive(100, ack=False)) == 100
    intake.close()
    w.close()


def test_unknown_writer_is_refused(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    w = WriterClient(p.delivery, "metrics")
    try:
        w.hello()
        raise AssertionError("HELLO from an unconfigured writer was welcomed")
    except AssertionError as e:
        assert "not configured" in str(e)
    w.close()


def test_malformed_intake_message(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    intake.send_raw([b"HELLO?"])
    reply = intake.recv()
    assert reply[1] == b"ERROR"
    intake.send_raw([b"OI/1", b"BATCH", b"short"])
    assert intake.recv()[1] == b"ERROR"
    # Another signature with record frames: the whole message is one bad input,
    # and none of its frames is taken for the next message.
    intake.send_raw([b"OI/9", b"BATCH", struct.pack(">Q", 7), metric_record(2), metric_record(3)])
    reply = intake.recv()
    assert reply[1] == b"ERROR" and reply[2] == struct.pack(">Q", 7)
    assert intake.batch([metric_record(1)]) == (1, 0)
    m = p.ingestd.metrics()
    assert m['omni_ingestd_records_rejected_total{reason="bad_frame"}'] == 3
    assert m["omni_ingestd_records_received_total"] == 4
    assert p.ingestd.health()[0] == 200
    intake.close()


def test_dead_letters_expire_after_dead_letter_retain(workdir):
    from omni import IntakeClient, Pipeline, record, wait_until
    p = Pipeline(workdir, writers=("archive",), extra=("--dead-letter-retain=1s",))
    with p:
        p.ingestd.start()
        client = IntakeClient(p.intake)
        assert client.batch([b"\xc1 not msgpack", b"\x93\x01\x02\x03",
                             record("metric", "h", {"name": "ok", "value": 1.0})]) == (1, 2)
        client.close()
        wait_until(lambda: p.ingestd.metrics().get(
            "omni_ingestd_dead_letters_expired_total", 0) == 2, 30, "dead letters expired")
        assert "event=journal.dead_letters_expired count=2" in p.ingestd.log()
        # the accepted record is not touched
        assert p.ingestd.metrics()["omni_ingestd_journal_records"] == 1


def test_array_element_types_from_the_kinds_table(pipeline):
    """git.commit's parents are strings and its files maps with a str path
    (the kinds table's element types): a record with another element type is
    rejected as bad_body by ingestd, so no writer has to check it again."""
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    good = commit(1)
    bad_parent = msgpack.unpackb(commit(2))
    bad_parent["body"]["parents"] = ["a" * 40, 7]
    bad_file = msgpack.unpackb(commit(3))
    bad_file["body"]["files"] = [{"path": "a.c", "insertions": 1}, {"path": 5}]
    not_a_map = msgpack.unpackb(commit(4))
    not_a_map["body"]["files"] = ["a.c"]
    frames = [good] + [record(r["kind"], r["src"], r["body"], ts=r["ts"])
                       for r in (bad_parent, bad_file, not_a_map)]
    assert intake.batch(frames) == (1, 3)
    m = p.ingestd.metrics()
    assert m['omni_ingestd_records_rejected_total{reason="bad_body"}'] == 3
    intake.close()


def zmtp_peer(address, port, socket_type):
    """A ZMTP 3.0 peer by hand (NULL mechanism), through its handshake: a
    plain TCP socket, made in whatever network namespace the thread is in
    (libzmq would make its connections in its own I/O thread's)."""
    s = socket.create_connection((address, port), timeout=5)
    s.sendall(b"\xff" + bytes(7) + b"\x01\x7f\x03\x00" + b"NULL".ljust(20, b"\0") + bytes(32))
    body = b"\x05READY\x0bSocket-Type" + struct.pack(">I", len(socket_type)) + socket_type
    s.sendall(bytes([0x04, len(body)]) + body)

    def read(n):
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            assert chunk, "ingestd closed the connection in the handshake"
            data += chunk
        return data
    read(64)  # its greeting
    assert read(read(2)[1]).startswith(b"\x05READY")
    return s


def test_peers_gone_without_a_fin_are_closed(workdir):
    """A peer whose host is cut off (no FIN, no reset: packets just stop) is
    closed within peer_timeout: an idle one by TCP keepalives, one that
    records are sent to and go unacknowledged by TCP_USER_TIMEOUT. A live
    idle peer stays (its kernel answers the probes). ZMTP heartbeats did
    this before; libzmq aborts with them (ingestd/route.c)."""
    hosts = {"ingestd": 1, "peer": 2}
    with network(hosts, "10.204.0") as net:
        here = net.address("ingestd")
        intake, delivery, tap, http = (free_port() for _ in range(4))
        ingestd = HostDaemon(net, "ingestd", "ingestd", workdir, {}, http, args=[
            f"--intake=tcp://{here}:{intake}", f"--delivery=tcp://{here}:{delivery}",
            f"--tap=tcp://{here}:{tap}", f"--journal-dir={os.path.join(workdir, 'journal')}",
            "--writers=archive", "--peer-timeout=3s", f"--http={here}:{http}"],
            heard_from="ingestd")
        try:
            ingestd.start()
            leave = net.enter("peer")
            try:
                idle = zmtp_peer(here, intake, b"DEALER")
                subscriber = zmtp_peer(here, tap, b"SUB")
                subscriber.sendall(b"\x00\x01\x01")  # subscribes to every record
            finally:
                leave()
            leave = net.enter("ingestd")
            try:
                live = zmtp_peer(here, intake, b"DEALER")
            finally:
                leave()
            since = time.monotonic()

            def connections():
                m = ingestd.metrics()
                return (m['omni_ingestd_connections{socket="intake"}'],
                        m['omni_ingestd_connections{socket="tap"}'],
                        m["omni_ingestd_tap_subscriptions"])
            wait_until(lambda: connections() == (2, 1, 1), 10, "the three peers connected")
            net.cut("peer")
            cut = time.monotonic()
            # Records for the subscriber: ingestd's kernel sends them and
            # hears nothing back
            out = net.run("ingestd", binary("omni-loadgen"), f"--intake=tcp://{here}:{intake}",
                          "--count=100", "--give-up=10s")
            assert out.returncode == 0, out.stderr[-2000:]
            sent = time.monotonic()
            wait_until(lambda: connections()[:2] == (1, 0), 10, "the cut-off peers closed")
            # Within peer_timeout (and the gauge's refresh): the idle one of
            # the cut, the subscriber of the records
            gone, late = time.monotonic() - cut, time.monotonic() - sent
            assert 1 <= gone and late < 3 + 1.5, f"closed {gone:.1f} s after the cut"
            # The live peer, idle longer than peer_timeout, is still there:
            # nothing tells of a close that does not come, so the test waits
            time.sleep(max(0.0, since + 4 - time.monotonic()))
            assert connections()[:2] == (1, 0)
            assert ingestd.health()[0] == 200
            for s in (idle, subscriber, live):
                s.close()
        finally:
            ingestd.stop()
