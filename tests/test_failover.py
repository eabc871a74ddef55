"""Collectors with several ingestd endpoints (issue 19): two ingestd instances,
each with its own journal and its own relationald, both writing to one
PostgreSQL database. A collector given both endpoints sends to the first;
when that ingestd dies it sends what was not acknowledged to the second
and carries on. Every record ends up in PostgreSQL exactly once: the ones
the dead ingestd had journalled and acknowledged reach the database when
it is started again on its journal, those it had not acknowledged went
again to the second, and the stores are idempotent on record ids."""
import os
import signal
import subprocess

from omni import (Daemon, Loadgen, Pipeline, binary, free_port, http_get, query,
                  stop_pipelines, wait_until)


def _pipelines(workdir, dsn):
    """Two ingestd instances, each with its own relationald into `dsn` (the
    first one's not started)."""
    made = []
    for name in ("a", "b"):
        path = os.path.join(workdir, name)
        os.makedirs(path)
        p = Pipeline(path, writers=("relational",))
        p.ingestd.start()
        p.writer("relationald", [f"--dsn={dsn}", "--batch-size=500"])
        made.append(p)
    made[1].daemons[-1].start()
    return made


def _ids(dsn):
    return [bytes(r[0]).hex() for r in query(dsn, "SELECT id FROM commits")]


def test_loadgen_fails_over_when_ingestd_is_killed(workdir, pg_database):
    # The first ingestd's writer starts only after the kill: what that
    # ingestd acknowledged is then only in its journal, as with a writer
    # that lags behind
    a, b = _pipelines(workdir, pg_database)
    try:
        n = 20_000
        ids_path = os.path.join(workdir, "ids")
        with Loadgen(workdir, f"{a.intake},{b.intake}", "--kind=git.commit", f"--count={n}",
                     "--rate=4000", "--batch=200", f"--ids-out={ids_path}",
                     "--give-up=20s") as loadgen:
            # Mid-stream: the first ingestd has journalled a part
            wait_until(lambda: a.ingestd.metrics().get("omni_ingestd_records_accepted_total", 0)
                       >= n // 5, 30, "a fifth of the records accepted by the first ingestd")
            a.ingestd.kill9()
            summary = loadgen.finish(60)
        log = loadgen.log()
        assert summary["sent"] == str(n), summary
        assert int(summary["failovers"]) >= 1, summary
        assert f"event=intake.failover from={a.intake} to={b.intake}" in log, log[-3000:]
        # The second took the rest of the stream
        assert b.ingestd.metrics()["omni_ingestd_records_accepted_total"] > 0

        # What the first had acknowledged waits in its journal: it reaches
        # PostgreSQL once that ingestd is back and its writer connects
        assert len(_ids(pg_database)) < n
        a.ingestd.start()
        a.daemons[-1].start()
        wait_until(lambda: len(_ids(pg_database)) >= n, 60, f"{n} commits in PostgreSQL")
        with open(ids_path) as f:
            sent = [line.strip() for line in f if line.strip()]
        stored = _ids(pg_database)
        assert len(sent) == n and len(set(sent)) == n
        assert len(stored) == n and set(stored) == set(sent)
        assert query(pg_database, "SELECT count(*) FROM commits GROUP BY id HAVING count(*) > 1") \
            == []
    finally:
        stop_pipelines([a, b])


def test_collectord_starts_on_second_endpoint_and_reports_it(workdir, pg_database):
    """The first endpoint in the config file's list has nothing listening:
    collectord moves to the second, and says so in its log, /metrics and
    /health."""
    b = Pipeline(workdir, writers=("relational",))
    b.ingestd.start()
    b.writer("relationald", [f"--dsn={pg_database}"]).start()
    dead = f"tcp://127.0.0.1:{free_port()}"
    config = os.path.join(workdir, "omni.yaml")
    with open(config, "w") as f:
        f.write(f"collectord:\n  intake:\n    - {dead}\n    - {b.intake}\n")
    script = ("echo '{\"pipeline\":\"deploy\",\"build_id\":\"'$(date +%s%N)'\","
              "\"status\":\"success\"}'")
    http = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNI_")}
    # --http before the command's arguments (Daemon adds it last)
    collector = Daemon("collectord", ["exec", f"--config={config}", "--kind=ci.build",
                                      "--source=deployer", "--interval=200ms", "--progress=off",
                                      f"--http=127.0.0.1:{http}", "--", "sh", "-c", script],
                       workdir, env=env)
    collector.http_port = http
    try:
        collector.start()
        wait_until(lambda: b.acked("relational") >= 4, 30, "two runs stored")
        m = collector.metrics()
        assert m["omni_collectord_failovers_total"] == 1
        assert m[f'omni_collectord_intake_connected{{endpoint="{b.intake}"}}'] == 1
        assert m[f'omni_collectord_intake_connected{{endpoint="{dead}"}}'] == 0
        status, text = http_get(collector.url("/health"))
        assert status == 200 and "failovers=1" in text, text
        log = collector.log()
        assert f"event=intake.failover from={dead} to={b.intake} why=unreachable" in log, log
        # omnictl status shows it in the collector's row
        out = subprocess.run([binary("omnictl"), "status",
                              f"--targets=collector=127.0.0.1:{http}"],
                             capture_output=True, text=True, timeout=30)
        assert "failovers=1" in out.stdout, out.stdout + out.stderr
        collector.proc.send_signal(signal.SIGTERM)
        assert collector.proc.wait(timeout=30) == 0
        collector.proc = None
    finally:
        collector.kill9()
        b.stop()


def test_curve_one_server_key_for_every_endpoint(workdir):
    """Both instances hold one server certificate; the first does not (yet)
    hold the collector's key, so it refuses the handshake: the collector
    moves on to the second after 2 s and its records are stored there."""
    from test_curve import allow, client_args, keygen
    keys = os.path.join(workdir, "keys")
    os.makedirs(keys)
    server = keygen(keys, "ingestd")
    collector_key, archiver_key = keygen(keys, "collector"), keygen(keys, "archiverd")
    made = []
    for name in ("a", "b"):
        path = os.path.join(workdir, name)
        clients = os.path.join(path, "clients")
        os.makedirs(clients)
        allow(clients, archiver_key, "writer:archive")
        if name == "b":
            allow(clients, collector_key, "collector")
        p = Pipeline(path, extra=(f"--curve-key={server}", f"--curve-clients={clients}"))
        p.ingestd.start()
        made.append(p)
    a, b = made
    try:
        b.writer("archiverd", [f"--archive-dir={b.archive_dir}", "--compress-after=0",
                               *client_args(archiver_key, server)]).start()
        out = subprocess.run([binary("omni-loadgen"), f"--intake={a.intake}, {b.intake}",
                              "--count=2000", "--give-up=20s", *client_args(collector_key, server)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "failovers=1" in out.stdout, out.stdout
        assert f"event=curve.refused endpoint={a.intake}" in out.stderr, out.stderr
        assert f"event=intake.failover from={a.intake} to={b.intake} why=refused" in out.stderr
        b.wait_archived(2000, timeout=30)
        assert a.ingestd.metrics().get("omni_ingestd_records_received_total", 0) == 0
    finally:
        stop_pipelines(made)
