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

    bench/archive_replay.py [--records 1000000] [--small 200000]
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
    """(seconds, peak RSS MiB, stdout) of a command, RSS by GNU time."""
    t0 = time.monotonic()
    out = subprocess.run(["/usr/bin/time", "-f", "RSS %M", *cmd], capture_output=True,
                         text=True, **kw)
    seconds = time.monotonic() - t0
    if out.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} exited {out.returncode}: {out.stderr[-2000:]}")
    rss = int(re.findall(r"RSS (\d+)", out.stderr)[-1]) / 1024
    return seconds, rss, out.stdout


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


def replay(work, archive, records):
    p = Pipeline(os.path.join(work, "replay-" + os.path.basename(os.path.dirname(archive)) +
                              str(time.monotonic_ns())),
                 writers=("archive", "metrics"), journal_max="16G")
    os.makedirs(p.workdir, exist_ok=True)
    with p:
        p.ingestd.start()
        seconds, rss, _ = timed([binary("omnictl"), "replay", f"--archive-dir={archive}",
                                 f"--intake={p.intake}", "--writer=metrics",
                                 f"--state={os.path.join(p.workdir, 'state')}"])
        shutil.rmtree(p.journal_dir, ignore_errors=True)
    return records / seconds, rss


def export(archive, records, fmt):
    seconds, rss, _ = timed([binary("omnictl"), "export", f"--archive-dir={archive}",
                             f"--format={fmt}", "-o", "/dev/null"] +
                            (["--kind=metric"] if fmt == "csv" else []))
    return records / seconds, rss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=200_000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-archive-replay-")
    try:
        rows = []
        for n in (args.small, args.records):
            plain = make_archive(work, f"a{n}", n)
            zst = os.path.join(work, f"z{n}")
            size_in, size_out, zsec = zstd_twin(plain, zst)
            for label, d in (("plain", plain), ("zstd", zst)):
                rate, rss = replay(work, d, n)
                rows.append((n, "replay", label, rate, rss))
                for fmt in ("json", "csv", "yaml"):
                    rate, rss = export(d, n, fmt)
                    rows.append((n, f"export {fmt}", label, rate, rss))
            print(f"metric archive, {n:,} records: {size_in / 2**20:.1f} MiB -> "
                  f"{size_out / 2**20:.1f} MiB zstd -3 (ratio {size_in / size_out:.1f}), "
                  f"{size_in / 2**20 / zsec:.0f} MiB/s one thread", flush=True)
            shutil.rmtree(os.path.dirname(plain))
            shutil.rmtree(zst)
        print("\n| records | what | files | records/s | peak RSS MiB |\n|---|---|---|---|---|")
        for n, what, label, rate, rss in rows:
            print(f"| {n:,} | {what} | {label} | {rate:,.0f} | {rss:.0f} |")

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
