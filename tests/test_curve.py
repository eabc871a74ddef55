"""CURVE security, every daemon a separate process over TCP: keys made with
`omnictl keygen`, ingestd accepting only the clients whose public
certificates are in its curve_clients directory, on intake, delivery and
tap alike."""
import os
import shutil
import subprocess

from omni import archive_lines, binary, wait_until
from test_omni_tap import Tap

COUNT = 500


def keygen(keys, name):
    path = os.path.join(keys, name)
    out = subprocess.run([binary("omnictl"), "keygen", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.stat(path + "_secret").st_mode & 0o777 == 0o600
    return path


def allow(clients, key):
    """What an operator does: only the public half goes to ingestd."""
    shutil.copy(key, os.path.join(clients, os.path.basename(key)))


def client_args(key, server):
    return [f"--curve-key={key}", f"--curve-server-key={server}"]


def ids_in(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def loadgen(p, workdir, name, *args):
    """omni-loadgen in the background; its log tells whether ingestd let it in."""
    log_path = os.path.join(workdir, f"{name}.log")
    ids = os.path.join(workdir, f"{name}.ids")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary("omni-loadgen"), f"--intake={p.intake}",
                                 f"--count={COUNT}", f"--ids-out={ids}", "--give-up=0", *args],
                                stdout=log, stderr=subprocess.STDOUT)

    def log_text():
        with open(log_path) as f:
            return f.read()
    return proc, ids, log_text


def stop(proc):
    """A refused loadgen would wait out its drain on SIGTERM: nothing to hand over here."""
    if proc.poll() is None:
        proc.kill()
    return proc.wait(15)


def test_curve_intake_delivery_and_tap(pipeline, workdir):
    keys = os.path.join(workdir, "keys")
    clients = os.path.join(workdir, "clients")
    os.makedirs(keys)
    os.makedirs(clients)
    server = keygen(keys, "ingestd")
    archiver_key, loadgen_key, tap_key, stranger_key = (
        keygen(keys, n) for n in ("archiverd", "loadgen", "tap", "stranger"))
    for key in (archiver_key, loadgen_key, tap_key):
        allow(clients, key)
    # A key is never overwritten
    again = subprocess.run([binary("omnictl"), "keygen", server], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr

    p = pipeline(writers=("archive",),
                 extra=(f"--curve-key={server}", f"--curve-clients={clients}"))
    p.ingestd.start()
    archiverd = p.writer("archiverd", [f"--archive-dir={p.archive_dir}",
                                       *client_args(archiver_key, server)])
    archiverd.start()
    tap = Tap(workdir, "curve", p.tap, *client_args(tap_key, server))
    procs = []
    try:
        # The subscription reaches ingestd only through an accepted handshake
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_tap_subscriptions", 0) >= 1, 20,
                   "the CURVE tap's subscription")

        good, good_ids, _ = loadgen(p, workdir, "good", *client_args(loadgen_key, server))
        stranger, stranger_ids, stranger_log = loadgen(
            p, workdir, "stranger", "--start-index=100000", *client_args(stranger_key, server))
        plain, _, plain_log = loadgen(p, workdir, "plain", "--start-index=200000")
        procs += [good, stranger, plain]

        assert good.wait(30) == 0
        expected = ids_in(good_ids)
        assert len(expected) == COUNT
        p.wait_archived(COUNT, timeout=30)

        # Refused clients say so, naming the endpoint, once per streak
        wait_until(lambda: "event=curve.refused" in stranger_log(), 20, "the stranger's refusal")
        wait_until(lambda: "event=curve.handshake_failed" in plain_log(), 20,
                   "the plain client's failed handshake")
        assert f"endpoint={p.intake}" in stranger_log()
        assert stranger_log().count("event=curve.refused") == 1
        assert stranger.poll() is None and plain.poll() is None  # still retrying

        metrics = p.ingestd.metrics()
        assert metrics["omni_ingestd_records_received_total"] == COUNT
        assert metrics["omni_ingestd_records_accepted_total"] == COUNT
        lines = archive_lines(p.archive_dir)
        assert len(lines) == COUNT and {line["id"] for line in lines} == expected

        # The tap's subscriber is a CURVE client too, and sees the records
        wait_until(lambda: len(tap.lines()) >= COUNT, 20, "the tap to show the records")
        assert {line["id"] for line in tap.lines()} == expected

        stop(plain)
        # Allowing a key takes effect without restarting ingestd: the
        # stranger's next attempt is let in and its records follow
        allow(clients, stranger_key)
        assert stranger.wait(30) == 0, stranger_log()
        assert "event=curve.accepted" in stranger_log()
        p.wait_archived(2 * COUNT, timeout=30)
        lines = archive_lines(p.archive_dir)
        assert {line["id"] for line in lines} == expected | ids_in(stranger_ids)
        assert len(lines) == 2 * COUNT
        assert p.ingestd.metrics()["omni_ingestd_records_received_total"] == 2 * COUNT
    finally:
        for proc in procs:
            stop(proc)
        tap.stop()


def test_curve_keys_must_come_in_pairs(workdir):
    keys = os.path.join(workdir, "keys")
    os.makedirs(keys)
    server = keygen(keys, "ingestd")

    def start_error(name, *args):
        out = subprocess.run([binary(name), *args], capture_output=True, text=True, timeout=20)
        assert out.returncode == 2, f"{name} {args}: {out.returncode}\n{out.stderr}"
        return out.stderr

    assert "curve_clients" in start_error("ingestd", f"--curve-key={server}")
    missing = os.path.join(workdir, "nope")
    assert missing in start_error("ingestd", f"--curve-key={server}", f"--curve-clients={missing}")
    assert "curve_server_key" in start_error("omni-loadgen", f"--curve-key={server}")
    assert "curve_key" in start_error("omni-tap", f"--curve-server-key={server}")
    assert "curve_server_key" in start_error("archiverd", f"--curve-key={server}",
                                             f"--archive-dir={workdir}/a")
    assert "curve_key" in start_error("collectord", "git", f"--curve-server-key={server}",
                                      "--once", workdir)
    public_only = os.path.join(workdir, "public-only")
    shutil.copy(server, public_only)
    assert public_only + "_secret" in start_error(
        "omni-loadgen", f"--curve-key={public_only}", f"--curve-server-key={server}")


def test_curve_unknown_writer_and_tap_are_refused_until_allowed(pipeline, workdir):
    keys = os.path.join(workdir, "keys")
    clients = os.path.join(workdir, "clients")
    os.makedirs(keys)
    os.makedirs(clients)
    server = keygen(keys, "ingestd")
    loadgen_key, writer_key, tap_key = (keygen(keys, n) for n in ("loadgen", "writer", "tap"))
    allow(clients, loadgen_key)

    p = pipeline(writers=("archive",),
                 extra=(f"--curve-key={server}", f"--curve-clients={clients}"))
    p.ingestd.start()
    archiverd = p.writer("archiverd", [f"--archive-dir={p.archive_dir}",
                                       *client_args(writer_key, server)])
    archiverd.start()
    tap = Tap(workdir, "unknown", p.tap, *client_args(tap_key, server))
    try:
        wait_until(lambda: "event=curve.refused" in archiverd.log(), 20, "the writer's refusal")
        wait_until(lambda: "event=curve.refused" in open(tap.err_path).read(), 20,
                   "the tap's refusal")
        assert f"endpoint={p.delivery}" in archiverd.log()
        gen, ids, _ = loadgen(p, workdir, "gen", *client_args(loadgen_key, server))
        assert gen.wait(30) == 0
        metrics = p.ingestd.metrics()
        assert metrics['omni_ingestd_writer_connected{writer="archive"}'] == 0
        assert metrics.get("omni_ingestd_tap_subscriptions", 0) == 0
        assert metrics['omni_ingestd_records_acked_total{writer="archive"}'] == 0

        # Allowed at run time: the writer's and the tap's next attempts get in
        allow(clients, writer_key)
        allow(clients, tap_key)
        p.wait_archived(COUNT, timeout=30)
        assert {line["id"] for line in archive_lines(p.archive_dir)} == ids_in(ids)
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_tap_subscriptions", 0) >= 1,
                   20, "the tap's subscription once allowed")
        assert archiverd.log().count("event=curve.refused") == 1
    finally:
        tap.stop()
