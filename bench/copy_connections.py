#!/usr/bin/env python3
"""How many store connections help: the same points (metricsd's points_data
layout: series_id, time, value, keyed by (series_id, time), one partition)
copied in batches of --batch rows, one transaction each, by 1, 2 and 4
connections at once (one process each, the batches dealt round-robin), in
one run on one server. metricsd keeps one connection unless more is faster
here (docs/performance.md). Not a test; PostgreSQL as bench/peers.py."""
import argparse
import io
import multiprocessing
import os
import sys
import time

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from omni import scratch_database  # noqa: E402

DDL = """
CREATE TABLE points_data (series_id bigint NOT NULL, time timestamptz NOT NULL,
                          value double precision NOT NULL, PRIMARY KEY (series_id, time))
    PARTITION BY RANGE (time);
CREATE TABLE points_data_1 PARTITION OF points_data
    FOR VALUES FROM ('2023-11-01') TO ('2023-12-01');
"""


def batches(n, batch, series):
    """COPY text of n points, 1 ms apart, round-robin over the series."""
    out = []
    for lo in range(0, n, batch):
        text = io.StringIO()
        for i in range(lo, min(n, lo + batch)):
            t = 1_700_000_000_000 + i  # ms
            text.write(f"{i % series + 1}\t{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(t // 1000))}"
                       f".{t % 1000:03d}+00\t{i % 1000 / 10}\n")
        out.append(text.getvalue())
    return out


def worker(dsn, texts, start):
    db = psycopg2.connect(dsn)
    cur = db.cursor()
    start.wait()
    for text in texts:
        cur.copy_expert("COPY points_data (series_id, time, value) FROM STDIN", io.StringIO(text))
        db.commit()
    db.close()


def run(dsn, texts, k):
    db = psycopg2.connect(dsn)
    db.autocommit = True
    db.cursor().execute("TRUNCATE points_data; CHECKPOINT")
    start = multiprocessing.Barrier(k + 1)
    procs = [multiprocessing.Process(target=worker, args=(dsn, texts[i::k], start))
             for i in range(k)]
    for p in procs:
        p.start()
    start.wait()
    t = time.monotonic()
    for p in procs:
        p.join()
    seconds = time.monotonic() - t
    cur = db.cursor()
    cur.execute("SELECT count (*) FROM points_data")
    rows = cur.fetchone()[0]
    db.close()
    return rows, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--series", type=int, default=192)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    texts = batches(args.points, args.batch, args.series)
    print("| connections | points/s (each repeat) |\n|---|---|")
    with scratch_database("omni_bench_conn_") as dsn:
        db = psycopg2.connect(dsn)
        db.autocommit = True
        db.cursor().execute(DDL)
        db.close()
        results = {k: [] for k in (1, 2, 4)}
        for _ in range(args.repeat):
            for k in results:  # interleaved, so load changes hit every k alike
                rows, seconds = run(dsn, texts, k)
                assert rows == args.points, rows
                results[k].append(args.points / seconds)
        for k, rates in results.items():
            print(f"| {k} | {' / '.join(f'{r:,.0f}' for r in rates)} |")
    print(f"(load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, "
          f"{os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
