"""CURVE security, every daemon a separate process over TCP: keys made with
`omnictl keygen`, ingestd accepting a client only on the sockets of its
role, by where its public certificate sits in curve_clients: collector/
(intake), tap/ (tap), writer/NAME/ (delivery, as writer NAME only)."""
import os
import shutil
import subprocess

from omni import archive_line_count, archive_lines, binary, wait_until
from test_omni_tap import Tap

COUNT = 500


def keygen(keys, name):
    path = os.path.join(keys, name)
    out = subprocess.run([binary("omnictl"), "keygen", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.stat(path + "_secret").st_mode & 0o777 == 0o600
    return path


def role_dir(clients, role):
    return os.path.join(clients, *role.split(":"))


def allow(clients, key, role):
    """What an operator does: only the public half goes to ingestd, in its role's directory."""
    os.makedirs(role_dir(clients, role), exist_ok=True)
    shutil.copy(key, os.path.join(role_dir(clients, role), os.path.basename(key)))


def client_args(key, server):
    return [f"--curve-key={key}", f"--curve-server-key={server}"]


def key_dirs(workdir):
    """The directories of keys and of the allowed clients, and ingestd's key
    made in the first. Returns (keys, clients, the server's certificate)."""
    keys = os.path.join(workdir, "keys")
    clients = os.path.join(workdir, "clients")
    os.makedirs(keys)
    os.makedirs(clients)
    return keys, clients, keygen(keys, "ingestd")


def curve_pipeline(pipeline, workdir, name, server, clients, writer_key, tap_key):
    """ingestd with CURVE (its key `server`, the clients' directory `clients`),
    started, an archiverd and a tap `name` connecting with their keys.
    Returns the pipeline, the archiverd and the tap."""
    p = pipeline(writers=("archive",),
                 extra=(f"--curve-key={server}", f"--curve-clients={clients}"))
    p.ingestd.start()
    archiverd = p.writer("archiverd", [f"--archive-dir={p.archive_dir}",
                                       *client_args(writer_key, server)])
    archiverd.start()
    return p, archiverd, Tap(workdir, name, p.tap, *client_args(tap_key, server))


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
    keys, clients, server = key_dirs(workdir)
    archiver_key, loadgen_key, tap_key, stranger_key = (
        keygen(keys, n) for n in ("archiverd", "loadgen", "tap", "stranger"))
    for key, role in ((archiver_key, "writer:archive"), (loadgen_key, "collector"),
                      (tap_key, "tap")):
        allow(clients, key, role)
    # A key is never overwritten
    again = subprocess.run([binary("omnictl"), "keygen", server], capture_output=True, text=True)
    assert again.returncode != 0 and "exists" in again.stderr

    p, archiverd, tap = curve_pipeline(pipeline, workdir, "curve", server, clients, archiver_key,
                                       tap_key)
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
        allow(clients, stranger_key, "collector")
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

    # The layout before roles: a certificate directly in curve_clients has no
    # role, and ingestd says how to migrate rather than guess one
    flat = os.path.join(workdir, "flat")
    os.makedirs(flat)
    old_client = keygen(keys, "old-client")
    shutil.copy(old_client, os.path.join(flat, "old-client"))
    err = start_error("ingestd", f"--curve-key={server}", f"--curve-clients={flat}")
    assert os.path.join(flat, "old-client") in err and "has no role" in err
    assert "collector/" in err and "writer/<name>/" in err
    os.remove(os.path.join(flat, "old-client"))
    os.makedirs(os.path.join(flat, "writer", "archiv"))
    err = start_error("ingestd", f"--curve-key={server}", f"--curve-clients={flat}")
    assert os.path.join(flat, "writer", "archiv") in err and "unknown writer" in err

    public_only = os.path.join(workdir, "public-only")
    shutil.copy(server, public_only)
    assert public_only + "_secret" in start_error(
        "omni-loadgen", f"--curve-key={public_only}", f"--curve-server-key={server}")


def test_curve_unknown_writer_and_tap_are_refused_until_allowed(pipeline, workdir):
    keys, clients, server = key_dirs(workdir)
    loadgen_key, writer_key, tap_key = (keygen(keys, n) for n in ("loadgen", "writer", "tap"))
    allow(clients, loadgen_key, "collector")

    p, archiverd, tap = curve_pipeline(pipeline, workdir, "unknown", server, clients, writer_key,
                                       tap_key)
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
        allow(clients, writer_key, "writer:archive")
        allow(clients, tap_key, "tap")
        p.wait_archived(COUNT, timeout=30)
        assert {line["id"] for line in archive_lines(p.archive_dir)} == ids_in(ids)
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_tap_subscriptions", 0) >= 1,
                   20, "the tap's subscription once allowed")
        assert archiverd.log().count("event=curve.refused") == 1
    finally:
        tap.stop()


def keygen_role(keys, name, role, clients):
    """omnictl keygen --role: the key pair, and its public half in ingestd's clients directory."""
    path = os.path.join(keys, name)
    out = subprocess.run([binary("omnictl"), "keygen", path, f"--role={role}",
                          f"--clients={clients}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert os.path.isfile(os.path.join(role_dir(clients, role), name))
    assert not os.path.exists(os.path.join(role_dir(clients, role), name + "_secret"))
    return path


def test_curve_keys_work_only_in_their_role(pipeline, workdir, pg_database):
    keys, clients, server = key_dirs(workdir)
    collector_key = keygen_role(keys, "collector-1", "collector", clients)
    tap_key = keygen_role(keys, "tap-1", "tap", clients)
    archive_key = keygen_role(keys, "archiverd-1", "writer:archive", clients)
    relational_key = keygen_role(keys, "relationald-1", "writer:relational", clients)
    # A role that is not one is refused before any key is written
    bad = subprocess.run([binary("omnictl"), "keygen", os.path.join(keys, "x"),
                          "--role=writer:archiv", f"--clients={clients}"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown role" in bad.stderr
    assert not os.path.exists(os.path.join(keys, "x"))

    p = pipeline(writers=("archive", "relational"),
                 extra=(f"--curve-key={server}", f"--curve-clients={clients}"))
    p.ingestd.start()

    def refused(socket, key_name):
        return (f"event=curve.refused socket={socket} key={key_name} " in p.ingestd.log())

    # Keys outside their role, each a real client on the wrong socket
    wrong_archive = os.path.join(workdir, "wrong-archive")
    collector_as_writer = p.writer("archiverd", [f"--archive-dir={wrong_archive}",
                                                 *client_args(collector_key, server)])
    collector_as_writer.start()
    collector_as_tap = Tap(workdir, "collector-as-tap", p.tap,
                           *client_args(collector_key, server))
    tap_as_collector, tap_ids, tap_log = loadgen(p, workdir, "tap-as-collector",
                                                 "--kind=git.commit", "--start-index=100000",
                                                 *client_args(tap_key, server))
    # A writer key for "archive" that says HELLO as "relational": a real
    # relationald, let in at the handshake (it is a writer) and refused at HELLO
    impostor = p.writer("relationald", [f"--dsn={pg_database}",
                                        *client_args(archive_key, server)])
    impostor.start()
    tap = Tap(workdir, "tap", p.tap, *client_args(tap_key, server))
    procs = [tap_as_collector]
    try:
        wait_until(lambda: refused("delivery", "collector/collector-1"), 20,
                   "ingestd to refuse the collector key on delivery")
        wait_until(lambda: refused("tap", "collector/collector-1"), 20,
                   "ingestd to refuse the collector key on the tap")
        wait_until(lambda: refused("intake", "tap/tap-1"), 20,
                   "ingestd to refuse the tap key on intake")
        wait_until(lambda: "event=delivery.refused writer=relational "
                   "key=writer/archive/archiverd-1 allowed=archive" in p.ingestd.log(), 20,
                   "ingestd to refuse the archive key's HELLO as relational")
        # The clients hear it too
        wait_until(lambda: "event=curve.refused" in collector_as_writer.log(), 20,
                   "the refusal in the collector-keyed writer's log")
        wait_until(lambda: "event=curve.refused" in tap_log(), 20,
                   "the refusal in the tap-keyed loadgen's log")
        wait_until(lambda: "may deliver to writer archive only" in impostor.log(), 20,
                   "the RESET reason in the impostor's log")
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_tap_subscriptions", 0) >= 1, 20,
                   "the tap key's subscription")

        # Each allowed role works: the collector's records are stored by the
        # archive writer and seen on the tap
        good, good_ids, _ = loadgen(p, workdir, "good", "--kind=git.commit",
                                      *client_args(collector_key, server))
        procs.append(good)
        assert good.wait(30) == 0
        expected = ids_in(good_ids)
        assert len(expected) == COUNT
        archiverd = p.writer("archiverd-real", [f"--archive-dir={p.archive_dir}",
                                                *client_args(archive_key, server)],
                             binary_name="archiverd")
        archiverd.start()
        p.wait_archived(COUNT, timeout=30)
        assert {line["id"] for line in archive_lines(p.archive_dir)} == expected
        wait_until(lambda: len(tap.lines()) >= COUNT, 20, "the tap to show the records")
        assert {line["id"] for line in tap.lines()} == expected

        # Nothing reached or came from a refused peer
        metrics = p.ingestd.metrics()
        assert metrics["omni_ingestd_records_received_total"] == COUNT
        assert metrics['omni_ingestd_records_delivered_total{writer="relational"}'] == 0
        assert metrics['omni_ingestd_writer_connected{writer="relational"}'] == 0
        assert metrics['omni_ingestd_curve_refused_total{socket="delivery",why="wrong_role"}'] >= 1
        assert metrics['omni_ingestd_curve_refused_total{socket="tap",why="wrong_role"}'] >= 1
        assert metrics['omni_ingestd_curve_refused_total{socket="intake",why="wrong_role"}'] >= 1
        assert metrics[
            'omni_ingestd_curve_refused_total{socket="delivery",why="wrong_writer"}'] >= 1
        assert impostor.metrics()["omni_relationald_records_stored_total"] == 0
        assert collector_as_tap.text() == ""
        assert archive_line_count(wrong_archive) == 0
        assert tap_as_collector.poll() is None  # still refused, still retrying

        # The real relational path is unaffected: its own key delivers
        impostor.stop()
        relationald = p.writer("relationald-real", [f"--dsn={pg_database}",
                                                    *client_args(relational_key, server)],
                               binary_name="relationald")
        relationald.start()
        p.wait_acked("relational", COUNT, timeout=60)
        assert relationald.metrics()["omni_relationald_records_stored_total"] == COUNT
        assert "event=delivery.refused" not in relationald.log()

        # A key added at run time for a role starts working in that role:
        # the tap key, allowed as a collector now, gets its records in
        allow(clients, tap_key, "collector")
        try:
            wait_until(lambda: tap_as_collector.poll() is not None, 30,
                       "the tap key, allowed as a collector, to send its records")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{tap_log()[-3000:]}\n{p.ingestd.log()[-4000:]}")
        assert tap_as_collector.returncode == 0, tap_log()
        assert "event=curve.accepted" in tap_log()
        p.wait_archived(2 * COUNT, timeout=30)
        assert ({line["id"] for line in archive_lines(p.archive_dir)} ==
                expected | ids_in(tap_ids))
        # The refused tap still got nothing
        assert collector_as_tap.text() == ""
    finally:
        for proc in procs:
            stop(proc)
        tap.stop()
        collector_as_tap.stop()
