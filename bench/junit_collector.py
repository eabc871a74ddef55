#!/usr/bin/python3
"""Benchmark of `collectord junit`: results/s and peak memory on a generated
report, for this build and, with --bin, another (the one before a change) in
the same rounds, so that a busy machine slows both alike.

The report (default 100,000 test cases in suites of 1,000, 1 % failing with a
trace, every case with some output, a rerun every 500 cases) is written once.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from git_collector import BIN, FakeIngestd, run_measured  # noqa: E402


def make_report(path, cases):
    with open(path, "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n')
        for s in range(max(cases // 1000, 1)):
            f.write(f'<testsuite name="suite{s}" timestamp="2024-01-01T00:00:00" time="9.5">\n')
            for i in range(min(cases, 1000)):
                k = s * 1000 + i
                f.write(f'<testcase classname="pkg.Class{s}" name="test_{k}" time="0.00{k % 10}">')
                if k % 100 == 0:
                    f.write(f'<failure message="boom {k}" type="AssertionError">'
                            f'{"trace line " * 50}</failure>')
                f.write(f'<system-out>{"output " * 20}</system-out></testcase>\n')
                if k % 500 == 0:
                    # gotestsum's rerun of the failure just written
                    f.write(f'<testcase classname="pkg.Class{s}" name="test_{k}" time="0.001"/>\n')
            f.write('</testsuite>\n')
        f.write('</testsuites>\n')


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
        make_report(report, args.cases)
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
