#!/usr/bin/python3
"""Hostile soak: every attack of issue 22 at once, for --duration, against a
pipeline carrying a steady good stream; reports ingestd's memory and the good
records lost.

The pipeline: ingestd (descriptor limit lowered to --fd-limit for it,
--memory-max), archiverd, and a real omni-tap subscribed to every kind. The
good stream: omni-loadgen at --rate records/s of every kind, its ids written
down. The attacks, each a thread (or a process) looping until the end:
  1 unread replies: intake DEALERs sending malformed batches, a delivery
    DEALER sending HELLOs for an unknown writer, none of them reading
  2 a fake writer: HELLOs for the configured `metrics` writer (not running),
    window 2^32-1, 40 HELLOs per connection, never reading; a new
    connection every 10 s
  3 the tap: a 20 MiB subscription (a process that reconnects for ever), 2,000
    subscriptions every 5 s, a subscriber to everything that never reads
  4 the tap: 1,000 unsubscribes of topics never subscribed, and of the empty
    topic, every second
  5 multi-frame messages: 6 x 64 MiB frames, 400 x 4 MiB frames (1.6 GB),
    60,000 record frames; every 10 s
  6 descriptors: as many idle connections as the limit and more
  9 names: HELLOs named archive\\0evil, 1 KB, non-UTF-8; a REPLAY whose writers
    frame tries to add log fields; every second
At the end: every good record must be in the archive exactly once, and
ingestd's anonymous memory (sampled every 10 ms; what memory_max bounds: the
journal's map is file-backed page cache) must have stayed under --memory-max.
Also reported: the good records the real omni-tap saw, /health's failures,
and ingestd's counters for each attack.

    bench/hostile_soak.py --duration 600   (default 3600 s)
"""
import argparse
import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from omni import MemoryPeak, Pipeline, Tap, archive_lines, binary, wait_until  # noqa: E402

import zmq  # noqa: E402

MB = 1 << 20


def memory(pid):
    """(VmRSS, VmHWM, RssAnon, RssFile) of a process, in bytes. memory_max
    bounds the anonymous part: the journal's map is file-backed (page cache
    the kernel reclaims), and counts in VmRSS as soon as ingestd reads it."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return tuple(int(fields[k].split()[0]) * 1024
                 for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"))


def size_bytes(text):
    units = {"k": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


class Attacks:
    def __init__(self, p, fd_limit, only=()):
        self.only = only  # attack numbers to run; empty = all
        self.p = p
        self.fd_limit = fd_limit
        self.stop = threading.Event()
        self.threads = []
        self.procs = []
        self.counts = {}

    def _loop(self, name, body, pause):
        ctx = zmq.Context()
        ctx.max_sockets = 8192
        n = 0
        try:
            while not self.stop.is_set():
                try:
                    body(ctx)
                    n += 1
                except zmq.ZMQError:
                    pass
                self.stop.wait(pause)
        finally:
            self.counts[name] = n
            ctx.destroy(0)

    def start(self, name, body, pause):
        if self.only and name.split("_")[0] not in self.only:
            return
        t = threading.Thread(target=self._loop, args=(name, body, pause), daemon=True)
        t.start()
        self.threads.append(t)

    @staticmethod
    def sock(ctx, kind, endpoint, **options):
        s = ctx.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        for k, v in options.items():
            s.setsockopt(getattr(zmq, k), v)
        s.connect(endpoint)
        return s

    def run_all(self):
        p = self.p
        deaf = dict(RCVHWM=1, RCVBUF=2048)

        # 1: unread replies
        state = {}

        def unread(ctx):
            if "intake" not in state:
                state["intake"] = [self.sock(ctx, zmq.DEALER, p.intake, **deaf) for _ in range(2)]
                state["delivery"] = self.sock(ctx, zmq.DEALER, p.delivery, **deaf)
            for _ in range(500):
                for s in state["intake"] + [state["delivery"]]:
                    try:
                        s.send_multipart([b"OD/1", b"HELLO", b"nosuch", struct.pack(">I", 10)]
                                         if s is state["delivery"] else [b"OI/1", b"BATCH"],
                                         zmq.NOBLOCK)
                    except zmq.Again:
                        pass
        self.start("1_unread", unread, 0.1)

        # 2: a fake writer
        def fake_writer(ctx):
            s = self.sock(ctx, zmq.DEALER, p.delivery, **deaf)
            for _ in range(40):
                s.send_multipart([b"OD/1", b"HELLO", b"metrics", struct.pack(">I", 0xFFFFFFFF),
                                  b"fake:1@soak"], zmq.NOBLOCK)
                if self.stop.wait(0.05):
                    break
            self.stop.wait(8)
            s.close(0)
        self.start("2_fake_writer", fake_writer, 0)

        # 3: the tap
        if not self.only or "3" in self.only:
            self.procs.append(subprocess.Popen([sys.executable, "-c", (
                "import sys, zmq\n"
                "s = zmq.Context.instance().socket(zmq.SUB)\n"
                "s.setsockopt(zmq.SUBSCRIBE, b'x' * (20 << 20))\n"
                "s.connect(sys.argv[1])\n"
                "sys.stdin.read()\n"), p.tap], stdin=subprocess.PIPE))

        def tap_topics(ctx):
            s = self.sock(ctx, zmq.XSUB, p.tap, SNDHWM=0)
            for i in range(2000):
                s.send(b"\x01" + f"t-{i:06d}-".encode() + b"y" * 200, zmq.NOBLOCK)
            self.stop.wait(5)
            s.close(0)
        self.start("3_tap_topics", tap_topics, 0)

        def tap_deaf(ctx):
            s = self.sock(ctx, zmq.SUB, p.tap, **deaf)
            s.setsockopt(zmq.SUBSCRIBE, b"")
            self.stop.wait(30)
            s.close(0)
        self.start("3_tap_deaf", tap_deaf, 0)

        # 4: bogus unsubscribes
        def unsubscribes(ctx):
            s = self.sock(ctx, zmq.XSUB, p.tap)
            for i in range(1000):
                s.send(b"\x00" + f"never-{i}".encode(), zmq.NOBLOCK)
            for _ in range(10):
                s.send(b"\x00", zmq.NOBLOCK)
            s.close(0)
        self.start("4_unsubscribe", unsubscribes, 1)

        # 5: multi-frame messages
        big, frame = bytes(64 * MB), bytes(4 * MB)

        def multi_frame(ctx):
            socks = [self.sock(ctx, zmq.DEALER, p.intake, SNDHWM=1, SNDTIMEO=5000)
                     for _ in range(3)]
            head = [b"OI/1", b"BATCH", struct.pack(">Q", 1)]
            socks[0].send_multipart(head + [big] * 6, copy=False)
            socks[1].send_multipart(head + [frame] * 400, copy=False)
            socks[2].send_multipart(head + [b"\xc0"] * 60000)
            self.stop.wait(10)
            for s in socks:
                s.close(0)
        self.start("5_multi_frame", multi_frame, 0)

        # 6: descriptors
        def descriptors(ctx):
            socks = []
            try:
                for _ in range(self.fd_limit + 100):
                    socks.append(self.sock(ctx, zmq.DEALER, p.intake))
                self.stop.wait(20)
            finally:
                for s in socks:
                    s.close(0)
        self.start("6_descriptors", descriptors, 1)

        # 9: names and log fields
        def names(ctx):
            w = self.sock(ctx, zmq.DEALER, p.delivery)
            for name in (b"archive\0evil", b"x" * 1000, b"\xff\xfe"):
                w.send_multipart([b"OD/1", b"HELLO", name, struct.pack(">I", 100), b"evil"],
                                 zmq.NOBLOCK)
            c = self.sock(ctx, zmq.DEALER, p.intake)
            c.send_multipart([b"OI/1", b"REPLAY", struct.pack(">Q", 7),
                              b'x" level=error event=ingestd.stop'], zmq.NOBLOCK)
            self.stop.wait(0.5)
            w.close(0)
            c.close(0)
        self.start("9_names", names, 0.5)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)
        for proc in self.procs:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=3600, help="seconds of attack")
    ap.add_argument("--rate", type=int, default=200, help="good records per second")
    ap.add_argument("--fd-limit", type=int, default=1024, help="ingestd's descriptor limit")
    ap.add_argument("--memory-max", default="512M", help="ingestd --memory-max")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--attacks", default="",
                    help="only these attacks, by number, comma-separated (e.g. 2,5); default all")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="omni-hostile-soak-")
    # metrics is configured and never runs: the fake writer takes its name
    p = Pipeline(workdir, writers=("archive", "metrics"), journal_max="4G",
                 extra=(f"--memory-max={args.memory_max}",))
    limit = args.fd_limit
    p.ingestd.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    attacks = None
    tap = None
    loadgen = None
    status = 1
    try:
        p.ingestd.start()
        p.archiverd().start()
        tap = Tap(workdir, "real", p.tap)
        wait_until(tap.subscribed, 20, "omni-tap subscribed")
        pid = p.ingestd.proc.pid
        ids_path = os.path.join(workdir, "good-ids")
        loadgen = subprocess.Popen(
            [binary("omni-loadgen"), f"--intake={p.intake}", "--kind=mix", "--src=good",
             f"--rate={args.rate}", f"--duration={int(args.duration)}s", f"--ids-out={ids_path}",
             "--give-up=0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        attacks = Attacks(p, limit, tuple(a for a in args.attacks.split(",") if a))
        attacks.run_all()
        # Every 10 ms: an attack fills hundreds of MB in a second
        sampler = MemoryPeak(pid, 0.01, size_bytes(args.memory_max))
        start = time.monotonic()
        rss_max, samples, health_checks, health_fail = 0, 0, 0, 0
        while time.monotonic() - start < args.duration:
            rss, _, anon, file_ = memory(pid)
            rss_max = max(rss_max, rss)
            samples += 1
            if samples % 10 == 0:
                health_checks += 1
                try:
                    if p.ingestd.health()[0] != 200:
                        health_fail += 1
                except OSError:
                    health_fail += 1
            if samples % 60 == 0:
                print(f"{time.monotonic() - start:6.0f}s rss={rss / MB:.0f}MB "
                      f"anon={anon / MB:.0f}MB file={file_ / MB:.0f}MB "
                      f"anon_max={sampler.anon_max / MB:.0f}MB", flush=True)
            time.sleep(1)
        attacks.finish()
        out, err = loadgen.communicate(timeout=600)
        with open(ids_path) as f:
            sent = {line.strip() for line in f if line.strip()}

        def archived():
            return [line["id"] for line in archive_lines(p.archive_dir) if line["id"] in sent]
        try:
            wait_until(lambda: len(set(archived())) >= len(sent), 300, "the good stream archived")
        except AssertionError:
            pass
        got = archived()
        lost = len(sent - set(got))
        duplicated = len(got) - len(set(got))
        rss, hwm, anon, _ = memory(pid)
        sampler.stop()
        m = p.ingestd.metrics()
        tapped = tap.text().count('"src":"good"')
        tapped_ids = set()
        for line in tap.text().splitlines():
            if '"src":"good"' in line:
                try:
                    tapped_ids.add(json.loads(line)["id"])
                except (ValueError, KeyError):
                    pass
        log_bytes = os.path.getsize(p.ingestd.log_path)
        print(f"duration_s={args.duration:.0f} good_sent={len(sent)} good_lost={lost} "
              f"good_duplicated={duplicated} tap_seen={tapped} "
              f"tap_seen_distinct={len(tapped_ids & sent)}")
        try:
            status_, health = p.ingestd.health()
            print(f"health_at_end={status_} " + " ".join(health.splitlines()[:2]))
        except OSError as e:
            print(f"health_at_end=error {e}")
        print(f"ingestd_anon_max_mb={sampler.anon_max / MB:.0f} (memory_max "
              f"{args.memory_max}, samples over it every 10 ms: {sampler.over}) "
              f"ingestd_rss_max_mb={sampler.rss_max / MB:.0f} ingestd_vmhwm_mb={hwm / MB:.0f} "
              f"ingestd_rss_end_mb={rss / MB:.0f} ingestd_anon_end_mb={anon / MB:.0f}")
        print(f"health_failures={health_fail} of {health_checks} log_bytes={log_bytes}")
        for key in sorted(m):
            if any(k in key for k in ("connections_dropped_total", "replies_dropped_total",
                                      "hello_ignored_total", "tap_records_skipped",
                                      "accept_failed_total", "delivery_bad_messages",
                                      "memory_shed", "memory_peak", "records_rejected_total",
                                      "tap_subscriptions")):
                print(f"  {key} {m[key]:.0f}")
        print("attack rounds: " + " ".join(f"{k}={v}" for k, v in sorted(attacks.counts.items())))
        status = 0 if lost == 0 and duplicated == 0 and sampler.anon_max < sampler.budget else 1
    finally:
        if attacks:
            attacks.finish()
        if loadgen and loadgen.poll() is None:
            loadgen.kill()
            loadgen.wait()
        if tap:
            tap.stop()
        p.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"workdir={workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
