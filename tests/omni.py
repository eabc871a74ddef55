"""Helpers shared by the integration tests: run the daemons as real processes,
speak the wire protocol (proto/PROTOCOL.md) with real ZeroMQ sockets, read
/metrics and /health. No mocks: every test talks to real processes."""
import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.error
import urllib.request

import msgpack
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OMNI_BIN") or os.path.join(ROOT, "build", "bin")


def binary(name):
    path = os.path.join(BIN, name)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not built (run make)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")
        self.proc = None
        self.starts = 0

    def start(self, wait=True):
        self.starts += 1
        log = open(self.log_path, "a")
        log.write(f"---- start {self.starts}: {' '.join(self.args)}\n")
        log.flush()
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log, env=self.env,
                                     cwd=os.path.dirname(self.log_path))
        log.close()
        if wait:
            self.wait_ready()
        return self

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"

    def wait_ready(self, timeout=30):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = http_get(self.url("/health"), timeout=1)
                return status in (200, 503)
            except OSError:
                return False
        wait_until(up, timeout, f"{self.name} /health")

    def health(self):
        return http_get(self.url("/health"))

    def metrics(self):
        return parse_metrics(http_get(self.url("/metrics"))[1])

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
    """ingestd and writers on free ports under one work directory."""

    def __init__(self, workdir, writers=("archive",), journal_max="256M", extra=()):
        self.workdir = workdir
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
        d = Daemon(name, [f"--delivery={self.delivery}", *args], self.workdir, free_port(),
                   env=env, binary_name=binary_name)
        self.daemons.append(d)
        return d

    def archiverd(self, batch_size=None):
        args = [f"--archive-dir={self.archive_dir}"]
        if batch_size:
            args.append(f"--batch-size={batch_size}")
        return self.writer("archiverd", args)

    def loadgen(self, *args, timeout=600):
        out = subprocess.run([binary("omni-loadgen"), f"--intake={self.intake}", *args],
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"omni-loadgen failed {out.returncode}:\n{out.stderr[-3000:]}"
        return dict(kv.split("=", 1) for kv in out.stdout.split() if "=" in kv)

    def wait_archived(self, count, timeout=120):
        return wait_until(lambda: archive_line_count(self.archive_dir) >= count, timeout,
                          f"{count} lines in the archive")

    def stop(self):
        errors = []
        for d in reversed(self.daemons):
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            raise AssertionError("\n".join(errors))


def archive_lines(archive_dir):
    """Every JSON line in the archive, parsed."""
    out = []
    for root, dirs, files in os.walk(archive_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in sorted(files):
            if f.endswith(".jsonl"):
                with open(os.path.join(root, f), "rb") as fh:
                    for line in fh:
                        out.append(json.loads(line))
    return out


def archive_line_count(archive_dir):
    n = 0
    for root, dirs, files in os.walk(archive_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if f.endswith(".jsonl"):
                with open(os.path.join(root, f), "rb") as fh:
                    n += sum(1 for _ in fh)
    return n


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


def record(kind, src, body, ts=None, run="run-test", col="test", tags=None, key=None):
    """One valid record; its id hashes kind + src + key (default: the body)."""
    ts = ts if ts is not None else time.time_ns()
    key_bytes = msgpack.packb(key if key is not None else body, use_bin_type=True)
    rid = hashlib.sha256(b"test/" + kind.encode() + b"\0" + src.encode() + b"\0" + key_bytes).digest()[:16]
    rec = {"v": 1, "id": rid, "kind": kind, "src": src, "col": col, "run": run, "ts": ts,
           "body": body}
    if tags:
        rec["tags"] = tags
    return msgpack.packb(rec, use_bin_type=True)


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


class WriterClient:
    """The writer side of delivery, in Python, for tests of ingestd alone."""

    def __init__(self, endpoint, name, window=100000):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)
        self.name = name
        self.window = window
        self.cursor = None
        self.upto = 0

    def hello(self, timeout=30):
        self.sock.send_multipart([b"OD/1", b"HELLO", self.name.encode(),
                                  struct.pack(">I", self.window)])
        while True:
            msg = self.recv(timeout)
            if msg[1] == b"WELCOME":
                self.cursor = struct.unpack(">Q", msg[3])[0]
                self.upto = self.cursor - 1
                return self.cursor
            if msg[1] == b"RESET":
                raise AssertionError(f"RESET: {msg[2].decode()}")

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
