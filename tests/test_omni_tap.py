"""omni-tap against a real ingestd: each tap sees exactly the records of the
kinds it asked for, rejects only with --rejects, exits 0 on SIGINT / SIGTERM
or after --count. Meant for tests/ (it imports the fixtures of
tests/conftest.py); runs from here too:
    OMNI_BIN=build/bin /usr/bin/python3 -m pytest -q tools/omni-tap/test_omni_tap.py"""
import collections
import json
import os
import signal
import subprocess
import sys

import msgpack

from omni import Tap, binary, wait_until


def loadgen(p, *args):
    return p.loadgen("--give-up=20s", *args)


def test_tap_sees_exactly_the_kinds_asked(pipeline, workdir):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    taps = {
        "git_ci": Tap(workdir, "git_ci", p.tap, "--kind", "git.", "--kind=ci."),
        "all": Tap(workdir, "all", p.tap),
        "rejects": Tap(workdir, "rejects", p.tap, "--rejects"),
        "metric_rejects": Tap(workdir, "metric_rejects", p.tap, "--kind=metric", "--rejects"),
    }
    wait_until(lambda: all(t.subscribed() for t in taps.values()), 20, "tap.subscribed")

    # A subscription reaches ingestd a moment after connect: send warm-up
    # records (other source, and too_deep rejects) until every tap saw one.
    n = [0]

    def warm():
        n[0] += 1
        loadgen(p, "--kind=mix", "--count=20", f"--start-index={n[0] * 20}", "--src=warmup")
        loadgen(p, "--bad=deep", "--count=1")
        return all(t.text() for t in taps.values())
    wait_until(warm, 30, "taps to see the warm-up")

    N = 3000
    ids_path = os.path.join(workdir, "ids")
    res = loadgen(p, "--kind=mix", f"--count={N}", "--seed=21", "--src=main", f"--ids-out={ids_path}")
    assert res["accepted"] == str(N)
    res = loadgen(p, "--bad=garbage,truncated,wrong-types,bad-version", "--count=8", "--src=main")
    assert res["rejected"] == "8"
    dump = os.path.join(workdir, "dump")
    subprocess.run([binary("omni-loadgen"), "--kind=mix", f"--count={N}", "--seed=21", "--src=main",
                    f"--dump={dump}"], check=True, capture_output=True)
    with open(dump, "rb") as f:
        kinds = {r["id"].hex(): r["kind"] for r in msgpack.Unpacker(f, raw=False)}
    with open(ids_path) as f:
        assert sorted(line.strip() for line in f) == sorted(kinds)

    def main_ids(tap):
        return sorted(d["id"] for d in tap.lines() if "reject" not in d and d["src"] == "main")

    def expected(pred):
        return sorted(i for i, k in kinds.items() if pred(k))

    want_rejects = collections.Counter(not_msgpack=4, bad_body=2, bad_version=2)

    def rejects(tap):
        return collections.Counter(d["reject"] for d in tap.lines()
                                   if "reject" in d and d["reject"] != "too_deep")
    wait_until(lambda: len(main_ids(taps["all"])) >= N
               and sum(rejects(taps["rejects"]).values()) >= 8, 30, "the taps to catch up")
    wait_until(lambda: sum(rejects(taps["metric_rejects"]).values()) >= 8, 10, "metric tap")
    assert taps["all"].stop(signal.SIGTERM) == 0
    for name in ("git_ci", "rejects", "metric_rejects"):
        assert taps[name].stop() == 0, name

    assert main_ids(taps["git_ci"]) == expected(lambda k: k.startswith(("git.", "ci.")))
    assert all(d["kind"].startswith(("git.", "ci.")) for d in taps["git_ci"].lines())
    assert main_ids(taps["all"]) == expected(lambda k: True)
    assert not any("reject" in d for d in taps["all"].lines())
    assert all("reject" in d for d in taps["rejects"].lines())
    assert rejects(taps["rejects"]) == want_rejects
    for d in taps["rejects"].lines():
        assert d["detail"] and d["size"] > 0 and len(d["raw_hex"]) <= 128
    assert main_ids(taps["metric_rejects"]) == expected(lambda k: k == "metric")
    assert rejects(taps["metric_rejects"]) == want_rejects


def test_tap_count_pretty_and_bad_options(pipeline, workdir):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    tap = Tap(workdir, "pretty", p.tap, "--kind=metric", "--format=pretty", "--count=5")
    wait_until(tap.subscribed, 20, "tap.subscribed")
    i = [0]

    def send():
        i[0] += 1
        loadgen(p, "--kind=metric", "--count=2", f"--start-index={i[0] * 2}")
        return tap.proc.poll() is not None
    wait_until(send, 30, "omni-tap --count=5 to exit")
    assert tap.proc.returncode == 0
    heads = [line for line in tap.text().splitlines() if line.startswith("metric  src=loadgen id=")]
    assert len(heads) == 5 and all(" ts=2023-11-14T22:" in h for h in heads)
    assert '"name": ' in tap.text()

    bad = subprocess.run([binary("omni-tap"), f"--endpoint={p.tap}", "--format=yaml"],
                         capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2 and "omni-tap.format" in bad.stderr and "yaml" in bad.stderr
