#!/usr/bin/env python3
"""archiverd's store alone as the archive grows (`bench/archive_store.c`):
records/s of archive_write per window of records, the ids in the LMDB tree
and in memory, and RSS, so that the cost of the exactly-once id set at
scale can be read off. Not a test: it asserts nothing, it measures.

    bench/archive_store.py [--records 10000000] [--batch 8000] [--window 1000000]
"""
import argparse
import os
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(work):
    out = os.path.join(work, "archive_store")
    pkgs = "libzmq libczmq msgpack lmdb yaml-0.1 libmicrohttpd libcrypto libpq"
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", *pkgs.split()],
                           capture_output=True, text=True, check=True).stdout.split()
    subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-I" + os.path.join(ROOT, "common"),
                    "-I" + os.path.join(ROOT, "proto"), "-I" + os.path.join(ROOT, "archiverd"),
                    "-o", out, os.path.join(HERE, "archive_store.c"),
                    os.path.join(ROOT, "archiverd", "archive.c"),
                    os.path.join(ROOT, "archiverd", "bloom.c"),
                    os.path.join(ROOT, "build", "lib", "libomni.a"), *flags, "-lpthread", "-lm"],
                   check=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=8000)
    ap.add_argument("--window", type=int, default=1_000_000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-archive-store-")
    try:
        program = build(work)
        out = subprocess.run([program, os.path.join(work, "archive"), str(args.records),
                              str(args.batch), str(args.window)],
                             capture_output=True, text=True, check=True)
        print(f"| records archived | records/s in the window | ids in the tree | ids in memory "
              f"| RSS MiB |\n|---|---|---|---|---|")
        for line in out.stdout.splitlines():
            if line.startswith("#"):
                print("\n" + line[2:])
            elif not line.startswith("records"):
                done, rate, tree, recent, rss = line.split(",")
                print(f"| {int(done):,} | {float(rate):,.0f} | {int(tree):,} | {int(recent):,} "
                      f"| {rss} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
