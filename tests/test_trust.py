"""Trust boundaries between processes: one writer instance per writer name
(exclusive delivery sessions, proto/PROTOCOL.md "Delivery"), and one process
per state directory (ingestd's journal, collectord's per-source state).

Real processes on free ports; nothing here is mocked."""
import os
import re
import subprocess
import time

from omni import (Daemon, IntakeClient, WriterClient, archive_lines, binary, free_port,
                  make_record_metric, wait_until)

TIMEOUT_S = 3  # ingestd --writer-session-timeout in these tests


def holder(ingestd, writer):
    """The instance ingestd's /health names as holding `writer`."""
    m = re.search(rf"^writer={writer} holder=(\S+)", ingestd.health()[1], re.M)
    return m and m.group(1)


def refused(ingestd, writer):
    return ingestd.metrics().get(f'omni_ingestd_writer_refused_total{{writer="{writer}"}}', 0)


def archive_ids(archive_dir):
    return [line["id"] for line in archive_lines(archive_dir)]


def read_ids(path):
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def test_second_archiverd_refused_first_keeps_every_record_replaced_after_kill9(pipeline,
                                                                               workdir):
    p = pipeline(writers=("archive",), extra=(f"--writer-session-timeout={TIMEOUT_S}s",))
    p.ingestd.start()
    a = p.archiverd()
    a.start()
    wait_until(lambda: holder(p.ingestd, "archive") not in (None, "none"), 10, "A holds archive")
    a_instance = holder(p.ingestd, "archive")
    assert f":{a.proc.pid}@" in a_instance

    # B: started by mistake, default-like setup but another directory.
    other_dir = os.path.join(workdir, "archive-b")
    b = p.writer("archiverd-b", [f"--archive-dir={other_dir}"], binary_name="archiverd")
    b.start(wait=False)
    rc = b.proc.wait(timeout=30)
    b.proc = None
    assert rc == 1, b.log()
    line = [l for l in b.log().splitlines() if l.startswith("error: archiverd: ")]
    assert line, b.log()
    assert f"ingestd at {p.delivery} refused writer \"archive\"" in line[0]
    assert f"held by live instance {a_instance}" in line[0], line[0]
    assert refused(p.ingestd, "archive") == 1
    log = p.ingestd.log()
    refusal = [l for l in log.splitlines() if "event=delivery.writer_refused" in l]
    assert len(refusal) == 1 and "level=error" in refusal[0], log[-2000:]
    assert f"holder={a_instance}" in refusal[0] and "instance=" in refusal[0]
    assert holder(p.ingestd, "archive") == a_instance

    # A keeps every record sent after B tried; B stored nothing.
    ids_1 = os.path.join(workdir, "ids-1")
    p.loadgen("--count=20000", "--seed=1", "--src=trust-1", f"--ids-out={ids_1}")
    p.wait_archived(20000)
    sent_1 = read_ids(ids_1)
    assert len(sent_1) == 20000
    got = archive_ids(p.archive_dir)
    assert len(got) == 20000 and set(got) == sent_1
    assert archive_lines(other_dir) == []

    # A killed in the middle of a stream: a replacement started at once is
    # welcomed when A's session times out, and gets what A had not acknowledged.
    ids_2 = os.path.join(workdir, "ids-2")
    load = subprocess.Popen(
        [binary("omni-loadgen"), f"--intake={p.intake}", "--count=20000", "--seed=2",
         "--src=trust-2", "--rate=5000", f"--ids-out={ids_2}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        p.wait_acked("archive", 25000, timeout=60)
        a.kill9()
        killed = time.monotonic()
        c = p.writer("archiverd-c", [f"--archive-dir={p.archive_dir}"], binary_name="archiverd")
        c.start()
        wait_until(lambda: holder(p.ingestd, "archive") not in (None, a_instance),
                   TIMEOUT_S + 5, "the replacement holds archive")
        took = time.monotonic() - killed
        assert took <= TIMEOUT_S + 1.5, took
        assert f":{c.proc.pid}@" in holder(p.ingestd, "archive")
        assert load.wait(timeout=120) == 0, load.stderr.read().decode()[-2000:]
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    p.wait_acked("archive", 40000, timeout=120)
    wait_until(lambda: len(archive_ids(p.archive_dir)) >= 40000, 30, "40000 archived")
    got = archive_ids(p.archive_dir)
    assert len(got) == 40000 and set(got) == sent_1 | read_ids(ids_2)
    assert refused(p.ingestd, "archive") == 1  # the replacement was not refused
    assert "event=delivery.writer_replaced" in p.ingestd.log()


def test_same_instance_or_connection_is_welcomed_again_others_wait_for_proof(pipeline):
    """The session rules at protocol level: HELLO again on the same connection
    (after RESET) and the same instance on a new connection (reconnected) are
    welcomed at once; another instance is refused as soon as the holder
    speaks; a 3-frame HELLO (writers before instance ids) still works."""
    p = pipeline(writers=("archive", "metrics"), extra=(f"--writer-session-timeout={TIMEOUT_S}s",))
    p.ingestd.start()
    x = WriterClient(p.delivery, "archive", instance="hostx:1@t0")
    assert x.hello() == 1
    assert x.hello(timeout=2) == 1  # same connection
    x.close()
    x2 = WriterClient(p.delivery, "archive", instance="hostx:1@t0")
    started = time.monotonic()
    assert x2.hello(timeout=2) == 1  # same instance, new connection
    assert time.monotonic() - started < 1
    assert holder(p.ingestd, "archive") == "hostx:1@t0"

    y = WriterClient(p.delivery, "archive", instance="hosty:2@t1")
    y.send_hello()
    wait_until(lambda: "event=delivery.hello_waiting" in p.ingestd.log(), 5, "y waiting")
    x2.ack(0)  # the holder is heard from: y is refused
    msg = y.recv(5)
    assert msg[1] == b"ERROR" and b"hostx:1@t0" in msg[2], msg
    assert refused(p.ingestd, "archive") == 1
    assert holder(p.ingestd, "archive") == "hostx:1@t0"

    # A holder that is connected but silent (hung, not killed) keeps the name
    # for the session timeout, then a waiting writer takes over.
    z = WriterClient(p.delivery, "archive", instance="hostz:3@t2")
    started = time.monotonic()
    assert z.hello(timeout=TIMEOUT_S + 5) == 1
    waited = time.monotonic() - started
    assert TIMEOUT_S - 1.5 <= waited <= TIMEOUT_S + 1.5, waited
    assert holder(p.ingestd, "archive") == "hostz:3@t2"
    assert refused(p.ingestd, "archive") == 1

    old = WriterClient(p.delivery, "metrics")  # no instance frame
    assert old.hello() == 1
    assert holder(p.ingestd, "metrics") == "unnamed"
    for c in (x2, y, z, old):
        c.close()


def test_second_ingestd_on_a_journal_in_use_exits_1(pipeline, workdir):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    second = Daemon("ingestd-2", [
        f"--intake=tcp://127.0.0.1:{free_port()}", f"--delivery=tcp://127.0.0.1:{free_port()}",
        f"--tap=tcp://127.0.0.1:{free_port()}", f"--journal-dir={p.journal_dir}",
        "--writers=archive,relational"], workdir, free_port(), binary_name="ingestd")
    second.start(wait=False)
    assert second.proc.wait(timeout=30) == 1
    second.proc = None
    assert f"{p.journal_dir} in use by pid {p.ingestd.proc.pid}" in second.log(), second.log()
    # The first is unaffected: healthy, accepts, its journal knows one writer.
    intake = IntakeClient(p.intake)
    assert intake.batch([make_record_metric("h", 1700000000 * 10**9 + i, "cpu", i)
                         for i in range(10)]) == (10, 0)
    intake.close()
    status, text = p.ingestd.health()
    assert status == 200 and "accepted=10" in text, text
    assert "writer=relational" not in text


def git_repo(path):
    """A repository of one commit, made with git itself."""
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=path + ".home",
               GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@x", GIT_COMMITTER_NAME="A",
               GIT_COMMITTER_EMAIL="a@x", GIT_AUTHOR_DATE="@1700000000 +0000",
               GIT_COMMITTER_DATE="@1700000000 +0000")
    os.makedirs(path)
    with open(os.path.join(path, "a.txt"), "w") as f:
        f.write("a\n")
    for args in (["init", "-q", "-b", "main"], ["add", "a.txt"], ["commit", "-q", "-m", "one"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


def test_second_collectord_on_a_source_in_use_exits_1(pipeline, workdir):
    collectord = binary("collectord")
    repo = git_repo(os.path.join(workdir, "repo"))
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    state_dir = os.path.join(workdir, "state")
    args = [f"--intake={p.intake}", f"--state-dir={state_dir}", "--interval=1h", repo]
    first = Daemon("collectord-1", ["git", *args], workdir, free_port(), binary_name="collectord")
    first.start()
    wait_until(lambda: "accepted=0 " not in p.ingestd.health()[1], 30, "the first run's records")
    second = subprocess.run([collectord, "git", *args], capture_output=True, text=True,
                            timeout=60)
    assert second.returncode == 1, second.stderr
    assert f"in use by pid {first.proc.pid}" in second.stderr, second.stderr
    assert state_dir in second.stderr
    # Another source with the same state directory is not in the way.
    other = git_repo(os.path.join(workdir, "other"))
    third = subprocess.run([collectord, "git", f"--intake={p.intake}",
                            f"--state-dir={state_dir}", "--once", other],
                           capture_output=True, text=True, timeout=60)
    assert third.returncode == 0, third.stderr
    assert first.running() and first.health()[0] == 200
    first.stop()
