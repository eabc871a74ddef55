#!/usr/bin/env python3
"""metricsd's cost per point in CPU seconds, two builds side by side: the
CPU time metricsd and its PostgreSQL backends spend draining the same
backlog of host points (bench/metricsd.py's `metric` records), new points
and then the same records again (upserts), for each build in turn,
alternated (a, b, then b, a, ...).

On a shared machine a rate says as much about the other processes as about
the code; the CPU time a process spends on the same work moves much less
with the load (caches and frequency still move it a little), so this
compares that. Counted from the first batch acknowledged (the first batch
makes the partition and the series, as bench/metricsd.py's rate leaves it
out) to the last: metricsd's user + system time (/proc/PID/stat, every
thread, 10 ms ticks) and that of every backend of the benchmark's database
but this script's (/proc/PID/schedstat, ns), read while they still run.

    tools/with-test-services.sh /usr/bin/python3 bench/metricsd_cpu.py \
        --bin old=TREE/build/bin --bin new=build/bin [--bin ...] [--records 200000] [--runs 3]

Not a test: it asserts only that every point came."""
import argparse
import os
import statistics
import sys
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from metricsd import metric_inputs, metricsd_pipeline  # noqa: E402
import omni  # noqa: E402
from omni import send, wait_until, cpu_seconds as proc_cpu  # noqa: E402


def backend_cpu(pid):
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class Meter:
    """CPU of metricsd and of the database's other backends."""

    def __init__(self, dsn, daemon):
        self.db = psycopg2.connect(dsn)
        self.db.autocommit = True
        self.daemon = daemon

    def read(self):
        cur = self.db.cursor()
        cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()")
        pids = [r[0] for r in cur.fetchall()]
        return proc_cpu(self.daemon.proc.pid), {p: backend_cpu(p) for p in pids}

    def close(self):
        self.db.close()


#  points_data's own index (its partitions' or chunks'): how full its leaves
#  are follows the order the points come in (docs/performance.md, issue 20)
INDEX_SQL = ("SELECT coalesce (sum (pg_relation_size (i.indexrelid)), 0) FROM pg_index i "
             "WHERE i.indrelid = 'points_data'::regclass OR i.indrelid IN "
             "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'points_data'::regclass)")


def index_mib(dsn):
    db = psycopg2.connect(dsn)
    cur = db.cursor()
    cur.execute(INDEX_SQL)
    size = cur.fetchone()[0] / 2**20
    db.close()
    return size


def drain(p, meter, since, count):
    """(points' records, wall s, metricsd s, backends s) from the first
    acknowledgement past `since` to `count`."""
    def first():
        n = p.acked("metrics")
        return n if n > since else None
    n0 = wait_until(first, 120, "a first batch", 0.002)
    t0 = time.monotonic()
    m0, b0 = meter.read()
    p.wait_acked("metrics", count, 1800, 0.005)
    wall = time.monotonic() - t0
    m1, b1 = meter.read()
    # A backend that began after the first snapshot counts from 0
    backends = sum(v - b0.get(pid, 0.0) for pid, v in b1.items())
    return count - n0, wall, m1 - m0, backends


def run(binary, frames, npoints, batch_size):
    omni.BIN = binary
    os.environ["OMNI_BIN"] = binary
    out = {}
    with metricsd_pipeline(frames, batch_size, "omni-bench-cpu-") as (dsn, p, m):
        n = len(frames)
        for phase, since in (("new", 0), ("upsert", n)):
            if phase == "upsert":
                send(p.intake, frames, batch=1000)
            m.start()
            meter = Meter(dsn, m)
            try:
                records, wall, mcpu, bcpu = drain(p, meter, since, since + n)
            finally:
                meter.close()
            m.stop()
            points = npoints * records / n
            out[phase] = (points, wall, mcpu, bcpu, index_mib(dsn))
        db = psycopg2.connect(dsn)
        cur = db.cursor()
        cur.execute("SELECT count(*) FROM points")
        assert cur.fetchone()[0] == npoints
        db.close()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True,
                    help="LABEL=DIR, two or more (ratios against the first)")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    sides = [b.split("=", 1) for b in args.bin]
    frames, rows = metric_inputs(args.records)
    got = {label: {"new": [], "upsert": []} for label, _ in sides}
    for i in range(args.runs):
        for label, binary in sides if i % 2 == 0 else list(reversed(sides)):
            res = run(os.path.abspath(binary), frames, len(rows), args.batch_size)
            for phase, (points, wall, mcpu, bcpu, index) in res.items():
                per = 1e6 * (mcpu + bcpu) / points
                got[label][phase].append((per, 1e6 * mcpu / points, 1e6 * bcpu / points,
                                          points / wall, index))
                print(f"run {i + 1}/{args.runs} {label:<6} {phase:<6} {points:,.0f} points "
                      f"{wall:.2f} s ({points / wall:,.0f}/s, load {os.getloadavg()[0]:.1f}): "
                      f"metricsd {mcpu:.2f} s + backends {bcpu:.2f} s = {per:.2f} us/point, "
                      f"index {index:.1f} MiB", flush=True)
    print("\n| build | phase | CPU us/point (metricsd + backends) | metricsd | backends | "
          "points/s (wall, loaded) | index MiB | runs (us/point) |\n|---|---|---|---|---|---|---|---|")
    for label, _ in sides:
        for phase in ("new", "upsert"):
            r = got[label][phase]
            med = [statistics.median(x[k] for x in r) for k in range(5)]
            print(f"| {label} | {phase} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | "
                  f"{med[3]:,.0f} | {med[4]:.1f} | {' / '.join(f'{x[0]:.2f}' for x in r)} |")
    a = sides[0][0]
    for b, _ in sides[1:]:
        for phase in ("new", "upsert"):
            ra = statistics.median(x[0] for x in got[a][phase])
            rb = statistics.median(x[0] for x in got[b][phase])
            # Each run's two figures were taken minutes apart, at much the
            # same load: the median of their ratios moves less than the
            # ratio of the medians
            paired = statistics.median(y[0] / x[0] for x, y in zip(got[a][phase], got[b][phase]))
            print(f"{phase}: {b} / {a} CPU per point {rb / ra:.3f} (medians), {paired:.3f} "
                  f"(median of each run's ratio)")


if __name__ == "__main__":
    main()
