#!/usr/bin/env python3
"""metricsd benchmark: points/s sustained from ingestd into PostgreSQL, next to
a plain COPY of the same rows into the same table, in the same run, on the
same server. Prints a Markdown table for docs/metricsd.md (and
docs/performance.md).

1. The records are journaled by ingestd first (no writer connected), so the
   measurement is metricsd draining a backlog: delivery, decoding, deriving
   points, COPY to the staging table, INSERT ... ON CONFLICT, commit and ack,
   with nothing waiting on the sender.
2. The same rows (same values, same partitioned table, same index, emptied)
   are then loaded by one `COPY points_data FROM STDIN` (text format,
   psycopg2), with the series ids metricsd made (the series table is kept).

Inputs: `metric` records (one point each: host series, tag host=) and, with
--commits, `git.commit` records (four points each). PostgreSQL:
$OMNI_TEST_PG_DSN (any database on the server) or
postgresql://postgres@127.0.0.1:5432/postgres; a database of its own is
created and dropped. Not a test: it asserts only that every point came."""
import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from omni import (Pipeline, make_record_metric, scratch_database, send,  # noqa: E402
                  synthetic_commits)

SERIES = ["host.cpu.user", "host.cpu.system", "host.cpu.iowait", "host.mem.used",
          "host.mem.available", "host.load.1", "host.net.rx", "host.net.tx"]
START = 1_704_067_200  # 2024-01-01: one month partition


def metric_inputs(n, hosts=50):
    """(frames, rows): n metric records, and the point rows they make."""
    frames, rows = [], []
    for i in range(n):
        host = f"web-{i % hosts}"
        name = SERIES[(i // hosts) % len(SERIES)]
        ts = (START + i // (hosts * len(SERIES)) * 10) * 10**9
        value = float(i % 1000) / 10
        frames.append(make_record_metric(host, ts, name, value))
        rows.append((ts, name, value, host, json.dumps({"host": host})))
    return frames, rows


def commit_inputs(n):
    frames, rows = [], []
    # synthetic_commits: the i-th has committer_time 1_600_000_000 + i * 60 + 5
    for i, (sha, frame) in enumerate(synthetic_commits(n, src="bench-repo")):
        frames.append(frame)
        tags = json.dumps({"repository": "bench-repo", "author": f"a{i % 37}@example.org",
                           "sha": sha})
        ts = (1_600_000_000 + i * 60 + 5) * 10**9
        for name, value in (("git.commits", 1.0), ("git.insertions", float(i % 100)),
                            ("git.deletions", float(i % 7)), ("git.files_changed", 1.0)):
            rows.append((ts, name, value, "bench-repo", tags))
    return frames, rows


def series_key(name, source, tags):
    return name, source, json.dumps(json.loads(tags), sort_keys=True)


def copy_text(rows, series):
    out = io.StringIO()
    for ts, name, value, source, tags in rows:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts // 10**9))
        stamp += ".%06d+00" % (ts % 10**9 // 1000)
        out.write(f"{series[series_key(name, source, tags)]}\t{stamp}\t{value!r}\n")
    out.seek(0)
    return out


@contextlib.contextmanager
def metricsd_pipeline(frames, batch_size, prefix):
    """A scratch database, an ingestd holding `frames`, and a metricsd on
    them not started yet: (dsn, pipeline, metricsd). metricsd_cpu.py too."""
    with scratch_database("omni_bench_") as dsn, \
            tempfile.TemporaryDirectory(prefix=prefix) as work, \
            Pipeline(work, writers=("metrics",), journal_max="8G") as p:
        p.ingestd.start()
        send(p.intake, frames, batch=1000)
        m = p.writer("metricsd", [f"--dsn={dsn}", f"--batch-size={batch_size}",
                                  "--log-level=warn"])
        yield dsn, p, m


def run(kind, records, batch_size):
    frames, rows = metric_inputs(records) if kind == "metric" else commit_inputs(records)
    with metricsd_pipeline(frames, batch_size, "omni-bench-met-") as (dsn, p, m):
        m.start()
        # Sustained rate: from the first acknowledged batch to the last.
        n0, drain_s = p.time_drain("metrics", len(frames))
        rate = len(rows) * (len(frames) - n0) / len(frames) / drain_s
        # The same records again (a re-collection): every point exists, so
        # every batch goes the staging + upsert way
        m.stop()
        send(p.intake, frames, batch=1000)
        m.start()
        n = len(frames)
        n1, again_s = p.time_drain("metrics", 2 * n, since=n)
        again = len(rows) * (2 * n - n1) / n / again_s
        m.stop()
        db = psycopg2.connect(dsn)
        db.autocommit = True
        cur = db.cursor()
        cur.execute("SELECT count(*) FROM points")
        assert cur.fetchone()[0] == len(rows)
        # Plain COPY of the same rows into the same, emptied table
        cur.execute("SELECT id, name, source, tags::text FROM points_series")
        series = {series_key(name, source, tags): i for i, name, source, tags in cur.fetchall()}
        cur.execute("TRUNCATE points_data")
        cur.execute("VACUUM ANALYZE points_data")
        cur.execute("CHECKPOINT")
        text = copy_text(rows, series)
        t = time.monotonic()
        cur.copy_expert("COPY points_data (series_id, time, value) FROM STDIN", text)
        copy_s = time.monotonic() - t
        cur.execute("SELECT count(*) FROM points")
        assert cur.fetchone()[0] == len(rows)
        db.close()
        return rate, len(rows) / copy_s, again, drain_s, copy_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000, help="metric records")
    ap.add_argument("--commits", type=int, default=50_000, help="git.commit records, 0 = none")
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()
    print("| input | metricsd, new points | plain COPY, same rows | ratio | metricsd, "
          "same records again (upsert) |\n|---|---|---|---|---|")
    runs = [("metric", args.records)] + ([("commit", args.commits)] if args.commits else [])
    for kind, n in runs:
        rate, copy_rate, again, drain_s, copy_s = run(kind, n, args.batch_size)
        what = (f"{n} `metric` records (1 point each)" if kind == "metric"
                else f"{n} `git.commit` records (4 points each)")
        print(f"| {what}, batch {args.batch_size} | {rate:,.0f} points/s ({drain_s:.2f} s) "
              f"| {copy_rate:,.0f} points/s ({copy_s:.2f} s) | {100 * rate / copy_rate:.0f}% "
              f"| {again:,.0f} points/s |")


if __name__ == "__main__":
    main()
