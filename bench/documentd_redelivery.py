#!/usr/bin/env python3
"""documentd after a crash, the code of a given commit (default: the last with BinData
_ids, before string _ids) next to this tree's, in the same run, on the same server(s).
Prints Markdown tables for docs/performance.md. Each side writes a database of its own,
filled by its own binary (the two _id forms never meet: a database holds one).

The old documentd is built from git: `git worktree add --detach` of --old-commit into a
temporary directory, `make build/bin/documentd` there, removed after the run; ingestd is
this tree's. Each side (old, new) runs with a limit of --limit s: a side that has not
drained by then is reported as stalled, with how far it got and what state the server is
in (answering, busy, or hung: no answer to a ping), instead of hanging the run. The run
then waits for the server to finish what the stalled side left it running, and restarts a
server that hangs (FerretDB 1.24 was seen deadlocked by the old code), so the next case
starts on a server that answers.

Per server:
1. Redelivery: --records mixed records (commits with two files, ci.builds, ci.tests:
   3:1:1) are stored once by the new documentd, then journaled again and drained by a
   fresh documentd (new, then old): records/s from its start to the last acknowledgement.
2. Crash: --crash-records mixed records (3:1:1, in that order) journaled, drained by one
   side into an empty database; kill -9 once the commits and half the builds are
   acknowledged, start it again: seconds from the restart to the last acknowledgement,
   and how many already-stored records it was given again. (Real state changes, a build
   seen again newer, are case 3b: on FerretDB each is a scan, old or new.)
3. Replaces at --builds stored ci.builds (0 = skip): --replaces records of existing
   builds come (a) as the very same observation again, (b) newer (each must replace),
   (c) older (each must lose); (d) a whole batch of stored builds, spread over the
   collection, comes again, as after a crash: seconds per record.
4. Migration: --migrate-records mixed records stored by the old documentd (BinData _ids),
   then the new one started on that database: seconds until it says `ids hex`.
After every side: exactly once? Every expected document there once, as the newest
observation of its id, nothing else (checked document by document).

Servers (--stores): `sqlite`, FerretDB on SQLite (tools/mongo-test-server.sh), and
`postgresql`, FerretDB on a scratch database of the local PostgreSQL; or $OMNI_TEST_MONGO_URI
alone. Databases of its own, dropped after."""
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
from omni import Pipeline, free_port, make_record, scratch_database, cpu_seconds  # noqa: E402
from test_relationald import send  # noqa: E402
from test_documentd import expected_doc, mixed_records  # noqa: E402

OLD_COMMIT = "4afeb97"  # BinData _ids, insert first (5c1b6eb: before insert first)
T0 = 1_700_000_000 * 10**9
SCRIPT = os.path.join(ROOT, "tools", "mongo-test-server.sh")


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


def _cpu(state):
    """The CPU share in a Server.state text (0 when it says none: a server not ours)."""
    if "% CPU" not in state:
        return 0.0
    return float(state.rpartition(", ")[2].split(" % CPU")[0])


class Server:
    """A FerretDB of the run's own (SQLite or PostgreSQL backend), or a given URI."""

    def __init__(self, kind, work):
        self.kind, self.dir = kind, os.path.join(work, "server-" + kind)
        self.proc = self.pg = None
        self.restarts = []
        os.makedirs(self.dir, exist_ok=True)

    def start(self):
        if self.kind == "uri":
            self.uri = os.environ["OMNI_TEST_MONGO_URI"]
        elif self.kind == "sqlite":
            env = {k: v for k, v in os.environ.items() if k != "OMNI_TEST_MONGO_URI"}
            self.uri = subprocess.run([SCRIPT, "start", self.dir], capture_output=True,
                                      text=True, check=True, env=env).stdout.strip()
        else:
            if self.pg is None:
                self.pg_scope = scratch_database("omni_bench_ferretdb_")
                self.pg = self.pg_scope.__enter__()
                self.port = free_port()
            binary = subprocess.run([SCRIPT, "binary"], capture_output=True, text=True,
                                    check=True).stdout.strip()
            log = open(os.path.join(self.dir, "ferretdb.log"), "a")
            self.proc = subprocess.Popen(
                [binary, "--handler=postgresql", f"--postgresql-url={self.pg}",
                 f"--state-dir={self.dir}", f"--listen-addr=127.0.0.1:{self.port}",
                 "--telemetry=disable", "--debug-addr=-", "--log-level=error"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            log.close()
            self.uri = f"mongodb://127.0.0.1:{self.port}/"
            deadline = time.monotonic() + 60
            while self.probe(None, 1.0) is None:
                assert time.monotonic() < deadline and self.proc.poll() is None, \
                    "FerretDB (PostgreSQL) did not start"
                time.sleep(0.1)  # no readiness signal but the port answering
        return self.uri

    def pid(self):
        if self.proc:
            return self.proc.pid
        try:
            with open(os.path.join(self.dir, "ferretdb.pid")) as f:
                return int(f.read())
        except (OSError, ValueError):
            return None

    def name(self):
        import pymongo
        c = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=5000)
        info = c.admin.command("buildInfo")
        c.close()
        if "ferretdbVersion" not in info:
            return f"MongoDB {info['version']}"
        backend = {"sqlite": "SQLite", "postgresql": "PostgreSQL 15"}.get(self.kind, "?")
        return f"FerretDB {info['ferretdbVersion']} ({backend})"

    def probe(self, db, timeout):
        """Seconds the server took to answer a ping, then a read of every collection of
        `db` and a write to one of its own: FerretDB 1.24 was seen to answer pings while
        every query on a database hung. None when that did not end within timeout."""
        import pymongo
        ms = int(timeout * 1000)
        c = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms,
                                socketTimeoutMS=ms)
        try:
            t = time.monotonic()
            c.admin.command("ping")
            if db:
                for name in c[db].list_collection_names():
                    c[db][name].find_one({}, {"_id": 1})
                c[db]["bench_probe"].insert_one({"t": t})
            return time.monotonic() - t
        except pymongo.errors.PyMongoError:
            return None
        finally:
            c.close()

    def state(self, db):
        """What the server is doing with `db`: answering (and how busy) or hung."""
        pid = self.pid()
        c0, t0 = cpu_seconds(pid), time.monotonic()
        took = self.probe(db, 10.0)
        if took is not None:
            time.sleep(1)  # a CPU sample over a second
        c1, t1 = cpu_seconds(pid), time.monotonic()
        cpu = (f", {100 * (c1 - c0) / (t1 - t0):.0f} % CPU"
               if c0 is not None and c1 is not None else "")
        if took is None:
            pinged = self.probe(None, 2.0) is not None
            return False, ("hung: no query on the database answered in 10 s"
                           + (" (a ping still is)" if pinged else ", not even a ping") + cpu)
        return True, f"answering (a read and a write in {took:.2f} s{cpu})"

    def settle(self, db, limit=600):
        """Until the server answers on `db` within 2 s, as when no command runs: a
        documentd killed mid-command leaves the server running it. One that answers
        nothing for 10 s and uses no CPU is deadlocked; it and one still busy after
        `limit` s are killed and started again on their data. Returns what was done."""
        deadline = time.monotonic() + limit
        while True:
            answering, state = self.state(db)
            # idle: it answers at once and uses no CPU (a command a killed documentd left
            # it, a scan, makes it answer slowly or keeps its CPU up)
            if answering and _cpu(state) < 5 and self.probe(db, 2.0) is not None:
                return None
            if self.kind == "uri":
                assert time.monotonic() < deadline, f"server {state} for {limit} s"
                continue
            hung = not answering and state.endswith(" 0 % CPU")
            if hung or time.monotonic() > deadline:
                why = state if hung else f"still busy after {limit} s ({state})"
                self.kill()
                self.start()
                self.restarts.append(why)
                return f"server killed and started again, it was {why}"

    def kill(self):
        pid = self.pid()
        if pid:
            try:
                os.kill(pid, 9)
            except OSError:
                pass  # gone already
        if self.proc:
            self.proc.wait()
            self.proc = None
        elif pid:
            while os.path.exists(f"/proc/{pid}") and \
                    open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] != "Z":
                time.sleep(0.05)
            # a zombie still passes the script's `kill -0`: it must not be taken for alive
            os.remove(os.path.join(self.dir, "ferretdb.pid"))
            # its port is freed by the kernel, with no signal to wait on but a retry
            time.sleep(1)

    def stop(self):
        if self.kind == "sqlite":
            subprocess.run([SCRIPT, "stop", self.dir])
        elif self.kind == "postgresql":
            if self.proc:
                self.proc.terminate()
                self.proc.wait(30)
            if self.pg:
                self.pg_scope.__exit__(None, None, None)


def record_id(doc):
    """The record id of a document: hex text now, BinData before."""
    return bytes.fromhex(doc["_id"]) if isinstance(doc["_id"], str) else bytes(doc["_id"])


def same_doc(doc, frame):
    want = expected_doc(frame)
    if not isinstance(doc["_id"], str):
        want["_id"] = doc["_id"] if bytes(doc["_id"]).hex() == want["_id"] else None
    return doc == want


def exactly_once(db, expect):
    """'exactly once', or what is wrong, per collection (document by document)."""
    wrong = []
    for collection, by_id in expect.items():
        docs = list(db[collection].find())
        ids = [record_id(d) for d in docs]
        seen = set(ids)
        missing = len(set(by_id) - seen)
        extra = len(seen - set(by_id)) + len(ids) - len(seen)
        stale = sum(1 for d, i in zip(docs, ids) if i in by_id and not same_doc(d, by_id[i]))
        if missing or extra or stale:
            wrong.append(f"{collection}: {missing} missing, {extra} extra, {stale} not the "
                         "newest")
    return "; ".join(wrong) or "exactly once"


class Side:
    """One documentd (old or new binary) draining what is journaled, within a limit."""

    def __init__(self, runner, label, binary, limit):
        self.r, self.label, self.binary, self.limit = runner, label, binary, limit

    def start(self):
        d = self.r.p.writer("documentd", [f"--uri={self.r.server.uri}",
                                          f"--database={self.r.db}",
                                          f"--batch-size={self.r.batch_size}",
                                          "--log-level=warn"])
        d.args[0] = self.binary
        d.start(wait=False)
        return d

    def drain(self, frames, crash_at=None):
        """Journals frames, starts documentd, optionally kill -9s it once crash_at of them
        are acknowledged and starts it again; times it to the last acknowledgement.
        Returns a dict: seconds (None if stalled), stall text, metrics, events."""
        r = self.r
        base = r.p.acked("document")
        send(r.p.intake, frames, batch=1000)
        d = self.start()
        t = time.monotonic()
        out = {"events": []}
        if crash_at is not None:
            while r.p.acked("document") < base + crash_at:
                if time.monotonic() - t > self.limit:
                    break
                time.sleep(0.005)
            else:
                d.kill9()
                out["acked_at_kill"] = int(r.p.acked("document") - base)
                d.start(wait=False)
                t = time.monotonic()
        goal = base + len(frames)
        moved, last = r.p.acked("document"), time.monotonic()
        while moved < goal and time.monotonic() - t < self.limit:
            time.sleep(0.005)
            if r.p.acked("document") != moved:
                moved, last = r.p.acked("document"), time.monotonic()
        elapsed = time.monotonic() - t
        try:
            out["metrics"] = d.metrics()
        except OSError:
            out["metrics"] = {}
        if r.p.acked("document") >= goal:
            out["seconds"] = elapsed
            d.stop()
            event = r.server.settle(r.db)
        else:
            n = int(r.p.acked("document") - base)
            try:
                health = d.health()[1].strip()
            except OSError as e:
                health = f"no answer ({e})"
            _, state = r.server.state(r.db)
            out["seconds"] = None
            # stalled: nothing acknowledged for half the limit; else merely slow
            how = (f"stalled after {n:,} of {len(frames):,} records in {elapsed:.0f} s"
                   if time.monotonic() - last > self.limit / 2 else
                   f"not drained in {elapsed:.0f} s: {n:,} of {len(frames):,} records, the last "
                   f"acknowledged {time.monotonic() - last:.0f} s before")
            out["stall"] = f"{how}; FerretDB {state}; its /health: {health[:150]}"
            d.kill9()
            event = r.server.settle(r.db)
            r.fresh_journal()
        if event:
            out["events"].append(event)
        r.p.daemons.remove(d)
        return out


class Runner:
    """One ingestd and one database on a server."""

    def __init__(self, work, server, batch_size):
        os.makedirs(work, exist_ok=True)
        self.server, self.batch_size = server, batch_size
        self.db = "omni_bench_" + uuid.uuid4().hex[:8]
        self.p = Pipeline(work, writers=("document",), journal_max="8G")
        self.p.ingestd.start()

    def fresh_journal(self):
        """What a stalled side left is not delivered to the next one."""
        self.p.ingestd.stop()
        shutil.rmtree(self.p.journal_dir)
        self.p.ingestd.start()

    def database(self):
        import pymongo
        return pymongo.MongoClient(self.server.uri, socketTimeoutMS=180_000)[self.db]

    def check(self, expect):
        """exactly_once (with what was done to the server, if anything), on a server
        restarted first when a whole read hangs: the settle probe, a read of one document
        of each collection, was seen to pass on a server left hung for longer reads."""
        import pymongo
        event = ""
        for attempt in range(2):
            db = self.database()
            try:
                return exactly_once(db, expect) + event
            except pymongo.errors.PyMongoError:
                if attempt or self.server.kind == "uri":
                    raise
                self.server.kill()
                self.server.start()
                why = "hung: a read of a whole collection did not end in 180 s"
                self.server.restarts.append(why)
                event = f"; server killed and started again, it was {why}"
            finally:
                db.client.close()

    def stop(self):
        for d in reversed(self.p.daemons):
            if d.running():
                d.stop()
        try:
            self.server.settle(self.db)
            self.database().client.drop_database(self.db)
        except Exception:  # noqa: BLE001 - best effort after a failed run
            pass


def fig(out, fmt):
    return fmt(out["seconds"]) if out["seconds"] is not None else f"**{out['stall']}**"


def bench_server(server, sides, args, work):
    rows = []

    def row(*cells):
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)

    # 1. Redelivery of already-stored records (each side stored them itself)
    for label in ("new", "old") if "redelivery" in args.cases else ():
        r = Runner(os.path.join(work, "redeliver-" + label), server, args.batch_size)
        try:
            expect, frames = mixed_records(args.records * 3 // 5, args.records // 5,
                                           src="redeliver")
            first = Side(r, label, sides[label], 3600).drain(frames)
            db = r.database()
            out = Side(r, label, sides[label], args.limit).drain(frames)
            m = out["metrics"]
            row(f"{label}: {len(frames):,} already-stored records (commits, builds, tests "
                f"3:1:1) delivered again, batch {args.batch_size}",
                fig(out, lambda s: f"{len(frames) / s:,.0f} records/s ({s:.2f} s, "
                    f"{s * 1000 / len(frames):.3f} s per 1,000)"),
                f"{m.get('omni_documentd_documents_duplicate_total', 0):.0f} duplicates, "
                f"{m.get('omni_documentd_documents_replaced_total', 0):.0f} replaced",
                r.check(expect) + "".join(f"; {e}" for e in out["events"]),
                f"first store {first['seconds']:.1f} s")
            db.client.close()
        finally:
            r.stop()

    # 2. A crash mid-stream, then a restart that must drain
    for label in ("new", "old") if "crash" in args.cases else ():
        r = Runner(os.path.join(work, "crash-" + label), server, args.batch_size)
        try:
            n = args.crash_records
            n_commits, n_builds = n * 3 // 5, n // 5
            expect, frames = mixed_records(n_commits, n_builds, src="crash")
            # killed once the commits and half the builds are acknowledged: the builds
            # in flight (the window), some of them stored, come again
            out = Side(r, label, sides[label], args.limit).drain(
                frames, n_commits + n_builds // 2)
            m = out["metrics"]
            db = r.database()
            again = (m.get("omni_documentd_documents_duplicate_total", 0)
                     + m.get("omni_documentd_documents_stale_total", 0))
            row(f"{label}: {len(frames):,} records (commits, builds, tests 3:1:1) into an "
                f"empty database, kill -9 at {out.get('acked_at_kill', 0):,} acknowledged, "
                "started again",
                fig(out, lambda s: f"drained {s:.2f} s after the restart"),
                f"{again:.0f} already-stored records given again",
                r.check(expect) + "".join(f"; {e}" for e in out["events"]), "")
            db.client.close()
        finally:
            r.stop()

    # 4. The old side's database taken over by the new documentd: the _id migration
    if "migrate" in args.cases:
        r = Runner(os.path.join(work, "migrate"), server, args.batch_size)
        try:
            n = args.migrate_records
            expect, frames = mixed_records(n * 3 // 5, n // 5, src="migrate")
            fill = Side(r, "old", sides["old"], 3600).drain(frames)
            d = Side(r, "new", sides["new"], args.limit).start()
            t, seen = time.monotonic(), ""
            while "ids hex" not in seen and time.monotonic() - t < 3600:
                try:
                    seen = d.health()[1]
                except OSError:
                    pass
                time.sleep(0.05)
            took = time.monotonic() - t
            d.stop()
            r.p.daemons.remove(d)
            row(f"new documentd on the old one's database of {len(frames):,} documents "
                "(BinData _ids): migrated to string _ids",
                f"{took:.1f} s ({len(frames) / took:,.0f} documents/s)", "",
                r.check(expect), f"filled by the old one in {fill['seconds']:.0f} s")
        finally:
            r.stop()

    # 3. Replaces at args.builds stored builds (each side filled its own database)
    for label in ("new", "old") if args.builds and "replace" in args.cases else ():
        r = Runner(os.path.join(work, "replace-" + label), server, args.batch_size)
        try:
            fill = Side(r, label, sides[label], 3600).drain(
                builds(range(args.builds), 0, "running"))
            step = max(1, args.builds // args.replaces)
            pick = range(step // 2, args.builds, step)[:args.replaces]
            cases = [("the same observation again", lambda o: builds(pick, 0, "running")),
                     ("newer (each replaces)", lambda o: builds(pick, 10 + o, "success")),
                     ("older (each loses)", lambda o: builds(pick, -10 - o, "stale"))]
            # spread over the collection: FerretDB scans lazily in table order, and a $in
            # of the first builds stored ends as soon as it found them all
            n = min(args.batch_size, args.builds)
            batch = range(0, args.builds, args.builds // n)[:n]
            cases.append((f"a redelivered batch: {len(batch):,} stored builds again (spread)",
                          lambda o: builds(batch, 0, "running")))
            keys = ("same", "newer", "older", "batch")
            for key, (name, make) in zip(keys, cases):
                for o in (0,) if key in args.replace_cases else ():
                    frames = make(o)
                    out = Side(r, label, sides[label], args.limit).drain(frames)
                    m = out["metrics"]
                    row(f"{label}: {name}" if len(frames) != len(pick) else
                        f"{label}: {len(pick)} ci.builds, {name}, at {args.builds:,} stored",
                        fig(out, lambda s: f"{s / len(frames):.3f} s per record ({s:.1f} s)"),
                        f"{m.get('omni_documentd_documents_replaced_total', 0):.0f} replaced",
                        "; ".join(out["events"]), f"filled in {fill['seconds']:.0f} s")
            db = r.database()
            stored = db.ci_builds.count_documents({})
            row(f"{label}: builds stored after the replaces", f"{stored:,}",
                "" if stored == args.builds else f"**expected {args.builds:,}**", "", "")
            db.client.close()
        finally:
            r.stop()
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stores", default="sqlite,postgresql",
                    help="comma-separated: sqlite, postgresql (FerretDB backends)")
    ap.add_argument("--records", type=int, default=10_000)
    ap.add_argument("--crash-records", type=int, default=20_000)
    ap.add_argument("--builds", type=int, default=100_000)
    ap.add_argument("--replaces", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--old-commit", default=OLD_COMMIT)
    ap.add_argument("--cases", default="redelivery,crash,migrate,replace",
                    help="comma-separated: redelivery, crash, migrate, replace")
    ap.add_argument("--migrate-records", type=int, default=100_000)
    ap.add_argument("--replace-cases", default="same,newer,older,batch",
                    help="comma-separated, of the replace case: same, newer, older, batch")
    ap.add_argument("--limit", type=int, default=120, help="s a side may take to drain")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="omni-bench-redeliver-")
    new = os.path.join(os.environ.get("OMNI_BIN", os.path.join(ROOT, "build", "bin")),
                       "documentd")
    kinds = ["uri"] if os.environ.get("OMNI_TEST_MONGO_URI") else args.stores.split(",")
    tree, servers = None, []
    try:
        tree, old = build_old(work, args.old_commit)
        sides = {"old": old, "new": new}
        for kind in kinds:
            server = Server(kind, work)
            servers.append(server)
            server.start()
            print(f"\n{server.name()}; old = {args.old_commit}, new = this tree; a limit "
                  f"of {args.limit} s per side")
            print("| case | time | work | stored | notes |")
            print("|---|---|---|---|---|", flush=True)
            bench_server(server, sides, args, os.path.join(work, kind))
            print(f"server restarts after a hang: {len(server.restarts)}"
                  + "".join(f"\n- {why}" for why in server.restarts), flush=True)
    finally:
        for server in servers:
            server.stop()
        if tree:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", tree])
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
