#!/usr/bin/env python3
"""documentd after a crash: what a redelivered batch and a mutable-state replace cost,
the code of a given commit (default: the one before the read-back write path) next to
this tree's, in the same run, on the same server. Prints a Markdown table for
docs/performance.md.

The old documentd is built from git: `git worktree add --detach` of --old-commit into a
temporary directory, `make build/bin/documentd` there; ingestd is this tree's.

1. Redelivery: --records mixed records (commits with two files, ci.builds, ci.tests:
   3:1:1) are stored by documentd, then journaled again and delivered again to a fresh
   documentd (old, then new): seconds per 1,000 already-stored records, from its start
   to the last acknowledgement.
2. Replaces at --builds stored ci.builds: --replaces records of existing builds come
   (a) as the very same observation again, (b) newer (each must replace), (c) older
   (each must lose): seconds per record, old and new on the same collection.

Server: $OMNI_TEST_MONGO_URI, else a FerretDB (SQLite) started with
tools/mongo-test-server.sh for the run. Databases of its own, dropped after."""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from omni import Pipeline, make_record, wait_until  # noqa: E402
from test_relationald import send  # noqa: E402
from test_documentd import mixed_records  # noqa: E402

OLD_COMMIT = "5c1b6eb"
T0 = 1_700_000_000 * 10**9


def build_old(work, commit):
    tree = os.path.join(work, "old-tree")
    subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", tree, commit],
                   check=True, capture_output=True)
    subprocess.run(["make", "-C", tree, "-j2", "build/bin/documentd"], check=True,
                   capture_output=True)
    return tree, os.path.join(tree, "build", "bin", "documentd")


def builds(n, ts_offset, status):
    return [make_record("ci.build", "bench", {"pipeline": "ci", "build_id": str(b),
                                              "status": status, "branch": "main"},
                        T0 + b * 10**9 + ts_offset) for b in n]


class Runner:
    """One ingestd; documentd runs (old or new binary) that drain what is journaled."""

    def __init__(self, work, uri, db, server_dir):
        os.makedirs(work, exist_ok=True)
        self.server_dir = server_dir
        self.restarts = 0
        self.p = Pipeline(work, writers=("document",), journal_max="8G")
        self.p.ingestd.start()
        self.uri, self.db = uri, db

    def drain(self, binary, frames, batch_size, limit):
        """Journals frames, then times a documentd from its start to the last ack; None
        when it has not drained within `limit` s (it is then killed, and the server
        given time to finish what it was left running)."""
        base = self.p.acked("document")
        send(self.p.intake, frames, batch=1000)
        d = self.p.writer("documentd", [f"--uri={self.uri}", f"--database={self.db}",
                                        f"--batch-size={batch_size}", "--log-level=warn"])
        d.args[0] = binary
        t = time.monotonic()
        d.start(wait=False)
        try:
            self.p.wait_acked("document", base + len(frames), timeout=limit, interval=0.01)
        except AssertionError:
            stuck = d.health()[1]
            d.kill9()
            self.wait_idle()
            # a fresh journal: what it left is not delivered to the next run
            self.p.ingestd.stop()
            shutil.rmtree(self.p.journal_dir)
            self.p.ingestd.start()
            return None, stuck
        elapsed = time.monotonic() - t
        d.stop()
        return elapsed, None

    def wait_idle(self):
        """Until the server answers a small write within a second: a documentd killed
        mid-command leaves the server running it. A server that answers nothing for
        60 s, not even a ping, is hung (FerretDB 1.24 was seen deadlocked after the
        old code's cut-off replaces): it is killed and started again on its data."""
        import pymongo
        c = pymongo.MongoClient(self.uri, socketTimeoutMS=60_000, serverSelectionTimeoutMS=5000)
        coll = c[self.db]["bench_probe"]
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            try:
                t = time.monotonic()
                coll.insert_one({"t": t})
                if time.monotonic() - t < 1.0:
                    break
            except pymongo.errors.PyMongoError:
                if not self.server_dir:
                    raise
                script = os.path.join(ROOT, "tools", "mongo-test-server.sh")
                try:
                    with open(os.path.join(self.server_dir, "ferretdb.pid")) as f:
                        os.kill(int(f.read()), 9)
                except (OSError, ValueError):
                    pass  # it is gone already
                time.sleep(1)  # the port is freed by the kernel, not a signal we can wait on
                subprocess.run([script, "start", self.server_dir], check=True,
                               capture_output=True)
                self.restarts += 1
        c.close()

    def stop(self):
        self.p.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--builds", type=int, default=100_000)
    ap.add_argument("--replaces", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--old-commit", default=OLD_COMMIT)
    ap.add_argument("--limit", type=int, default=180, help="s a run may take to drain")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="omni-bench-redeliver-")
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
    info = client.admin.command("buildInfo")
    server = (f"FerretDB {info['ferretdbVersion']} (SQLite)" if "ferretdbVersion" in info
              else f"MongoDB {info['version']}")
    new = os.path.join(os.environ.get("OMNI_BIN", os.path.join(ROOT, "build", "bin")),
                       "documentd")
    dbs, runners, tree = [], [], None
    rows = []
    try:
        tree, old = build_old(work, args.old_commit)
        # 1. Redelivery of already-stored mixed records
        n_commits = args.records * 3 // 5
        _, frames = mixed_records(n_commits, args.records // 5, src="redeliver")
        db = "omni_bench_" + uuid.uuid4().hex[:8]
        dbs.append(db)
        r = Runner(os.path.join(work, "redeliver"), uri, db, server_dir)
        runners.append(r)
        first, _ = r.drain(new, frames, args.batch_size, 3600)
        times, stuck = {}, {}
        for label, binary in (("old", old), ("new", new)):
            times[label], stuck[label] = r.drain(binary, frames, args.batch_size, args.limit)
        k = len(frames) / 1000

        def fig(label, unit, div):
            if times[label] is None:
                return f"not drained in {args.limit} s ({stuck[label][:90]})"
            return f"{times[label] / div:.3f} s {unit}"
        rows.append(f"| redelivery of {len(frames):,} stored records (commits, builds, tests "
                    f"3:1:1), batch {args.batch_size} | {fig('old', 'per 1,000', k)} | "
                    f"{fig('new', 'per 1,000', k)} | first store {first:.1f} s |")

        # 2. Replaces at args.builds stored builds
        db = "omni_bench_" + uuid.uuid4().hex[:8]
        dbs.append(db)
        r = Runner(os.path.join(work, "replace"), uri, db, server_dir)
        runners.append(r)
        fill, _ = r.drain(new, builds(range(args.builds), 0, "running"), args.batch_size, 3600)
        step = max(1, args.builds // args.replaces)
        pick = range(step // 2, args.builds, step)[:args.replaces]
        cases = [("same observation again", lambda o: builds(pick, 0, "running")),
                 ("newer (replaces)", lambda o: builds(pick, 10 + o, "success")),
                 ("older (loses)", lambda o: builds(pick, -10 - o, "stale"))]
        for name, make in cases:
            times, stuck = {}, {}
            for o, (label, binary) in enumerate((("old", old), ("new", new))):
                times[label], stuck[label] = r.drain(binary, make(o), args.batch_size,
                                                     args.limit)
            n = len(pick)
            rows.append(f"| {n} ci.build records, {name}, at {args.builds:,} stored builds | "
                        f"{fig('old', 'per record', n)} | {fig('new', 'per record', n)} | "
                        f"filled in {fill:.0f} s |")
        assert client[db].ci_builds.count_documents({}) == args.builds
        print(f"Server: {server}; old = {args.old_commit}, new = this tree; each figure is "
              "one documentd from its start to its last acknowledgement; server restarts "
              f"after a hang: {sum(x.restarts for x in runners)}")
        print("| case | old | new | notes |")
        print("|---|---|---|---|")
        for row in rows:
            print(row)
    finally:
        for r in runners:
            for d in reversed(r.p.daemons):
                if d.running():
                    d.stop()
        for name in dbs:
            try:
                client.drop_database(name)
            except Exception:  # noqa: BLE001 - best effort after a failed run
                pass
        client.close()
        if tree:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree])
        if server_dir:
            subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "stop",
                            server_dir])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
