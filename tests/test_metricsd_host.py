"""`collectord host` through the pipeline into metricsd: the values stored are
checked against /proc read by the test around the same moment.

The host collector's class (collectord/host.c) is tested exactly by
collectord-selftest (parsers and arithmetic on fixed /proc texts, a live
snapshot bracketed by the test's own readings, host_run through a real intake
client). This test needs the `host` mode of collectord, with the keys
interval, samples and hostname; it is skipped without it."""
import os
import subprocess

import pytest

from omni import BIN, query, wait_until
from test_metricsd import start_metricsd


def collectord_has_host():
    path = os.path.join(BIN, "collectord")
    if not os.path.exists(path):
        return False
    out = subprocess.run([path, "host", "--help"], capture_output=True, text=True, timeout=30)
    return out.returncode == 0 and "interval" in out.stdout + out.stderr


pytestmark = pytest.mark.skipif(not collectord_has_host(),
                                reason="collectord has no host mode yet")


def meminfo(key):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def test_host_values_match_proc(pipeline, workdir, pg_database):
    p = pipeline(writers=("metrics",))
    p.ingestd.start()
    start_metricsd(p, pg_database)
    name = "omni-test-host"
    load_before = loadavg()
    out = subprocess.run([os.path.join(BIN, "collectord"), "host", f"--intake={p.intake}",
                          "--interval=300ms", "--samples=3", f"--hostname={name}"],
                         capture_output=True, text=True, timeout=60, cwd=workdir)
    load_after = loadavg()
    assert out.returncode == 0, out.stderr
    # Everything collectord sent was acknowledged by ingestd before it
    # exited; metricsd is the only writer: once every accepted record is
    # past its cursor, everything is stored.
    def stored():
        m = p.ingestd.metrics()
        accepted = m.get("omni_ingestd_records_accepted_total", 0)
        return accepted > 0 and m.get("omni_ingestd_records_acked_by_all_total", 0) == accepted
    wait_until(stored, 60, "metricsd stored every record")

    def values(series):
        return [r[0] for r in query(pg_database, "SELECT value FROM points WHERE name = %s "
                                                 "AND tags->>'host' = %s ORDER BY time",
                                    (series, name))]

    total = values("host.mem.total")
    assert total == [meminfo("MemTotal")] * 3
    for available, used in zip(values("host.mem.available"), values("host.mem.used")):
        assert 0 < available <= total[0] and available + used == total[0]
    for load in values("host.load.1"):
        assert min(load_before, load_after) - 1 <= load <= max(load_before, load_after) + 1
    # Shares of the CPU need two samples: two intervals
    cpu = query(pg_database, """
        SELECT time, sum(value) FILTER (WHERE name = 'host.cpu.user'),
               sum(value) FILTER (WHERE name = 'host.cpu.system'),
               sum(value) FILTER (WHERE name = 'host.cpu.iowait')
        FROM points WHERE name LIKE 'host.cpu.%%' AND tags->>'host' = %s GROUP BY time""",
                (name,))
    assert len(cpu) == 2
    for _, user, system, iowait in cpu:
        assert 0 <= user and 0 <= system and 0 <= iowait and user + system + iowait <= 100
    for series in ("host.net.rx", "host.net.tx"):
        assert all(v >= 0 for v in values(series))
    assert query(pg_database, "SELECT count(*) > 0 FROM host_per_minute WHERE host = %s",
                 (name,)) == [(True,)]
