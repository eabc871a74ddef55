#!/usr/bin/python3
"""Benchmark of `collectord junit`: results/s and peak memory on a generated
report, for this build and, with --bin, another (the one before a change) in
the same rounds, so that a busy machine slows both alike.

The report (default 100,000 test cases in suites of 1,000, 1 % failing with a
trace, every case with some output, one failure in five run again and
passing) is written once (tests/omni.py junit_big_report).
collectord sends to a fake ingestd (bench/git_collector.py's: a ZeroMQ ROUTER
in this process that acknowledges every batch at once), so the figure is the
collector's own cost: reading, encoding, sending.

    bench/junit_collector.py [--cases N] [--runs R] [--bin NAME=DIR ...]

Prints one line per round and build (wall and CPU seconds, peak RSS, peak
RssAnon, records sent) and the best round of each."""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from git_collector import BIN, FakeIngestd, run_measured  # noqa: E402
from omni import junit_big_report  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--bin", action="append", default=[],
                    help="NAME=DIR: also time DIR/collectord, named NAME")
    args = ap.parse_args()
    builds = [("this", BIN)] + [tuple(b.split("=", 1)) for b in args.bin]
    tmp = tempfile.mkdtemp(prefix="omni-bench-junit-")
    try:
        report = os.path.join(tmp, "report.xml")
        junit_big_report(report, args.cases, rerun_every=500)
        print(f"report: {args.cases} cases, {os.path.getsize(report) / 2**20:.1f} MiB")
        fake = FakeIngestd()
        best = {}
        for r in range(args.runs):
            for name, bindir in builds:
                state = os.path.join(tmp, "state-" + name)
                shutil.rmtree(state, ignore_errors=True)
                before = fake.records
                cmd = [os.path.join(bindir, "collectord"), "junit", "--once",
                       f"--intake={fake.endpoint}", f"--state-dir={state}", "--log-level=warn",
                       "--progress=off", "--pipeline=bench", "--build-id=1", report]
                wall, cpu, rss, anon, rc = run_measured(cmd)
                if rc != 0:
                    sys.exit(f"{name}: collectord exited {rc}")
                sent = fake.records - before
                print(f"round {r + 1} {name:>8}: wall {wall:6.2f} s  CPU {cpu:6.2f} s  "
                      f"peak RSS {rss:6.1f} MiB  RssAnon {anon:6.1f} MiB  records {sent}")
                if name not in best or wall < best[name][0]:
                    best[name] = (wall, cpu, rss, anon, sent)
        fake.close()
        for name, (wall, cpu, rss, anon, sent) in best.items():
            print(f"best {name:>8}: wall {wall:6.2f} s  CPU {cpu:6.2f} s  peak RSS {rss:6.1f} MiB"
                  f"  RssAnon {anon:6.1f} MiB  {sent / wall:,.0f} records/s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
