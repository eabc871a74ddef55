#!/usr/bin/env python3
"""documentd benchmark: git.commit documents/s sustained from ingestd into a
MongoDB-wire server, next to the C driver's own plain bulk insert of the same
documents, in the same run, on the same server. Prints a Markdown table for
docs/performance.md.

1. The records are journaled by ingestd first (no writer connected), so the
   measurement is documentd draining a backlog: delivery, decoding, BSON,
   unordered bulk insert with the write concern, ack.
2. bench/documentd_plain.c (built here with cc against build/lib/libomni.a)
   makes the very same documents with docmap before its clock starts, then
   inserts them with mongoc bulk writes of the same size into an empty
   collection of another database with the same indexes.

Server: $OMNI_TEST_MONGO_URI, else a FerretDB (SQLite) started with
tools/mongo-test-server.sh for the run. Databases of its own, dropped after.
Not a test: it asserts nothing but that every document came."""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from omni import Pipeline, wait_until, cpu_seconds  # noqa: E402
from test_relationald import send, synthetic_commits  # noqa: E402
from cbuild import build  # noqa: E402


def build_plain(work):
    return build(work, "documentd_plain", ["documentd/docmap.c"], ["libmongoc-1.0"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--files", type=int, default=2, help="file entries per commit body")
    ap.add_argument("--write-concern", default="majority")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="omni-bench-doc-")
    server_dir = None
    uri = os.environ.get("OMNI_TEST_MONGO_URI")
    if not uri:
        server_dir = os.path.join(work, "mongo")
        env = {k: v for k, v in os.environ.items() if k != "OMNI_TEST_MONGO_URI"}
        uri = subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "start",
                              server_dir], capture_output=True, text=True, check=True,
                             env=env).stdout.strip()
    import pymongo
    client = pymongo.MongoClient(uri)
    server = client.admin.command("buildInfo")
    server_name = (f"FerretDB {server['ferretdbVersion']} (SQLite)" if "ferretdbVersion" in server
                   else f"MongoDB {server['version']}")
    db_pipe = "omni_bench_" + uuid.uuid4().hex[:8]
    db_plain = db_pipe + "_plain"
    p = None
    try:
        plain = build_plain(work)
        frames = [f for _, f in synthetic_commits(args.records, src="bench-repo",
                                                  files=args.files)]
        with open(os.path.join(work, "records.bin"), "wb") as out:
            for f in frames:
                out.write(struct.pack(">I", len(f)) + f)

        p = Pipeline(work, writers=("document",), journal_max="8G")
        p.ingestd.start()
        t = time.monotonic()
        send(p.intake, frames, batch=1000)
        journal_s = time.monotonic() - t

        doc = p.writer("documentd", [f"--uri={uri}", f"--database={db_pipe}",
                                     f"--batch-size={args.batch_size}",
                                     f"--write-concern={args.write_concern}",
                                     "--log-level=warn"])
        key = 'omni_ingestd_records_acked_total{writer="document"}'
        doc.start()
        # Sustained rate: from the first acknowledged batch to the last.
        n0, t0 = wait_until(lambda: (lambda n: (n, time.monotonic()) if n > 0 else None)(
            p.ingestd.metrics().get(key, 0)), 300, "first batch", interval=0.005)
        wait_until(lambda: p.ingestd.metrics().get(key, 0) >= args.records, 3600,
                   "all acknowledged", interval=0.005)
        t1 = time.monotonic()
        doc_rate = (args.records - n0) / (t1 - t0)
        cpu_s = cpu_seconds(doc.proc.pid)
        assert client[db_pipe].git_commits.count_documents({}) == args.records
        doc.stop()

        out = subprocess.run([plain, uri, db_plain, "git_commits",
                              os.path.join(work, "records.bin"), str(args.batch_size),
                              args.write_concern], capture_output=True, text=True, check=True)
        res = dict(kv.split("=", 1) for kv in out.stdout.split())
        plain_rate = float(res["rate"])
        assert client[db_plain].git_commits.count_documents({}) == args.records
        size = sum(len(f) for f in frames) / len(frames)
        print(f"| documentd, git.commit from ingestd's journal to {server_name} (batch "
              f"{args.batch_size}, w:{args.write_concern}) | {doc_rate:,.0f} documents/s | "
              f"{args.records} records of {size:.0f} B msgpack, {(t1 - t0):.2f} s sustained, "
              f"documentd CPU {cpu_s:.1f} s |")
        print(f"| plain mongoc unordered bulk insert, same documents, same server | "
              f"{plain_rate:,.0f} documents/s | {float(res['seconds']):.2f} s |")
        print(f"| ratio | {100 * doc_rate / plain_rate:.0f}% of plain bulk insert | "
              f"target >= 70% |")
        print(f"(journaling the records took {journal_s:.1f} s, not measured above)")
    finally:
        if p:
            for d in reversed(p.daemons):
                if d.running():
                    d.stop()
        for name in (db_pipe, db_plain):
            try:
                client.drop_database(name)
            except Exception:  # noqa: BLE001 - best effort after a failed run
                pass
        client.close()
        if server_dir:
            subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "stop",
                            server_dir])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
