#!/usr/bin/env python3
"""Old code against new, side by side in the same run: builds two git refs
(or the working tree) into trees of their own, then runs the core benchmark
(`make bench`'s bench/run.py) and the writer benchmarks (relationald,
metricsd, archive_store, documentd) alternately on one and the other, N
times, and prints each figure's median for both sides and their ratio.

On a shared machine rates move by tens of percent from minute to minute;
run back to back and alternated (old, new, then new, old, ...), the two
sides see the same load, so that their ratio means something where their
absolute figures do not. Each side runs its own tree's benchmark scripts
and C harnesses (they follow the library's names) against its own build.

    tools/with-test-services.sh bench/compare_refs.py [--old c17b1b5] [--new WORKTREE]
                                                      [--runs 3] [--only core,relationald]

--new WORKTREE (the default) is this checkout as it is, built with `make
programs` into its build/; any other ref is exported with `git archive`
and built once into --work (kept between runs: a commit's tree does not
change). The last line sums it up: the worst ratio and whether every figure
is within --tolerance of the old. Not a test: it measures."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = "/usr/bin/python3"
NUM = r"([\d,.]+)"


def rate(text):
    """The first number of a cell ("123,456 records/s (2.1 s)") as a float."""
    m = re.search(NUM, text)
    return float(m.group(1).replace(",", "")) if m else None


def rows(out):
    """A Markdown table's rows as lists of cells."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in out.splitlines() if line.startswith("|") and not line.startswith("|---")]


def by_row(*pairs):
    """A parser of a benchmark's Markdown table: the rate of each row whose
    first cell starts with a prefix, under that prefix's label."""
    def parse(out):
        got = {}
        for r in rows(out):
            for prefix, label in pairs:
                if r[0].startswith(prefix):
                    got[label] = rate(r[1])
        return got
    return parse


parse_core = by_row(("journaled", "core: journaled records/s"),
                    ("archived", "core: archived records/s"),
                    ("steady state", "core: steady state records/s"))
parse_relationald = by_row(("relationald,", "relationald: rows/s"),
                           ("plain `COPY", "relationald: plain COPY rows/s (server)"))
parse_documentd = by_row(("documentd,", "documentd: documents/s"),
                         ("plain mongoc", "documentd: plain bulk insert documents/s (server)"))


def parse_metricsd(out):
    got = {}
    for r in rows(out):
        kind = "metric" if "`metric`" in r[0] else "git.commit" if "`git.commit`" in r[0] else None
        if kind and len(r) >= 5:
            got[f"metricsd {kind}: new points/s"] = rate(r[1])
            got[f"metricsd {kind}: upsert points/s"] = rate(r[4])
            got[f"metricsd {kind}: plain COPY points/s (server)"] = rate(r[2])
    return got


def parse_archive_store(out):
    """bench/archive_store.c's lines "records,rate,tree,recent,rss" per
    window: the rate over them all."""
    done, seconds = 0, 0.0
    for line in out.splitlines():
        f = line.split(",")
        if len(f) == 5 and f[0].isdigit():
            seconds += (int(f[0]) - done) / float(f[1])
            done = int(f[0])
    return {"archive_store: records/s": done / seconds} if seconds else {}


def archive_store_command(tree, work, args):
    """archiverd's store alone (bench/archive_store.c), built here rather
    than by bench/archive_store.py, whose build step changed with the
    library's layout (and did not build at some commits): every
    archiverd/*.c but main and the self-test runner, against the tree's
    library, unused code (the self-tests) dropped as the Makefile does."""
    out = os.path.join(work, "archive_store")
    sources = [os.path.join(tree, "archiverd", f)
               for f in sorted(os.listdir(os.path.join(tree, "archiverd")))
               if f.endswith(".c") and f not in ("main.c", "selftest.c")]
    pkgs = ["libzstd", "libzmq", "libczmq", "msgpack", "lmdb", "yaml-0.1", "libmicrohttpd",
            "libcrypto", "libpq"]
    flags = sh(["pkg-config", "--cflags", "--libs", *pkgs], capture_output=True,
               text=True).stdout.split()
    includes = [f"-I{os.path.join(tree, d)}" for d in ("", "common", "proto", "archiverd",
                                                      "testsupport")]
    sh(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-ffunction-sections", "-fdata-sections",
        "-Wl,--gc-sections", *includes, "-o", out, os.path.join(tree, "bench", "archive_store.c"),
        *sources, os.path.join(tree, "build", "lib", "libomni.a"), *flags, "-lpthread", "-lm"])
    records, window = (int(a.split("=")[1]) for a in args)
    return [out, os.path.join(work, "archive"), str(records), "8000", str(window)]


# name: (script, its arguments, parser). Sizes for about a minute each on a
# quiet two-core machine; --scale multiplies the record counts.
BENCHES = {
    "core": ("run.py", ["--records={1000000}"], parse_core),
    "relationald": ("relationald.py", ["--records={100000}"], parse_relationald),
    "metricsd": ("metricsd.py", ["--records={100000}", "--commits={25000}"], parse_metricsd),
    "archive_store": (archive_store_command, ["--records={3000000}", "--window={1000000}"],
                      parse_archive_store),
    "documentd": ("documentd.py", ["--records={30000}"], parse_documentd),
}


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def prepare(ref, work, jobs):
    """(label, tree) of a ref built with `make programs`."""
    if ref == "WORKTREE":
        tree = ROOT
        label = "worktree@" + sh(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                                 capture_output=True, text=True).stdout.strip()
        dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                   capture_output=True, text=True).stdout.strip()
        label += "+changes" if dirty else ""
    else:
        sha = sh(["git", "-C", ROOT, "rev-parse", "--verify", ref + "^{commit}"],
                 capture_output=True, text=True).stdout.strip()
        label = f"{ref}@{sha[:12]}" if not sha.startswith(ref) else sha[:12]
        tree = os.path.join(work, sha[:12])
        if not os.path.exists(os.path.join(tree, ".exported")):
            os.makedirs(tree, exist_ok=True)
            archive = subprocess.Popen(["git", "-C", ROOT, "archive", sha], stdout=subprocess.PIPE)
            sh(["tar", "-x", "-C", tree], stdin=archive.stdout)
            assert archive.wait() == 0
            open(os.path.join(tree, ".exported"), "w").close()
    print(f"== building {label} in {tree}", flush=True)
    sh(["make", "-C", tree, f"-j{jobs}", "--no-print-directory", "programs"],
       stdout=subprocess.DEVNULL)
    return label, tree


def run_one(tree, name, scale):
    script, args, parse = BENCHES[name]
    args = [re.sub(r"\{(\d+)\}", lambda m: str(max(1, int(int(m.group(1)) * scale))), a)
            for a in args]
    env = dict(os.environ, OMNI_BIN=os.path.join(tree, "build", "bin"))
    with tempfile.TemporaryDirectory(prefix="omni-compare-") as work:
        if callable(script):
            command = script(tree, work, args)
            script = os.path.basename(command[0])
        else:
            command = [PYTHON, os.path.join(tree, "bench", script), *args]
        start = time.monotonic()
        out = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        took = time.monotonic() - start
    if out.returncode:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"compare_refs: {name} failed in {tree}")
    got = parse(out.stdout)
    # A writer's rate over the server's own in the same run (plain COPY,
    # plain bulk insert): what the server's share of the load did to both
    # cancels out of it, mostly
    for k in list(got):
        plain = next((p for p in got if "(server)" in p and p.startswith(k.split(":")[0] + ":")),
                     None)
        if plain and "(server)" not in k and got[plain]:
            got[f"{k} ÷ plain"] = got[k] / got[plain]
    if not got:
        sys.stderr.write(out.stdout)
        raise SystemExit(f"compare_refs: no figures read from {script}'s output")
    return got, took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--old", default="c17b1b5", help="the old ref (default: main before issue 15)")
    ap.add_argument("--new", default="WORKTREE", help="the new ref, or WORKTREE (this checkout)")
    ap.add_argument("--runs", type=int, default=3, help="runs of each side, alternated")
    ap.add_argument("--only", default=",".join(BENCHES), help="benchmarks, comma-separated: "
                    + ", ".join(BENCHES))
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every record count")
    ap.add_argument("--tolerance", type=float, default=0.05, help="the ratio's allowed shortfall")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "omni-compare-refs"),
                    help="where refs are exported and built")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    names = [n for n in args.only.split(",") if n]
    for n in names:
        if n not in BENCHES:
            ap.error(f"unknown benchmark {n}")
    if not os.environ.get("OMNI_TEST_PG_DSN"):
        print("compare_refs: no OMNI_TEST_PG_DSN; run it under tools/with-test-services.sh",
              file=sys.stderr)

    sides = [prepare(args.old, args.work, args.jobs), prepare(args.new, args.work, args.jobs)]
    load0 = os.getloadavg()
    t0 = time.monotonic()
    figures = [{}, {}]  # side -> label -> [values]
    for i in range(args.runs):
        for name in names:
            # old, new on even runs, new, old on odd ones: drift hits both alike
            for s in (0, 1) if i % 2 == 0 else (1, 0):
                label, tree = sides[s]
                got, took = run_one(tree, name, args.scale)
                for k, v in got.items():
                    figures[s].setdefault(k, []).append(v)
                shown = ", ".join(f"{k.split(name, 1)[-1].strip(' :')} "
                                  f"{v:.3f}" if "÷" in k else
                                  f"{k.split(name, 1)[-1].strip(' :')} {v:,.0f}"
                                  for k, v in got.items())
                print(f"run {i + 1}/{args.runs} {name:<13} {('old', 'new')[s]} ({took:.0f} s, "
                      f"load {os.getloadavg()[0]:.1f}): {shown}", flush=True)
    load1 = os.getloadavg()

    print(f"\nold = {sides[0][0]}, new = {sides[1][0]}; {args.runs} runs each, alternated; "
          f"{(time.monotonic() - t0) / 60:.0f} min; load average (1, 5, 15 min) at the start "
          f"{load0[0]:.1f} {load0[1]:.1f} {load0[2]:.1f}, at the end {load1[0]:.1f} "
          f"{load1[1]:.1f} {load1[2]:.1f}; {os.cpu_count()} CPUs\n")
    print("| figure | old median | new median | new / old | old runs | new runs |")
    print("|---|---|---|---|---|---|")
    worst = None
    for k in figures[0]:
        old, new = figures[0][k], figures[1].get(k, [])
        if not new:
            continue
        ratio = statistics.median(new) / statistics.median(old)
        # The servers' own rates (plain COPY, plain bulk insert) run the
        # same code on both sides: shown for the noise they measure, not judged
        judged = "(server)" not in k
        if judged and (worst is None or ratio < worst[0]):
            worst = (ratio, k)
        fmt = (lambda v: f"{v:.3f}") if "÷" in k else (lambda v: f"{v:,.0f}")
        print(f"| {k} | {fmt (statistics.median(old))} | {fmt (statistics.median(new))} | "
              f"{ratio:.3f}{'' if judged else ' (same code both sides)'} | "
              f"{' / '.join(fmt (v) for v in old)} | {' / '.join(fmt (v) for v in new)} |")
    if worst:
        ok = worst[0] >= 1 - args.tolerance
        print(f"\ncompare_refs: worst new/old {worst[0]:.3f} ({worst[1]}); every figure within "
              f"{100 * args.tolerance:.0f}% of the old: {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
