#!/usr/bin/env python3
"""Chaos run (`make chaos`; a 100,000-record version runs in `make test`).

Records of mixed kinds (omni-loadgen --kind=mix: commits, builds, tests, code
stats, metrics) go through ingestd and all four writers while a driver
kill -9s a random process (ingestd, a writer, a sender) every 2-5 s and
restarts it, and stops PostgreSQL and the MongoDB-wire server once each for
a while. Then the kills stop and the pipeline drains. At the end every store
must hold every record exactly once:

- archive: every expected id on exactly one line, no other id;
- PostgreSQL (relationald): per table, the count and an md5 over the sorted
  ids equal the expected ones;
- MongoDB (documentd): per collection, the same over the `_id`s;
- time series (metricsd): one point per metric record and per derived
  series (commits, builds, tests that ran), counted by series.

The expected records are the senders' own, written by `omni-loadgen --dump`
with the same arguments (same seed, same bytes). PostgreSQL and FerretDB are
servers of the run's own (a private initdb, tools/mongo-test-server.sh), so
that stopping them touches nobody else. Prints a summary (JSON with --json)
and exits 1 when a store is wrong or the pipeline did not drain."""
import argparse
import collections
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
from omni import (Daemon, Pipeline, PrivatePostgres, archive_lines, binary,  # noqa: E402
                  free_port, wait_until)

import msgpack  # noqa: E402

# Kinds and where relationald and documentd keep them.
PG_TABLES = {"git.commit": "commits", "ci.build": "ci_builds", "ci.test": "ci_tests",
             "code.stats": "code_stats"}
MONGO_COLLECTIONS = {"git.commit": "git_commits", "ci.build": "ci_builds",
                     "ci.test": "ci_tests", "code.stats": "code_stats", "metric": "metrics"}
DERIVED = ("git.commits", "ci.build.duration", "ci.test.duration")
# Every series metricsd derives from other kinds (metricsd/derive.c); the
# other series are the metric records' own names.
DERIVED_ALL = DERIVED + ("git.insertions", "git.deletions", "git.files_changed",
                         "ci.build.success", "ci.test.failed")


def log(msg):
    print(f"[chaos {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Sender:
    """One omni-loadgen over a range of record indexes, restarted from the
    start of its range when killed: the records are the same bytes, and
    ingestd and the writers are idempotent on their ids."""

    def __init__(self, p, workdir, index, start, count, seed, rate):
        self.name = f"sender-{index}"
        self.args = [binary("omni-loadgen"), f"--intake={p.intake}", "--kind=mix",
                     f"--seed={seed}", f"--start-index={start}", f"--count={count}",
                     "--give-up=0", "--ack-timeout=5s", "--log-level=warn"]
        # Paced, so that the senders live through the chaos and are killed too
        self.pace = [f"--rate={rate}"] if rate else []
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        self.proc = None
        self.done = False
        self.starts = 0

    def dump(self, path):
        args = [a for a in self.args if not a.startswith("--intake")] + [f"--dump={path}"]
        subprocess.run(args, check=True, capture_output=True, timeout=600)

    def start(self):
        self.starts += 1
        # A restarted sender has no state: it sends its whole range again, at
        # full speed (else, killed every round, a paced one never finishes)
        pace = self.pace if self.starts == 1 else []
        with open(self.log_path, "a") as log_file:
            self.proc = subprocess.Popen(self.args + pace, stdout=log_file, stderr=log_file)

    def poll(self):
        if self.proc and not self.done and self.proc.poll() is not None:
            if self.proc.returncode == 0:
                self.done = True
            else:
                log(f"{self.name} exited {self.proc.returncode}: restarting")
                self.start()
        return self.done

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Mongo:
    """The MongoDB-wire server: FerretDB of the run's own (stoppable), or the
    one of OMNI_TEST_MONGO_URI (then not stopped: it may be someone's)."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "mongo")
        self.script = os.path.join(ROOT, "tools", "mongo-test-server.sh")
        given = os.environ.get("OMNI_TEST_MONGO_URI")
        self.own = not given
        self.uri = given or self._start()

    def _start(self):
        env = dict(os.environ)
        env.pop("OMNI_TEST_MONGO_URI", None)
        return subprocess.run([self.script, "start", self.dir], capture_output=True, text=True,
                              check=True, timeout=900, env=env).stdout.strip()

    def stop(self):
        if self.own:
            subprocess.run([self.script, "stop", self.dir], check=True, timeout=60)

    def start(self):
        if self.own:
            self._start()


def expected_records(senders, workdir):
    """Per kind: the ids (hex) of the records the senders send; and the
    number of time-series points each series should get."""
    ids = collections.defaultdict(set)
    points = collections.Counter()
    for s in senders:
        path = os.path.join(workdir, f"{s.name}.dump")
        s.dump(path)
        with open(path, "rb") as f:
            for rec in msgpack.Unpacker(f, raw=False):
                kind = rec["kind"]
                ids[kind].add(rec["id"].hex())
                body = rec["body"]
                if kind == "metric":
                    points["metric"] += 1
                elif kind == "git.commit":
                    points["git.commits"] += 1
                elif kind == "ci.build" and "duration" in body:
                    points["ci.build.duration"] += 1
                elif kind == "ci.test" and body.get("status") in ("passed", "failed"):
                    points["ci.test.duration"] += 1
        os.unlink(path)
    return ids, points


def digest(hex_ids):
    return hashlib.md5("".join(sorted(hex_ids)).encode()).hexdigest()


def check_archive(p, expected):
    seen = collections.Counter(line["id"] for line in archive_lines(p.archive_dir))
    problems = []
    for kind, ids in expected.items():
        missing = [i for i in ids if seen.get(i, 0) == 0]
        doubled = [i for i in ids if seen.get(i, 0) > 1]
        if missing or doubled:
            problems.append(f"archive {kind}: {len(missing)} missing, {len(doubled)} doubled")
    every = set().union(*expected.values())
    extra = [i for i in seen if i not in every]
    if extra:
        problems.append(f"archive: {len(extra)} ids that were never sent")
    return problems, sum(seen.values())


def check_pg(dsn, expected):
    import psycopg2
    problems, total = [], 0
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        for kind, table in PG_TABLES.items():
            cur.execute(f"SELECT count(*), md5(coalesce(string_agg(encode(id, 'hex'), '' "
                        f"ORDER BY id), '')) FROM {table}")
            count, md5 = cur.fetchone()
            total += count
            want = expected.get(kind, set())
            if count != len(want) or md5 != digest(want):
                problems.append(f"PostgreSQL {table}: {count} rows (md5 {md5}), expected "
                                f"{len(want)} (md5 {digest(want)})")
    conn.close()
    return problems, total


def check_points(dsn, points):
    import psycopg2
    problems, total = [], 0
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT name, count(*) FROM points GROUP BY name")
        counts = dict(cur.fetchall())
    conn.close()
    metric = sum(n for name, n in counts.items() if name not in DERIVED_ALL)
    got = {"metric": metric, **{name: counts.get(name, 0) for name in DERIVED}}
    for series, want in sorted(points.items()):
        total += got[series]
        if got[series] != want:
            problems.append(f"points {series}: {got[series]}, expected {want}")
    return problems, total


def check_mongo(uri, database, expected):
    from pymongo import MongoClient
    client = MongoClient(uri, serverSelectionTimeoutMS=10000)
    problems, total = [], 0
    try:
        db = client[database]
        for kind, collection in MONGO_COLLECTIONS.items():
            got = [d["_id"] for d in db[collection].find({}, {"_id": 1})]  # hex text
            total += len(got)
            want = expected.get(kind, set())
            if len(got) != len(want) or set(got) != want:
                problems.append(f"MongoDB {collection}: {len(got)} documents "
                                f"({len(set(got) - want)} unexpected), expected {len(want)} "
                                f"({len(want - set(got))} missing)")
    finally:
        client.close()
    return problems, total


def in_journal(p):
    try:
        status, text = p.ingestd.health()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("in_journal="):
            return int(word.split("=", 1)[1])
    return None


def run(args):
    rng = random.Random(args.seed)
    workdir = tempfile.mkdtemp(prefix="omni-chaos-")
    pg = PrivatePostgres()
    pg.start()
    mongo = None
    p = None
    senders = []
    result = {"records": args.records, "kills": collections.Counter(), "outages": []}
    try:
        mongo = Mongo(workdir)
        dsn = pg.dsn.rsplit("/", 1)[0] + "/chaos"
        subprocess.run(["psql", pg.dsn, "-qc", "CREATE DATABASE chaos"], check=True,
                       capture_output=True)
        mongo_db = "chaos_" + os.urandom(4).hex()
        p = Pipeline(workdir, writers=("archive", "relational", "document", "metrics"),
                     journal_max=args.journal_max)
        p.ingestd.start()
        writers = {
            "archiverd": p.archiverd(),
            "relationald": p.writer("relationald", [f"--dsn={dsn}", "--retry-max=1s"]),
            "documentd": p.writer("documentd", [f"--uri={mongo.uri}", f"--database={mongo_db}",
                                                "--retry-max=1s"]),
            "metricsd": p.writer("metricsd", [f"--dsn={dsn}", "--retry-max=1s"]),
        }
        for w in writers.values():
            w.start()
        per = args.records // args.senders
        for i in range(args.senders):
            count = per if i < args.senders - 1 else args.records - per * i
            senders.append(Sender(p, workdir, i, i * per, count, args.seed, args.sender_rate))
        log(f"computing the expected records ({args.records}, {args.senders} senders)")
        expected, points = expected_records(senders, workdir)
        log("expected: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(expected.items())))

        started = time.monotonic()
        for s in senders:
            s.start()
        daemons = {"ingestd": p.ingestd, **writers}
        outages = [("postgresql", pg.stop, pg.start), ("mongodb", mongo.stop, mongo.start)]
        outage_at = [started + args.outage_after, started + args.outage_after * 2.5] \
            if args.outage > 0 else []
        outage_end = None
        current = None
        order = []
        next_kill = started + rng.uniform(args.kill_min, args.kill_max)
        while True:
            now = time.monotonic()
            all_sent = all(s.poll() for s in senders)
            chaos_over = all_sent and now - started >= args.chaos_min and current is None \
                and not outage_at
            if chaos_over:
                break
            if now - started > args.timeout:
                raise AssertionError(f"the senders did not finish within {args.timeout}s")
            if current is None and outage_at and now >= outage_at[0]:
                outage_at.pop(0)
                current = outages.pop(0)
                log(f"outage: {current[0]} stopped for {args.outage}s")
                current[1]()
                outage_end = now + args.outage
                result["outages"].append(current[0])
            if current is not None and now >= outage_end:
                current[2]()
                log(f"outage: {current[0]} back")
                current = None
            if now >= next_kill:
                # In shuffled rounds, so that every process is killed as
                # often as the others (plain random choices can miss one)
                if not order:
                    order = list(daemons) + [s.name for s in senders]
                    rng.shuffle(order)
                victim = order.pop()
                if victim not in daemons and not next(s for s in senders
                                                      if s.name == victim).running():
                    continue
                result["kills"][victim] += 1
                if victim in daemons:
                    daemons[victim].kill9()
                    daemons[victim].start(wait=False)
                else:
                    sender = next(s for s in senders if s.name == victim)
                    sender.kill9()
                    sender.start()
                next_kill = now + rng.uniform(args.kill_min, args.kill_max)
            time.sleep(0.05)
        chaos_s = time.monotonic() - started
        log(f"chaos over after {chaos_s:.0f}s: {sum(result['kills'].values())} kills "
            f"({dict(result['kills'])}), outages {result['outages']}; draining")
        for d in daemons.values():
            if not d.running():
                d.start(wait=False)
        for d in daemons.values():
            d.wait_ready(120)
        drain_started = time.monotonic()
        wait_until(lambda: in_journal(p) == 0, args.drain_timeout,
                   "every writer to acknowledge every record", 0.2)
        result["chaos_s"] = round(chaos_s, 1)
        result["drain_s"] = round(time.monotonic() - drain_started, 1)
        log(f"drained in {result['drain_s']}s; checking the stores")

        problems = []
        for name, check in (("archive", lambda: check_archive(p, expected)),
                            ("postgresql", lambda: check_pg(dsn, expected)),
                            ("points", lambda: check_points(dsn, points)),
                            ("mongodb", lambda: check_mongo(mongo.uri, mongo_db, expected))):
            found, total = check()
            result[f"{name}_rows"] = total
            problems += found
        result["problems"] = problems
        result["kills"] = dict(result["kills"])
        result["sender_starts"] = sum(s.starts for s in senders)
        return result
    finally:
        for s in senders:
            s.stop()
        if p:
            try:
                p.stop()
            except AssertionError as e:
                log(f"stopping the pipeline: {e}")
        if mongo:
            try:
                mongo.stop()
            except subprocess.CalledProcessError:
                pass
        pg.destroy()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def main():
    # SIGTERM (a CI timeout, kill) stops everything started here, as Ctrl-C does
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--kill-min", type=float, default=2.0, help="seconds between kills, at least")
    ap.add_argument("--kill-max", type=float, default=5.0, help="seconds between kills, at most")
    ap.add_argument("--outage", type=float, default=20.0, help="seconds each store server is down")
    ap.add_argument("--outage-after", type=float, default=15.0,
                    help="PostgreSQL goes down this long after the start, MongoDB 2.5 times that")
    ap.add_argument("--chaos-min", type=float, default=0.0,
                    help="keep killing at least this long, even when the senders are done")
    ap.add_argument("--sender-rate", type=int, default=10000,
                    help="records/s per sender (0 = as fast as possible)")
    ap.add_argument("--journal-max", default="1G")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--drain-timeout", type=float, default=1800)
    ap.add_argument("--json", help="write the result here as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2, sort_keys=True))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2, sort_keys=True)
    if result["problems"]:
        for problem in result["problems"]:
            print(f"chaos: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"chaos: every store holds every record exactly once "
          f"({args.records} records, {sum(result['kills'].values())} kills, "
          f"outages: {', '.join(result['outages'])}, drained in {result['drain_s']}s)")


if __name__ == "__main__":
    main()
