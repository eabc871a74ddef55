"""Hostile peers (issue 22): peers that do not follow the conversation.

One test per finding, each an attack against a real ingestd (with a real
archiverd and a real omni-tap) and its bound: ingestd's memory (VmHWM, the
peak, and VmRSS after) under a stated ceiling where the finding saw
gigabytes, a real omni-tap still receiving, and good records sent after the
attack stored once each in the archive. The ceilings are far above what
ingestd uses (~30 MB) and far below what the attacks did before."""
import os
import resource
import struct
import subprocess
import sys
import threading
import time

import pytest
import zmq

from omni import MemoryPeak, Tap, archive_lines, http_get, wait_until

MB = 1 << 20


def memory(pid):
    """(VmRSS, VmHWM) of a process, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


class Scene:
    """ingestd + archiverd + a real omni-tap subscribed to every kind."""

    def __init__(self, pipeline, workdir, writers=("archive",), extra=(), preexec=None,
                 writer_up=True):
        self.workdir = workdir
        self.p = pipeline(writers=writers, extra=("--log-level=info", *extra))
        self.p.ingestd.preexec = preexec
        self.p.ingestd.start()
        self.archiverd = self.p.archiverd()
        if writer_up:
            self.archiverd.start()
        self.tap = Tap(workdir, "real", self.p.tap)
        wait_until(self.tap.subscribed, 20, "omni-tap subscribed")
        self.ctx = zmq.Context()
        self.rounds = 0
        self.procs = []  # attackers in processes of their own

    @property
    def pid(self):
        return self.p.ingestd.proc.pid

    def metric(self, name):
        return self.p.ingestd.metrics().get(f"omni_ingestd_{name}", 0)

    def socket(self, kind, endpoint, **options):
        s = self.ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        for k, v in options.items():
            s.setsockopt(getattr(zmq, k), v)
        s.connect(endpoint)
        return s

    def good(self, n=500, *loadgen_args):
        """Sends `n` good records; asserts each is stored once in the archive
        and that the real omni-tap sees them. Returns their ids."""
        self.rounds += 1
        src = f"good-{self.rounds}"
        ids_path = os.path.join(self.workdir, f"ids-{self.rounds}")
        self.p.loadgen("--kind=mix", f"--count={n}", f"--src={src}", f"--seed={self.rounds}",
                       f"--ids-out={ids_path}", "--give-up=60s", *loadgen_args)
        with open(ids_path) as f:
            ids = {line.strip() for line in f if line.strip()}
        assert len(ids) == n

        def stored():
            try:
                return [line["id"] for line in archive_lines(self.p.archive_dir)
                        if line["id"] in ids]
            except ValueError:  # a line being written
                return []
        wait_until(lambda: len(stored()) >= n, 60, f"{n} good records archived")
        got = stored()
        assert len(got) == n and set(got) == ids, "every good record stored once"
        # Counted in the text: omni-tap may be writing its last line
        marker = f'"src":"{src}"'
        wait_until(lambda: self.tap.text().count(marker) >= n, 30,
                   "the real omni-tap to see the good records")
        return ids

    def assert_memory(self, peak_mb, after_mb):
        rss, hwm = memory(self.pid)
        assert hwm < peak_mb * MB, f"ingestd peak memory {hwm / MB:.0f} MB >= {peak_mb} MB"
        assert rss < after_mb * MB, f"ingestd memory {rss / MB:.0f} MB >= {after_mb} MB"
        return rss, hwm

    def log_lines(self, event):
        return [line for line in self.p.ingestd.log().splitlines() if f"event={event} " in line
                or line.endswith(f"event={event}")]

    def close(self):
        assert self.tap.stop() == 0


@pytest.fixture
def scene(pipeline, workdir):
    """Makes the test's Scene; its omni-tap and sockets go after the test,
    whatever happens in it (the pipeline fixture stops the daemons)."""
    made = []

    def make(**kwargs):
        made.append(Scene(pipeline, workdir, **kwargs))
        return made[-1]
    yield make
    for s in made:
        for proc in s.procs:
            proc.kill()
            proc.wait()
        s.ctx.destroy(0)
        s.tap.stop()


def test_1_unread_replies_are_dropped_and_the_peer_disconnected(scene):
    """Before: intake replies queued without limit (2.3 GB in 45 s, then out
    of memory), and RESETs on delivery likewise, with a warn line each."""
    s = scene()
    s.good()
    rx = dict(RCVHWM=1, RCVBUF=2048, SNDHWM=1000000)
    intake = [s.socket(zmq.DEALER, s.p.intake, **rx) for _ in range(4)]
    delivery = [s.socket(zmq.DEALER, s.p.delivery, **rx) for _ in range(2)]
    bad_batch = [b"OI/1", b"BATCH"]
    hello = [b"OD/1", b"HELLO", b"nosuch", struct.pack(">I", 10)]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (
            s.metric('replies_dropped_total{socket="intake"}') and
            s.metric('replies_dropped_total{socket="delivery"}')):
        for _ in range(2000):
            for sock in intake:
                try:
                    sock.send_multipart(bad_batch, zmq.NOBLOCK)
                except zmq.Again:
                    pass
            for sock in delivery:
                try:
                    sock.send_multipart(hello, zmq.NOBLOCK)
                except zmq.Again:
                    pass
    assert s.metric('replies_dropped_total{socket="intake"}') > 0
    assert s.metric('replies_dropped_total{socket="delivery"}') > 0
    wait_until(lambda: s.metric('connections_dropped_total{reason="unread"}') > 0, 5,
               "peers that do not read disconnected")
    s.assert_memory(peak_mb=300, after_mb=200)
    # Logged once each (rate-limited), not per message
    assert len(s.log_lines("intake.bad_frame")) <= 2
    assert len(s.log_lines("delivery.unknown_writer")) <= 2
    assert len(s.p.ingestd.log()) < 200_000
    s.good()
    s.close()


def test_2_a_hello_again_resends_nothing_in_flight(scene):
    """Before: a fake writer with a window of 2^32-1 re-sending HELLO got the
    whole backlog queued again per HELLO: 40 HELLOs, +1.95 GB."""
    s = scene(writers=("archive", "relational"))
    backlog = 20000
    s.p.loadgen("--kind=git.commit", f"--count={backlog}", "--size=2k", "--src=backlog",
                "--give-up=60s")
    fake = s.socket(zmq.DEALER, s.p.delivery, RCVHWM=1, RCVBUF=2048)
    hello = [b"OD/1", b"HELLO", b"relational", struct.pack(">I", 0xFFFFFFFF), b"fake:1@x"]
    for _ in range(40):
        fake.send_multipart(hello)
        time.sleep(0.05)  # the attack's own pace, not a synchronisation
    wait_until(lambda: s.metric("hello_ignored_total") >= 30, 10, "HELLOs again ignored")
    delivered = s.metric('records_delivered_total{writer="relational"}')
    assert 0 < delivered <= backlog, f"{delivered} records sent for a backlog of {backlog}"
    log = s.p.ingestd.log()
    assert "window=100000" in log  # 2^32-1 capped to writer_window_max
    s.assert_memory(peak_mb=400, after_mb=300)
    s.good()
    s.close()


def test_3_the_tap_bounds_topics_and_subscribers_that_do_not_read(scene):
    """Before: a 20 MiB topic took 2 GB and blocked intake for 7 s; a
    subscriber that never reads kept 10,000 records (up to 40 GiB); past the
    subscription bound every tap peer went, the real omni-tap with them."""
    s = scene()
    # In a process of its own: libzmq in the attacker keeps the topic in a
    # trie too, and crashes tearing a 20 MiB one down
    huge_topic = subprocess.Popen([sys.executable, "-c", (
        "import sys, zmq\n"
        "s = zmq.Context.instance().socket(zmq.SUB)\n"
        "s.setsockopt(zmq.SUBSCRIBE, b'x' * (20 << 20))\n"
        "s.connect(sys.argv[1])\n"
        "print('subscribed', flush=True)\n"
        "sys.stdin.read()\n"), s.p.tap], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    s.procs.append(huge_topic)
    assert huge_topic.stdout.readline() == b"subscribed\n"
    # Subscription floods for as long as good records flow: each flooder
    # is dropped past 64 KiB of subscriptions, the real omni-tap keeps its
    # own and sees every good record (a drop would lose those published
    # while it reconnects)
    stop = threading.Event()
    floods = []

    def flood():
        while not stop.is_set():
            many = s.socket(zmq.XSUB, s.p.tap, SNDHWM=0)  # not dropped at its own queue
            for i in range(3000):
                many.send(b"\x01" + f"topic-{i:06d}-".encode() + b"y" * 200)
            floods.append(1)
            stop.wait(0.2)
            many.close(0)
    flooder = threading.Thread(target=flood, daemon=True)
    flooder.start()
    try:
        wait_until(lambda: s.metric('connections_dropped_total{reason="tap_topics"}') > 0, 20,
                   "the flooding tap peer dropped past its subscription bound")
        s.good(2000)
        # The flood goes on until it has been dropped twice: good records
        # that went through before a second flood would prove nothing more
        wait_until(lambda: s.metric('connections_dropped_total{reason="tap_topics"}') >= 2
                   and len(floods) >= 2, 20, "a second flooding tap peer dropped")
    finally:
        stop.set()
        flooder.join(10)
    with open(s.tap.err_path) as f:
        assert f.read().count("event=tap.subscribed") == 1
    deaf = s.socket(zmq.SUB, s.p.tap, RCVHWM=1, RCVBUF=2048)
    deaf.setsockopt(zmq.SUBSCRIBE, b"")
    # Large records (over tap_budget/10000) are not published; small ones
    # queue at most 10,000 messages per subscriber
    s.p.loadgen("--kind=git.commit", "--count=40", "--size=1M", "--src=big", "--window=2",
                "--batch=4", "--give-up=60s")
    s.p.loadgen("--kind=git.commit", "--count=12000", "--size=1k", "--src=small",
                "--give-up=60s")
    assert s.metric("tap_records_skipped_total") >= 40
    s.assert_memory(peak_mb=400, after_mb=300)
    s.good()
    s.close()


def test_4_bogus_unsubscribes_do_not_blind_the_tap(scene):
    """Before: 1,000 unsubscribes of topics never subscribed drove the count
    to -1000 and nothing was published until ingestd restarted."""
    s = scene()
    s.good()
    attacker = s.socket(zmq.XSUB, s.p.tap)
    for i in range(1000):
        attacker.send(b"\x00" + f"never-{i}".encode())
    for _ in range(10):
        attacker.send(b"\x00")  # even the real tap's own topic, the empty one
    attacker.close(0)
    assert s.metric("tap_subscriptions") >= 1
    s.good()
    s.assert_memory(peak_mb=200, after_mb=200)
    s.close()


def test_5_multi_frame_messages_are_bounded(scene):
    """Before: every frame under 256 MiB, libzmq buffered whole messages:
    6 x 250 MiB frames, 1.25 GB; from three connections, 4 GB. Now the
    memory guard keeps ingestd under memory_max while the attack runs, by
    dropping the connections that hold most, and good records sent
    meanwhile are all stored once."""
    s = scene(extra=("--memory-max=256M", "--max-batch-records=50000"))
    peak = MemoryPeak(s.pid)
    good = {}

    def good_stream():
        try:
            good["ids"] = s.good(3000, "--rate=1000")  # 3 s, under attack
        except BaseException as e:  # reported by the test's thread
            good["error"] = e
    goods = threading.Thread(target=good_stream, daemon=True)
    goods.start()
    # Frames over max_record_size + 64 KiB: the connection goes at the first
    big = bytes(64 * MB)
    over = s.socket(zmq.DEALER, s.p.intake)
    over.send_multipart([b"OI/1", b"BATCH", struct.pack(">Q", 1)] + [big] * 6, copy=False)
    # Frames under the limit, but a 1.6 GB message from each of 4 peers,
    # round after round while the good stream flows: the connections
    # holding most are dropped, with what libzmq held for them
    frame = bytes(4 * MB)
    round_ = 0
    while round_ < 2 or goods.is_alive():
        builders = [s.socket(zmq.DEALER, s.p.intake, SNDHWM=1) for _ in range(4)]
        for i, b in enumerate(builders):
            b.send_multipart([b"OI/1", b"BATCH", struct.pack(">Q", 10 + i)] + [frame] * 400,
                             copy=False)
        wait_until(lambda: s.metric('connections_dropped_total{reason="memory"}') >= 4 * round_ + 4,
                   30, "the connections building giant messages dropped")
        for b in builders:
            b.close(0)
        round_ += 1
    goods.join(120)
    assert not goods.is_alive() and "error" not in good, good.get("error")
    anon_peak = peak.stop()
    assert anon_peak < 256 * MB, f"ingestd's memory peaked at {anon_peak / MB:.0f} MiB"
    assert s.metric("memory_shed_bytes_total") > 256 * MB
    # A batch of more record frames than max_batch_records: the rest is one
    # bad input, refused
    many = s.socket(zmq.DEALER, s.p.intake)
    many.send_multipart([b"OI/1", b"BATCH", struct.pack(">Q", 99)] + [b"\xc0"] * 60000)
    assert many.poll(30000)
    reply = many.recv_multipart()
    assert reply[1] == b"ERROR" and b"max_batch_records" in reply[3]
    wait_until(lambda: memory(s.pid)[0] < 200 * MB, 20, "ingestd's memory back under 200 MB")
    status, text = s.p.ingestd.health()
    assert status == 200, text
    assert "memory_max=268435456" in text and "sheds=" in text
    assert len(s.log_lines("ingestd.memory_over")) <= 3  # rate-limited
    s.good()
    s.close()


def test_6_idle_connections_cannot_take_every_descriptor(scene):
    """Before: 1,002 idle handshaked connections exhausted 1,024 descriptors:
    collectors refused, /health down, 100 % CPU on failed accepts and
    570,000 log lines in 15 s. Here with a limit of 256, set for ingestd."""
    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    s = scene(preexec=low_limit, extra=("--idle-timeout=2s",))
    limit = s.metric("connections_dropped_total")  # registered
    assert "max_connections=160" in s.p.ingestd.log()  # 256 less the reserve
    idle = [s.socket(zmq.DEALER, s.p.intake) for _ in range(400)]
    # Every one of them is accepted and handshakes; at the limit the idlest
    # goes for each newcomer
    wait_until(lambda: s.metric('connections_dropped_total{reason="over_limit"}') >= 200, 30,
               "connections over the limit dropped")
    cpu0, t0 = cpu_seconds(s.pid), time.monotonic()
    status, _ = http_get(s.p.ingestd.url("/health"), timeout=5)
    assert status == 200
    s.good()  # a new collector gets in and its records are stored
    busy = (cpu_seconds(s.pid) - cpu0) / (time.monotonic() - t0)
    assert busy < 1.0, f"ingestd at {busy:.0%} CPU"
    assert limit is not None
    # No line per accept (the finding: 570,000 in 15 s); a writer the churn
    # disconnects says so when it comes back, which is not per accept
    assert s.p.ingestd.log().count("\n") < 2000
    assert len(s.log_lines("ingestd.accept_failed")) <= 2
    assert len(s.log_lines("ingestd.connection_limit")) <= 2
    for sock in idle:
        sock.close(0)
    # Quiet peers give their descriptors back after idle_timeout
    quiet = [s.socket(zmq.DEALER, s.p.intake) for _ in range(5)]
    wait_until(lambda: s.metric('connections_dropped_total{reason="idle"}') >= 5, 15,
               "idle connections dropped after idle_timeout")
    for sock in quiet:
        sock.close(0)
    s.assert_memory(peak_mb=300, after_mb=300)
    s.close()


def test_9_names_are_validated_and_logged_values_escaped(scene):
    """Before: a HELLO named archive\\0evil was welcomed as archive; names
    were logged unescaped, so a peer could add fields to a log line."""
    s = scene()
    s.good()

    def hello(name):
        w = s.socket(zmq.DEALER, s.p.delivery)
        w.send_multipart([b"OD/1", b"HELLO", name, struct.pack(">I", 100), b"evil:1@x"])
        assert w.poll(10000), "an answer to the HELLO"
        reply = w.recv_multipart()
        w.close(0)
        return reply
    # (a name over the delivery frame limit, 4 KiB, drops the connection)
    for name in (b"archive\0evil", b"x" * 1000, b"\xff\xfe", b"archive ", b""):
        reply = hello(name)
        assert reply[1] == b"RESET" and b"malformed HELLO" in reply[2], (name[:20], reply)
    # The real archiverd still holds its name
    status, text = s.p.ingestd.health()
    assert status == 200 and "holder=" in text and "evil" not in text
    # A value a peer chose, meant to add fields, stays one quoted value
    client = s.socket(zmq.DEALER, s.p.intake)
    client.send_multipart([b"OI/1", b"REPLAY", struct.pack(">Q", 7),
                           b'x" level=error event=ingestd.stop'])
    assert client.poll(10000)
    assert client.recv_multipart()[1] == b"ERROR"
    lines = s.log_lines("intake.bad_frame")
    assert len(lines) == 1
    assert '\\" level=error event=ingestd.st' in lines[0]  # one value, quotes escaped
    # Every line is one event: nothing injected stands as a field of its own
    for line in s.p.ingestd.log().splitlines():
        if line.startswith("----"):
            continue
        assert line.count(" event=") == 1 or ' level=error event=ingestd.stop' not in line
        assert "event=ingestd.stop" not in line.split(" detail=")[0]
        assert len(line) < 4096
    [bad] = s.log_lines("delivery.bad_message")
    assert "61726368697665006576696c" in bad  # archive\0evil, in hex
    s.good()
    s.close()
