#!/usr/bin/env python3
"""What the foreign keys of relationald's git tables cost PostgreSQL: N commits
and 3 N commit_files rows made by INSERT ... SELECT generate_series (1,000
commits per transaction) into relationald's schema (its migrations, psql), as
it is and without the foreign keys commits.source_id, commit_files.commit_id
and commit_files.source_id; 3 times in turn, medians of the backend's CPU
(/proc), WAL (server-wide) and seconds. Not relationald's own statements (it
stages and inserts with ON CONFLICT): the keys' share, not its rates.
The variants "migrations 1-8" and "1-9" stop at that migration: the schema
as merged up to 8 and with 9's text keys in byte order (issue 20).
Usage: git_tables_fk.py [N] [--only=PREFIX]... [--locale=en_US.UTF-8 |
--icu-locale=en-US] (the databases' default collation, as on a server
initialized under en_US.UTF-8; see ci_tests_layout.py). Not a test."""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import psycopg2  # noqa: E402
from omni import scratch_database, cpu_seconds as cpu_of  # noqa: E402
MIGRATIONS = sorted(glob.glob(os.path.join(HERE, "..", "relationald", "migrations", "*.sql")))
#  name -> (the last migration applied, None: all; SQL run after them)
VARIANTS = {
    "as is": (None, ""),
    "no foreign keys on commits, commit_files": (
        None, "ALTER TABLE commits DROP CONSTRAINT commits_source_id_fkey; "
        "ALTER TABLE commit_files DROP CONSTRAINT commit_files_commit_id_fkey; "
        "ALTER TABLE commit_files DROP CONSTRAINT commit_files_source_id_fkey"),
    "migrations 1-8 (default collation)": (8, ""),
    "migrations 1-9 (text keys in byte order)": (9, ""),
}
COMMITS_SQL = (
    "INSERT INTO commits (id, source_id, sha, parents, author_name, author_email, author_time, "
    "author_tz, committer_name, committer_email, committer_time, committer_tz, message, "
    "files_changed, insertions, deletions, run_id) "
    "SELECT decode (md5 (g::text), 'hex'), 1, md5 (g::text) || '12345678', "
    "ARRAY[md5 ((g - 1)::text)], 'A ' || (g %% 50), 'a' || (g %% 50) || '@x', "
    "to_timestamp (1.6e9 + g * 60), 0, 'A', 'a@x', to_timestamp (1.6e9 + g * 60), 0, "
    "'message ' || g, 3, 10, 2, 'r' FROM generate_series (%s, %s) g")
FILES_SQL = (
    "INSERT INTO commit_files (commit_id, path, insertions, deletions, is_binary, source_id) "
    "SELECT decode (md5 (g::text), 'hex'), 'src/dir' || (g * 7 + f) %% 97 || '/file' || f "
    "|| '.c', 3, 1, false, 1 FROM generate_series (%s, %s) g, generate_series (1, 3) f")


def run(n, variant, db_options=""):
    last, sql = variant
    with scratch_database("omni_gitfk_", db_options) as dsn:
        for m in MIGRATIONS:
            if last is not None and int(os.path.basename(m)[:3]) > last:
                continue
            subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", m],
                           check=True, stdout=subprocess.DEVNULL)
        db = psycopg2.connect(dsn)
        cur = db.cursor()
        cur.execute("INSERT INTO sources (name) VALUES ('bench')")
        if sql:
            cur.execute(sql)
        db.commit()
        db.autocommit = True
        cur.execute("CHECKPOINT")
        cur.execute("SELECT pg_current_wal_lsn ()")
        lsn0 = cur.fetchone()[0]
        pid = db.get_backend_pid()
        cpu0, t0 = cpu_of(pid), time.monotonic()
        db.autocommit = False
        for lo in range(0, n, 1000):
            cur.execute(COMMITS_SQL, (lo, lo + 999))
            cur.execute(FILES_SQL, (lo, lo + 999))
            db.commit()
        seconds, cpu = time.monotonic() - t0, cpu_of(pid) - cpu0
        db.autocommit = True
        cur.execute("SELECT pg_current_wal_lsn () - %s::pg_lsn", (lsn0,))
        wal = int(cur.fetchone()[0])
        db.close()
        return seconds, cpu, wal


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("n", type=int, nargs="?", default=50000, help="commits")
    ap.add_argument("--only", action="append", help="the variants whose name starts so")
    ap.add_argument("--icu-locale", help="the databases' default collation: this ICU locale")
    ap.add_argument("--locale", help="the databases' libc locale (installed: locale -a)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    db_options = (f"LOCALE_PROVIDER icu ICU_LOCALE '{args.icu_locale}' TEMPLATE template0"
                  if args.icu_locale else
                  f"LOCALE '{args.locale}' TEMPLATE template0" if args.locale else "")
    variants = {k: v for k, v in VARIANTS.items()
                if not args.only or any(k.startswith(o) for o in args.only)}
    results = {k: [] for k in variants}
    for _ in range(args.repeat):
        for name, variant in variants.items():
            results[name].append(run(n, variant, db_options))
            print("#", name, results[name][-1], flush=True)
    print(f"\n{n:,} commits, {3 * n:,} commit_files rows; collation "
          f"{args.icu_locale or args.locale or 'the server default'}; load {os.getloadavg()[0]:.1f}\n")
    print("| schema | backend CPU s | WAL MiB | seconds |\n|---|---|---|---|")
    for name, rs in results.items():
        print(f"| {name} | {statistics.median(r[1] for r in rs):.2f} | "
              f"{statistics.median(r[2] for r in rs) / 2**20:,.0f} | "
              f"{statistics.median(r[0] for r in rs):.1f} |")


if __name__ == "__main__":
    main()
