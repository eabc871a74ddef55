"""The archive as the source of truth: every store rebuilt from it.

Four stores are filled from a known input (a git repository made here,
JUnit reports, metric points from omni-loadgen) by the real pipeline; a
checksum of every table, collection and series is taken (ordered by key,
without the columns a store stamps at ingest time, surrogate source ids
replaced by the source's name); the stores are dropped; `omnictl replay`
sends the archive back through ingestd; the checksums must be equal, and the
archive's files must not have changed. Also: a second replay changes
nothing, a replay killed -9 midway resumes from its state file, a writer
added to a journal with history is said to start empty and is filled by
`replay --writer`, and damaged archive lines are reported and skipped."""
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from omni import (Daemon, Pipeline, binary, free_port, http_get, pg_admin_dsn, sample_history,
                  wait_until, git)
from test_documentd import client_of, mongo_uri, start_documentd  # noqa: F401 (fixture)

psycopg2 = pytest.importorskip("psycopg2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JUNIT = os.path.join(ROOT, "tests", "fixtures", "junit")
# Columns stamped at arrival, not carried by the records: times, and host_daily_pending's
# `gen` (a sequence value that tells a refresh which marks it computed)
STAMPED = {"first_seen", "updated", "last_seen", "applied_at", "granted", "gen"}
SKIP_TABLES = {"schema_migrations", "omni_access_grants"}


# ---------------------------------------------------------------------------
# Stores


def pg_create(name):
    conn = psycopg2.connect(pg_admin_dsn())
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunsplit(urlsplit(pg_admin_dsn())._replace(path="/" + name))


def pg_drop(name):
    conn = psycopg2.connect(pg_admin_dsn())
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def pg_checksums(dsn):
    """table -> (rows, md5 of its rows in order), every table of the public schema."""
    conn = psycopg2.connect(dsn)
    cur = conn.cursor()
    cur.execute("SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")
    tables = [t for (t,) in cur.fetchall() if t not in SKIP_TABLES]
    out = {}
    for table in tables:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                    "'public' AND table_name = %s ORDER BY ordinal_position", (table,))
        cols = []
        for (c,) in cur.fetchall():
            if c in STAMPED or (table in ("sources", "points_series") and c == "id"):
                continue
            # Identity ids of sources and series depend on arrival order: their
            # natural keys stand in for them
            if c == "source_id":
                cols.append(f'(SELECT s.name FROM sources s WHERE s.id = t."{c}")')
            elif c == "series_id":
                cols.append(f'(SELECT ROW(ps.name, ps.source, ps.tags)::text FROM points_series ps '
                            f'WHERE ps.id = t."{c}")')
            else:
                cols.append(f't."{c}"')
        cur.execute(f"SELECT count(*), md5(coalesce(string_agg(r, E'\\n' ORDER BY r), '')) "
                    f"FROM (SELECT ROW({', '.join(cols)})::text AS r FROM \"{table}\" t) x")
        out[table] = cur.fetchone()
    conn.close()
    return out


def mongo_checksums(uri, name):
    client = client_of(uri)
    db = client[name]
    out = {}
    for coll in sorted(db.list_collection_names()):
        docs = sorted(db[coll].find({}), key=lambda d: d["_id"])  # hex text
        text = json.dumps(docs, sort_keys=True, default=repr)
        out[coll] = (len(docs), hashlib.md5(text.encode()).hexdigest())
    client.close()
    return out


def archive_files(archive_dir):
    """path -> sha256 of every archive file (the state directory aside)."""
    out = {}
    for root, dirs, files in os.walk(archive_dir):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), archive_dir)] = \
                    hashlib.sha256(fh.read()).hexdigest()
    return out


# ---------------------------------------------------------------------------
# Pipeline


def drained(p, timeout=300):
    """Until every configured writer acknowledged everything the journal got."""
    def done():
        # counters, not gauges: those are updated every 250 ms only
        m = p.ingestd.metrics()
        return m.get("omni_ingestd_records_accepted_total", 0) > 0 and \
            m.get("omni_ingestd_records_acked_by_all_total") == \
            m.get("omni_ingestd_records_accepted_total")
    wait_until(done, timeout, "every writer caught up", 0.1)


def collect(p, mode, *args):
    cmd = [binary("collectord"), mode, "--once", f"--intake={p.intake}", "--progress=off",
           "--give-up=60s", "--instance=test", f"--state-dir={p.workdir}/state", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_COLLECTORD_", "CI",
                                                                      "GITHUB_", "GIT_"))}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


def fill(p, workdir, metrics=2000):
    """The known input: a git history, JUnit reports, metric points."""
    repo = sample_history(os.path.join(workdir, "repo"), "end")
    collect(p, "git", repo)
    collect(p, "junit", "--pipeline=widget-ci", "--build-id=42", "--branch=main",
            "--sha=" + "a" * 40, "--source=acme/widget",
            os.path.join(JUNIT, "surefire"), os.path.join(JUNIT, "pytest"))
    p.loadgen("--kind=metric", f"--count={metrics}", "--seed=5", "--src=host-1")
    return repo


def replay(p, *args, state=None, check=True, timeout=300):
    cmd = [binary("omnictl"), "replay", f"--archive-dir={p.archive_dir}", f"--intake={p.intake}",
           f"--state={state or os.path.join(p.workdir, 'replay.state')}", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


class Stores:
    """relationald, documentd and metricsd on databases that can be dropped
    and made again under the same names."""

    def __init__(self, p, mongo):
        self.p, self.mongo = p, mongo
        tag = uuid.uuid4().hex[:10]
        self.rel_name, self.met_name, self.doc_name = (f"omni_test_rel_{tag}",
                                                       f"omni_test_met_{tag}",
                                                       f"omni_test_doc_{tag}")
        self.rel_dsn = pg_create(self.rel_name)
        self.met_dsn = pg_create(self.met_name)
        self.daemons = []

    def start(self):
        p = self.p
        self.daemons = [
            p.writer("relationald", [f"--dsn={self.rel_dsn}"]).start(),
            p.writer("metricsd", [f"--dsn={self.met_dsn}"]).start(),
            start_documentd(p, self.mongo, self.doc_name),
        ]

    def stop(self):
        for d in self.daemons:
            d.stop()
            self.p.daemons.remove(d)
        self.daemons = []

    def drop(self):
        """Every store lost: the databases dropped, made again empty."""
        self.stop()
        pg_drop(self.rel_name)
        pg_drop(self.met_name)
        client = client_of(self.mongo)
        client.drop_database(self.doc_name)
        client.close()
        pg_create(self.rel_name)
        pg_create(self.met_name)
        self.start()

    def checksums(self):
        return {"relational": pg_checksums(self.rel_dsn), "metrics": pg_checksums(self.met_dsn),
                "document": mongo_checksums(self.mongo, self.doc_name)}

    def destroy(self):
        pg_drop(self.rel_name)
        pg_drop(self.met_name)
        client = client_of(self.mongo)
        client.drop_database(self.doc_name)
        client.close()


@pytest.fixture
def stores(pipeline, mongo_uri):  # noqa: F811 (the fixture imported above)
    made = []

    def make(p):
        s = Stores(p, mongo_uri)
        made.append(s)
        return s
    yield make
    for s in made:
        s.destroy()


def state_sent(path):
    """Records a replay's state file says are acknowledged (0 without one)."""
    try:
        with open(path) as f:
            return int(f.read().split("\nsent ")[1].split()[0])
    except (OSError, IndexError):
        return 0


def all_writers(pipeline):
    return pipeline(writers=("archive", "relational", "document", "metrics"))


def test_every_store_rebuilt_from_the_archive_equal(pipeline, stores, workdir):
    p = all_writers(pipeline)
    p.ingestd.start()
    p.archiverd().start()
    s = stores(p)
    s.start()
    fill(p, workdir, metrics=20000)
    drained(p)
    before = s.checksums()
    files = archive_files(p.archive_dir)
    assert before["relational"]["commits"][0] == 5 and before["relational"]["ci_tests"][0] > 0
    assert before["metrics"] and before["document"]["metrics"][0] == 20000
    assert before["document"]["git_commits"][0] == 5

    # Every store lost; the archive brings them back, equal.
    s.drop()
    assert s.checksums()["relational"]["commits"][0] == 0
    out = replay(p)
    assert "replayed" in out.stdout
    drained(p)
    assert s.checksums() == before
    assert archive_files(p.archive_dir) == files, "replay wrote to the archive"
    m = p.ingestd.metrics()
    assert m["omni_ingestd_records_replayed_total"] > 20000

    # Again: nothing changes.
    replay(p)
    drained(p)
    assert s.checksums() == before
    assert archive_files(p.archive_dir) == files

    # Killed -9 in the middle, then run again: it resumes, and ends equal.
    s.drop()
    state = os.path.join(workdir, "killed.state")
    # paced, so that it is still running when its first state file is there
    cmd = [binary("omnictl"), "replay", f"--archive-dir={p.archive_dir}", f"--intake={p.intake}",
           f"--state={state}", "--rate=5000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: state_sent(state) > 0 or proc.poll() is not None, 120,
                   "a first state file")
        assert proc.poll() is None, "replay ended before a state file: too little to replay"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    sent = state_sent(state)
    assert 0 < sent < 20000, sent
    out = replay(p, state=state)
    assert "(resumed)" in out.stdout
    assert not os.path.exists(state)
    drained(p)
    assert s.checksums() == before
    assert archive_files(p.archive_dir) == files


def test_writer_added_later_is_told_and_filled_by_replay(pipeline, workdir, pg_database):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    repo = fill(p, workdir, metrics=500)
    drained(p)
    files = archive_files(p.archive_dir)
    commits = len(git(repo, "rev-list", "--all").split())

    # ingestd again, with a writer its journal has not seen.
    p.ingestd.stop()
    http = free_port()
    ingestd = Daemon("ingestd2", [
        f"--intake={p.intake}", f"--delivery={p.delivery}", f"--tap={p.tap}",
        f"--journal-dir={p.journal_dir}", "--writers=archive,relational"], workdir, http,
        binary_name="ingestd")
    p.daemons.remove(p.ingestd)
    p.ingestd = ingestd
    p.daemons.insert(0, ingestd)
    ingestd.start()
    status, text = ingestd.health()
    assert status == 200 and "writer=relational" in text and "starts_empty=" in text, text
    assert f"omnictl replay --archive-dir=ARCHIVE_DIR --intake={p.intake} --writer=relational" \
        in text
    assert "journal.writer_starts_empty" in ingestd.log()
    out = subprocess.run([binary("omnictl"), "status", f"--targets=ingestd=127.0.0.1:{http}",
                          "--sample=0"], capture_output=True, text=True, timeout=30)
    assert "note: writer relational was added to a journal that already had records" \
        in out.stdout, out.stdout
    assert "--writer=relational" in out.stdout

    rel = p.writer("relationald", [f"--dsn={pg_database}"]).start()
    wait_until(lambda: p.ingestd.metrics().get('omni_ingestd_writer_connected{writer="relational"}')
               == 1, 30, "relationald connected")
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT count(*) FROM commits")
    assert cur.fetchone()[0] == 0, "the new writer starts empty"

    # archive is refused: replay never writes back into the archive
    bad = replay(p, "--writer=archive", check=False)
    assert bad.returncode == 2 and "never writes back" in bad.stderr
    out = replay(p, "--writer=relational")
    assert "rejected" in out.stdout
    drained(p)
    cur.execute("SELECT count(*) FROM commits")
    assert cur.fetchone()[0] == commits
    cur.execute("SELECT count(*) FROM ci_tests")
    assert cur.fetchone()[0] > 0
    cur.execute("SELECT count(*) FROM tags")
    assert cur.fetchone()[0] == 2
    assert archive_files(p.archive_dir) == files, "the archive's files grew"
    status, text = ingestd.health()
    assert "replay=seen" in text
    conn.close()
    rel.stop()

    # A writer ingestd does not have: refused by ingestd, said, exit 1.
    out = replay(p, "--writer=document", check=False)
    assert out.returncode == 1 and "not in ingestd.writers" in out.stderr, out.stderr


def test_damaged_lines_reported_skipped_and_the_rest_replayed(pipeline, workdir):
    # metricsd is never started: replayed records wait in the journal for it
    p = pipeline(writers=("archive", "metrics"))
    p.ingestd.start()
    p.archiverd().start()
    p.loadgen("--kind=metric", "--count=300", "--seed=9", "--src=host-2")
    p.wait_archived(300)
    p.daemons[-1].stop()
    [path] = [os.path.join(r, f) for r, _, fs in os.walk(p.archive_dir) if ".state" not in r
              for f in fs]
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    # line 3 mangled, the last one cut short
    lines[2] = b'{"v":1,"id":"zz' + lines[2][15:]
    with open(path, "wb") as f:
        f.write(b"\n".join(lines[:-2]) + b"\n" + lines[-2][:40])
    out = replay(p, check=False)
    assert out.returncode == 3, out.stderr
    rel = os.path.relpath(path, p.archive_dir)
    assert f"{rel}:3: \"id\" is not 32 hex digits" in out.stderr, out.stderr
    assert f"{rel}:300: last line cut short" in out.stderr
    assert "replayed 298 records" in out.stdout, out.stdout


def test_collectord_full_sends_everything_again(pipeline, workdir):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    repo = sample_history(os.path.join(workdir, "repo"), "end")
    collect(p, "git", repo)
    drained(p)

    def accepted():
        return p.ingestd.metrics()["omni_ingestd_records_accepted_total"]
    first = accepted()
    commits = sum(1 for _ in open_lines(p.archive_dir, "git.commit"))
    assert commits == 5
    # incremental: no commit again, only refs and the run's own records
    collect(p, "git", repo)
    again = accepted()
    assert again - first == first - commits
    collect(p, "git", "--full", repo)
    drained(p)
    assert accepted() - again == first  # everything again
    assert sum(1 for _ in open_lines(p.archive_dir, "git.commit")) == commits


def open_lines(archive_dir, kind):
    base = os.path.join(archive_dir, kind)
    for f in sorted(os.listdir(base)):
        with open(os.path.join(base, f), "rb") as fh:
            yield from fh


# ---------------------------------------------------------------------------
# Export

T_EXPORT = 1700000000 * 10**9  # 2023-11-14T22:13:20Z


def export(archive_dir, *args, check=True):
    out = subprocess.run([binary("omnictl"), "export", f"--archive-dir={archive_dir}", *args],
                         capture_output=True, timeout=300)
    if check:
        assert out.returncode == 0, f"export {args} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


def known_input(p):
    """Records whose every value type the archive can hold."""
    from omni import IntakeClient, record
    bodies = [
        {"name": "plain", "n": 12, "neg": -5, "f": 1.5, "big": 1e300, "whole": 3.0,
         "s": "12", "yes": "yes", "t": True, "none": None, "bin": b"\x00\x01\xff",
         "nested": {"a": {"b": "deep"}, "list": [1, "x", 2.5]},
         "text": 'comma, "quotes"\nand a newline', "id": "a body field named id"},
        {"name": "sparse", "other": "only here", "ü": "unicode ✓"},
    ]
    frames = [record("x.export", "src-a", b, ts=T_EXPORT + i, tags={"env": "prod"} if i else None)
              for i, b in enumerate(bodies)]
    frames.append(record("metric", "src-b", {"name": "cpu", "value": 0.25}, ts=T_EXPORT))
    client = IntakeClient(p.intake)
    assert client.batch(frames) == (3, 0)
    client.close()
    p.wait_archived(3)


def test_export_json_yaml_csv(pipeline, workdir):
    import csv
    import io
    import yaml
    from omni import json_to_msgpack_value
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    known_input(p)
    with open(os.path.join(p.archive_dir, "x.export", "2023-11-14.jsonl"), "rb") as f:
        archived = f.read()
    lines = [json.loads(line) for line in archived.splitlines()]

    # json: the lines as archived
    assert export(p.archive_dir, "--kind=x.export").stdout == archived
    everything = export(p.archive_dir).stdout
    assert everything.count(b"\n") == 3 and archived in everything
    assert export(p.archive_dir, "--source=src-b").stdout.count(b"\n") == 1
    assert export(p.archive_dir, "--since=2023-11-15").stdout == b""

    # yaml: parsed back, equal to the JSON (binary as bytes, types kept)
    docs = list(yaml.safe_load_all(export(p.archive_dir, "--format=yaml", "--kind=x.export")
                                   .stdout))
    assert docs == [json_to_msgpack_value(line) for line in lines]
    assert docs[0]["body"]["bin"] == b"\x00\x01\xff" and docs[0]["body"]["s"] == "12"
    assert isinstance(docs[0]["body"]["whole"], float) and docs[0]["body"]["yes"] == "yes"
    out = os.path.join(workdir, "all.yaml")
    export(p.archive_dir, "--format=yaml", "-o", out)
    with open(out) as f:
        assert len(list(yaml.safe_load_all(f))) == 3

    # csv: the expected text, byte for byte
    ids = [line["id"] for line in lines]
    expected = (
        "id,kind,src,col,run,ts,name,n,neg,f,big,whole,s,yes,t,none,bin,nested.a.b,nested.list,"
        "text,body.id,other,ü,tags.env\r\n"
        f"{ids[0]},x.export,src-a,test,run-test,{T_EXPORT},plain,12,-5,1.5,1e+300,3.0,12,yes,"
        'true,,AAH/,deep,"[1,""x"",2.5]","comma, ""quotes""\nand a newline",a body field named id'
        ",,,\r\n"
        f"{ids[1]},x.export,src-a,test,run-test,{T_EXPORT + 1},sparse,,,,,,,,,,,,,,,only here,"
        "unicode ✓,prod\r\n")
    got = export(p.archive_dir, "--format=csv", "--kind=x.export").stdout.decode()
    assert got == expected
    rows = list(csv.DictReader(io.StringIO(got, newline="")))
    assert rows[0]["text"] == 'comma, "quotes"\nand a newline' and rows[1]["tags.env"] == "prod"
    # several kinds: a file each into a directory, refused into one stream
    bad = export(p.archive_dir, "--format=csv", check=False)
    assert bad.returncode == 2 and b"2 kinds (metric, x.export)" in bad.stderr
    tables = os.path.join(workdir, "tables") + "/"
    export(p.archive_dir, "--format=csv", "-o", tables)
    assert sorted(os.listdir(tables)) == ["metric.csv", "x.export.csv"]
    with open(os.path.join(tables, "x.export.csv"), newline="") as f:
        assert f.read() == expected
    with open(os.path.join(tables, "metric.csv"), newline="") as f:
        assert f.read().splitlines()[0] == "id,kind,src,col,run,ts,name,value"
    assert export(p.archive_dir, "--format=xml", check=False).returncode == 2


# ---------------------------------------------------------------------------
# Cold storage

DAY_NS = 86400 * 10**9


def old_records(n, days_ago=30, start=0, kind="metric", src="host-old"):
    """Records of one event date `days_ago` days back (noon UTC), their ids distinct."""
    from omni import record
    day = (time.time_ns() // DAY_NS - days_ago) * DAY_NS + DAY_NS // 2
    return [record(kind, src, {"name": f"old.{i}", "value": float(i)}, ts=day + i)
            for i in range(start, start + n)], time.strftime("%Y-%m-%d", time.gmtime(day / 1e9))


def send(p, frames):
    from omni import IntakeClient
    client = IntakeClient(p.intake)
    for i in range(0, len(frames), 500):
        assert client.batch(frames[i:i + 500]) == (len(frames[i:i + 500]), 0)
    client.close()


def kind_files(archive_dir, kind="metric"):
    d = os.path.join(archive_dir, kind)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def zstdcat(path):
    out = subprocess.run(["zstd", "-dc", path], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def archiverd(p, *args, env=None):
    return p.writer("archiverd", [f"--archive-dir={p.archive_dir}", *args], env=env)


def archive_pipeline(pipeline):
    """ingestd and an archiverd, started. Returns the pipeline and the archiverd."""
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    return p, archiverd(p).start()


def test_closed_files_compressed_read_by_replay_export_and_zstdcat(pipeline, workdir):
    p, a = archive_pipeline(pipeline)
    old, date = old_records(300)
    send(p, old)
    from omni import record
    send(p, [record("metric", "host-new", {"name": "now", "value": 1.0})])
    p.wait_archived(301)
    with open(os.path.join(p.archive_dir, "metric", f"{date}.jsonl"), "rb") as f:
        plain = f.read()
    before = export(p.archive_dir).stdout
    assert before.count(b"\n") == 301

    # checked at start: the date that ended 29 days ago is compressed, today is not
    a.stop()
    a = archiverd(p).start()
    wait_until(lambda: f"{date}.jsonl" not in kind_files(p.archive_dir), 60, "compressed")
    files = kind_files(p.archive_dir)
    assert f"{date}.jsonl.zst" in files and not any(f.endswith(".tmp") for f in files)
    zst = os.path.join(p.archive_dir, "metric", f"{date}.jsonl.zst")
    assert zstdcat(zst) == plain
    assert subprocess.run(["zstd", "-t", "-q", zst]).returncode == 0
    assert os.path.getsize(zst) < len(plain) / 3
    assert export(p.archive_dir).stdout == before
    m = a.metrics()
    assert m["omni_archiverd_archive_files_compressed_total"] == 1
    assert m["omni_archiverd_archive_compressed_bytes_in_total"] == len(plain)
    assert "archive.compressed" in a.log()

    # the same records again: still archived once; late ones for that date
    # go to a new plain file, compressed later as the next segment
    send(p, old)
    late, _ = old_records(20, start=1000)
    send(p, late)
    wait_until(lambda: f"{date}.jsonl" in kind_files(p.archive_dir), 30, "a late file")
    p.wait_archived(1 + 20)  # counts plain lines only: today's and the late ones
    a.stop()
    a = archiverd(p).start()
    wait_until(lambda: f"{date}.1.jsonl.zst" in kind_files(p.archive_dir), 60, "segment 1")
    wait_until(lambda: f"{date}.jsonl" not in kind_files(p.archive_dir), 60, "late compressed")
    out = export(p.archive_dir, "--kind=metric").stdout.splitlines()
    assert len(out) == 321 and len({json.loads(line)["id"] for line in out}) == 321
    assert zstdcat(os.path.join(p.archive_dir, "metric", f"{date}.1.jsonl.zst")).count(b"\n") == 20

    # replay reads them: a writer fed only by replay gets every record
    a.stop()
    stats = replay_count(p, workdir)
    assert stats == 321


def replay_count(p, workdir):
    """Replays the archive to a Python writer session on a fresh ingestd; returns records seen."""
    from omni import WriterClient
    p.ingestd.stop()
    http = free_port()
    ingestd = Daemon("ingestd-replay", [
        f"--intake={p.intake}", f"--delivery={p.delivery}", f"--tap={p.tap}",
        f"--journal-dir={os.path.join(workdir, 'journal2')}", "--writers=archive,metrics"],
        workdir, http, binary_name="ingestd").start()
    try:
        out = replay(p, "--writer=metrics")
        assert "replayed 321 records (321 accepted" in out.stdout, out.stdout
        return ingestd.metrics()["omni_ingestd_records_replayed_total"]
    finally:
        ingestd.stop()
        _ = WriterClient


@pytest.mark.parametrize("step", [1, 2, 3])
def test_compression_killed_at_each_step_leaves_every_record_once(pipeline, workdir, step):
    p, a = archive_pipeline(pipeline)
    old, date = old_records(2000)
    send(p, old)
    p.wait_archived(2000)
    with open(os.path.join(p.archive_dir, "metric", f"{date}.jsonl"), "rb") as f:
        plain = f.read()
    a.stop()

    # killed -9 by its own hook right after step N of the compression at start:
    # 1 .zst.tmp written and fsynced, 2 renamed into place, 3 the state forgot
    # the plain file (which is still there)
    killed = archiverd(p, env={"OMNI_ARCHIVE_TEST_KILL_COMPRESS": str(step)})
    killed.start(wait=False)
    assert killed.proc.wait(60) == -signal.SIGKILL
    files = kind_files(p.archive_dir)
    assert f"{date}.jsonl" in files
    assert (f"{date}.jsonl.zst.tmp" in files) == (step == 1)
    assert (f"{date}.jsonl.zst" in files) == (step >= 2)

    # started again: the job is finished, every record once
    a = archiverd(p).start()
    wait_until(lambda: kind_files(p.archive_dir) == [f"{date}.jsonl.zst"], 60, "one .zst")
    assert zstdcat(os.path.join(p.archive_dir, "metric", f"{date}.jsonl.zst")) == plain
    # the same records again (a redelivery): skipped, not archived twice
    send(p, old)
    p.ingestd.metrics()
    wait_until(lambda: a.metrics().get("omni_archiverd_records_skipped_duplicate_total", 0)
               >= 2000, 30, "the records skipped")
    assert kind_files(p.archive_dir) == [f"{date}.jsonl.zst"]
    out = export(p.archive_dir).stdout.splitlines()
    assert len(out) == 2000 and len(set(out)) == 2000
    a.stop()


def test_damaged_zst_reported_and_skipped(pipeline, workdir):
    p, a = archive_pipeline(pipeline)
    old, date = old_records(3000)
    send(p, old)
    other, _ = old_records(10, days_ago=40, src="host-older")
    send(p, other)
    p.wait_archived(3010)
    a.stop()
    a = archiverd(p).start()
    wait_until(lambda: not any(f.endswith(".jsonl") for f in kind_files(p.archive_dir)), 60,
               "compressed")
    a.stop()
    zst = os.path.join(p.archive_dir, "metric", f"{date}.jsonl.zst")
    size = os.path.getsize(zst)
    os.truncate(zst, size // 2)
    rel = f"metric/{date}.jsonl.zst"
    out = export(p.archive_dir, check=False)
    assert out.returncode == 3, out.stderr
    err = out.stderr.decode()
    assert f"{rel}:" in err and "zstd data cut short" in err, err
    lines = out.stdout.splitlines()
    assert 10 < len(lines) < 3010  # the other date whole, the cut one up to the cut
    assert sum(1 for line in lines if json.loads(line)["src"] == "host-older") == 10
    # corrupt bytes in the middle of the frame: reported, the rest of that file skipped
    with open(zst, "r+b") as f:
        f.seek(size // 4)
        f.write(b"\xff" * 64)
    out = export(p.archive_dir, "--format=csv", "-o", os.path.join(workdir, "t") + "/",
                 check=False)
    assert out.returncode == 3 and f"{rel}:" in out.stderr.decode(), out.stderr
    # replay reads the same way (this ingestd has no writer to replay to)
    # (ingestd refuses the first batch, so replay may stop before the end of
    # the damaged file: what it read of it is reported by file and line)
    rep = replay(p, "--give-up=1s", check=False)
    assert f"{rel}:" in rep.stderr, rep.stderr


def test_archive_retention_per_kind(pipeline, workdir):
    p, a = archive_pipeline(pipeline)
    metric, date = old_records(50)
    kept, _ = old_records(5, kind="x.keep")
    recent, recent_date = old_records(5, days_ago=3, src="host-recent")
    send(p, metric + kept + recent)
    p.wait_archived(60)
    a.stop()
    # nothing is dropped by default; with retain, at start: metric past 20 days
    a = archiverd(p, "--retain=metric=20d,x.keep=forever", "--compress-after=0").start()
    # (the file goes first, then the counters: wait for both)
    wait_until(lambda: f"{date}.jsonl" not in kind_files(p.archive_dir)
               and a.metrics().get("omni_archiverd_archive_files_dropped_total", 0) >= 1, 30,
               "dropped")
    assert kind_files(p.archive_dir) == [f"{recent_date}.jsonl"]
    assert kind_files(p.archive_dir, "x.keep") == [f"{date}.jsonl"]
    m = a.metrics()
    assert m["omni_archiverd_archive_files_dropped_total"] == 1
    assert m["omni_archiverd_archive_dropped_bytes_total"] > 0
    assert f"event=archive.dropped path=metric/{date}.jsonl" in a.log()
    # its records stay archived: sent again, they are not written back
    send(p, metric)
    wait_until(lambda: a.metrics().get("omni_archiverd_records_skipped_duplicate_total", 0)
               >= 50, 30, "skipped")
    assert kind_files(p.archive_dir) == [f"{recent_date}.jsonl"]
    a.stop()
    bad = subprocess.run([binary("archiverd"), f"--archive-dir={p.archive_dir}",
                          f"--http=127.0.0.1:{free_port()}", f"--delivery={p.delivery}",
                          "--retain=metric=soon"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "metric=soon" in bad.stderr
