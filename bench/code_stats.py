#!/usr/bin/python3
"""Benchmark of `collectord code`: seconds per tree, and lines per second,
on a clone of this repository and on a large generated tree, against cloc
on the same trees and, with --bin, another build (the one before a change)
in the same rounds.

The generated trees (tests/code_tree.py) hold every language collectord
counts, each file `--size` blocks of code, blank lines and comments in each
of the language's styles, `--copies` times ("every language"), and the
languages collectord counted before it took cloc's table, 12 x `--copies`
times ("common languages": both builds count the same files); plain
directories, read by both.

collectord sends to a fake ingestd (bench/git_collector.py's: it acknowledges
every batch at once), so the figure is the collector's own cost: reading,
detecting, counting, sending. Prints one line per round (wall and CPU
seconds, peak RSS) and the best of the rounds. The machine is shared: the
CPU seconds depend less on what else runs than the wall time does.

    bench/code_stats.py [--runs R] [--copies N] [--size S] [--bin NAME=DIR ...] [--no-cloc]"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from code_tree import write_tree  # noqa: E402
import git_collector  # noqa: E402
from git_collector import BIN, ROOT, FakeIngestd, run_measured  # noqa: E402

# Languages the collector counted before cloc's table: the tree both builds
# count alike, for a like-for-like time
COMMON = ["C", "C++", "C/C++ Header", "Python", "Bourne Shell", "JavaScript", "TypeScript", "Java",
          "Go", "Rust", "SQL", "YAML", "Markdown", "HTML", "XML", "make", "CMake", "Ruby", "Perl"]


def lines_of(tree, repo):
    """cloc's total lines (blank + comment + code) of `tree`, and its time."""
    out = subprocess.run(["cloc", "--json", "--quiet", "--skip-uniqueness",
                          *(["--vcs=git"] if repo else []), "."], cwd=tree,
                         capture_output=True, text=True, check=True)
    s = json.loads(out.stdout)["SUM"]
    return s["blank"] + s["comment"] + s["code"]


def time_cloc(tree, repo):
    wall, cpu, rss, _anon, rc = run_measured(
        ["cloc", "--json", "--quiet", "--skip-uniqueness", *(["--vcs=git"] if repo else []),
         tree], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert rc == 0, "cloc failed"
    return wall, cpu, rss


def time_code(bindir, tree, fake, state_dir):
    """(wall, CPU, peak RSS) of `collectord code` from `bindir` on `tree`."""
    git_collector.BIN = bindir
    before = fake.records
    wall, cpu, rss, _anon, _commits = git_collector.time_collectord(
        tree, fake, state_dir, extra=[f"--source={tree}"], mode="code")
    assert fake.records > before, "collectord sent nothing"
    return wall, cpu, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--copies", type=int, default=40, help="files of each language")
    ap.add_argument("--size", type=int, default=60, help="blocks per file")
    ap.add_argument("--bin", action="append", default=[],
                    help="NAME=DIR: also run DIR/collectord as NAME (e.g. an older build)")
    ap.add_argument("--no-cloc", action="store_true", help="do not time cloc")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-code-")
    try:
        clone = os.path.join(tmp, "repo")
        subprocess.run(["git", "clone", "-q", ROOT, clone], check=True)
        tree = os.path.join(tmp, "tree")
        langs = write_tree(tree, size=args.size, copies=args.copies)
        common = os.path.join(tmp, "common")
        write_tree(common, size=args.size, copies=args.copies * 12, only=COMMON)
        trees = [("this repository", clone, True), ("every language", tree, False),
                 ("common languages", common, False)]
        sizes = {name: (lines_of(path, repo), sum(len(f) for _, _, f in os.walk(path)))
                 for name, path, repo in trees}
        for name, path, _repo in trees:
            print(f"{name}: {sizes[name][0]:,} lines (cloc's count), {sizes[name][1]:,} files"
                  + (f", {len(langs)} languages" if path == tree else ""))
        builds = [("collectord", BIN)] + [(f"collectord [{n}]", d)
                                          for n, d in (b.split("=", 1) for b in args.bin)]
        fake = FakeIngestd()
        state_dir = os.path.join(tmp, "state")
        best = {}
        for r in range(args.runs):
            for name, path, repo in trees:
                line = f"run {r + 1} {name}:"
                for label, bindir in builds:
                    wall, cpu, rss = time_code(bindir, path, fake, state_dir)
                    b = best.setdefault((name, label), [1e9, 1e9, 0])
                    best[(name, label)] = [min(b[0], wall), min(b[1], cpu), max(b[2], rss)]
                    line += f" | {label} {wall:.2f}s (cpu {cpu:.2f}s, {rss:.0f} MiB)"
                if not args.no_cloc:
                    wall, cpu, rss = time_cloc(path, repo)
                    b = best.setdefault((name, "cloc"), [1e9, 1e9, 0])
                    best[(name, "cloc")] = [min(b[0], wall), min(b[1], cpu), max(b[2], rss)]
                    line += f" | cloc {wall:.2f}s (cpu {cpu:.2f}s, {rss:.0f} MiB)"
                print(line, flush=True)
        fake.close()
        print(f"best of {args.runs}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}:")
        for name, _path, _repo in trees:
            for label in [b[0] for b in builds] + ([] if args.no_cloc else ["cloc"]):
                wall, cpu, rss = best[(name, label)]
                print(f"  {name:16} {label + ':':26} wall {wall:6.2f}s cpu {cpu:6.2f}s "
                      f"({sizes[name][0] / cpu:10,.0f} lines per CPU second) peak RSS {rss:.0f} MiB")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
