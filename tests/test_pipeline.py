"""The core path, every daemon a separate process over TCP:
omni-loadgen -> ingestd -> archiverd, with crashes and backpressure."""
import collections
import os
import subprocess
import time

import msgpack
import pytest

from omni import (IntakeClient, archive_lines, binary, json_to_msgpack_value, record,
                  wait_until)

N = 100_000


def loadgen_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def start_loadgen(p, workdir, count, *args, name="loadgen"):
    ids = os.path.join(workdir, f"{name}.ids")
    out = open(os.path.join(workdir, f"{name}.out"), "w")
    proc = subprocess.Popen([binary("omni-loadgen"), f"--intake={p.intake}", f"--count={count}",
                             f"--ids-out={ids}", *args], stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return proc, ids


def finish(proc, workdir, name="loadgen", timeout=600):
    rc = proc.wait(timeout)
    with open(os.path.join(workdir, f"{name}.out")) as f:
        text = f.read()
    assert rc == 0, f"omni-loadgen exited {rc}:\n{text[-3000:]}"
    return text


def assert_archive_exact(archive_dir, ids):
    lines = archive_lines(archive_dir)
    counts = collections.Counter(line["id"] for line in lines)
    dups = [i for i, c in counts.items() if c > 1]
    assert not dups, f"{len(dups)} ids archived more than once, e.g. {dups[:3]}"
    assert len(lines) == len(ids), f"{len(lines)} lines for {len(ids)} records"
    assert set(counts) == set(ids)
    return lines


# Both journals (issue 19): LMDB, and a JetStream stream of the pipeline's own
JOURNALS = pytest.mark.parametrize("journal", ["lmdb", "jetstream"])


@JOURNALS
def test_100k_records_end_to_end(pipeline, workdir, journal):
    p = pipeline(writers=("archive",), journal=journal)
    p.ingestd.start()
    p.archiverd().start()
    gen, ids_path = start_loadgen(p, workdir, N, "--kind=mix", "--seed=7")
    finish(gen, workdir)
    p.wait_archived(N)
    ids = loadgen_ids(ids_path)
    lines = assert_archive_exact(p.archive_dir, ids)

    # Bodies are byte-for-byte the records that were sent: regenerate them
    # from the same seed, decode, and compare with the archive's JSON.
    sample = os.path.join(workdir, "sample.msgpack")
    subprocess.run([binary("omni-loadgen"), "--kind=mix", "--seed=7", f"--count={N}",
                    f"--dump={sample}"], check=True, capture_output=True)
    by_id = {line["id"]: line for line in lines}
    with open(sample, "rb") as f:
        for rec in msgpack.Unpacker(f, raw=False):
            line = by_id[rec["id"].hex()]
            assert msgpack.packb(json_to_msgpack_value(line["body"]), use_bin_type=True) == \
                msgpack.packb(rec["body"], use_bin_type=True)
            assert (line["kind"], line["src"], line["ts"]) == (rec["kind"], rec["src"], rec["ts"])

    m = p.ingestd.metrics()
    assert m["omni_ingestd_records_accepted_total"] == N
    if journal == "lmdb":
        assert m['omni_ingestd_records_acked_total{writer="archive"}'] == N
        wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"] == N,
                   10, "journal trimmed")
    else:  # the archive acknowledged everything: the stream keeps nothing
        wait_until(lambda: "stream OMNI: messages=0 " in p.ingestd.health()[1], 10,
                   "an empty stream")
    assert p.ingestd.health()[0] == 200


def _crash_run(pipeline, workdir, victim, journal):
    p = pipeline(writers=("archive",), journal=journal)
    p.ingestd.start()
    archiver = p.archiverd().start()
    gen, ids_path = start_loadgen(p, workdir, N, "--kind=metric", "--seed=11", "--rate=25000",
                                  "--give-up=60s")
    p.wait_archived(N // 5)
    daemon = p.ingestd if victim == "ingestd" else archiver
    daemon.kill9()
    daemon.start()
    finish(gen, workdir)
    p.wait_archived(N)
    assert_archive_exact(p.archive_dir, loadgen_ids(ids_path))


@JOURNALS
def test_kill9_ingestd_mid_stream(pipeline, workdir, journal):
    _crash_run(pipeline, workdir, "ingestd", journal)


@JOURNALS
def test_kill9_archiverd_mid_stream(pipeline, workdir, journal):
    _crash_run(pipeline, workdir, "archiverd", journal)


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def test_backpressure_blocks_collector_and_loses_nothing(pipeline, workdir):
    p = pipeline(writers=("archive",), journal_max="2M")
    p.ingestd.start()
    count = 60_000  # ~13 MB of records against a 2 MB journal
    gen, ids_path = start_loadgen(p, workdir, count, "--kind=metric", "--seed=3")
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_intake_paused"] == 1, 60,
               "intake paused on a full journal")
    rss_paused = _rss_kb(p.ingestd.proc.pid)
    accepted = p.ingestd.metrics()["omni_ingestd_records_accepted_total"]
    # The collector is blocked (it holds its unacked batches), ingestd takes
    # nothing more and its memory does not grow while it waits.
    for _ in range(10):
        assert gen.poll() is None, "the generator finished although the journal is full"
        time.sleep(0.2)
    assert p.ingestd.metrics()["omni_ingestd_records_accepted_total"] == accepted
    assert _rss_kb(p.ingestd.proc.pid) - rss_paused < 8 * 1024
    assert accepted < count
    p.archiverd().start()
    finish(gen, workdir)
    p.wait_archived(count)
    assert_archive_exact(p.archive_dir, loadgen_ids(ids_path))


@JOURNALS
def test_bad_input_rejected_good_input_arrives(pipeline, workdir, journal):
    import zmq
    p = pipeline(writers=("archive",), journal=journal)
    p.ingestd.start()
    p.archiverd().start()
    tap = zmq.Context.instance().socket(zmq.SUB)
    tap.setsockopt(zmq.SUBSCRIBE, b"!reject")
    tap.connect(p.tap)
    intake = IntakeClient(p.intake)
    good = {"v": 1, "id": b"\x01" * 16, "kind": "metric", "src": "h", "col": "c", "run": "r",
            "ts": 1, "body": {"name": "x", "value": 1.5}}

    def rec(**changes):
        r = dict(good, **changes)
        return msgpack.packb(r, use_bin_type=True)

    deep = b"\x91" * 100 + b"\x00"
    bad = {
        "not_msgpack": [b"\xc1" + os.urandom(64), rec()[:-5]],  # garbage, truncated
        "bad_body": [rec(body={"name": 3, "value": 1.0})],
        "bad_version": [rec(v=99)],
        # over max_record_size, under the frame limit (max_record_size + 64 KiB)
        "too_large": [b"\xc6" + ((4 << 20) + 1024).to_bytes(4, "big") + b"\0" * ((4 << 20) + 1024)],
        "too_deep": [b"\x81\xa4body" + deep],
        "unknown_kind": [rec(kind="no.such.kind")],
        "bad_id": [rec()],  # a valid record under an id that is not its own
    }
    # Subscriptions take a moment to reach the publisher: send until the
    # first reject is seen on the tap (a readiness signal, not a sleep).
    def first_seen():
        intake.batch([rec(kind="warmup.unknown")])
        return tap.poll(200)
    wait_until(first_seen, 20, "tap subscription")
    while tap.poll(200):
        tap.recv_multipart()

    goods, frames, expected = [], [], collections.Counter()
    for i in range(200):
        goods.append(record("metric", "h", {"name": f"ok.{i}", "value": float(i)}, ts=1))
    for reason, inputs in bad.items():
        for raw in inputs:
            frames.append(raw)
            expected[reason] += 1
    mixed = goods[:100] + frames + goods[100:]
    before = p.ingestd.metrics()
    accepted, rejected = intake.batch(mixed, timeout=120)
    assert (accepted, rejected) == (200, sum(expected.values()))
    seen = collections.Counter()
    while sum(seen.values()) < sum(expected.values()) and tap.poll(10_000):
        msg = tap.recv_multipart()
        seen[msg[1].decode()] += 1
        assert msg[2], "a reject carries a reason text"
    assert seen == expected
    after = p.ingestd.metrics()
    for reason, n in expected.items():
        key = f'omni_ingestd_records_rejected_total{{reason="{reason}"}}'
        assert after[key] - before.get(key, 0) == n, reason
    assert p.ingestd.running()
    p.wait_archived(200)
    lines = archive_lines(p.archive_dir)
    assert sorted(line["body"]["value"] for line in lines) == [float(i) for i in range(200)]
    assert p.ingestd.health()[0] == 200
    intake.close()
    tap.close(0)
