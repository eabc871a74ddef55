#!/usr/bin/env python3
"""Writers scaled out (issue 19): two relationald instances against one on
the same PostgreSQL, sharing their durable consumer of the JetStream
stream. Each run fills a stream of its own (three NATS nodes on this
machine) with N records routed to relationald, no writer running, then
starts one or two instances on a fresh database and times them draining it,
from their start until their stored counts reach N; the table then holds
exactly N rows (checked). One instance and two in turns, `--rounds` times,
so that the machine's load falls on both alike. Prints a Markdown table
for docs/performance.md. Not a test: it measures."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natscluster import NatsCluster  # noqa: E402
from omni import Daemon, Pipeline, free_port, scalar, scratch_database  # noqa: E402
from run import cpu_seconds  # noqa: E402

TABLES = {"ci.test": "ci_tests", "git.commit": "commits"}


def _stored(daemons):
    total = 0
    for d in daemons:
        try:
            metrics = d.metrics()
        except OSError:  # not listening yet
            continue
        total += sum(v for k, v in metrics.items() if k.endswith("records_stored_total"))
    return total


def measure(work, cluster, args, instances, turn):
    path = os.path.join(work, f"w{instances}-{turn}")
    os.makedirs(path)
    stream = f"W{turn}X{instances}"
    p = Pipeline(path, writers=("relational",), journal_max="8G",
                 extra=["--journal=jetstream", f"--nats-urls={cluster.urls}", f"--stream={stream}",
                        f"--replicas={args.replicas}"])
    daemons = []
    with scratch_database("omni_bench_js_") as dsn:
        try:
            p.ingestd.start()
            for i in range(instances):
                daemons.append(Daemon(f"relationald-{i}", [
                    f"--nats-urls={cluster.urls}", f"--stream={stream}", f"--dsn={dsn}",
                    f"--batch-size={args.batch_size}"], path, free_port(),
                    binary_name="relationald"))
            # The schema is made by a first start, before the records come:
            # not on the clock
            daemons[0].start()
            daemons[0].stop()
            p.loadgen(f"--count={args.records}", f"--kind={args.kind}", f"--seed={turn + 1}",
                      f"--src=bench-{turn}-{instances}")
            start = time.monotonic()
            for d in daemons:
                d.start(wait=False)
            while _stored(daemons) < args.records:
                time.sleep(0.02)
            elapsed = time.monotonic() - start
            for d in daemons:
                d.wait_ready()  # (a small run may end before one has started)
            cpu = sum(cpu_seconds(d.proc.pid) for d in daemons)
            rows = scalar(dsn, f"SELECT count(*) FROM {TABLES[args.kind]}")
            assert rows == args.records, f"{rows} rows, {args.records} sent"
        finally:
            for d in reversed(daemons):
                d.stop()
            p.stop()
    return args.records / elapsed, cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--kind", default="ci.test", choices=sorted(TABLES))
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-bench-jsw-")
    results = {1: [], 2: []}
    try:
        with NatsCluster(work, max_payload="8MB") as cluster:
            for turn in range(args.rounds):
                for k in (1, 2):
                    results[k].append(measure(work, cluster, args, k, turn))
                    print(f"turn {turn}: {k} instance(s): {results[k][-1][0]:,.0f} records/s",
                          file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.records:,} `{args.kind}` records per run from a stream of {args.replicas} "
          f"replicas (3 NATS nodes on this machine), relationald --batch-size={args.batch_size}, "
          f"{args.rounds} runs each in turns\n")
    print("| relationald instances | records/s (median) | runs | relationald CPU s (median) |")
    print("|---|---|---|---|")
    for k in (1, 2):
        rates = [r for r, _ in results[k]]
        print(f"| {k} | {statistics.median(rates):,.0f} | "
              + ", ".join(f"{r:,.0f}" for r in rates)
              + f" | {statistics.median(c for _, c in results[k]):.2f} |")
    ratio = statistics.median(r for r, _ in results[2]) / statistics.median(
        r for r, _ in results[1])
    print(f"\ntwo/one: {ratio:.2f}")


if __name__ == "__main__":
    main()
