#!/usr/bin/env python3
"""What ingestd's id check (record_check_id) costs per record, on the records
omni-loadgen sends (`bench/idcheck.c`): record_check alone, as intake did
before, against record_check + record_check_id, in one process taking turns.
Prints a Markdown table for docs/performance.md (median of the rounds, and
the fastest, per kind). Not a test: it measures."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cbuild import build  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-idcheck-")
    try:
        program = build(work, "idcheck", ["tools/omni-loadgen/synth.c"])
        out = subprocess.run([program, str(args.records), str(args.rounds)], capture_output=True,
                             text=True, check=True).stdout
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = {}
    for line in out.split():
        kind, size, check, both = line.split(",")
        rows.setdefault(kind, []).append((float(size), float(check), float(both)))
    print("| kind | bytes a record | record_check ns | + record_check_id ns | id check costs |\n"
          "|---|---|---|---|---|")
    for kind, r in rows.items():
        check = statistics.median(x[1] for x in r)
        both = statistics.median(x[2] for x in r)
        fast_check, fast_both = min(x[1] for x in r), min(x[2] for x in r)
        print(f"| {kind} | {r[0][0]:.0f} | {check:.0f} (fastest {fast_check:.0f}) | "
              f"{both:.0f} (fastest {fast_both:.0f}) | +{both - check:.0f} ns "
              f"(+{(both - check) / check * 100:.0f} %) |")


if __name__ == "__main__":
    main()
