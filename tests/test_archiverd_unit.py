"""archiverd against a real ingestd, records sent by a Python collector:
JSON Lines byte for byte, exactly once across redelivery, re-collection and
kill -9, hostile kind names, and the start-up refusals."""
import collections
import json
import os
import subprocess
import threading
import time

from omni import IntakeClient, archive_lines, binary, record, wait_until

DAY = 86_400 * 10**9
T0 = 1_700_000_000 * 10**9  # 2023-11-14T22:13:20Z


def metric(i, day=0, src="host-a"):
    return record("metric", src, {"name": f"m.{i % 5}", "value": float(i)}, ts=T0 + day * DAY + i)


def send(intake, frames, size=500, pause=0.0):
    accepted = 0
    for at in range(0, len(frames), size):
        a, r = intake.batch(frames[at:at + size])
        assert r == 0
        accepted += a
        if pause:
            time.sleep(pause)  # a collector's pace, not synchronisation
    return accepted


def assert_exactly(archive_dir, frames):
    import msgpack
    want = {msgpack.unpackb(f)["id"].hex() for f in frames}
    lines = archive_lines(archive_dir)
    counts = collections.Counter(line["id"] for line in lines)
    dups = [i for i, c in counts.items() if c > 1]
    assert not dups, f"{len(dups)} ids archived more than once"
    assert set(counts) == want, f"{len(want - set(counts))} missing, {len(set(counts) - want)} extra"


def test_lines_files_and_redelivery(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    archiver = p.archiverd().start()
    intake = IntakeClient(p.intake)
    frames = [metric(i, day=i % 2) for i in range(3000)]
    assert send(intake, frames) == 3000
    p.wait_archived(3000)
    # Two dates, one file each, lines in journal order, each the record's JSON.
    import msgpack
    for day, date in ((0, "2023-11-14"), (1, "2023-11-15")):
        path = os.path.join(p.archive_dir, "metric", f"{date}.jsonl")
        with open(path, "rb") as f:
            data = f.read()
        assert data.endswith(b"\n")
        got = [json.loads(line) for line in data.splitlines()]
        sent = [msgpack.unpackb(f) for f in frames[day::2]]
        assert [g["id"] for g in got] == [s["id"].hex() for s in sent]
        assert all(g["body"] == s["body"] and g["ts"] == s["ts"] for g, s in zip(got, sent))
    # The same records again (a collector re-collecting): no new line.
    assert send(intake, frames) == 3000
    wait_until(lambda: archiver.metrics()["omni_archiverd_records_skipped_duplicate_total"] == 3000,
               30, "the resent records skipped")
    assert_exactly(p.archive_dir, frames)
    m = archiver.metrics()
    assert m["omni_archiverd_records_archived_total"] == 3000
    assert m["omni_archiverd_bytes_written_total"] == sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p.archive_dir)
        if not os.path.basename(d).startswith(".") for f in fs if f.endswith(".jsonl"))
    assert archiver.health()[0] == 200
    intake.close()


def test_kill9_repeatedly_mid_stream(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    archiver = p.archiverd(batch_size=200).start()
    frames = [metric(i, day=i % 3) for i in range(20_000)]
    done = threading.Event()

    def collector():
        intake = IntakeClient(p.intake)
        send(intake, frames, size=100, pause=0.02)
        intake.close()
        done.set()
    t = threading.Thread(target=collector)
    t.start()
    kills = mid_stream = 0
    from omni import archive_line_count
    while kills < 6:
        target = min(len(frames), (kills + 1) * 2500)
        wait_until(lambda: archive_line_count(p.archive_dir) >= target or done.is_set(), 60,
                   f"{target} lines")
        mid_stream += not done.is_set()
        archiver.kill9()
        kills += 1
        archiver.start()
    t.join(120)
    p.wait_archived(len(frames))
    assert_exactly(p.archive_dir, frames)
    assert mid_stream >= 3, f"only {mid_stream} kills landed mid-stream"


def test_hostile_kinds_stay_inside(pipeline):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    intake = IntakeClient(p.intake)
    kinds = ["x./../../escape", "x.a/b", "x.UPPER case", "x." + "k" * 300, "x.\u00e9t\u00e9"]
    frames = [record(k, "src", {"n": i}, ts=T0) for i, k in enumerate(kinds)]
    assert intake.batch(frames) == (len(frames), 0)
    p.wait_archived(len(frames))
    top = sorted(os.listdir(p.archive_dir))
    assert "escape" not in os.listdir(os.path.dirname(p.archive_dir))
    dirs = [d for d in top if not d.startswith(".")]
    assert len(dirs) == len(kinds)
    for d in dirs:
        assert set(d) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-"), d
        assert len(d) <= 120 and not d.startswith(".")
    # The line keeps the kind as it was sent.
    assert sorted(line["kind"] for line in archive_lines(p.archive_dir)) == sorted(kinds)
    intake.close()


def test_refuses_unknown_files_without_state_and_a_second_instance(pipeline, workdir):
    p = pipeline(writers=("archive",))
    os.makedirs(os.path.join(p.archive_dir, "metric"))
    with open(os.path.join(p.archive_dir, "metric", "2023-11-14.jsonl"), "w") as f:
        f.write('{"precious": true}\n')
    out = subprocess.run([binary("archiverd"), f"--archive-dir={p.archive_dir}", "--http="],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "no state" in out.stderr, out.stderr
    assert os.path.getsize(os.path.join(p.archive_dir, "metric", "2023-11-14.jsonl")) > 0

    other = os.path.join(workdir, "other")
    first = p.writer("archiverd", [f"--archive-dir={other}"]).start()
    out = subprocess.run([binary("archiverd"), f"--archive-dir={other}", "--http="],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "in use" in out.stderr, out.stderr
    assert first.running()


def test_moving_branch_keeps_each_state_once(pipeline):
    """A branch that moves is one id with changing state: the archive keeps
    every distinct state once, and a state seen again adds nothing."""
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    intake = IntakeClient(p.intake)

    def branch(target, ts):
        return record("git.branch", "repo", {"name": "main", "target": target, "head": True},
                      ts=ts)

    # One state per delivery: within one writer batch only the newest state
    # of an id is kept (client/writer.c dedups by id).
    assert intake.batch([branch("a" * 40, 1)]) == (1, 0)
    p.wait_archived(1)
    assert intake.batch([branch("b" * 40, 2)]) == (1, 0)
    p.wait_archived(2)
    skipped = "omni_archiverd_records_skipped_duplicate_total"
    for n, state in enumerate(("b", "a"), 1):
        assert intake.batch([branch(state * 40, 2 + n)]) == (1, 0)
        wait_until(lambda: p.daemons[1].metrics().get(skipped, 0) >= n, 20, "state seen again skipped")
    intake.close()
    lines = archive_lines(p.archive_dir)
    assert sorted(line["body"]["target"][0] for line in lines) == ["a", "b"]
    assert len({line["id"] for line in lines}) == 1
