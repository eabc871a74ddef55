#!/usr/bin/env python3
"""A writer's instructions per record under callgrind, builds side by side
(issue 20): omni-loadgen's records (seed 1, --size 0) journaled by this
build's ingestd, then one writer daemon of each build draining the same
backlog into a scratch database, under `valgrind --tool=callgrind`, then
again natively for its CPU seconds (/proc, every thread, 10 ms ticks).

Per record: the whole process (start-up and exit included: the same for
every build) and the writer loop alone (inclusive cost of omni_writer_run
and the store thread, from callgrind_annotate). Instructions do not move with
the machine's load, which on a shared machine is what makes old and new
comparable.

    tools/with-test-services.sh /usr/bin/python3 bench/writer_callgrind.py \\
        --bin old=TREE/build/bin --bin new=build/bin \\
        [--writer metricsd --kind metric --records 200000]
        [--writer relationald --kind ci.test --records 100000]

Not a test: it asserts only that every record was acknowledged."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from omni import Pipeline, scratch_database, cpu_seconds as proc_cpu  # noqa: E402

WRITERS = {"metricsd": "metrics", "relationald": "relational", "documentd": "document",
           "archiverd": "archive"}


def inclusive(out_file, functions):
    """Inclusive instructions of `functions` (callgrind_annotate)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out_file],
                          capture_output=True, text=True, check=True).stdout
    found = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*:(\S+) ", line + " ")
        if m and m.group(2) in functions and m.group(2) not in found:
            found[m.group(2)] = int(m.group(1).replace(",", ""))
    return sum(found.values())


def totals(out_file):
    with open(out_file) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {out_file}")


def drain(args, label, bin_dir, valgrind):
    """One writer of `bin_dir` draining a fresh backlog: (instructions or
    None, loop instructions or None, CPU seconds)."""
    role = WRITERS[args.writer]
    with scratch_database("omni_bench_") as dsn, \
            tempfile.TemporaryDirectory(prefix="omni-bench-cg-") as work, \
            Pipeline(work, writers=(role,), journal_max="8G") as p:
        p.ingestd.start()
        p.loadgen(f"--kind={args.kind}", f"--count={args.records}", "--seed=1", "--size=0")
        w = p.writer(args.writer, [f"--dsn={dsn}", "--log-level=warn"])
        w.args[0] = os.path.join(bin_dir, args.writer)
        out = os.path.join(args.out_dir or work, f"callgrind.{label}.{args.writer}.out")
        if valgrind:
            w.args[:0] = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        w.start(wait=False)
        w.wait_ready(timeout=300)
        p.wait_acked(role, args.records, timeout=1800, interval=0.05)
        cpu = proc_cpu(w.proc.pid)
        w.stop(timeout=600)
        if not valgrind:
            return None, None, cpu
        return totals(out), inclusive(out, ("omni_writer_run", "s_store_thread")), cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True, help="LABEL=DIR")
    ap.add_argument("--writer", default="metricsd", choices=sorted(WRITERS))
    ap.add_argument("--kind", default="metric")
    ap.add_argument("--records", type=int, default=200000)
    ap.add_argument("--runs", type=int, default=1, help="turns, builds alternated")
    ap.add_argument("--no-native", action="store_true")
    ap.add_argument("--out-dir", help="keep the callgrind files here (callgrind_annotate them)")
    args = ap.parse_args()
    builds = [b.split("=", 1) for b in args.bin]
    n = args.records
    for turn in range(args.runs):
        order = builds if turn % 2 == 0 else builds[::-1]
        for label, bin_dir in order:
            total, loop, _ = drain(args, label, bin_dir, True)
            line = (f"{label}: {args.writer} {args.kind} x{n}: {total / n:,.0f} instr/record "
                    f"(process), {loop / n:,.0f} (writer loop + store thread)")
            if not args.no_native:
                _, _, cpu = drain(args, label, bin_dir, False)
                line += f", native {cpu:.2f} CPU s ({cpu / n * 1e6:.2f} per million)"
            print(line, flush=True)


if __name__ == "__main__":
    main()
