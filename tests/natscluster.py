"""A NATS cluster with JetStream, made by a test on free loopback ports and
stopped by it (journal: jetstream, issue 19). Never the machine's own
nats-server: every node has its own ports, store directory and config
file (max_payload raised so that records of max_record_size fit)."""
import json
import os
import subprocess

from omni import free_port, guarded, http_get, wait_until


class NatsCluster:
    def __init__(self, workdir, nodes=3, max_payload="8MB"):
        self.workdir = os.path.join(workdir, "nats")
        os.makedirs(self.workdir, exist_ok=True)
        self.ports = [free_port() for _ in range(nodes)]
        self.monitor_ports = [free_port() for _ in range(nodes)]
        self.cluster_ports = [free_port() for _ in range(nodes)]
        self.procs = [None] * nodes
        self.configs = []
        for i in range(nodes):
            routes = ", ".join(f"nats://127.0.0.1:{p}" for k, p in enumerate(self.cluster_ports)
                               if k != i)
            store = os.path.join(self.workdir, f"n{i}")
            cluster = (f"cluster {{\n  name: omni-test\n  listen: 127.0.0.1:{self.cluster_ports[i]}\n"
                       f"  routes: [{routes}]\n}}\n") if nodes > 1 else ""
            path = os.path.join(self.workdir, f"n{i}.conf")
            with open(path, "w") as f:
                f.write(f"server_name: n{i}\nlisten: 127.0.0.1:{self.ports[i]}\n"
                        f"http: 127.0.0.1:{self.monitor_ports[i]}\nmax_payload: {max_payload}\n"
                        f"jetstream {{\n  store_dir: \"{store}\"\n}}\n{cluster}")
            self.configs.append(path)

    @property
    def urls(self):
        return ",".join(f"nats://127.0.0.1:{p}" for p in self.ports)

    def start(self, node=None):
        for i in ([node] if node is not None else range(len(self.ports))):
            log = open(os.path.join(self.workdir, f"n{i}.log"), "a")
            self.procs[i] = subprocess.Popen(guarded(["nats-server", "-c", self.configs[i]]),
                                             stdout=log, stderr=log)
            log.close()
        self.wait_ready()
        return self

    def jsz(self, node):
        status, text = http_get(f"http://127.0.0.1:{self.monitor_ports[node]}/jsz", timeout=2)
        return json.loads(text) if status == 200 else {}

    def wait_ready(self, timeout=30):
        """Every running node answers /healthz with JetStream on, and they
        agree on a meta leader (streams can be made)."""
        def ready():
            leaders = set()
            for i, proc in enumerate(self.procs):
                if proc is None:
                    continue
                assert proc.poll() is None, f"nats-server n{i} exited {proc.returncode}"
                try:
                    status, _ = http_get(
                        f"http://127.0.0.1:{self.monitor_ports[i]}/healthz?js-enabled-only=true",
                        timeout=1)
                    if status != 200:
                        return False
                    meta = self.jsz(i).get("meta_cluster") or {}
                except OSError:
                    return False
                if len(self.ports) > 1:
                    leaders.add(meta.get("leader"))
            return None not in leaders and len(leaders) <= 1
        wait_until(ready, timeout, "the NATS cluster and its JetStream meta leader", 0.1)

    def kill9(self, node):
        proc = self.procs[node]
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        self.procs[node] = None

    def stop(self):
        for i, proc in enumerate(self.procs):
            if proc and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            self.procs[i] = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
