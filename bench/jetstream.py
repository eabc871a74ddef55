#!/usr/bin/env python3
"""The JetStream journal beside LMDB (issue 19): records/s ingestd journals
(validated, stored, acknowledged to the senders) with `journal: lmdb`, and
with `journal: jetstream` on a stream of one replica and of three, all
three NATS nodes on this machine, in the same run and in turns (each mode
`--rounds` times, alternating), so that the machine's load falls on all of
them alike. `--old-bin DIR` adds the JetStream modes of another build
(the tree before records were batched into messages), run in turn with
this one's. Prints a Markdown table for docs/performance.md, CPU per
record beside the rates (the rates follow the machine's load, the CPU
much less). Not a test: it asserts nothing beyond every record being
accepted, it measures."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import omni  # noqa: E402
from natscluster import NatsCluster  # noqa: E402
from omni import Pipeline  # noqa: E402
from run import cpu_seconds, journal_rate  # noqa: E402


def measure(work, build, mode, cluster, args, n):
    omni.BIN = build
    path = os.path.join(work, f"{mode}-{n}-{len(os.listdir(work))}")
    os.makedirs(path)
    extra = []
    if mode != "lmdb":
        replicas = 3 if mode == "jetstream-r3" else 1
        extra = ["--journal=jetstream", f"--nats-urls={cluster.urls}",
                 f"--stream=B{len(os.listdir(work))}", f"--replicas={replicas}"]
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
    ap.add_argument("--old-bin", help="another build's bin/: its jetstream modes in turn")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-bench-js-")
    new = omni.BIN
    runs = [("", new, "lmdb")]
    for mode in ("jetstream-r1", "jetstream-r3"):
        if args.old_bin:
            runs.append(("old", os.path.abspath(args.old_bin), mode))
        runs.append(("new" if args.old_bin else "", new, mode))
    results = {(label, mode): [] for label, _, mode in runs}
    try:
        with NatsCluster(work, max_payload="8MB") as cluster:
            for n in range(args.rounds):
                for label, build, mode in runs:
                    results[(label, mode)].append(measure(work, build, mode, cluster, args, n))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    print(f"{args.records:,} records of {args.size} B from {args.senders} senders per run, "
          f"{args.rounds} runs per mode in turns; NATS: 3 nodes on this machine; load average "
          f"at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}\n")
    print("| build | journal | records/s (median) | runs | ingestd CPU s | ingestd µs/record "
          "| NATS CPU s | NATS µs/record | ingestd RssAnon |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, _, mode in runs:
        rs = results[(label, mode)]
        rates = [r[0] for r in rs]
        cpu = statistics.median(r[1] for r in rs)
        nats = statistics.median(r[2] for r in rs)
        print(f"| {label} | {mode} | {statistics.median(rates):,.0f} | "
              f"{', '.join(f'{r:,.0f}' for r in rates)} | {cpu:.2f} | "
              f"{cpu / args.records * 1e6:.1f} | {nats:.2f} | {nats / args.records * 1e6:.1f} | "
              f"{max(r[3] for r in rs)} MiB |")


if __name__ == "__main__":
    main()
