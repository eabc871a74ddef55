"""The one signal policy and the exit codes of every program (common/daemon.c,
docs/operations.md "Signals and exit codes"): a first SIGTERM drains and
exits 0; a second one, while the drain is held up, exits at once with 143
(130 for SIGINT); --help exits 0; a bad key or value exits 2 naming it."""
import calendar
import os
import signal
import socket
import subprocess
import time

import psycopg2
import pytest
import zmq

from omni import (Daemon, binary, commit_to, free_port, init_repo, make_record_metric, send,
                  wait_until)

DAEMONS = ["ingestd", "archiverd", "relationald", "documentd", "metricsd"]
TOOLS = ["omni-tap", "omni-loadgen"]


def run(args, timeout=30):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("program", DAEMONS + TOOLS + ["collectord git"])
def test_help_exits_0_and_bad_config_exits_2_naming_the_key(program, tmp_path):
    cmd = [binary(program.split()[0])] + program.split()[1:]
    out = run(cmd + ["--help"])
    assert out.returncode == 0, out.stderr
    assert "--log-level" in out.stdout and "--log-format" in out.stdout
    # An unknown key, a bad value of a shared key, a bad value of a program's key
    out = run(cmd + ["--no-such-key=1"])
    assert out.returncode == 2 and "no-such-key" in out.stderr, out.stderr
    out = run(cmd + ["--log-level=loud"])
    assert out.returncode == 2 and "log_level" in out.stderr, out.stderr
    config = tmp_path / "omni.yaml"
    section = program.split()[0]
    config.write_text(f"{section}:\n  log_format: xml\n")
    out = run(cmd + [f"--config={config}"])
    assert out.returncode == 2 and "log_format" in out.stderr, out.stderr


@pytest.mark.parametrize("program,flag,key", [
    ("ingestd", "--max-depth=99", "max_depth"),
    ("archiverd", "--batch-size=0", "batch_size"),
    ("relationald", "--window=-1", "window"),
    ("documentd", "--write-timeout=30d", "write_timeout"),
    ("metricsd", "--mode=fast", "mode"),
    ("omni-tap", "--count=-1", "count"),
    ("omni-loadgen", "--window=0", "window"),
])
def test_a_bad_value_exits_2_naming_the_key(program, flag, key):
    out = run([binary(program), flag])
    assert out.returncode == 2, out.stderr
    assert f"error: {program}.{key}" in out.stderr, out.stderr


def test_every_daemon_drains_on_a_first_sigterm_and_exits_0(pipeline, pg_database):
    p = pipeline(writers=("archive", "relational", "document", "metrics"))
    p.ingestd.start()
    p.archiverd().start()
    p.writer("relationald", [f"--dsn={pg_database}"]).start()
    p.writer("metricsd", [f"--dsn={pg_database}"]).start()
    # documentd starts without its server (writes wait for it)
    p.writer("documentd", [f"--uri=mongodb://127.0.0.1:{free_port()}/"
                           "?serverSelectionTimeoutMS=500"]).start()
    p.loadgen("--kind=mix", "--count=300")
    p.wait_archived(300)
    tap = Daemon("omni-tap", [f"--endpoint={p.tap}"], p.workdir)
    tap.start(wait=False)
    wait_until(lambda: "tap.subscribed" in tap.log(), 30, "omni-tap subscribed")
    tap.stop()
    # Writers first, ingestd last: each asserts exit 0 within 30 s
    for d in reversed(p.daemons):
        d.stop()


def _second_sigterm_exits_at_once(proc, log, sig=signal.SIGTERM, code=143):
    """The first SIGTERM drains, which is held up; the second ends it at once."""
    proc.send_signal(sig)
    time.sleep(1.0)
    assert proc.poll() is None, f"exited {proc.returncode} though its drain is held up:\n{log()}"
    started = time.monotonic()
    proc.send_signal(sig)
    rc = proc.wait(10)
    assert rc == code, f"exit {rc}:\n{log()}"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("writer", ["relationald", "metricsd"])
def test_a_second_sigterm_ends_a_writer_held_by_its_store(writer, pipeline, pg_database):
    """The batch in hand waits for a lock the test holds: the first SIGTERM
    cannot finish it, the second ends the process (the batch is delivered
    again at the next start: nothing acknowledged is lost)."""
    name = {"relationald": "relational", "metricsd": "metrics"}[writer]
    p = pipeline(writers=(name,))
    p.ingestd.start()
    w = p.writer(writer, [f"--dsn={pg_database}", "--batch-size=10"])
    w.start()
    wait_until(lambda: w.health()[0] == 200, 60, f"{writer} healthy")
    holder = psycopg2.connect(pg_database)
    try:
        cur = holder.cursor()
        cur.execute("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
        tables = [row[0] for row in cur.fetchall()]
        assert tables
        cur.execute("LOCK TABLE " + ", ".join(tables) + " IN ACCESS EXCLUSIVE MODE")
        p.loadgen("--kind=" + ("git.commit" if writer == "relationald" else "metric"),
                  "--count=50")

        def waiting():
            with psycopg2.connect(pg_database) as c, c.cursor() as q:
                q.execute("SELECT count(*) FROM pg_locks l JOIN pg_database d "
                          "ON d.oid = l.database WHERE NOT l.granted AND d.datname = "
                          "current_database()")
                return q.fetchone()[0] > 0
        wait_until(waiting, 60, f"{writer} waiting for the lock")
        _second_sigterm_exits_at_once(w.proc, w.log)
    finally:
        holder.rollback()
        holder.close()
    w.proc = None
    # Started again, it stores every record
    w.start()
    wait_until(lambda: w.metrics().get(f"omni_{writer}_acked_offset", 0) > 0, 60,
               f"{writer} caught up")


def test_a_second_sigterm_ends_archiverd_held_by_its_file(pipeline):
    """The day's file is a FIFO nobody reads: opening it for the batch in hand
    blocks, the first SIGTERM cannot finish the batch, the second ends it."""
    p = pipeline()
    day = "2023-06-01"
    os.makedirs(os.path.join(p.archive_dir, "metric"))
    for d in ("2023-05-31", day, "2023-06-02"):
        os.mkfifo(os.path.join(p.archive_dir, "metric", f"{d}.jsonl"))
    p.ingestd.start()
    a = p.archiverd()
    a.start()
    ts = calendar.timegm(time.strptime(f"{day} 12:00", "%Y-%m-%d %H:%M")) * 10**9
    send(p.intake, [make_record_metric("h1", ts, "cpu", 1.0)])
    wait_until(lambda: a.metrics().get("omni_archiverd_records_delivered_total", 0) > 0, 30,
               "archiverd got the record")
    _second_sigterm_exits_at_once(a.proc, a.log)
    a.proc = None


def test_a_second_sigterm_ends_documentd_held_by_its_server(pipeline):
    """A MongoDB server that accepts and never answers holds the batch in hand."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    try:
        p = pipeline(writers=("document",))
        p.ingestd.start()
        port = silent.getsockname()[1]
        d = p.writer("documentd", [f"--uri=mongodb://127.0.0.1:{port}/?connectTimeoutMS=60000"
                                   "&serverSelectionTimeoutMS=60000", "--batch-size=10"])
        d.start()
        p.loadgen("--kind=git.commit", "--count=50")
        wait_until(lambda: d.metrics().get("omni_documentd_records_delivered_total", 0) > 0,
                   60, "documentd got records")
        _second_sigterm_exits_at_once(d.proc, d.log)
        d.proc = None
    finally:
        silent.close()


class SilentIntake:
    """An intake that takes batches and acknowledges none: a drain never ends."""

    def __init__(self):
        self.sock = zmq.Context.instance().socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.endpoint = f"tcp://127.0.0.1:{self.sock.bind_to_random_port('tcp://127.0.0.1')}"

    def wait_batch(self, timeout=30):
        assert self.sock.poll(timeout * 1000), "no batch came"
        self.sock.recv_multipart()

    def close(self):
        self.sock.close()


def _logged(proc, path):
    def log():
        with open(path, errors="replace") as f:
            return f.read()
    return log


def test_collectord_first_sigterm_drains_second_exits_at_once(tmp_path):
    repo = init_repo(str(tmp_path / "repo"))
    for i in range(5):
        commit_to(repo, "A", "a@example.org", f"2024-01-0{i + 1}T10:00:00", "+0000", f"c{i}",
                  {f"f{i}.txt": "x\n"})
    intake = SilentIntake()
    log_path = tmp_path / "collectord.log"
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen([binary("collectord"), "git", f"--intake={intake.endpoint}",
                                     f"--state-dir={tmp_path}/state", "--once", "--give-up=0",
                                     "--progress=off", repo], stdout=log, stderr=log)
        try:
            intake.wait_batch()
            _second_sigterm_exits_at_once(proc, _logged(proc, log_path))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert not os.path.exists(tmp_path / "state" / "git")  # incomplete: no state
    finally:
        intake.close()


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_loadgen_first_signal_stops_generating_second_exits(sig, code, tmp_path):
    intake = SilentIntake()
    log_path = tmp_path / "loadgen.log"
    try:
        with open(log_path, "w") as log:
            proc = subprocess.Popen([binary("omni-loadgen"), f"--intake={intake.endpoint}",
                                     "--give-up=0", "--rate=1000"], stdout=log, stderr=log)
        try:
            intake.wait_batch()
            # The window fills and stays full: the ACKs never come
            _second_sigterm_exits_at_once(proc, _logged(proc, log_path), sig, code)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        intake.close()


def test_omni_tap_second_sigint_is_not_needed(pipeline):
    """A tool with nothing to drain ends on the first signal, with 0."""
    p = pipeline()
    p.ingestd.start()
    tap = Daemon("omni-tap", [f"--endpoint={p.tap}"], p.workdir)
    tap.start(wait=False)
    wait_until(lambda: "tap.subscribed" in tap.log(), 30, "omni-tap subscribed")
    tap.proc.send_signal(signal.SIGINT)
    assert tap.proc.wait(10) == 0
    tap.proc = None


def test_loadgen_first_sigterm_drains_and_exits_0(pipeline, tmp_path):
    """Generating stops, every batch sent is acknowledged, the summary is exact."""
    p = pipeline()
    p.ingestd.start()
    log_path = tmp_path / "loadgen.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary("omni-loadgen"), f"--intake={p.intake}", "--rate=2000"],
                                stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_records_accepted_total", 0) > 0,
                   30, "records accepted")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, _logged(proc, log_path)()
    summary = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    assert int(summary["sent"]) > 0 and summary["sent"] == summary["accepted"], out
