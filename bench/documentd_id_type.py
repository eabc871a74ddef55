#!/usr/bin/env python3
"""Would a string _id serve documentd better than its BinData _id on a MongoDB-wire server?

documentd's _id is BinData (the record id's 16 bytes). FerretDB 1.24 pushes a query down
to its backend's _id index only for `{_id: <string or ObjectId>}`: this measures, on one
collection per _id type holding the same --docs documents (~400 B, ci.build-like), what
documentd's operations cost with each:

- the read-back of one batch's mutable duplicates: one `$in` of --ids ids (what documentd
  does), or a `{_id: x}` find per id (what a string _id would allow on FerretDB; timed
  over 10 ids spread over the collection, given per find);
- a replace by `{_id}` alone and by `{_id, ts_ns: {$lte}}` (documentd's filter);
- a bulk insert of --ids documents that all exist already (a redelivery);
- whether `explain` says the filter was pushed down.

Each figure is the median of --repeat runs, the two _id types measured in alternation in
the same run on the same server. URIs: --uri (repeatable; a label may be given as
LABEL=URI), else a FerretDB (SQLite) started with tools/mongo-test-server.sh."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def doc(i, kind):
    raw = uuid.UUID(int=(i * 0x9E3779B97F4A7C15 + 12345) % (1 << 128)).bytes
    from bson.binary import Binary
    _id = Binary(raw, 0) if kind == "bindata" else raw.hex()
    return {"_id": _id, "kind": "ci.build", "src": "bench", "col": "test", "run": "run-1",
            "ts_ns": 1_700_000_000 * 10**9 + i, "body": {
                "pipeline": "ci", "build_id": str(i), "status": "running", "branch": "main",
                "commit": f"{i:040x}", "url": f"https://ci.example/ci/{i}", "duration_s": 1.5,
                "note": "x" * 160}}


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def pushed_down(coll, flt):
    """FerretDB's explain says whether the filter reached SQL; MongoDB's names the index."""
    e = coll.database.command("explain", {"find": coll.name, "filter": flt}, verbosity="queryPlanner")
    if "filterPushdown" in e:
        return "pushed down" if e["filterPushdown"] else "scan"
    plan = str(e.get("queryPlanner", {}).get("winningPlan", ""))
    return "index" if ("IXSCAN" in plan or "IDHACK" in plan or "EXPRESS" in plan) else "scan"


def measure(uri, label, n, ids, repeat):
    import pymongo
    client = pymongo.MongoClient(uri, socketTimeoutMS=600_000)
    db = client["omni_bench_idtype_" + uuid.uuid4().hex[:8]]
    rows = {}
    try:
        colls = {k: db[f"c_{k}"] for k in ("bindata", "string")}
        fill = {}
        for k, c in colls.items():
            t = time.perf_counter()
            for lo in range(0, n, 1000):
                c.insert_many([doc(i, k) for i in range(lo, min(n, lo + 1000))], ordered=False)
            fill[k] = time.perf_counter() - t
        step = n // ids
        pick = list(range(step // 2, n, step))[:ids]
        one = pick[len(pick) // 2]
        results = {k: {} for k in colls}
        for k, c in colls.items():  # explains
            d1 = doc(one, k)
            results[k]["explain_one"] = pushed_down(c, {"_id": d1["_id"]})
            results[k]["explain_in"] = pushed_down(c, {"_id": {"$in": [doc(i, k)["_id"] for i in pick]}})
            results[k]["explain_ts"] = pushed_down(c, {"_id": d1["_id"], "ts_ns": {"$lte": d1["ts_ns"]}})
        for r in range(repeat):  # alternation: neither type always goes first
            order = list(colls.items()) if r % 2 == 0 else list(reversed(list(colls.items())))
            for k, c in order:
                want = [doc(i, k) for i in pick]
                res = results[k]
                res.setdefault("in", []).append(
                    timed(lambda: list(c.find({"_id": {"$in": [d["_id"] for d in want]}},
                                              {"ts_ns": 1})), 1))
                # spread over the collection: a scan stops at its match, so ids from its
                # start alone would make a scan look like an index lookup
                few = want[len(want) // 20::max(1, len(want) // 10)][:10]
                res.setdefault("singles", []).append(
                    timed(lambda: [c.find_one({"_id": d["_id"]}, {"ts_ns": 1}) for d in few], 1)
                    / len(few))

                def replace_id():
                    for d in few:
                        assert c.replace_one({"_id": d["_id"]}, d).matched_count == 1

                def replace_ts():
                    for d in few:
                        assert c.replace_one({"_id": d["_id"], "ts_ns": {"$lte": d["ts_ns"]}},
                                             d).matched_count == 1

                res.setdefault("replace_id", []).append(timed(replace_id, 1) / len(few))
                res.setdefault("replace_ts", []).append(timed(replace_ts, 1) / len(few))

                def redeliver():
                    try:
                        c.insert_many(want, ordered=False)
                    except pymongo.errors.BulkWriteError as e:
                        assert e.details["nInserted"] == 0
                res.setdefault("dup_insert", []).append(timed(redeliver, 1))
        for k in colls:
            assert colls[k].count_documents({}) == n
            rows[k] = {m: (statistics.median(v) if isinstance(v, list) else v)
                       for m, v in results[k].items()}
            rows[k]["fill"] = fill[k]
    finally:
        client.drop_database(db.name)
        client.close()
    return label, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", action="append", default=[])
    ap.add_argument("--docs", type=int, default=30_000)
    ap.add_argument("--ids", type=int, default=1000, help="ids of one batch")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work, targets = None, []
    for u in args.uri:
        label, _, uri = u.rpartition("=") if "=" in u.split("://")[0] else ("", "", u)
        targets.append((label or uri, uri))
    if not targets:
        work = tempfile.mkdtemp(prefix="omni-bench-idtype-")
        uri = subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "start",
                              os.path.join(work, "mongo")], capture_output=True, text=True,
                             check=True).stdout.strip()
        targets.append(("FerretDB 1.24 (SQLite)", uri))
    try:
        print(f"{args.docs:,} documents per collection, batch of {args.ids} ids, median of "
              f"{args.repeat}, the two _id types alternated in the same run")
        print("| server | _id | `$in` of the batch | one find by `{_id}` | replace by `{_id}` "
              "| replace by `{_id, ts_ns}` | insert of the batch, all existing | explain "
              "`{_id}` / `$in` / `{_id, ts_ns}` |")
        print("|---|---|---|---|---|---|---|---|")
        for label, uri in targets:
            label, rows = measure(uri, label, args.docs, args.ids, args.repeat)
            for k, r in rows.items():
                print(f"| {label} | {k} | {r['in']:.3f} s | {r['singles'] * 1000:.1f} ms | "
                      f"{r['replace_id'] * 1000:.1f} ms | {r['replace_ts'] * 1000:.1f} ms | "
                      f"{r['dup_insert']:.3f} s | {r['explain_one']} / {r['explain_in']} / "
                      f"{r['explain_ts']} |")
            sys.stdout.flush()
    finally:
        if work:
            subprocess.run([os.path.join(ROOT, "tools", "mongo-test-server.sh"), "stop",
                            os.path.join(work, "mongo")])
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
