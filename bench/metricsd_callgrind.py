#!/usr/bin/env python3
"""metricsd's instructions per record, two or more builds side by side:
metricsd under callgrind draining the same backlog of `metric` records
(bench/metricsd.py's host points) from ingestd into a scratch database,
new points only. Instruction counts do not move with the machine's load as
CPU seconds and rates do, so small changes to the per-record path show.

    tools/with-test-services.sh /usr/bin/python3 bench/metricsd_callgrind.py \\
        --bin old=TREE/build/bin --bin new=build/bin [--records 200000]

Prints, per build, the instructions of the whole process per record (start
and stop included) and, inclusive, of the functions named by --function
that callgrind saw (a static function the compiler inlined is counted in
its caller). Not a test: it asserts only that every point came."""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, HERE)
from metricsd import metric_inputs, metricsd_pipeline  # noqa: E402
import omni  # noqa: E402

FUNCTIONS = ["pointstore_write", "derive_record", "s_derive", "s_series_lookup", "s_order",
             "s_copy", "hostdaily_add", "omni_writer_run"]


def run(binary, frames, npoints, batch_size, out):
    omni.BIN = binary
    os.environ["OMNI_BIN"] = binary
    with metricsd_pipeline(frames, batch_size, "omni-bench-cg-") as (dsn, p, m):
        m.args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                  "--dump-instr=no", *m.args]
        m.start(wait=False)
        m.wait_ready(120)
        p.wait_acked("metrics", len(frames), 3600, 0.5)
        m.stop(300)
        db = psycopg2.connect(dsn)
        cur = db.cursor()
        cur.execute("SELECT count(*) FROM points")
        assert cur.fetchone()[0] == npoints
        db.close()


def inclusive(out, functions):
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", out],
                          capture_output=True, text=True, check=True).stdout
    total = None
    got = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*\)\s+PROGRAM TOTALS", line)
        if m:
            total = int(m.group(1).replace(",", ""))
        m = re.match(r"\s*([\d,]+) \(.*\)\s+\S+:(\S+) ", line + " ")
        if m and m.group(2) in functions and m.group(2) not in got:
            got[m.group(2)] = int(m.group(1).replace(",", ""))
    return total, got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", action="append", required=True, help="LABEL=DIR, one or more")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=5000)
    ap.add_argument("--keep", metavar="DIR", help="keep the callgrind files there")
    ap.add_argument("--function", action="append", default=None,
                    help="a function to report inclusive (default: metricsd's main ones)")
    args = ap.parse_args()
    functions = args.function or FUNCTIONS
    frames, rows = metric_inputs(args.records)
    n = len(frames)
    results = []
    with tempfile.TemporaryDirectory(prefix="omni-bench-cg-") as work:
        for label, binary in (b.split("=", 1) for b in args.bin):
            out = os.path.join(args.keep or work, f"callgrind.{label}")
            run(os.path.abspath(binary), frames, len(rows), args.batch_size, out)
            total, got = inclusive(out, functions)
            results.append((label, total, got))
            print(f"{label}: {total / n:,.0f} instructions per record; " + ", ".join(
                f"{f} {got[f] / n:,.0f}" for f in functions if f in got), flush=True)
    print("\n| build | instructions per record | " + " | ".join(functions) + " |")
    print("|---|---|" + "---|" * len(functions))
    for label, total, got in results:
        print(f"| {label} | {total / n:,.0f} | " + " | ".join(
            f"{got[f] / n:,.0f}" if f in got else "-" for f in functions) + " |")


if __name__ == "__main__":
    main()
