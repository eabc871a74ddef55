"""Hosts of a test's own: network namespaces (one per host, each with its
own address) wired to one switch, itself in a namespace of its own, so that
nothing of the machine's own network is touched. A host can be cut off (its
cable pulled: no process killed, no connection reset, packets just stop).

Needs root; CI runs as root."""
import contextlib
import ctypes
import os
import shutil
import subprocess

import pytest

from omni import Daemon, http_get

CLONE_NEWNET = 0x40000000


class Network:
    """Hosts as network namespaces on one bridge."""

    def __init__(self, tag, hosts, net):
        """`hosts`: name -> last byte of its address in `net` (a.b.c)."""
        self.tag, self.hosts, self.net = tag, hosts, net
        self.made = []
        self.switch = self.ns("switch")
        self._ip("netns", "add", self.switch)
        self.made.append(self.switch)
        self._in(self.switch, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self.switch, "ip", "link", "set", "br0", "up")
        names = "127.0.0.1 localhost\n" + "".join(
            f"{net}.{n} {name}.example\n" for name, n in hosts.items())
        for i, (name, n) in enumerate(hosts.items()):
            ns = self.ns(name)
            self._ip("netns", "add", ns)
            self.made.append(ns)
            os.makedirs(f"/etc/netns/{ns}", exist_ok=True)
            with open(f"/etc/netns/{ns}/hosts", "w") as f:
                f.write(names)
            outer, inner = f"o{tag}{i}", f"i{tag}{i}"  # at most 15 characters
            self._ip("link", "add", outer, "netns", self.switch, "type", "veth", "peer", "name",
                     inner, "netns", ns)
            self._in(self.switch, "ip", "link", "set", outer, "master", "br0", "up")
            self._in(ns, "ip", "link", "set", inner, "name", "eth0")
            self._in(ns, "ip", "addr", "add", f"{net}.{n}/24", "dev", "eth0")
            self._in(ns, "ip", "link", "set", "eth0", "up")
            self._in(ns, "ip", "link", "set", "lo", "up")

    def ns(self, host):
        return f"omni-t{self.tag}-{host}"

    def address(self, host):
        return f"{self.net}.{self.hosts[host]}"

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def _in(self, ns, *cmd):
        self._ip("netns", "exec", ns, *cmd)

    def run(self, host, *cmd, timeout=60):
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *cmd], capture_output=True,
                              text=True, timeout=timeout)

    def _cable(self, host):
        return f"o{self.tag}{list(self.hosts).index(host)}"

    def cut(self, host):
        """The host's cable pulled: its processes run on and hear nothing."""
        self._in(self.switch, "ip", "link", "set", self._cable(host), "down")

    def mend(self, host):
        self._in(self.switch, "ip", "link", "set", self._cable(host), "up")

    def enter(self, host):
        """This thread into the host's network (sockets made now are the
        host's) until the returned function is called."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(f"/run/netns/{self.ns(host)}", os.O_RDONLY)
        try:
            assert libc.setns(there, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
        finally:
            os.close(there)

        def leave():
            try:
                assert libc.setns(home, CLONE_NEWNET) == 0, os.strerror(ctypes.get_errno())
            finally:
                os.close(home)
        return leave

    def get(self, url, host="collector", timeout=2):
        leave = self.enter(host)
        try:
            return http_get(url, timeout=timeout)
        finally:
            leave()

    def destroy(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)


class HostDaemon(Daemon):
    """A daemon started on a host by `ip netns exec` (so it resolves the
    hosts' names), configured by environment variables alone, as the guide
    configures the containers (or by `args`); its HTTP port the guide's
    default, asked from host `heard_from`."""

    def __init__(self, net, host, name, workdir, env, port, args=(), heard_from="collector"):
        os.makedirs(os.path.join(workdir, host), exist_ok=True)
        super().__init__(name, args, os.path.join(workdir, host))
        self.net, self.host, self.port = net, host, port
        self.heard_from = heard_from  # the host its HTTP is asked from
        self.args = ["ip", "netns", "exec", net.ns(host), *self.args]
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "PG"))}
        self.env = dict(base, **env)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0:exitcode=86")

    def url(self, path):
        return f"http://{self.net.address(self.host)}:{self.port}{path}"

    def get(self, path, timeout=2):
        return self.net.get(self.url(path), self.heard_from, timeout)


@contextlib.contextmanager
def network(hosts, net):
    """A Network of `hosts` on `net`, destroyed after."""
    if os.geteuid() != 0:
        pytest.fail("the hosts are network namespaces: run as root (CI does)")
    n = Network(str(os.getpid() % 100000), hosts, net)
    try:
        yield n
    finally:
        n.destroy()
