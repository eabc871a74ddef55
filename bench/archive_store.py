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

from cbuild import build


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=8000)
    ap.add_argument("--window", type=int, default=1_000_000)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="omni-archive-store-")
    try:
        program = build(work, "archive_store", ["archiverd/archive.c", "archiverd/archive_ids.c",
                                                "archiverd/bloom.c", "archiverd/coldfile.c"],
                        ["libzstd"])
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
