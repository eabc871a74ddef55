#!/usr/bin/env python3
"""The archive read back: `omnictl replay` into ingestd and `omnictl export`
to /dev/null, from plain and from zstd files, with their peak RSS at two
archive sizes (flat memory: the same RSS for 5x the records), and the
compression ratio and speed of metric and git.commit archives.

A metric archive of --records records is made by the real pipeline
(omni-loadgen -> ingestd -> archiverd). Its zstd twin is made with the
zstd CLI at archiverd's default level 3 (the same libzstd; archiverd only
compresses dates a week old, and loadgen's records are of today). replay
goes to an ingestd whose only other writer (metrics) is not running, so
what is measured is omnictl and ingestd's intake, not a store.
Not a test: it asserts nothing, it measures.

    bench/archive_replay.py [--records 1000000] [--small 200000] [--rounds R]
                            [--formats json,csv,yaml] [--bin NAME=DIR ...]

--bin also runs DIR/omnictl (e.g. the build before a change) on the same
archives, in turn with this build, --rounds times: on a shared machine only
figures of one run compare. Each row gives the best wall rate of the rounds
and the records per CPU second of omnictl (user + system), which depends
less on what else runs.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from omni import Pipeline, binary, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(cmd, **kw):
    """(seconds, CPU seconds, peak RSS MiB) of a command, CPU and RSS by GNU
    time."""
    t0 = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "RSS %M CPU %U %S", *cmd], capture_output=True,
                         text=True, **kw)
    seconds = time.monotonic() - t0
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} exited {out.returncode}: {out.stderr[-2000:]}")
    rss, user, system = re.findall(r"RSS (\d+) CPU ([\d.]+) ([\d.]+)", out.stderr)[-1]
    return seconds, float(user) + float(system), int(rss) / 1024


def files_of(d):
    for root, dirs, files in os.walk(d):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        for f in files:
            yield os.path.join(root, f)


def zstd_twin(src, dst):
    """dst: the archive with every file as <name>.zst (level 3); (in, out, seconds)."""
    size_in = size_out = 0
    seconds = 0.0
    for path in files_of(src):
        rel = os.path.relpath(path, src)
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        t0 = time.monotonic()
        subprocess.run(["zstd", "-q", "-3", "-T1", "--check", path, "-o",
                        os.path.join(dst, rel + ".zst")], check=True)
        seconds += time.monotonic() - t0
        size_in += os.path.getsize(path)
        size_out += os.path.getsize(os.path.join(dst, rel + ".zst"))
    return size_in, size_out, seconds


def make_archive(work, name, records):
    p = Pipeline(os.path.join(work, name), writers=("archive",), journal_max="8G")
    os.makedirs(p.workdir, exist_ok=True)
    with p:
        p.ingestd.start()
        a = p.archiverd(batch_size=8000).start()
        p.loadgen("--kind=metric", f"--count={records}", "--seed=3", "--src=bench", "--preencode")
        wait_until(lambda: a.metrics().get("omni_archiverd_records_archived_total", 0) >= records,
                   1800, "archived", 0.5)
    return p.archive_dir


def replay(work, archive, records, omnictl):
    p = Pipeline(os.path.join(work, "replay-" + os.path.basename(os.path.dirname(archive)) +
                              str(time.monotonic_ns())),
                 writers=("archive", "metrics"), journal_max="16G")
    os.makedirs(p.workdir, exist_ok=True)
    with p:
        p.ingestd.start()
        seconds, cpu, rss = timed([omnictl, "replay", f"--archive-dir={archive}",
                                 f"--intake={p.intake}", "--writer=metrics",
                                 f"--state={os.path.join(p.workdir, 'state')}"])
        shutil.rmtree(p.journal_dir, ignore_errors=True)
    return records / seconds, records / cpu, rss


def export(archive, records, fmt, omnictl):
    seconds, cpu, rss = timed([omnictl, "export", f"--archive-dir={archive}",
                               f"--format={fmt}", "-o", "/dev/null"] +
                              (["--kind=metric"] if fmt == "csv" else []))
    return records / seconds, records / cpu, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--formats", default="json,csv,yaml")
    ap.add_argument("--bin", action="append", default=[],
                    help="NAME=DIR: also run DIR/omnictl as NAME (e.g. an older build)")
    ap.add_argument("--no-git", action="store_true", help="leave out the git.commit archive")
    args = ap.parse_args()
    builds = [("", binary("omnictl"))] + [(b.split("=", 1)[0],
                                           os.path.join(b.split("=", 1)[1], "omnictl"))
                                          for b in args.bin]
    work = tempfile.mkdtemp(prefix="omni-archive-replay-")
    try:
        rows = []
        for n in (args.small, args.records):
            plain = make_archive(work, f"a{n}", n)
            zst = os.path.join(work, f"z{n}")
            size_in, size_out, zsec = zstd_twin(plain, zst)
            best = {}

            def keep(key, result):
                old = best.get(key)
                best[key] = result if not old else (max(old[0], result[0]),
                                                    max(old[1], result[1]),
                                                    max(old[2], result[2]))
            for _ in range(args.rounds):
                for label, d in (("plain", plain), ("zstd", zst)):
                    for name, omnictl in builds:
                        keep((n, "replay", label, name), replay(work, d, n, omnictl))
                        for fmt in args.formats.split(","):
                            keep((n, f"export {fmt}", label, name), export(d, n, fmt, omnictl))
            rows += [(*k, *v) for k, v in best.items()]
            print(f"metric archive, {n:,} records: {size_in / 2**20:.1f} MiB -> "
                  f"{size_out / 2**20:.1f} MiB zstd -3 (ratio {size_in / size_out:.1f}), "
                  f"{size_in / 2**20 / zsec:.0f} MiB/s one thread", flush=True)
            shutil.rmtree(os.path.dirname(plain))
            shutil.rmtree(zst)
        print(f"\nbest of {args.rounds} round(s), load average {os.getloadavg()[0]:.1f}\n")
        print("| records | what | files | build | records/s | records per CPU s | peak RSS MiB |\n"
              "|---|---|---|---|---|---|---|")
        for n, what, label, name, rate, per_cpu, rss in sorted(
                rows, key=lambda r: (r[0], r[1] != "replay", r[1], r[2], r[3])):
            print(f"| {n:,} | {what} | {label} | {name or 'this'} | {rate:,.0f} | "
                  f"{per_cpu:,.0f} | {rss:.0f} |")
        if args.no_git:
            return

        # git.commit: this repository's own history, archived by the pipeline
        p = Pipeline(os.path.join(work, "git"), writers=("archive",))
        os.makedirs(p.workdir, exist_ok=True)
        with p:
            p.ingestd.start()
            a = p.archiverd().start()
            subprocess.run([binary("collectord"), "git", "--once", f"--intake={p.intake}",
                            "--progress=off", f"--state-dir={p.workdir}/state", ROOT],
                           check=True, capture_output=True, timeout=600)
            accepted = p.ingestd.metrics()["omni_ingestd_records_accepted_total"]
            wait_until(lambda: a.metrics().get("omni_archiverd_records_archived_total", 0)
                       + a.metrics().get("omni_archiverd_records_skipped_duplicate_total", 0)
                       >= accepted, 120, "archived")
            gdir = os.path.join(p.archive_dir, "git.commit")
            size_in, size_out, zsec = zstd_twin(gdir, os.path.join(work, "gz"))
            lines = sum(sum(1 for _ in open(f, "rb")) for f in files_of(gdir))
            print(f"\ngit.commit archive of this repository: {lines:,} commits, "
                  f"{size_in / 2**10:.0f} KiB -> {size_out / 2**10:.0f} KiB zstd -3 "
                  f"(ratio {size_in / size_out:.1f}; one file a day, so small frames)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
