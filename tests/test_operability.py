"""Operability: what /metrics and /health say, checked against what was done.

- the counters after a known stream equal the records sent, rejected, stored;
- /health fails while a store is down and recovers after (relationald with a
  private PostgreSQL server of the test's own);
- the journal's accounting invariant, broken by hand, is reported by /health;
- omnictl status: up, down, exit codes, --watch;
- `make run` (tools/omni-run.sh) on a fresh clone: its summary equals
  `git rev-list --all` and the rows found in the stores; as on a newcomer's
  machine (no pymongo, no mongosh, no MongoDB, no PostgreSQL answering) it
  still completes: a store that cannot be had is skipped in one line, or a
  private server is started for the run and stopped with it.
"""
import os
import re
import signal
import socket
import struct
import subprocess
import time
import uuid

import msgpack
import pytest

from omni import (BIN, ROOT, IntakeClient, WriterClient, archive_line_count, binary,  # noqa: F401
                  commit_record, metric_record, private_pg, record, scalar, wait_until, worker)


def built(name):
    return os.path.exists(os.path.join(BIN, name))


def need(name, why=""):
    if not built(name):
        pytest.skip(f"{name} is not built{why}")


def health_numbers(text):
    """'ok received=3 accepted=2 ...' -> {'received': 3, ...}"""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}


def omnictl(*args, timeout=60):
    return subprocess.run([binary("omnictl"), *args], capture_output=True, text=True,
                          timeout=timeout)


def table_line(text, name):
    """The line of the status table for daemon `name`."""
    for line in text.splitlines():
        if line.split(" ", 1)[0] == name:
            return line
    raise AssertionError(f"no line for {name} in:\n{text}")


# ---------------------------------------------------------------------------
# (a) counters after a known stream


def test_counters_equal_what_was_sent_rejected_and_stored(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    good = [metric_record(i) for i in range(250)]
    not_msgpack = [b"\xc1" * 8, b"\xc1"]
    not_map = [msgpack.packb([1, 2, 3])]
    unknown_kind = [record("no.such.kind", "x", {"a": 1})]
    bad_body = [record("metric", "host-a", {"name": 42, "value": "high"})]
    bad = not_msgpack + not_map + unknown_kind + bad_body
    assert intake.batch(good[:100]) == (100, 0)
    assert intake.batch(good[100:200] + bad) == (100, len(bad))
    assert intake.batch(good[200:]) == (50, 0)
    intake.send_raw([b"OI/1", b"BATCH", b"short"])          # one malformed message
    assert intake.recv()[1] == b"ERROR"
    frames_bytes = sum(len(f) for f in good + bad)

    m = p.ingestd.metrics()
    assert m["omni_ingestd_records_received_total"] == len(good) + len(bad) + 1
    assert m["omni_ingestd_records_accepted_total"] == len(good)
    rejected = {k: v for k, v in m.items() if k.startswith("omni_ingestd_records_rejected_total")}
    assert sum(rejected.values()) == len(bad) + 1
    by_reason = lambda r: m[f'omni_ingestd_records_rejected_total{{reason="{r}"}}']  # noqa: E731
    assert by_reason("not_msgpack") == len(not_msgpack)
    assert by_reason("not_map") == len(not_map)
    assert by_reason("unknown_kind") == len(unknown_kind)
    assert by_reason("bad_body") == len(bad_body)
    assert by_reason("bad_frame") == 1
    assert m["omni_ingestd_batches_total"] == 3
    assert m["omni_ingestd_bytes_received_total"] == frames_bytes
    status, text = p.ingestd.health()
    assert status == 200, text
    h = health_numbers(text)
    assert (h["received"], h["accepted"], h["rejected"]) == (len(good) + len(bad) + 1, len(good),
                                                             len(bad) + 1)

    # A writer stores them: a real archiverd when built, else the protocol by hand.
    writer = None
    if built("archiverd"):
        writer = p.archiverd(batch_size=64)
        writer.start()
    else:
        client = WriterClient(p.delivery, "archive")
        client.hello()
        client.receive(len(good))
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"] == len(good),
               60, "every record acknowledged")
    # Gauges follow on ingestd's housekeeping tick.
    wait_until(lambda: p.ingestd.metrics()['omni_ingestd_writer_lag_records{writer="archive"}'] == 0
               and p.ingestd.metrics()["omni_ingestd_journal_records"] == 0, 10, "lag 0")
    m = p.ingestd.metrics()
    assert m['omni_ingestd_records_acked_total{writer="archive"}'] == len(good)
    assert m['omni_ingestd_records_delivered_total{writer="archive"}'] >= len(good)
    assert m['omni_ingestd_writer_lag_seconds{writer="archive"}'] == 0
    assert m['omni_ingestd_end_to_end_seconds_count{writer="archive"}'] >= 1
    assert m["omni_ingestd_journal_bytes"] == 0
    status, text = p.ingestd.health()
    assert status == 200 and health_numbers(text)["in_journal"] == 0, text
    if writer:
        w = writer.metrics()
        assert w["omni_archiverd_records_stored_total"] == len(good)
        assert w["omni_archiverd_records_delivered_total"] >= len(good)
        assert w["omni_archiverd_store_retries_total"] == 0
        assert w["omni_archiverd_store_up"] == 1
        assert archive_line_count(p.archive_dir) == len(good)
        assert writer.health()[0] == 200
    else:
        client.close()
    intake.close()


# ---------------------------------------------------------------------------
# (b) /health while a store is down


def count_commits(dsn):
    return scalar(dsn, "SELECT count(*) FROM commits")


def test_health_fails_while_store_is_down_and_recovers(pipeline, private_pg):
    need("relationald")
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = p.writer("relationald", [f"--dsn={private_pg.dsn}", "--retry-max=500ms"])
    rel.start()
    wait_until(lambda: rel.health()[0] == 200, 30, "relationald healthy")
    intake = IntakeClient(p.intake)
    assert intake.batch([commit_record(i, "repo-ops") for i in range(40)]) == (40, 0)
    wait_until(lambda: rel.metrics()["omni_relationald_records_stored_total"] == 40, 30,
               "40 commits stored")

    private_pg.stop()
    wait_until(lambda: rel.health()[0] == 503, 30, "relationald /health 503 with PostgreSQL down")
    status, text = rel.health()
    assert "postgresql" in text.lower(), text
    # Records keep coming in; the writer cannot store them: lag grows, retries count.
    assert intake.batch([commit_record(i, "repo-ops") for i in range(40, 100)]) == (60, 0)
    wait_until(lambda: p.ingestd.metrics()['omni_ingestd_writer_lag_records{writer="relational"}']
               >= 60, 30, "relational lag >= 60")
    wait_until(lambda: rel.metrics()["omni_relationald_store_retries_total"] >= 1, 30,
               "a store retry counted")
    assert rel.metrics()["omni_relationald_store_up"] == 0
    assert rel.metrics()["omni_relationald_records_stored_total"] == 40
    # ingestd itself is healthy: its journal holds the records.
    wait_until(lambda: health_numbers(p.ingestd.health()[1]).get("in_journal") == 60, 10,
               "60 records held in the journal")
    assert p.ingestd.health()[0] == 200

    private_pg.start()
    wait_until(lambda: rel.health()[0] == 200, 60, "relationald healthy again")
    wait_until(lambda: rel.metrics()["omni_relationald_records_stored_total"] == 100, 60,
               "100 commits stored")
    wait_until(lambda: p.ingestd.metrics()['omni_ingestd_writer_lag_records{writer="relational"}']
               == 0, 30, "relational lag 0")
    assert rel.metrics()["omni_relationald_store_up"] == 1
    assert count_commits(private_pg.dsn) == 100
    status, text = p.ingestd.health()
    assert status == 200 and health_numbers(text)["in_journal"] == 0, text
    intake.close()


# ---------------------------------------------------------------------------
# (c) the accounting invariant, broken by hand


def journal_edit(journal_dir, edit):
    """Opens ingestd's LMDB journal (ingestd stopped) and runs edit(txn, rec, meta)."""
    lmdb = pytest.importorskip("lmdb", reason="python3-lmdb (Debian) is needed to edit the journal")
    env = lmdb.open(journal_dir, max_dbs=4, subdir=True, map_size=1 << 30)
    try:
        rec = env.open_db(b"rec", create=False)
        meta = env.open_db(b"meta", create=False)
        with env.begin(write=True) as txn:
            return edit(txn, rec, meta)
    finally:
        env.close()


def test_health_reports_broken_invariant(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    intake = IntakeClient(p.intake)
    assert intake.batch([metric_record(i) for i in range(10)]) == (10, 0)
    assert intake.batch([b"\xc1"]) == (0, 1)
    intake.close()
    status, text = p.ingestd.health()
    assert status == 200 and health_numbers(text)["in_journal"] == 10, text
    p.ingestd.stop()

    # One record removed by hand: accepted 10 != acked_by_all 0 + in_journal 9.
    key = struct.pack(">Q", 4)
    removed = journal_edit(p.journal_dir, lambda txn, rec, meta: (txn.get(key, db=rec),
                                                                  txn.delete(key, db=rec))[0])
    assert removed is not None
    p.ingestd.start()
    status, text = p.ingestd.health()
    assert status == 503, text
    assert "invariant violated" in text
    assert "accepted 10 != acked_by_all 0 + in_journal 9" in text, text
    if built("omnictl"):
        out = omnictl("status", f"--targets=ingestd=127.0.0.1:{p.ingestd.http_port}",
                      "--sample=0")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "unhealthy" in table_line(out.stdout, "ingestd")
        assert "invariant violated" in out.stdout
    p.ingestd.stop()

    # Put it back, count one input too many: received 12 != accepted 10 + rejected 1.
    def restore(txn, rec, meta):
        txn.put(key, removed, db=rec)
        received = struct.unpack(">Q", txn.get(b"received", db=meta))[0]
        txn.put(b"received", struct.pack(">Q", received + 1), db=meta)
    journal_edit(p.journal_dir, restore)
    p.ingestd.start()
    status, text = p.ingestd.health()
    assert status == 503, text
    assert "received 12 != accepted 10 + rejected 1" in text, text
    p.ingestd.stop()

    # Repaired: healthy again.
    journal_edit(p.journal_dir, lambda txn, rec, meta: txn.put(
        b"received", struct.pack(">Q", 11), db=meta))
    p.ingestd.start()
    status, text = p.ingestd.health()
    assert status == 200 and "received=11 accepted=10 rejected=1" in text, text


# ---------------------------------------------------------------------------
# (d) omnictl status


def test_omnictl_status_up_down_and_watch(pipeline):
    need("omnictl", " (tools/module.mk must include tools/omnictl/module.mk)")
    need("archiverd")
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    arch = p.archiverd()
    arch.start()
    wait_until(lambda: arch.health()[0] == 200, 30, "archiverd healthy")
    intake = IntakeClient(p.intake)
    assert intake.batch([metric_record(i) for i in range(30)] + [b"\xc1"]) == (30, 1)
    intake.close()
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"] == 30, 30,
               "30 records archived")
    wait_until(lambda: p.ingestd.metrics()['omni_ingestd_writer_lag_records{writer="archive"}']
               == 0, 10, "lag 0")
    targets = (f"--targets=ingestd=127.0.0.1:{p.ingestd.http_port},"
               f"archiverd=127.0.0.1:{arch.http_port}")

    out = omnictl("status", targets, "--sample=300ms")
    assert out.returncode == 0, out.stdout + out.stderr
    line = table_line(out.stdout, "ingestd")
    assert " up " in line and "journal 0" in line and "records_rejected=1" in line, line
    line = table_line(out.stdout, "archiverd")
    assert " up " in line and "0 (0.0s)" in line and "ok" in line, line
    assert " 0.0 " in line  # records/s: nothing arrives now
    assert "2 of 2 daemons up and healthy" in out.stdout
    writers = out.stdout[out.stdout.index("writers of ingestd"):]
    assert re.search(r"\narchive +yes ", writers), writers

    # The same from the config file's omnictl section, through OMNI_CONFIG.
    config = os.path.join(p.workdir, "omni.yaml")
    with open(config, "w") as f:
        f.write("omnictl:\n  targets:\n"
                f"    - ingestd=127.0.0.1:{p.ingestd.http_port}\n"
                f"    - archiverd=127.0.0.1:{arch.http_port}\n  sample: 0\n")
    env = dict(os.environ, OMNI_CONFIG=config)
    out = subprocess.run([binary("omnictl"), "status"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0 and "2 of 2 daemons up" in out.stdout, out.stdout + out.stderr

    # --watch redraws until Ctrl-C, then exits 0.
    watch = subprocess.Popen([binary("omnictl"), "status", "--watch", "--interval=200ms",
                              targets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    watch.send_signal(signal.SIGINT)
    stdout, stderr = watch.communicate(timeout=30)
    assert watch.returncode == 0, stderr
    assert stdout.count("DAEMON") >= 2, stdout

    # archiverd stops: down, exit 1; its lag still shows through ingestd.
    arch.stop()
    out = omnictl("status", targets, "--sample=0")
    assert out.returncode == 1, out.stdout + out.stderr
    line = table_line(out.stdout, "archiverd")
    assert " down " in line and "unreachable" in line, line
    assert "1 of 2 daemons up and healthy" in out.stdout

    # Usage errors: 2.
    assert omnictl("status", "--targets=nonsense", "--sample=0").returncode == 2
    assert omnictl("frobnicate").returncode == 2
    assert omnictl("status", "--no-such-flag").returncode == 2


# ---------------------------------------------------------------------------
# (e) make run on a fresh clone


def processes_mentioning(text):
    """Pids of processes whose command line contains `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def test_make_run_on_a_fresh_clone(workdir, pg_database):
    for name in ("ingestd", "collectord", "archiverd"):
        need(name, " (make run needs it)")
    clone = os.path.join(workdir, "clone")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True, timeout=120)
    mongo_uri = os.environ.get("OMNI_TEST_MONGO_URI")
    mongo_db = "omni_test_run_" + uuid.uuid4().hex[:12]
    env = dict(os.environ, OMNI_BIN=BIN, OMNI_PG_DSN=pg_database,
               OMNI_MONGO_URI=mongo_uri or "off", OMNI_MONGO_DB=mongo_db,
               OMNI_RUN_PORT_BASE=str(free_port_run(11)))
    env.pop("OMNI_RUN_DIR", None)
    env.pop("OMNI_RUN_KEEP", None)
    env.pop("OMNI_CONFIG", None)
    try:
        out = subprocess.run([os.path.join(clone, "tools", "omni-run.sh")], cwd=clone, env=env,
                             capture_output=True, text=True, timeout=900)
        check_make_run(clone, out, pg_database, mongo_uri, mongo_db)
    finally:
        if mongo_uri:
            from pymongo import MongoClient
            client = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
            client.drop_database(mongo_db)
            client.close()


def no_pymongo_python(workdir):
    """A python3 that cannot import pymongo (no site packages), as on a machine
    where the test packages are not installed yet."""
    path = os.path.join(workdir, "python-no-pymongo")
    with open(path, "w") as f:
        f.write('#!/bin/sh\nexec /usr/bin/python3 -S "$@"\n')
    os.chmod(path, 0o755)
    assert subprocess.run([path, "-c", "import pymongo"], capture_output=True).returncode != 0
    return path


def path_without(*tools):
    """PATH less the directories that hold any of `tools`."""
    dirs = [d for d in os.environ.get("PATH", "").split(os.pathsep)
            if not any(os.path.exists(os.path.join(d, t)) for t in tools)]
    return os.pathsep.join(dirs)


def closed_port():
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_run(count):
    """A base port with `count` consecutive free ports after it, below the
    kernel's ephemeral range (where outgoing connections take their ports)."""
    index, workers = worker()
    span = 12000 // workers  # a range of its own for each pytest-xdist worker
    for _ in range(200):
        base = 20000 + index * span + int.from_bytes(os.urandom(2), "big") % (span - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError("no run of free ports")


def newcomer_env(workdir, **extra):
    env = dict(os.environ, OMNI_BIN=BIN, OMNI_PYTHON=no_pymongo_python(workdir),
               PATH=path_without("mongosh", "mongo"), **extra)
    for k in ("OMNI_RUN_DIR", "OMNI_RUN_KEEP", "OMNI_CONFIG", "OMNI_TEST_MONGO_URI"):
        env.pop(k, None)
    return env


def summary_of(clone):
    summary = {}
    with open(os.path.join(clone, "var", "run", "summary.env")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            summary[key] = value
    return summary


def test_make_run_without_mongodb_or_pymongo(workdir, pg_database):
    """The first-run bug: with nothing on the MongoDB port and no client to ask,
    the store is skipped in one line; archive and PostgreSQL are complete."""
    for name in ("ingestd", "collectord", "archiverd"):
        need(name, " (make run needs it)")
    clone = os.path.join(workdir, "clone")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True, timeout=120)
    uri = f"mongodb://127.0.0.1:{closed_port()}"
    env = newcomer_env(workdir, OMNI_PG_DSN=pg_database, OMNI_MONGO_URI=uri,
                       OMNI_RUN_PORT_BASE=str(free_port_run(11)))
    out = subprocess.run([os.path.join(clone, "tools", "omni-run.sh")], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert [l for l in log.splitlines() if "skipped" in l] == \
        [f"MongoDB: {uri} does not answer: skipped (set OMNI_MONGO_URI to use one)"], log
    check_make_run(clone, out, pg_database, None, None)
    assert "documentd_stored" not in summary_of(clone), log


def test_make_run_with_private_servers(workdir):
    """No PostgreSQL and no MongoDB of the user's: the run starts its own
    (initdb under var/run, the tests' FerretDB), on the ports of
    OMNI_RUN_PORT_BASE, and stops them with the pipeline."""
    for name in ("ingestd", "collectord", "archiverd", "relationald", "documentd"):
        need(name, " (make run needs it)")
    clone = os.path.join(workdir, "clone")
    subprocess.run(["git", "clone", "-q", ROOT, clone], check=True, timeout=120)
    ferretdb = subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "binary"],
                              capture_output=True, text=True, check=True, timeout=900).stdout.strip()
    base = free_port_run(11)
    env = newcomer_env(workdir, OMNI_PG_DSN="private", OMNI_MONGO_URI="private",
                       OMNI_FERRETDB=ferretdb, OMNI_RUN_PORT_BASE=str(base))
    out = subprocess.run([os.path.join(clone, "tools", "omni-run.sh")], cwd=clone, env=env,
                         capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert re.search(rf"^PostgreSQL: a private cluster for this run, \S+ \(port {base + 9}\)$",
                     log, re.M), log
    assert f"MongoDB: a private FerretDB for this run, mongodb://127.0.0.1:{base + 10}" in log, log
    assert f"intake tcp://127.0.0.1:{base}  delivery tcp://127.0.0.1:{base + 1}" in log, log
    assert "skipped" not in log, log
    summary = summary_of(clone)
    commits = int(subprocess.run(["git", "-C", clone, "rev-list", "--all"], capture_output=True,
                                 text=True, check=True).stdout.count("\n"))
    assert int(summary["pg_commits"]) == commits, log
    # documentd stored every record ingestd accepted, as the archive did.
    assert int(summary["documentd_stored"]) == int(summary["ingestd_accepted"]) \
        == int(summary["archiverd_stored"]), log
    # Both private servers were stopped with the pipeline.
    assert not processes_mentioning(os.path.join(clone, "var")), log
    assert not listening_ports() & set(range(base, base + 11)), log


def listening_ports():
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(name) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A":
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def check_make_run(clone, out, pg_database, mongo_uri, mongo_db):
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-5000:]
    assert not processes_mentioning(os.path.join(clone, "var")), f"processes left behind:\n{log}"

    summary = {}
    with open(os.path.join(clone, "var", "run", "summary.env")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            summary[key] = value
    commits = int(subprocess.run(["git", "-C", clone, "rev-list", "--all"], capture_output=True,
                                 text=True, check=True).stdout.count("\n"))
    assert int(summary["commits"]) == commits
    assert f"{commits} commits (git rev-list --all)" in log
    assert int(summary["ingestd_rejected"]) == 0, log
    # The archive holds every commit once, and the summary says what it holds.
    archive = os.path.join(clone, "var", "run", "archive")
    assert int(summary["archive_git_commit"]) == commits, log
    for kind in os.listdir(archive):
        if kind.startswith("."):
            continue
        assert int(summary["archive_" + re.sub(r"[^a-zA-Z0-9]", "_", kind)]) == \
            archive_line_count(os.path.join(archive, kind))
    assert int(summary["archiverd_stored"]) == archive_line_count(archive)
    # PostgreSQL, when relationald was built.
    if built("relationald"):
        assert int(summary["pg_commits"]) == commits, log
        assert count_commits(pg_database) == commits
    # MongoDB, when the tests have one and documentd was built.
    if mongo_uri and built("documentd"):
        from pymongo import MongoClient
        client = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
        try:
            assert int(summary["mongo_git_commits"]) == commits, log
            assert client[mongo_db]["git_commits"].count_documents({}) == commits
        finally:
            client.close()
    # The audit as reports: an HTML and a PDF of this repository, when they can be made
    if built("relationald") and built("omni-report"):
        for kind in ("html", "pdf"):
            path = summary.get(f"report_{kind}", "")
            assert path.endswith("." + kind) and os.path.getsize(path) > 1000, (kind, log[-3000:])
            assert f"{kind} report" in log
    # Everything was stopped cleanly: every daemon's log ends with its stop line.
    logs = os.path.join(clone, "var", "run", "logs")
    for name in os.listdir(logs):
        # Tools that ran once and exited (their exit status is checked by
        # the script), not daemons that were stopped
        if name.startswith("collectord") or name.startswith("omni-report"):
            continue
        with open(os.path.join(logs, name)) as f:
            text = f.read()
        assert any("stop" in l for l in text.strip().splitlines()[-3:]), f"{name}:\n{text[-2000:]}"


def test_make_run_ctrl_c_stops_everything(workdir, pg_database):
    for name in ("ingestd", "collectord", "archiverd"):
        need(name, " (make run needs it)")
    run_dir = os.path.join(workdir, "run")
    # Never the default ports: another pipeline may be running
    env = dict(os.environ, OMNI_BIN=BIN, OMNI_PG_DSN=pg_database, OMNI_MONGO_URI="off",
               OMNI_RUN_DIR=run_dir, OMNI_RUN_HOLD="1",
               OMNI_RUN_PORT_BASE=str(free_port_run(11)))
    env.pop("OMNI_CONFIG", None)
    # SIGINT as a terminal leaves it: a test suite started in the background
    # of a shell runs with SIGINT ignored, which every child inherits, and a
    # shell cannot trap a signal ignored when it started (the script then
    # ran on to its end and was killed, its daemons left running)
    proc = subprocess.Popen(["env", "--default-signal=INT",
                             os.path.join(ROOT, "tools", "omni-run.sh")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = []

    def ours():
        """The run's processes: by its directory, and the PostgreSQL writers
        (whose command lines hold no path of it) by the test's database."""
        return set(processes_mentioning(run_dir)) | set(
            processes_mentioning("/" + pg_database.rsplit("/", 1)[1]))
    try:
        # Every daemon is up once the script prints how to watch them.
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("watch it:"):
                break
        assert processes_mentioning(run_dir), "".join(seen)
        os.killpg(proc.pid, signal.SIGINT)    # what Ctrl-C on a terminal does
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired as e:
            # Which daemon did not stop, and what it was doing: its log's end
            logs = os.path.join(run_dir, "logs")
            tails = "".join(
                f"---- {name}\n" + "".join(open(os.path.join(logs, name), errors="replace")
                                            .readlines()[-15:])
                for name in sorted(os.listdir(logs))) if os.path.isdir(logs) else ""
            out = e.output or b""  # bytes even in text mode (subprocess)
            out = out.decode(errors="replace") if isinstance(out, bytes) else out
            alive = subprocess.run(["ps", "-o", "pid,stat,etime,wchan:20,args", "-p",
                                    ",".join(map(str, ours())) or "1"],
                                   capture_output=True, text=True).stdout
            raise AssertionError("not stopped 60 s after SIGINT:\n" + "".join(seen) + out
                                 + "---- still running\n" + alive + tails) from None
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # The daemons run in sessions of their own: a script killed here
        # leaves them, and a failed test must not leave a pipeline running
        for pid in ours():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    log = "".join(seen) + rest
    assert proc.returncode in (0, 130), log
    assert "stopping:" in log, log
    assert not ours(), f"processes left behind:\n{log}"
