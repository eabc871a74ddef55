"""docs/deploy.md's "Across several hosts", run on hosts of the test's own:
network namespaces (one per host, each with its own address, wired to one
switch) and host names resolved from a hosts file, as `ip netns exec` gives
each namespace (/etc/netns/<name>/hosts). Three NATS hosts with the
deploy's omni.conf and routes by name, two ingestd hosts and two relationald
hosts configured by the documented environment variables, PostgreSQL on a
host of its own, a collector given both ingestd hosts.

What one machine's loopback cannot show: that the pieces find each other by
the names and ports the guide gives, and that cutting hosts off the network
(no process killed, no connection reset: packets just stop) loses nothing.
The daemons listen on the documented default ports: each host is a network
namespace of its own, so those ports are private to it and nothing else on
the machine can be joined or disturbed.

Needs root (network namespaces); CI runs as root."""
import json
import os
import subprocess

import pytest

from netns import HostDaemon, network
from omni import PrivatePostgres, binary, wait_until

HOSTS = {"nats-1": 11, "nats-2": 12, "nats-3": 13, "ingest-a": 21, "ingest-b": 22,
         "db": 30, "writer-1": 41, "writer-2": 42, "collector": 50}
NET = "10.203.0"
CONF = os.path.join(os.path.dirname(__file__), "..", "deploy", "nats", "omni.conf")


class HostPostgres(PrivatePostgres):
    """PrivatePostgres on a host of the network, listening on its address."""

    def __init__(self, net, host):
        self.net, self.host = net, host
        super().__init__()
        with open(os.path.join(self.data, "pg_hba.conf"), "a") as f:
            f.write(f"host all all {NET}.0/24 trust\n")

    def _run(self, tool, *args):
        user = ["runuser", "-u", "postgres", "--"] if self.user else []
        out = self.net.run(self.host, *user, os.path.join(self.bindir, tool), *args, timeout=120)
        assert out.returncode == 0, f"{tool} failed:\n{out.stdout}\n{out.stderr}"

    def start(self):
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60", "-o",
                  f"-p 5432 -c listen_addresses={NET}.{HOSTS[self.host]} -k {self.dir} "
                  "-c fsync=off", "start")

    def sql(self, statement):
        out = self.net.run(self.host, "psql", "-h", f"{NET}.{HOSTS[self.host]}", "-U", "postgres",
                           "-d", "omniaudit", "-Atc", statement)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


def _fast_history(path, start, n):
    """n more commits on main, by git fast-import (`start`: commits before)."""
    stream = [b"commit refs/heads/main\ncommitter C <c@x> %d +0000\ndata 4\nc%03d\n"
              % (1_700_000_000 + i, i % 1000) +
              (b"from refs/heads/main^0\n" if i == start and start else b"") +
              b"M 100644 inline f%d\ndata %d\n%d\n\n" % (i % 40, len(b"%d" % i) + 1, i)
              for i in range(start, start + n)]
    subprocess.run(["git", "-C", path, "fast-import", "--quiet"], input=b"".join(stream),
                   check=True, capture_output=True)


@pytest.fixture
def net():
    with network(HOSTS, NET) as n:
        yield n


def test_across_hosts_names_routes_and_hosts_cut_off(net, workdir):
    daemons, nats = [], []
    pg = HostPostgres(net, "db")
    try:
        pg.start()
        out = net.run("db", "psql", "-h", f"{NET}.{HOSTS['db']}", "-U", "postgres", "-c",
                      "CREATE DATABASE omniaudit")
        assert out.returncode == 0, out.stderr

        # Three NATS hosts: the deploy's config (its store directory, the
        # containers' volume, made the host's own), routes by host name
        with open(CONF) as f:
            conf = f.read()
        assert "store_dir: /data" in conf
        for i in (1, 2, 3):
            routes = ",".join(f"nats://nats-{k}.example:6222" for k in (1, 2, 3) if k != i)
            path = os.path.join(workdir, f"nats-{i}.conf")
            with open(path, "w") as f:
                f.write(conf.replace("store_dir: /data",
                                     f'store_dir: "{os.path.join(workdir, f"nats-{i}")}"'))
            log = open(os.path.join(workdir, f"nats-{i}.log"), "w")
            nats.append(subprocess.Popen(
                ["ip", "netns", "exec", net.ns(f"nats-{i}"), "nats-server", "-c", path,
                 "--name", f"nats-{i}", "--routes", routes], stdout=log, stderr=log))
            log.close()

        def cluster_up():
            leaders = set()
            for i in (1, 2, 3):
                assert nats[i - 1].poll() is None, f"nats-{i} exited"
                try:
                    status, text = net.get(f"http://{NET}.{HOSTS[f'nats-{i}']}:8222/jsz")
                except OSError:
                    return False
                leaders.add((json.loads(text).get("meta_cluster") or {}).get("leader")
                            if status == 200 else None)
            return None not in leaders and len(leaders) == 1
        wait_until(cluster_up, 60, "three NATS hosts routed by name, one meta leader", 0.2)

        urls = ",".join(f"nats://nats-{i}.example:4222" for i in (1, 2, 3))
        ingest = {}
        for host in ("ingest-a", "ingest-b"):
            ingest[host] = HostDaemon(net, host, "ingestd", workdir, {
                "OMNI_INGESTD_JOURNAL": "jetstream", "OMNI_INGESTD_NATS_URLS": urls,
                "OMNI_INGESTD_REPLICAS": "3", "OMNI_INGESTD_WRITERS": "relational",
                "OMNI_INGESTD_INTAKE": "tcp://*:5550", "OMNI_INGESTD_TAP": "tcp://*:5552",
                "OMNI_INGESTD_HTTP": "0.0.0.0:9100",
                "OMNI_INGESTD_JOURNAL_DIR": os.path.join(workdir, host, "journal")}, 9100)
            daemons.append(ingest[host].start())
        for host in ("writer-1", "writer-2"):
            daemons.append(HostDaemon(net, host, "relationald", workdir, {
                "OMNI_RELATIONALD_NATS_URLS": urls, "OMNI_RELATIONALD_HTTP": "0.0.0.0:9102",
                "PGHOST": "db.example", "PGUSER": "postgres", "PGDATABASE": "omniaudit"},
                9102).start())

        repo = os.path.join(workdir, "repo")
        subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
        collector_env = {"OMNI_COLLECTORD_INTAKE":
                         "tcp://ingest-a.example:5550,tcp://ingest-b.example:5550",
                         "XDG_STATE_HOME": os.path.join(workdir, "collector", "state")}

        def collect(n_before, n):
            _fast_history(repo, n_before, n)
            c = HostDaemon(net, "collector", "collectord", workdir, collector_env, None,
                           ["git", "--once", "--progress=off", "--ack-timeout=2s", repo])
            c.start(wait=False)
            assert c.proc.wait(timeout=180) == 0, c.log()[-4000:]
            return c.log()

        def stored():
            return pg.sql("SELECT count(*), count(DISTINCT sha) FROM commits")

        collect(0, 3000)
        wait_until(lambda: stored() == "3000|3000", 120, "3000 commits in PostgreSQL", 0.2)

        # A NATS host and the first ingestd host cut off the network: the
        # stream is written on two of three, the collector moves to ingest-b
        # (the NATS host cut is the one ingest-b is connected to: the worst case)
        import re
        victim = re.search(r"event=jetstream.ready .*server=nats://(nats-\d)\.example",
                           ingest["ingest-b"].log()).group(1)
        net.cut(victim)
        net.cut("ingest-a")
        log = collect(3000, 2000)
        assert "event=intake.failover" in log, log[-4000:]
        wait_until(lambda: stored() == "5000|5000", 180, "5000 commits in PostgreSQL", 0.2)
        # the leader counts nats-2's replica out once it stopped answering
        wait_until(lambda: "replicas=3 current=2" in ingest["ingest-b"].health()[1], 60,
                   f"{victim}'s replica seen behind", 0.5)

        # Back on the network: nats-2 catches up, and nothing came twice
        net.mend(victim)
        net.mend("ingest-a")
        wait_until(lambda: "replicas=3 current=3" in ingest["ingest-b"].health()[1], 120,
                   f"{victim}'s replica current again", 0.5)
        assert stored() == "5000|5000"
        out = net.run("collector", binary("omnictl"), "status",
                      "--targets=" + ",".join(f"{h}={h}.example:{p}" for h, p in (
                          ("ingest-a", 9100), ("ingest-b", 9100), ("writer-1", 9102),
                          ("writer-2", 9102))))
        assert "relational" in out.stdout and "ingest-a" in out.stdout, out.stdout + out.stderr
    finally:
        errors = []
        for d in reversed(daemons):
            try:
                d.stop()
            except AssertionError as e:
                errors.append(str(e))
        for p in nats:
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        pg.destroy()
        assert not errors, "\n".join(errors)
