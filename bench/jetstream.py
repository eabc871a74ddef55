#!/usr/bin/env python3
"""The JetStream journal beside LMDB (issue 19): records/s ingestd journals
(validated, stored, acknowledged to the senders) with `journal: lmdb`, and
with `journal: jetstream` on a stream of one replica and of three, all
three NATS nodes on this machine, in the same run and in turns (each mode
`--rounds` times, alternating), so that the machine's load falls on all of
them alike. Prints a Markdown table for docs/performance.md. Not a test:
it asserts nothing beyond every record being accepted, it measures."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from natscluster import NatsCluster  # noqa: E402
from omni import Pipeline  # noqa: E402
from run import cpu_seconds, journal_rate  # noqa: E402


def measure(work, mode, cluster, args, n):
    path = os.path.join(work, f"{mode}-{n}")
    os.makedirs(path)
    extra = []
    if mode != "lmdb":
        replicas = 3 if mode == "jetstream-r3" else 1
        extra = ["--journal=jetstream", f"--nats-urls={cluster.urls}", f"--stream=B{n}{mode[-1]}",
                 f"--replicas={replicas}"]
    p = Pipeline(path, writers=("archive",), journal_max="8G", extra=extra)
    p.ingestd.start()
    try:
        nats_cpu0 = sum(cpu_seconds(x.pid) for x in cluster.procs)
        total, elapsed, _, _, cpu, peak = journal_rate(p, args.records, args.senders, args.size)
        nats_cpu = sum(cpu_seconds(x.pid) for x in cluster.procs) - nats_cpu0
    finally:
        p.stop()
    return total / elapsed, cpu, nats_cpu, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-bench-js-")
    modes = ("lmdb", "jetstream-r1", "jetstream-r3")
    results = {m: [] for m in modes}
    try:
        with NatsCluster(work, max_payload="8MB") as cluster:
            for n in range(args.rounds):
                for mode in modes:
                    results[mode].append(measure(work, mode, cluster, args, n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.records:,} records of {args.size} B from {args.senders} senders per run, "
          f"{args.rounds} runs per mode in turns; NATS: 3 nodes on this machine\n")
    print("| journal | records/s (median) | runs | ingestd CPU s | NATS CPU s | ingestd RssAnon |")
    print("|---|---|---|---|---|---|")
    for mode in modes:
        rates = [r[0] for r in results[mode]]
        print(f"| {mode} | {statistics.median(rates):,.0f} | "
              f"{', '.join(f'{r:,.0f}' for r in rates)} | "
              f"{statistics.median(r[1] for r in results[mode]):.2f} | "
              f"{statistics.median(r[2] for r in results[mode]):.2f} | "
              f"{max(r[3] for r in results[mode])} MiB |")


if __name__ == "__main__":
    main()
