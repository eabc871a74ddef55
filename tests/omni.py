"""Helpers shared by the integration tests and the benchmarks: run the daemons
as real processes, speak the wire protocol (proto/PROTOCOL.md) with real
ZeroMQ sockets, read /metrics and /health, make records the way the
collectors do (git histories read back with git itself), and use real
PostgreSQL servers (a scratch database, or a private server a test may stop).
No mocks: every test talks to real processes."""
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit

import msgpack
import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OMNI_BIN") or os.path.join(ROOT, "build", "bin")


def binary(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built (run make)")
    return path


_ports_given = set()


class MemoryPeak(threading.Thread):
    """A process's memory every `interval` s until stop(): the peak of its
    anonymous part (resident less file-backed, what ingestd's memory_max
    bounds: the journal's map is page cache) and of all of it, and how many
    samples went over `budget`. VmHWM counts file pages, and a sample now
    and then misses what an attack fills in a second."""

    def __init__(self, pid, interval=0.005, budget=None):
        super().__init__(daemon=True)
        self.pid, self.interval, self.budget = pid, interval, budget
        self.anon_max = self.rss_max = self.over = 0
        self.done = threading.Event()
        self.start()

    def run(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self.done.wait(self.interval):
            try:
                with open(f"/proc/{self.pid}/statm") as f:
                    _, resident, shared = map(int, f.read().split()[:3])
            except OSError:  # the process is gone: its caller says so
                return
            anon = (resident - shared) * page
            self.anon_max = max(self.anon_max, anon)
            self.rss_max = max(self.rss_max, resident * page)
            self.over += bool(self.budget and anon > self.budget)

    def stop(self):
        self.done.set()
        self.join()
        return self.anon_max


def guarded(argv):
    """`argv` run so that the process dies with the test run: a test process
    that aborts (a crash in a library, the run killed) runs no teardown, and
    daemons left behind would keep ports, CPU and journals. setpriv's
    parent-death signal survives the exec; the parent is the thread that
    started the process, so only the main thread's children get it (a
    thread that ends would take its daemons with it)."""
    if threading.current_thread() is threading.main_thread() and shutil.which("setpriv"):
        return ["setpriv", "--pdeathsig", "KILL", "--", *argv]
    return list(argv)


def worker():
    """(index, count) of this pytest-xdist worker, (0, 1) when run alone."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return (int(name[2:]) if name.startswith("gw") else 0), max(count, 1)


def worker_port(port):
    """Whether `port` is this worker's. A port is taken from the kernel, let
    go, and bound again by a daemon a moment later: in between, a test on
    another worker could be handed the same one. Workers keep to ports of
    their own (by pairs: the kernel gives bind() odd ports and connect()
    even ones, when it can), so that cannot happen between them."""
    index, count = worker()
    return (port // 2) % count == index


def free_port():
    """A free port, never one given before in this process: the kernel may
    hand the same ephemeral port to two calls in a row (a Pipeline takes
    four), and then two daemons' binds collide; and one of this worker's."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given and worker_port(port):
            _ports_given.add(port)
            return port


def http_get(url, timeout=5):
    """Returns (status, text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """Prometheus text -> {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def cpu_seconds(pid):
    """User + system CPU seconds of a process (all its threads), from /proc;
    0.0 once it is gone. For the benchmarks' per-process CPU columns."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_until(predicate, timeout=30, what="condition", interval=0.02):
    """Polls a readiness signal; fails the test with `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Daemon:
    """One daemon process with its own log file and HTTP port."""

    def __init__(self, name, args, workdir, http_port=None, env=None, binary_name=None):
        self.name = name
        self.args = [binary(binary_name or name)] + list(args)
        self.http_port = http_port
        if http_port is not None:
            self.args.append(f"--http=127.0.0.1:{http_port}")
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.env = dict(os.environ, **(env or {}))
        # Under the sanitizer build (`make asan`) the quarantine of freed
        # memory is kept small: at ASan's 256 MiB default it alone exceeds the
        # budgets ingestd's memory guard is tested against, and the guard
        # cannot shed it
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86:"
                            "quarantine_size_mb=16")
        self.proc = None
        self.starts = 0
        self.preexec = None  # run in the child before exec (e.g. a lower rlimit)

    def start(self, wait=True):
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"---- start {self.starts}: {' '.join(self.args)}\n")
        log.flush()
        self.proc = subprocess.Popen(guarded(self.args), stdout=log, stderr=log,
                                     env=self.env, cwd=os.path.dirname(self.log_path),
                                     preexec_fn=self.preexec)
        log.close()
        if wait:
            self.wait_ready()
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def get(self, path, timeout=5):
        """(status, text) of GET `path` on the daemon's HTTP server."""
        return http_get(self.url(path), timeout=timeout)

    def wait_ready(self, timeout=30):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = self.get("/health", timeout=1)
                return status in (200, 503)
            except OSError:
                return False
        wait_until(up, timeout, f"{self.name} /health")

    def health(self):
        return self.get("/health")

    def metrics(self):
        return parse_metrics(self.get("/metrics")[1])

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self, timeout=30):
        """SIGTERM: the daemon drains and must exit 0."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"{self.name} did not stop on SIGTERM:\n{self.log()[-3000:]}")
            assert rc == 0, f"{self.name} exited {rc} on SIGTERM:\n{self.log()[-3000:]}"
        self.proc = None

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None


class Pipeline:
    """ingestd and writers on free ports under one work directory. With
    `journal="jetstream"` (default: OMNI_TEST_JOURNAL, else lmdb) ingestd
    journals into a one-node NATS JetStream server of the pipeline's own and
    the writers take their records from it (issue 19), so that a pipeline
    test runs in both modes."""

    def __init__(self, workdir, writers=("archive",), journal_max="256M", extra=(), journal=None):
        self.workdir = workdir
        self.nats = None
        if (journal or os.environ.get("OMNI_TEST_JOURNAL") or "lmdb") == "jetstream":
            from natscluster import NatsCluster  # it uses this module
            self.nats = NatsCluster(workdir, nodes=1).start()
            extra = ["--journal=jetstream", f"--nats-urls={self.nats.urls}", "--replicas=1",
                     *extra]
        self.intake_port, self.delivery_port, self.tap_port = free_port(), free_port(), free_port()
        self.intake = f"tcp://127.0.0.1:{self.intake_port}"
        self.delivery = f"tcp://127.0.0.1:{self.delivery_port}"
        self.tap = f"tcp://127.0.0.1:{self.tap_port}"
        self.archive_dir = os.path.join(workdir, "archive")
        self.journal_dir = os.path.join(workdir, "journal")
        self.ingestd = Daemon("ingestd", [
            f"--intake={self.intake}", f"--delivery={self.delivery}", f"--tap={self.tap}",
            f"--journal-dir={self.journal_dir}", f"--journal-max={journal_max}",
            "--writers=" + ",".join(writers), *extra], workdir, free_port())
        self.daemons = [self.ingestd]

    def writer(self, name, args=(), binary_name=None, env=None):
        source = [f"--nats-urls={self.nats.urls}"] if self.nats else [f"--delivery={self.delivery}"]
        d = Daemon(name, [*source, *args], self.workdir, free_port(), env=env,
                   binary_name=binary_name)
        self.daemons.append(d)
        return d

    def archiverd(self, batch_size=None, compress_after="0"):
        # The tests' records are dated 2023: archiverd would compress their
        # files (older than compress_after) at every start, under the
        # tests' feet; the tests of compression ask for it themselves
        args = [f"--archive-dir={self.archive_dir}", f"--compress-after={compress_after}"]
        if batch_size:
            args.append(f"--batch-size={batch_size}")
        return self.writer("archiverd", args)

    def loadgen(self, *args, timeout=600):
        out = subprocess.run([binary("omni-loadgen"), f"--intake={self.intake}", *args],
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"omni-loadgen failed {out.returncode}:\n{out.stderr[-3000:]}"
        return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)

    def acked(self, writer):
        """Records `writer` acknowledged to ingestd (so they are stored)."""
        return self.ingestd.metrics().get(f'omni_ingestd_records_acked_total{{writer="{writer}"}}',
                                          0)

    def wait_acked(self, writer, count, timeout=120, interval=0.02):
        wait_until(lambda: self.acked(writer) >= count, timeout,
                   f"{count} records acknowledged by the {writer} writer", interval)

    def time_drain(self, writer, count, since=0, timeout=1800):
        """For benchmarks: times `writer` draining a backlog, from its first
        acknowledgement past `since` records until `count`. Returns (records
        acknowledged at that first one, seconds)."""
        def first():
            n = self.acked(writer)
            return (n, time.monotonic()) if n > since else None
        n0, t0 = wait_until(first, 120, f"a first batch from the {writer} writer", 0.005)
        self.wait_acked(writer, count, timeout, 0.005)
        return n0, time.monotonic() - t0

    def wait_archived(self, count, timeout=120):
        return wait_until(lambda: archive_line_count(self.archive_dir) >= count, timeout,
                          f"{count} lines in the archive")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            self.stop()
        except AssertionError:
            if exc_type is None:
                raise

    def stop(self):
        errors = []
        for d in reversed(self.daemons):
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        if self.nats:
            self.nats.stop()
        if errors:
            raise AssertionError("\n".join(errors))


def stop_pipelines(pipelines):
    """Stops every pipeline, then fails with what each one said."""
    errors = []
    for p in pipelines:
        try:
            p.stop()
        except AssertionError as e:
            errors.append(str(e))
    assert not errors, "\n".join(errors)


def _archive_files(archive_dir):
    """The archive's files, plain and compressed (`.jsonl.zst`, read with
    zstdcat), each as a list of raw lines; temporary files left out. A plain
    file's last line without its newline is one archiverd is writing at this
    moment (tests poll while it runs): it is left for the next look."""
    for root, dirs, files in os.walk(archive_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in sorted(files):
            path = os.path.join(root, f)
            if f.endswith(".jsonl"):
                with open(path, "rb") as fh:
                    data = fh.read()
                yield data[:data.rfind(b"\n") + 1].splitlines()
            elif f.endswith(".jsonl.zst"):
                out = subprocess.run(["zstdcat", path], capture_output=True, check=True)
                yield out.stdout.splitlines()


def archive_lines(archive_dir):
    """Every JSON line in the archive, parsed."""
    return [json.loads(line) for lines in _archive_files(archive_dir) for line in lines]


def archive_line_count(archive_dir):
    return sum(len(lines) for lines in _archive_files(archive_dir))


def json_to_msgpack_value(value):
    """Inverse of proto/mpjson.c: {"$bin": base64} is binary."""
    import base64
    if isinstance(value, dict):
        if len(value) == 1 and "$bin" in value:
            return base64.b64decode(value["$bin"])
        return {k: json_to_msgpack_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_to_msgpack_value(v) for v in value]
    return value


def record(kind, src, body, ts=None, run="run-test", col="test", tags=None):
    """One valid record, with the id ingestd computes from its natural key."""
    ts = ts if ts is not None else time.time_ns()
    rec = {"v": 1, "id": natural_id(kind, src, body, ts, tags), "kind": kind, "src": src,
           "col": col, "run": run, "ts": ts, "body": body}
    if tags:
        rec["tags"] = tags
    return msgpack.packb(rec, use_bin_type=True)


def metric_record(i, src="host-a"):
    """Metric record number `i` of a series (value i, ts 1700000000 s + i ns)."""
    return record("metric", src, {"name": "cpu", "value": float(i), "unit": "%"},
                  ts=1_700_000_000_000_000_000 + i)


def commit_record(i, src="repo-a", tz=0, files_changed=0, insertions=0):
    """git.commit record number `i`: sha i in hex, committed at 1700000000 s + i."""
    body = {"sha": f"{i:040x}", "parents": [], "author_name": "A", "author_email": "a@x",
            "author_time": 1700000000 + i, "author_tz": tz, "committer_name": "A",
            "committer_email": "a@x", "committer_time": 1700000000 + i, "committer_tz": tz,
            "message": f"commit {i}", "files_changed": files_changed, "insertions": insertions,
            "deletions": 0}
    return record("git.commit", src, body, ts=(1700000000 + i) * 10**9)


class IntakeClient:
    """The collector side of intake, in Python, for tests that craft input."""

    def __init__(self, endpoint):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.seq = 0

    def send_batch(self, frames):
        self.seq += 1
        self.sock.send_multipart([b"OI/1", b"BATCH", struct.pack(">Q", self.seq), *frames])
        return self.seq

    def send_raw(self, frames):
        self.sock.send_multipart(frames)

    def recv(self, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise AssertionError("no reply from ingestd intake")
        return self.sock.recv_multipart()

    def batch(self, frames, timeout=30):
        """Sends one batch, returns (accepted, rejected) from its ACK."""
        seq = self.send_batch(frames)
        while True:
            reply = self.recv(timeout)
            if reply[1] == b"ACK" and struct.unpack(">Q", reply[2])[0] == seq:
                return struct.unpack(">I", reply[3])[0], struct.unpack(">I", reply[4])[0]

    def close(self):
        self.sock.close(0)


class Loadgen:
    """omni-loadgen in the background while a test disrupts the pipeline:
    its log (stderr) goes to a file; finish() waits for it, checks that it
    ended well and returns its summary (sent=, accepted=, failovers=, ...).
    Leaving the `with` kills it if it still runs."""

    def __init__(self, workdir, intake, *args):
        self.err_path = os.path.join(workdir, "loadgen.err")
        with open(self.err_path, "w") as err:
            argv = [binary("omni-loadgen"), f"--intake={intake}", *args]
            self.proc = subprocess.Popen(guarded(argv), stdout=subprocess.PIPE, stderr=err,
                                         text=True)

    def running(self):
        return self.proc.poll() is None

    def log(self):
        with open(self.err_path) as f:
            return f.read()

    def finish(self, timeout=120):
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, self.log()[-3000:]
        summary = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        assert summary["rejected"] == "0", out
        return summary

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.running():
            self.proc.kill()
            self.proc.wait()


class Tap:
    """A real omni-tap process; what it prints goes to a file."""

    def __init__(self, workdir, name, endpoint, *args):
        self.out_path = os.path.join(workdir, f"tap-{name}.out")
        self.err_path = os.path.join(workdir, f"tap-{name}.err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            argv = [binary("omni-tap"), f"--endpoint={endpoint}", *args]
            self.proc = subprocess.Popen(guarded(argv), stdout=out, stderr=err)

    def subscribed(self):
        with open(self.err_path) as f:
            return "event=tap.subscribed" in f.read()

    def text(self):
        with open(self.out_path) as f:
            return f.read()

    def lines(self):
        return [json.loads(line) for line in self.text().splitlines() if line.strip()]

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(10)


class WriterClient:
    """The writer side of delivery, in Python, for tests of ingestd alone."""

    def __init__(self, endpoint, name, window=100000, instance=None):
        self.instance = instance  # None: the 3-frame HELLO of writers before instance ids
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.name = name
        self.window = window
        self.cursor = None
        self.upto = 0

    def send_hello(self):
        frames = [b"OD/1", b"HELLO", self.name.encode(), struct.pack(">I", self.window)]
        if self.instance is not None:
            frames.append(self.instance.encode())
        self.sock.send_multipart(frames)

    def hello(self, timeout=30):
        """HELLO, repeated every second as writers do, until WELCOME (returns
        the cursor); RESET or ERROR raise with ingestd's reason."""
        self.send_hello()
        deadline = time.monotonic() + timeout
        while True:
            if not self.sock.poll(1000):
                if time.monotonic() > deadline:
                    raise AssertionError("no WELCOME from ingestd delivery")
                self.send_hello()
                continue
            msg = self.sock.recv_multipart()
            if msg[1] == b"WELCOME":
                self.cursor = struct.unpack(">Q", msg[3])[0]
                self.upto = self.cursor - 1
                return self.cursor
            if msg[1] in (b"RESET", b"ERROR"):
                raise AssertionError(f"{msg[1].decode()}: {msg[2].decode()}")

    def recv(self, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise AssertionError("no message from ingestd delivery")
        return self.sock.recv_multipart()

    def receive(self, count, timeout=60, ack=True):
        """Receives DELIVER messages until `count` records came; returns them."""
        import time as _t
        records = []
        deadline = _t.monotonic() + timeout
        while len(records) < count:
            left = deadline - _t.monotonic()
            if left <= 0:
                raise AssertionError(f"received {len(records)} of {count} records")
            msg = self.recv(left)
            if msg[1] != b"DELIVER":
                continue
            upto = struct.unpack(">Q", msg[2])[0]
            records.extend(msg[3:])
            self.upto = upto
            if ack:
                self.ack()
        return records

    def ack(self, upto=None):
        self.sock.send_multipart([b"OD/1", b"ACK", struct.pack(">Q", upto or self.upto),
                                  struct.pack(">I", self.window)])

    def close(self):
        self.sock.close(0)


# ---------------------------------------------------------------------------
# Records as the collectors make them (ids as proto/record.c computes them)


OPTIONAL = object()  # an absent "?field" key part: packs nothing


def record_id(kind, src, key_parts):
    """proto/record.c record_compute_id."""
    data = b"omni.id/1\0" + kind.encode() + b"\0" + src.encode() + b"\0"
    for part in key_parts:
        if part is not OPTIONAL:
            data += msgpack.packb(part, use_bin_type=True)
    return hashlib.sha256(data).digest()[:16]


KEYS = {"run.start": ("@ts", "collector"), "run.end": ("@ts", "collector"),
        "git.commit": ("sha",), "git.branch": ("name",), "git.tag": ("name",),
        "git.unreachable": ("sha", "@ts"),
        "ci.build": ("pipeline", "build_id"),
        "ci.test": ("build_id", "suite", "class", "name", "?occurrence"),
        "code.stats": ("rev", "language", "path"),
        "analysis.summary": ("day", "since", "until"), "metric": ("name", "@ts", "@tags")}


def natural_id(kind, src, body, ts, tags=None):
    """The id of a record of `kind` (proto/kinds.c keys; custom kinds and
    kinds not declared: the whole body)."""
    if kind not in KEYS:
        return record_id(kind, src, [body])
    parts = [ts if k == "@ts" else (tags or None) if k == "@tags"
             else body.get(k[1:], OPTIONAL) if k[0] == "?" else body.get(k)
             for k in KEYS[kind]]
    return record_id(kind, src, parts)


def make_record(kind, src, body, ts, run="run-1", col="test"):
    rec = {"v": 1, "id": natural_id(kind, src, body, ts), "kind": kind, "src": src, "col": col,
           "run": run, "ts": ts, "body": body}
    return msgpack.packb(rec, use_bin_type=True)


def make_record_metric(host, ts, name, value, unit="percent"):
    """A metric record as collectord host sends it (tags host=, src = host)."""
    tags = {"host": host}
    rec = {"v": 1, "id": record_id("metric", host, (name, ts, tags)), "kind": "metric",
           "src": host, "col": "host", "run": "run-1", "ts": ts,
           "body": {"name": name, "value": value, "unit": unit}, "tags": tags}
    return msgpack.packb(rec, use_bin_type=True)


def send(intake_endpoint, frames, batch=500):
    """Sends frames to ingestd's intake in batches; each must be accepted whole."""
    client = IntakeClient(intake_endpoint)
    try:
        for i in range(0, len(frames), batch):
            accepted, rejected = client.batch(frames[i:i + batch], timeout=120)
            assert (accepted, rejected) == (len(frames[i:i + batch]), 0)
    finally:
        client.close()


def synthetic_commits(n, src="bench-repo", start=0, files=0):
    """n git.commit records with distinct shas (for volume tests and the benchmarks):
    [(sha, frame)]."""
    out = []
    for i in range(start, start + n):
        sha = hashlib.sha1(f"{src}/{i}".encode()).hexdigest()
        body = {"sha": sha, "parents": [hashlib.sha1(f"{src}/{i - 1}".encode()).hexdigest()],
                "author_name": f"Author {i % 37}", "author_email": f"a{i % 37}@example.org",
                "author_time": 1_600_000_000 + i * 60, "author_tz": 120,
                "committer_name": "CI", "committer_email": "ci@example.org",
                "committer_time": 1_600_000_000 + i * 60 + 5, "committer_tz": 0,
                "message": f"Change {i}\n\nA longer explanation of change number {i}.\n",
                "files_changed": files or 1, "insertions": i % 100, "deletions": i % 7}
        if files:
            body["files"] = [{"path": f"src/f{k}.c", "insertions": k, "deletions": 1,
                              "binary": False} for k in range(files)]
        out.append((sha, make_record("git.commit", src, body, (1_600_000_000 + i * 60) * 10**9)))
    return out


def stream_disrupted(p, n, stored, disrupt, first_timeout=120, timeout=180):
    """Sends n synthetic commits (two files each) to p's intake in two halves:
    the first from a thread; once stored() (a count) reaches n/5, calls
    disrupt(send_rest), which sends the second half during the disruption;
    then waits until stored() == n. Returns the [(sha, frame)] sent."""
    records = synthetic_commits(n, src="stream", files=2)
    frames = [f for _, f in records]
    sender = threading.Thread(target=send, args=(p.intake, frames[:n // 2]))
    sender.start()
    wait_until(lambda: stored() >= n // 5, first_timeout, "first records stored")
    disrupt(lambda: send(p.intake, frames[n // 2:]))
    sender.join()
    wait_until(lambda: stored() == n, timeout, f"{n} commits stored")
    return records


# ---------------------------------------------------------------------------
# Git histories, built by the tests and read back with git itself


def junit_big_report(path, n, rerun_every=0):
    """A JUnit report of n test cases in suites of 1000, 1% failing with a
    trace, each with some output; with rerun_every, every such case that
    failed is run again and passes (gotestsum --rerun-fails)."""
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n')
        for s in range(max(n // 1000, 1)):
            f.write(f'<testsuite name="suite{s}" tests="1000" '
                    f'timestamp="2024-01-01T00:00:00">\n')
            for i in range(min(n, 1000)):
                k = s * 1000 + i
                f.write(f'  <testcase classname="pkg.Class{s}" name="test_{k}" time="0.00{k % 10}">')
                if k % 100 == 0:
                    f.write(f'<failure message="boom {k}" type="AssertionError">'
                            f'{"trace line " * 50}</failure>')
                f.write(f'<system-out>{"output " * 20}</system-out></testcase>\n')
                if rerun_every and k % rerun_every == 0:
                    f.write(f'  <testcase classname="pkg.Class{s}" name="test_{k}" time="0.001"/>\n')
            f.write('</testsuite>\n')
        f.write('</testsuites>\n')


def git(repo, *args, env=None):
    out = subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                         env=dict(os.environ, **(env or {})))
    return out.stdout


def init_repo(path):
    os.makedirs(path)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Nobody")
    git(path, "config", "user.email", "nobody@example.org")
    return path


def commit_to(repo, author, email, when, tz, message, files):
    """One commit; `files` maps path -> text, bytes (binary) or None (delete)."""
    for path, content in files.items():
        full = os.path.join(repo, path)
        if content is None:
            git(repo, "rm", "-q", path)
            continue
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(content if isinstance(content, bytes) else content.encode())
        git(repo, "add", path)
    stamp = f"{when} {tz}"
    git(repo, "commit", "-q", "--allow-empty", "-m", message,
        env={"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": stamp,
             "GIT_COMMITTER_NAME": "Committer", "GIT_COMMITTER_EMAIL": "committer@example.org",
             "GIT_COMMITTER_DATE": stamp})
    return git(repo, "rev-parse", "HEAD").decode().strip()


def sample_history(path, hostile):
    """A repository at `path` that exercises what a store must keep: five
    commits by three authors in three time zones (one name not ASCII), a
    binary file, a topic branch merged, a message ending with `hostile`
    text, a light and an annotated tag. Returns the repository's path."""
    repo = init_repo(path)
    base = 1_704_067_200  # 2024-01-01 00:00 UTC
    commit_to(repo, "Alice", "alice@example.org", base + 3600, "+0100", "Start\n\nWith a body.",
              {"README": "hello\nworld\n", "src/main.c": "int main;\n" * 20})
    commit_to(repo, "Bob Ünicode", "bob@example.org", base + 7200, "-0530", "Second",
              {"src/main.c": "int main;\n" * 18 + "changed\n", "logo.png": b"\x89PNG\0\1\2"})
    git(repo, "checkout", "-q", "-b", "topic")
    commit_to(repo, "Carol", "carol@example.org", base + 9000, "+0000", "On topic",
              {"topic.txt": "t\n" * 7})
    git(repo, "checkout", "-q", "main")
    commit_to(repo, "Alice", "alice@example.org", base + 9500, "+0100",
              "Quotes ' \" and \\ backslash; " + hostile, {"README": "hello\n"})
    stamp = f"{base + 10000} +0100"
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge topic", "topic",
        env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
    git(repo, "tag", "v0.1", "HEAD~1")
    git(repo, "tag", "-a", "-m", "Release 1", "v1.0", env={"GIT_COMMITTER_DATE": stamp})
    return repo


def _tz_minutes(tz):
    sign = -1 if tz[0] == "-" else 1
    return sign * (int(tz[1:3]) * 60 + int(tz[3:5]))


def _person(line):
    # "Name <email> 1700000000 +0100"
    name, rest = line.split(" <", 1)
    email, rest = rest.split("> ", 1)
    when, tz = rest.split(" ")
    return name, email, int(when), _tz_minutes(tz)


def read_commits(repo):
    """Every commit, from git's own objects: {sha: body} as collectord git sends it."""
    shas = git(repo, "rev-list", "--all", "--reverse", "--topo-order").decode().split()
    out = {}
    for sha in shas:
        raw = git(repo, "cat-file", "commit", sha).decode()
        headers, message = raw.split("\n\n", 1)
        parents, author, committer = [], None, None
        for line in headers.split("\n"):
            key, _, value = line.partition(" ")
            if key == "parent":
                parents.append(value)
            elif key == "author":
                author = _person(value)
            elif key == "committer":
                committer = _person(value)
        if parents:
            stat = git(repo, "diff", "--numstat", "--no-renames", parents[0], sha)
        else:
            stat = git(repo, "diff-tree", "--root", "--numstat", "--no-renames", "-r",
                       "--no-commit-id", sha)
        files = []
        for line in stat.decode().splitlines():
            ins, dels, path = line.split("\t", 2)
            if ins == "-":
                files.append({"path": path, "binary": True})
            else:
                files.append({"path": path, "insertions": int(ins), "deletions": int(dels),
                              "binary": False})
        out[sha] = {"sha": sha, "parents": parents,
                    "author_name": author[0], "author_email": author[1],
                    "author_time": author[2], "author_tz": author[3],
                    "committer_name": committer[0], "committer_email": committer[1],
                    "committer_time": committer[2], "committer_tz": committer[3],
                    "message": message, "files_changed": len(files),
                    "insertions": sum(f.get("insertions", 0) for f in files),
                    "deletions": sum(f.get("deletions", 0) for f in files), "files": files}
    return out


def read_refs(repo):
    head = git(repo, "symbolic-ref", "-q", "--short", "HEAD").decode().strip()
    branches = {}
    for line in git(repo, "for-each-ref", "--format=%(refname:short) %(objectname)",
                    "refs/heads").decode().splitlines():
        name, target = line.split(" ")
        branches[name] = {"name": name, "target": target, "head": name == head}
    tags = {}
    for line in git(repo, "for-each-ref", "--format=%(refname:short)\t%(objecttype)\t"
                    "%(objectname)\t%(*objectname)", "refs/tags").decode().splitlines():
        name, kind, obj, peeled = line.split("\t")
        tags[name] = {"name": name, "target": peeled or obj, "annotated": kind == "tag"}
    return branches, tags


def collect(repo, src, run="run-1", now_ns=None):
    """The records of one collection run of `repo`, as collectord git would send them."""
    now_ns = now_ns or time.time_ns()
    commits = read_commits(repo)
    branches, tags = read_refs(repo)
    frames = [make_record("run.start", src, {"collector": "git", "source": repo,
                                             "started": now_ns}, now_ns, run)]
    for body in commits.values():
        frames.append(make_record("git.commit", src, body, body["committer_time"] * 10**9, run))
    for body in branches.values():
        frames.append(make_record("git.branch", src, body, now_ns, run))
    for body in tags.values():
        frames.append(make_record("git.tag", src, body, now_ns, run))
    counts = {"git.commit": len(commits), "git.branch": len(branches), "git.tag": len(tags)}
    frames.append(make_record("run.end", src, {"collector": "git", "source": repo, "status": "ok",
                                               "counts": counts, "started": now_ns,
                                               "finished": now_ns + 1, "duration": 0.001},
                              now_ns, run))
    return frames, commits, branches, tags


def collect_and_send(p, writer, repo, src, sent, run="run-1", now_ns=None, timeout=180):
    """One collection run of `repo` (collect) sent to the pipeline `p`; waits
    until `writer` acknowledged the `sent` records before and these. Returns
    the new total."""
    frames, _, _, _ = collect(repo, src, run, now_ns)
    send(p.intake, frames)
    sent += len(frames)
    p.wait_acked(writer, sent, timeout)
    return sent


def deliver_again(p, writer, repo, src, frames, timeout=180):
    """What an idempotent writer must store nothing more for: the records of
    `frames` (already acknowledged once) delivered again, and the history
    collected again in a new run (run-2). Waits until `writer` acknowledged
    them all."""
    send(p.intake, frames)
    frames2, _, _, _ = collect(repo, src, run="run-2")
    send(p.intake, frames2)
    p.wait_acked(writer, 2 * len(frames) + len(frames2), timeout)


# ---------------------------------------------------------------------------
# PostgreSQL


def query(dsn, sql, params=None):
    """Every row of one statement, in a session of its own (time zone UTC)."""
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def scalar(dsn, sql, params=None):
    return query(dsn, sql, params)[0][0]


def pg_admin_dsn():
    """The server for scratch databases: $OMNI_TEST_PG_DSN's (any database on
    it), else the local one at 127.0.0.1:5432."""
    return os.environ.get("OMNI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_admin(sql):
    import psycopg2
    conn = psycopg2.connect(pg_admin_dsn())
    try:
        conn.autocommit = True
        conn.cursor().execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def scratch_database(prefix="omni_test_", options=""):
    """A fresh database on pg_admin_dsn()'s server (its dsn), dropped after;
    `options`: CREATE DATABASE's, e.g. another locale."""
    name = prefix + uuid.uuid4().hex[:12]
    _pg_admin(f'CREATE DATABASE "{name}" {options}')
    try:
        yield urlunsplit(urlsplit(pg_admin_dsn())._replace(path="/" + name))
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _proc_stat(pid):
    """(state, parent) of process `pid`, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid):
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


class PrivatePostgres:
    """A PostgreSQL server of the test's own (initdb in a temporary directory,
    its own port), that the test may stop and start. Runs the server tools as
    the postgres user when the test is root (initdb refuses root). Raises
    FileNotFoundError without the server tools, KeyError without that user."""

    def __init__(self, settings=(), standby_of=None, name="standby"):
        """`settings`: postgresql.conf lines for this server. `standby_of`: a
        running PrivatePostgres to stream from: the data directory is its
        pg_basebackup (-R: standby.signal and primary_conninfo, with
        application_name `name` for synchronous_standby_names), not initdb."""
        self.bindir = self._bindir()
        self.user = None
        if os.geteuid() == 0:
            import pwd
            self.user = pwd.getpwnam("postgres")
        self.dir = tempfile.mkdtemp(prefix="omni-pg-")
        try:
            os.chmod(self.dir, 0o755)
            if self.user:
                os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
            self.data = os.path.join(self.dir, "data")
            self.port = free_port()
            self.log = os.path.join(self.dir, "server.log")
            if standby_of:
                self._run("pg_basebackup", "-d", f"host=127.0.0.1 port={standby_of.port} "
                          f"user=postgres application_name={name}", "-D", self.data, "-R",
                          "-X", "stream", "-c", "fast")
            else:
                self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E",
                          "UTF8", "--locale=C", "-N")
                with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
                    f.write("host replication postgres 127.0.0.1/32 trust\n")
            with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
                f.write("".join(line + "\n" for line in settings))
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def _bindir():
        found = shutil.which("pg_ctl")
        if found:
            return os.path.dirname(os.path.realpath(found))
        base = "/usr/lib/postgresql"
        for root in sorted(os.listdir(base) if os.path.isdir(base) else [], reverse=True):
            return f"{base}/{root}/bin"
        raise FileNotFoundError("pg_ctl")

    def _run(self, tool, *args):
        cmd = [os.path.join(self.bindir, tool), *args]
        kwargs = {}
        if self.user:
            uid, gid = self.user.pw_uid, self.user.pw_gid

            def demote():
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            kwargs["preexec_fn"] = demote
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=self.dir, timeout=120,
                             **kwargs)
        assert out.returncode == 0, f"{tool} failed:\n{out.stdout}\n{out.stderr}"

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off",
                  "start")

    def stop(self):
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def _pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def running(self):
        pid = self._pid()
        return pid is not None and _alive(pid)

    def kill9(self):
        """SIGKILL to the postmaster, as when its machine dies: no shutdown, no
        word to clients or standbys. Its children notice and exit; returns
        once every one of them is gone."""
        pid = self._pid()
        children = [int(p) for p in os.listdir("/proc")
                    if p.isdigit() and (_proc_stat(p) or ("", 0))[1] == pid]
        os.kill(pid, signal.SIGKILL)
        try:
            for p in [pid] + children:
                wait_until(lambda: not _alive(p), 30, f"postgres process {p} gone")
        finally:
            for p in children:
                if _alive(p):
                    os.kill(p, signal.SIGKILL)

    def promote(self):
        """A standby becomes a primary (pg_ctl promote -w: returns once it is)."""
        self._run("pg_ctl", "-D", self.data, "-w", "-t", "60", "promote")

    def destroy(self):
        try:
            if self.running():
                try:
                    self.stop()
                except AssertionError:
                    self.kill9()  # never left running, whatever held it up
                    raise
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_pg():
    """A PrivatePostgres, started, destroyed after the test. Import it into the
    test module that uses it (`from omni import private_pg`)."""
    try:
        pg = PrivatePostgres()
    except (FileNotFoundError, KeyError) as e:
        if os.environ.get("OMNI_REQUIRE_SERVICES"):
            raise
        pytest.skip(f"no PostgreSQL server tools to run a private server ({e})")
    try:
        pg.start()
        yield pg
    finally:
        pg.destroy()
