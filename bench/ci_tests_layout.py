#!/usr/bin/env python3
"""What each part of ci_tests' layout costs PostgreSQL: the same ci.test rows
(omni-loadgen, seed 1) copied into ci_tests under several layouts, and into
the Fluent Bit pgsql table `(tag, time, data jsonb)` for reference.

Every layout gets a private database with relationald's migrations 1-6
applied (psql, in order), then the layout's changes (migration files, 7 on,
for the layouts named so); the rows go in by `COPY ... FROM STDIN` (text) in
transactions of --chunk rows, from one connection (--connections: several at
once, the transactions dealt out), as relationald's direct way sends them
(relationald sends binary COPY: the parsing differs, the index and constraint
work does not). The layouts run in turn, --repeat times, alternating; medians
are printed.

--locale=en_US.UTF-8: the databases use that libc locale (as a server
initialized under it, the usual Debian or Ubuntu cluster; it must be
installed: `localedef -i en_US -f UTF-8 en_US.UTF-8`), --icu-locale=en-US
that ICU collation, instead of the server's default.
The layouts "migrations 1-8" and "migrations 1-9" compare ci_tests as
merged with its text keys in byte order (migration 9, issue 20).

Measured per layout: the backends' CPU (/proc), WAL bytes
(pg_current_wal_lsn difference) and full-page images (pg_stat_wal, both
server-wide: other sessions count too), seconds, and the size of the table
with its indexes. Not a test; not part of `make bench`."""
import argparse
import glob
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import msgpack
import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
from omni import binary, scratch_database, cpu_seconds as cpu_of  # noqa: E402

MIGRATIONS = sorted(glob.glob(os.path.join(HERE, "..", "relationald", "migrations", "*.sql")))
#  The layouts below start from ci_tests as migration 6 left it
BASE = [m for m in MIGRATIONS if int(os.path.basename(m)[:3]) <= 6]
M7 = [m for m in MIGRATIONS if os.path.basename(m).startswith("007_")]
#  Migrations 7 to 8, 7 to 9: as released up to 8, and with 9's byte order
M8 = [m for m in MIGRATIONS if 7 <= int(os.path.basename(m)[:3]) <= 8]
M9 = [m for m in MIGRATIONS if 7 <= int(os.path.basename(m)[:3]) <= 9]
M10 = [m for m in MIGRATIONS if 7 <= int(os.path.basename(m)[:3]) <= 10]

#  name -> SQL run after migrations 1-6 (a list: migration files and SQL, in
#  that order); None: the JSONB table instead
LAYOUTS = {
    "jsonb (tag, time, data), no index": None,
    "ci_tests up to migration 6 (pkey, case, build, FK)": "",
    "no FK to sources": "ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_source_id_fkey",
    "pkey + (source_id, observed), FK": "DROP INDEX ci_tests_case; DROP INDEX ci_tests_build; "
    "CREATE INDEX ci_tests_observed ON ci_tests (source_id, observed)",
    "pkey + (source_id, observed), no FK": "DROP INDEX ci_tests_case; DROP INDEX ci_tests_build; "
    "CREATE INDEX ci_tests_observed ON ci_tests (source_id, observed); "
    "ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_source_id_fkey",
    "migration 7: pkey + build, no FK": M7,
    "migration 7, each transaction's rows in id order": M7,
    "migration 7 with the id as uuid": M7 + ["DROP VIEW flakiest_tests; ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_id_check; "
    "ALTER TABLE ci_tests ALTER COLUMN id TYPE uuid USING encode (id, 'hex')::uuid"],
    "migrations 1-8 (totals), default collation": M8,
    "migrations 1-9 (text keys in byte order)": M9,
    "migrations 1-10 (test cases, runs per source)": M10,
    "pkey only, no FK": "DROP INDEX ci_tests_case; DROP INDEX ci_tests_build; "
    "ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_source_id_fkey",
    "heap only (no index, no FK)": "DROP INDEX ci_tests_case; DROP INDEX ci_tests_build; "
    "ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_source_id_fkey; "
    "ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_pkey",
}


def text_field(v):
    if v is None:
        return "\\N"
    if isinstance(v, bool):
        return "t" if v else "f"
    if isinstance(v, bytes):
        return "\\\\x" + v.hex()
    return str(v).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def stamp(ts):
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts // 10**9))
            + ".%06d+00" % (ts % 10**9 // 1000))


def chunks_of(lines, chunk):
    return ["".join(lines[i:i + chunk]) for i in range(0, len(lines), chunk)]


def make_rows(dump):
    tests, jsonb = [], []
    with open(dump, "rb") as f:
        for r in msgpack.Unpacker(f, raw=False):
            b = r["body"]
            row = [r["id"], 1, b.get("suite"), b.get("class"), b.get("name"), b.get("status"),
                   b.get("duration"), b.get("pipeline"), b.get("build_id"), b.get("file"),
                   b.get("failure_type"), b.get("failure_message"), b.get("flaky"),
                   b.get("occurrence", 0), b.get("retried", False), stamp(r["ts"]), r["run"],
                   r["id"][::-1]]
            tests.append("\t".join(text_field(v) for v in row) + "\n")
            data = dict(b, id=r["id"].hex(), src=r["src"], run=r["run"])
            jsonb.append(r["kind"] + "\t" + stamp(r["ts"])[:-3] + "\t"
                         + json.dumps(data, separators=(",", ":")).replace("\\", "\\\\") + "\n")
    return tests, jsonb


def run_layout(name, sql, tests, jsonb, connections=1, db_options=""):
    with scratch_database("omni_layout_", db_options) as dsn:
        if sql is not None:
            for m in BASE + [x for x in (sql if isinstance(sql, list) else []) if x in MIGRATIONS]:
                subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", m],
                               check=True, stdout=subprocess.DEVNULL)
        db = psycopg2.connect(dsn)
        cur = db.cursor()
        if sql is None:
            cur.execute("CREATE TABLE fluentbit (tag varchar, time timestamp, data jsonb)")
            table, cols, chunks = "fluentbit", "tag, time, data", jsonb
        else:
            cur.execute("INSERT INTO sources (id, name) OVERRIDING SYSTEM VALUE VALUES (1, 'bench')")
            for step in sql if isinstance(sql, list) else [sql]:
                if step and step not in MIGRATIONS:
                    cur.execute(step)
            table = "ci_tests"
            cols = ("id, source_id, suite, class, name, status, duration, pipeline, build_id, "
                    "file, failure_type, failure_message, flaky, occurrence, retried, observed, "
                    "run_id, content")
            chunks = tests
            if "id order" in name:  # the line starts with the id's hex
                chunks = ["".join(sorted(c.splitlines(True))) for c in tests]
            if "uuid" in name:  # the id as 32 hex digits (no "\\x"), which uuid reads
                chunks = ["".join(line[3:] for line in c.splitlines(True)) for c in tests]
        db.commit()
        db.autocommit = True
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_current_wal_lsn (), (SELECT wal_fpi FROM pg_stat_wal)")
        lsn0, fpi0 = cur.fetchone()
        #  --connections: the transactions dealt out over that many
        #  sessions at once (each COPY releases the GIL while it runs)
        conns = [db] + [psycopg2.connect(dsn) for _ in range(connections - 1)]
        pids = [c.get_backend_pid() for c in conns]
        cpu0, t0 = sum(cpu_of(p) for p in pids), time.monotonic()
        db.autocommit = False

        def copy(k):
            c = conns[k]
            with c.cursor() as ccur:
                for text in chunks[k::connections]:
                    ccur.copy_expert(f"COPY {table} ({cols}) FROM STDIN", io.StringIO(text))
                    c.commit()
        threads = [threading.Thread(target=copy, args=(k,)) for k in range(connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds, cpu = time.monotonic() - t0, sum(cpu_of(p) for p in pids) - cpu0
        for c in conns[1:]:
            c.close()
        db.autocommit = True
        cur.execute("SELECT pg_current_wal_lsn () - %s::pg_lsn, "
                    "(SELECT wal_fpi FROM pg_stat_wal) - %s, pg_total_relation_size (%s)",
                    (lsn0, fpi0, table))
        wal, fpi, size = cur.fetchone()
        db.close()
        return {"s": seconds, "cpu": cpu, "wal": int(wal), "fpi": int(fpi), "size": int(size)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", type=int, default=300_000, help="ci.test records")
    ap.add_argument("--suite-size", type=int, default=0,
                    help="omni-loadgen --suite-size: builds of N results, the same N tests "
                    "in each (0: every result a test of its own)")
    ap.add_argument("--chunk", type=int, default=5000, help="rows per COPY and transaction")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--only", action="append", help="run the layouts whose name starts so")
    ap.add_argument("--connections", default="1",
                    help="sessions copying at once, a list: each layout once per value")
    ap.add_argument("--icu-locale", help="the databases' default collation: this ICU locale")
    ap.add_argument("--locale", help="the databases' libc locale (installed: locale -a)")
    args = ap.parse_args()
    db_options = (f"LOCALE_PROVIDER icu ICU_LOCALE '{args.icu_locale}' TEMPLATE template0"
                  if args.icu_locale else
                  f"LOCALE '{args.locale}' TEMPLATE template0" if args.locale else "")
    layouts = {k: v for k, v in LAYOUTS.items()
               if not args.only or any(k.startswith(o) for o in args.only)}
    fd, dump = tempfile.mkstemp(prefix="omni-layout-", suffix=".mp")
    os.close(fd)
    try:
        subprocess.run([binary("omni-loadgen"), "--kind=ci.test", f"--count={args.tests}",
                        "--seed=1", "--src=bench", "--log-level=warn", f"--dump={dump}",
                        f"--suite-size={args.suite_size}"],
                       check=True, stdout=subprocess.DEVNULL)
        tests, jsonb = make_rows(dump)
    finally:
        os.unlink(dump)
    tests, jsonb = chunks_of(tests, args.chunk), chunks_of(jsonb, args.chunk)
    load = os.getloadavg()
    counts = [int(k) for k in args.connections.split(",")]
    results = {(k if len(counts) == 1 else f"{k}, {c} connection" + "s" * (c > 1)): []
               for k in layouts for c in counts}
    for _ in range(args.repeat):
        for name, sql in layouts.items():
            for c in counts:
                key = name if len(counts) == 1 else f"{name}, {c} connection" + "s" * (c > 1)
                results[key].append(run_layout(name, sql, tests, jsonb, c, db_options))
                print(f"# {key}: {results[key][-1]}", flush=True)
    print(f"\n{args.tests:,} ci.test rows, transactions of {args.chunk:,}; "
          + (f"a suite of {args.suite_size:,} tests per build; " if args.suite_size else
             "every result a test of its own; ") +
          f"collation {args.icu_locale or args.locale or 'the server default'}; medians of "
          f"{args.repeat}; load average {load[0]:.1f} at the start, "
          f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)\n")
    print("| layout | rows/s | backend CPU s | WAL MiB | full-page images | size MiB |")
    print("|---|---|---|---|---|---|")
    for name, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"| {name} | {args.tests / med['s']:,.0f} | {med['cpu']:.2f} | "
              f"{med['wal'] / 2**20:,.0f} | {med['fpi']:,.0f} | {med['size'] / 2**20:,.0f} |")


if __name__ == "__main__":
    main()
