#!/usr/bin/env python3
"""What the foreign keys of relationald's git tables cost PostgreSQL: N commits
and 3 N commit_files rows made by INSERT ... SELECT generate_series (1,000
commits per transaction) into relationald's schema (its migrations, psql), as
it is and without the foreign keys commits.source_id, commit_files.commit_id
and commit_files.source_id; 3 times in turn, medians of the backend's CPU
(/proc), WAL (server-wide) and seconds. Not relationald's own statements (it
stages and inserts with ON CONFLICT): the keys' share, not its rates.
Usage: git_tables_fk.py [N]. Not a test."""
import glob
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import psycopg2  # noqa: E402
from omni import scratch_database  # noqa: E402
CLK = os.sysconf("SC_CLK_TCK")
MIGRATIONS = sorted(glob.glob(os.path.join(HERE, "..", "relationald", "migrations", "*.sql")))
VARIANTS = {
    "as is": "",
    "no foreign keys on commits, commit_files":
        "ALTER TABLE commits DROP CONSTRAINT commits_source_id_fkey; "
        "ALTER TABLE commit_files DROP CONSTRAINT commit_files_commit_id_fkey; "
        "ALTER TABLE commit_files DROP CONSTRAINT commit_files_source_id_fkey",
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


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def run(n, sql):
    with scratch_database("omni_gitfk_") as dsn:
        for m in MIGRATIONS:
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
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    results = {k: [] for k in VARIANTS}
    for _ in range(3):
        for name, sql in VARIANTS.items():
            results[name].append(run(n, sql))
            print("#", name, results[name][-1], flush=True)
    print(f"\n{n:,} commits, {3 * n:,} commit_files rows; load {os.getloadavg()[0]:.1f}\n")
    print("| schema | backend CPU s | WAL MiB | seconds |\n|---|---|---|---|")
    for name, rs in results.items():
        print(f"| {name} | {statistics.median(r[1] for r in rs):.2f} | "
              f"{statistics.median(r[2] for r in rs) / 2**20:,.0f} | "
              f"{statistics.median(r[0] for r in rs):.1f} |")


if __name__ == "__main__":
    main()
