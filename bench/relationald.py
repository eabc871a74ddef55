#!/usr/bin/env python3
"""relationald benchmark: git.commit rows/s sustained from ingestd into
PostgreSQL, next to a plain COPY of the same rows into the same table, in the
same run, on the same server. Prints a Markdown table for docs/performance.md.

1. The records are journaled by ingestd first (no writer connected), so the
   measurement is relationald draining a backlog: delivery, decoding, COPY to
   staging, INSERT ... ON CONFLICT, commit and ack, with nothing waiting on
   the sender.
2. The same rows (same values, same table, same indexes, empty table) are
   then loaded by one `COPY commits FROM STDIN` (text format, psycopg2).

PostgreSQL: $OMNI_TEST_PG_DSN (any database on the server) or
postgresql://postgres@127.0.0.1:5432/postgres; a database of its own is
created and dropped. Not a test: it asserts nothing but that every row came."""
import argparse
import io
import os
import sys
import tempfile
import time

import msgpack
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from omni import Pipeline, scratch_database, send, synthetic_commits  # noqa: E402


def copy_text(value):
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def array_text(items):
    return "{" + ",".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for i in items) + "}"


def plain_copy_rows(frames, source_id):
    """The rows relationald makes of the records, as COPY text."""
    out = io.StringIO()
    for frame in frames:
        r = msgpack.unpackb(frame, raw=False)
        b = r["body"]
        fields = ["\\\\x" + r["id"].hex(), str(source_id), b["sha"], array_text(b["parents"]),
                  b["author_name"], b["author_email"], str(b["author_time"]), str(b["author_tz"]),
                  b["committer_name"], b["committer_email"], str(b["committer_time"]),
                  str(b["committer_tz"]), b["message"], str(b["files_changed"]),
                  str(b["insertions"]), str(b["deletions"]), r["run"]]
        out.write("\t".join(copy_text(f) if i > 0 else f for i, f in enumerate(fields)) + "\n")
    return out.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    args = ap.parse_args()

    with scratch_database("omni_bench_") as dsn:
        bench(dsn, args)


def bench(dsn, args):
    src = "bench-repo"
    frames = [f for _, f in synthetic_commits(args.records, src=src)]
    with tempfile.TemporaryDirectory(prefix="omni-bench-rel-") as work, \
            Pipeline(work, writers=("relational",), journal_max="8G") as p:
        p.ingestd.start()
        t = time.monotonic()
        send(p.intake, frames, batch=1000)
        journal_s = time.monotonic() - t

        rel = p.writer("relationald", [f"--dsn={dsn}", f"--batch-size={args.batch_size}",
                                       "--log-level=warn"])
        rel.start()
        # Sustained rate: from the first acknowledged batch to the last.
        n0, drain_s = p.time_drain("relational", args.records)
        rel_rate = (args.records - n0) / drain_s
        db = psycopg2.connect(dsn)
        db.autocommit = True
        cur = db.cursor()
        cur.execute("SELECT count(*) FROM commits")
        assert cur.fetchone()[0] == args.records
        cur.execute("SELECT id FROM sources WHERE name = %s", (src,))
        source_id = cur.fetchone()[0]
        rel.stop()

        # Plain COPY of the same rows into the same, emptied table.
        text = plain_copy_rows(frames, source_id)
        cur.execute("TRUNCATE commits CASCADE")
        cur.execute("CHECKPOINT")
        t = time.monotonic()
        cur.copy_expert("COPY commits (id, source_id, sha, parents, author_name, author_email, "
                        "author_time, author_tz, committer_name, committer_email, committer_time, "
                        "committer_tz, message, files_changed, insertions, deletions, run_id) "
                        "FROM STDIN", io.StringIO(
                            # git times are epoch seconds: let COPY read them as timestamptz
                            "\n".join(_epoch_to_ts(line) for line in text.splitlines()) + "\n"))
        copy_s = time.monotonic() - t
        cur.execute("SELECT count(*) FROM commits")
        assert cur.fetchone()[0] == args.records
        db.close()
        copy_rate = args.records / copy_s
        print(f"| relationald, git.commit from ingestd's journal to PostgreSQL (batch "
              f"{args.batch_size}) | {rel_rate:,.0f} rows/s | {args.records} records, "
              f"{drain_s:.2f} s sustained |")
        print(f"| plain `COPY commits FROM STDIN`, same rows, same table | {copy_rate:,.0f} rows/s "
              f"| {copy_s:.2f} s |")
        print(f"| ratio | {100 * rel_rate / copy_rate:.0f}% of plain COPY | target >= 50% |")
        print(f"(journaling the records took {journal_s:.1f} s, not measured above)")


def _epoch_to_ts(line):
    f = line.split("\t")
    for i in (6, 10):
        f[i] = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(int(f[i])))
    return "\t".join(f)


if __name__ == "__main__":
    main()
