"""collectord git: every field it sends is checked against what git itself
reports for the same repository (git cat-file, git log, git diff --numstat
--no-renames, git for-each-ref).

Most tests play ingestd themselves (FakeIngestd: a ZeroMQ ROUTER that
acknowledges every BATCH per proto/PROTOCOL.md and keeps the decoded
records); the last ones run the real pipeline, collectord -> ingestd ->
archiverd, including ingestd killed with SIGKILL in the middle of a history."""
import collections
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import threading
import time

import msgpack
import pytest
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("OMNI_BIN") or os.path.join(ROOT, "build", "bin")
COLLECTORD = os.path.join(BIN, "collectord")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

pytestmark = pytest.mark.skipif(not os.path.exists(COLLECTORD),
                                reason=f"{COLLECTORD} not built (run make)")


# ---------------------------------------------------------------------------
# A repository driven by the git command

class Repo:
    def __init__(self, path, bare=False):
        self.path = str(path)
        self.home = self.path + ".home"
        os.makedirs(self.home, exist_ok=True)
        self.clock = 1_700_000_000
        self.env = {
            "PATH": os.environ["PATH"], "HOME": self.home, "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8", "GIT_AUTHOR_NAME": "Ann Author",
            "GIT_AUTHOR_EMAIL": "ann@example.com", "GIT_COMMITTER_NAME": "Cy Committer",
            "GIT_COMMITTER_EMAIL": "cy@example.com",
        }

    def init(self, bare=False):
        os.makedirs(self.path, exist_ok=True)
        self.git("init", "-q", "-b", "main", *(["--bare"] if bare else []))
        return self

    def git(self, *args, input=None, env=None, check=True):
        e = dict(self.env, **(env or {}))
        out = subprocess.run(["git", *args], cwd=self.path, env=e, input=input,
                             capture_output=True)
        if check and out.returncode != 0:
            raise AssertionError(f"git {args} failed: {out.stderr.decode(errors='replace')}")
        return out.stdout

    def text(self, *args):
        return self.git(*args).decode().strip()

    def write(self, name, data, mode=None):
        path = os.path.join(self.path, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        if mode:
            os.chmod(path, mode)

    def tick(self, tz="+0000"):
        self.clock += 3600
        return f"@{self.clock} {tz}"

    def commit(self, message="change", add=True, author=None, tz="+0000", ctz="+0000",
               extra=(), env=None):
        if add:
            self.git("add", "-A")
        e = {"GIT_AUTHOR_DATE": self.tick(tz), "GIT_COMMITTER_DATE": self.tick(ctz)}
        if author:
            e["GIT_AUTHOR_NAME"], e["GIT_AUTHOR_EMAIL"] = author
        e.update(env or {})
        self.git("commit", "-q", "--allow-empty", *extra, "-m", message, env=e)
        return self.text("rev-parse", "HEAD")

    def raw_commit(self, author, message, tree=None, parents=None, committer=None,
                   extra_headers=b""):
        """A commit object written byte for byte (git commit would re-encode
        bad UTF-8 as Latin-1); HEAD's branch moves to it."""
        tree = tree or self.text("rev-parse", "HEAD^{tree}")
        parents = [self.text("rev-parse", "HEAD")] if parents is None else parents
        committer = committer or b"Cy Committer <cy@example.com>"
        self.clock += 3600
        body = b"tree " + tree.encode() + b"\n"
        for p in parents:
            body += b"parent " + p.encode() + b"\n"
        body += b"author " + author + b" %d +0200\n" % self.clock
        body += b"committer " + committer + b" %d +0200\n" % self.clock
        body += extra_headers + b"\n" + message
        sha = self.git("hash-object", "-t", "commit", "-w", "--stdin", input=body).decode().strip()
        self.git("update-ref", "HEAD", sha)
        self.git("reset", "-q", "--hard", sha)
        return sha


# ---------------------------------------------------------------------------
# ingestd played by the test

class FakeIngestd:
    """Acknowledges every BATCH (proto/PROTOCOL.md) and keeps its records,
    decoded; `ack_delay` slows the ACKs down, `silent` sends none."""

    def __init__(self, ack_delay=0.0, silent=False):
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.ack_delay = ack_delay
        self.silent = silent
        self.records = []
        self.raw = []
        self.batches = 0
        self.lock = threading.Lock()
        self.stop = False
        self.errors = []
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop:
            if not self.sock.poll(50):
                continue
            frames = self.sock.recv_multipart()
            try:
                peer, sig, cmd, seq = frames[:4]
                assert sig == b"OI/1" and cmd == b"BATCH" and len(seq) == 8, frames[:4]
                decoded = [msgpack.unpackb(f, raw=False) for f in frames[4:]]
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
                continue
            with self.lock:
                self.records.extend(decoded)
                self.raw.extend(frames[4:])
                self.batches += 1
            if self.silent:
                continue
            if self.ack_delay:
                time.sleep(self.ack_delay)
            self.sock.send_multipart([peer, b"OI/1", b"ACK", seq,
                                      struct.pack(">I", len(frames) - 4), struct.pack(">I", 0)])

    def take(self):
        with self.lock:
            out, self.records, self.raw = self.records, [], []
        assert not self.errors, self.errors
        return out

    def close(self):
        self.stop = True
        self.thread.join()
        self.sock.close(0)


@pytest.fixture
def fake():
    f = FakeIngestd()
    yield f
    f.close()


def collect(repo, fake_or_endpoint, state_dir, *args, timeout=120, check=True):
    endpoint = getattr(fake_or_endpoint, "endpoint", fake_or_endpoint)
    path = repo.path if isinstance(repo, Repo) else repo
    out = subprocess.run([COLLECTORD, "git", "--once", f"--intake={endpoint}",
                          f"--state-dir={state_dir}", "--instance=test-col", "--progress=off",
                          *args, path], capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"collectord exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out


def fast_history(repo, n, files=50, start=1_700_000_000):
    """n commits on main, each changing one of `files` files, by git fast-import."""
    stream = []
    for i in range(n):
        data = b"%d\n" % i
        stream.append(b"commit refs/heads/main\ncommitter C <c@x> %d +0000\ndata 3\nc%d\n"
                      % (start + i, i % 10))
        stream.append(b"M 100644 inline f%d\ndata %d\n%s\n" % (i % files, len(data), data))
    repo.git("fast-import", "--quiet", input=b"".join(stream))


def by_kind(records):
    out = collections.defaultdict(list)
    for r in records:
        out[r["kind"]].append(r)
    return out


# ---------------------------------------------------------------------------
# What git says

SIG = re.compile(rb"^(.*) <(.*)> (-?\d+) ([+-])(\d\d)(\d\d)$")


def text_of(data, encoding):
    """The text git log shows for stored bytes: converted from the commit's
    encoding, else UTF-8 with bad bytes replaced."""
    if encoding and encoding.lower() not in ("utf-8", "utf8"):
        return data.decode(encoding)
    return data.decode("utf-8", "replace")


def git_commit(repo, sha):
    """The commit as git stores it (cat-file) and as git log reports it."""
    raw = repo.git("cat-file", "commit", sha)
    header, _, message = raw.partition(b"\n\n")
    facts = {"parents": [], "encoding": None, "message_bytes": message}
    for line in header.split(b"\n"):
        if line.startswith(b" "):
            continue
        key, _, value = line.partition(b" ")
        if key == b"parent":
            facts["parents"].append(value.decode())
        elif key == b"encoding":
            facts["encoding"] = value.decode()
        elif key in (b"author", b"committer"):
            m = SIG.match(value)
            name, email, when, sign, hh, mm = m.groups()
            who = key.decode()
            facts[f"{who}_name_bytes"], facts[f"{who}_email_bytes"] = name, email
            facts[f"{who}_time"] = int(when)
            facts[f"{who}_tz"] = (1 if sign == b"+" else -1) * (int(hh) * 60 + int(mm))
    enc = facts["encoding"]
    for who in ("author", "committer"):
        for part in ("name", "email"):
            facts[f"{who}_{part}"] = text_of(facts[f"{who}_{part}_bytes"], enc)
    facts["message"] = text_of(message, enc)
    # git log's view of the same commit must agree with the stored bytes
    shown = repo.git("log", "-1", "--format=%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%P", sha)
    an, ae, at, cn, ce, ct, parents = shown.rstrip(b"\n").split(b"\x00")
    assert an.decode("utf-8", "replace") == facts["author_name"]
    assert ae.decode("utf-8", "replace") == facts["author_email"]
    assert cn.decode("utf-8", "replace") == facts["committer_name"]
    assert ce.decode("utf-8", "replace") == facts["committer_email"]
    assert (int(at), int(ct)) == (facts["author_time"], facts["committer_time"])
    if not os.path.exists(os.path.join(repo.git_dir(), "shallow")):
        assert parents.decode().split() == facts["parents"]
    return facts


def git_numstat(repo, sha, base):
    """[(path bytes, insertions or None, deletions or None)] per git diff."""
    out = repo.git("diff", "--numstat", "-z", "--no-renames", base, sha)
    files = []
    for entry in out.split(b"\x00"):
        if not entry:
            continue
        ins, dels, path = entry.split(b"\t", 2)
        files.append((path, None if ins == b"-" else int(ins), None if dels == b"-" else int(dels)))
    return files


def _git_dir(self):
    return self.text("rev-parse", "--absolute-git-dir")


Repo.git_dir = _git_dir


def check_commit(repo, body, base=None):
    """Every field of one git.commit body against git."""
    sha = body["sha"]
    f = git_commit(repo, sha)
    assert body["parents"] == f["parents"]
    raw = body.get("raw", {})
    for key in ("author_name", "author_email", "committer_name", "committer_email", "message"):
        assert body[key] == f[key], (sha, key)
        stored = f["message_bytes"] if key == "message" else f[key + "_bytes"]
        if body[key].encode() != stored:
            assert raw.get(key) == stored, (sha, key, raw)
        else:
            assert key not in raw, (sha, key)
    for key in ("author_time", "author_tz", "committer_time", "committer_tz"):
        assert body[key] == f[key], (sha, key)
    if base is None:
        base = f["parents"][0] if f["parents"] and not body.get("shallow") else EMPTY_TREE
    numstat = git_numstat(repo, sha, base)
    assert body["files_changed"] == len(numstat), sha
    assert body["insertions"] == sum(n[1] or 0 for n in numstat)
    assert body["deletions"] == sum(n[2] or 0 for n in numstat)
    files = body["files"]
    assert len(files) == len(numstat), sha
    for got, (path, ins, dels) in zip(files, numstat):
        assert got["path"] == path.decode("utf-8", "replace"), sha
        if got["path"].encode() != path:
            assert got["path_raw"] == path
        assert got["binary"] == (ins is None), (sha, path)
        assert (got["insertions"], got["deletions"]) == (ins or 0, dels or 0), (sha, path)


def check_envelope(records, src, kinds=None):
    run = records[0]["run"]
    assert records[0]["kind"] == "run.start" and records[-1]["kind"] == "run.end"
    for r in records:
        assert r["v"] == 1 and isinstance(r["id"], bytes) and len(r["id"]) == 16
        assert r["src"] == src and r["col"] == "test-col" and r["run"] == run
        assert isinstance(r["ts"], int)
    assert re.fullmatch(r"[0-9a-f]{32}", run)
    end = records[-1]["body"]
    assert end["status"] == "ok" and end["collector"] == "git"
    counts = collections.Counter(r["kind"] for r in records if not r["kind"].startswith("run."))
    assert end["counts"] == dict(counts)
    start = records[0]["body"]
    assert start["collector"] == "git" and start["started"] == end["started"]
    assert end["finished"] >= end["started"] and end["duration"] >= 0


# ---------------------------------------------------------------------------
# A repository with everything the issue names

@pytest.fixture
def rich(tmp_path):
    r = Repo(tmp_path / "rich").init()
    r.write("README.md", "# hello\n\nworld\n")
    r.write("src/a.c", "int a;\nint b;\nint c;\n")
    r.write("src/deep/er/x.txt", "x\n")
    r.write("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00binary")
    r.write("empty", "")
    r.write("noeol", "no newline at the end")
    root = r.commit("root commit")
    # modify, delete, rename (a deletion plus an addition), binary change, mode
    r.write("src/a.c", "int a;\nint B;\nint c;\nint d;\n")
    os.remove(os.path.join(r.path, "src/deep/er/x.txt"))
    r.git("mv", "README.md", "README")
    r.write("logo.png", b"\x89PNG\r\n\x1a\n\x00\x00other")
    os.chmod(os.path.join(r.path, "empty"), 0o755)
    r.write("noeol", "no newline at the end, changed")
    r.commit("second\n\nwith a body\n", tz="-0730", ctz="+0545")
    # unicode everywhere
    r.write("données/日本.txt", "ünïcödé\n")
    r.commit("Grüße 🎉 from Zoë", author=("Zoë Ünïcödé 日本", "zoë@exämple.org"), tz="+0100")
    # invalid UTF-8 in author and message (no encoding header), written raw
    r.raw_commit(b"J\xfcrgen \xff\xfe <j\xfcrgen@example.com>", b"caf\xe9 \xe2\x82 au lait\n")
    # a legacy encoding declared in the commit: git log converts it
    r.write("latin.txt", "x\n")
    r.commit("na\xefve caf\xe9", author=("Fran\xe7ois", "f@example.com"))
    # that one is stored as UTF-8; this one as Latin-1 bytes with the header
    r.raw_commit(b"Fran\xe7ois <f@example.com>", b"na\xefve caf\xe9\n",
                 extra_headers=b"encoding ISO-8859-1\n")
    # empty message
    r.write("msg", "empty message\n")
    r.git("add", "-A")
    r.git("commit", "-q", "--allow-empty-message", "-m", "",
          env={"GIT_AUTHOR_DATE": r.tick(), "GIT_COMMITTER_DATE": r.tick()})
    # a file becomes a symlink; a directory becomes a file
    os.remove(os.path.join(r.path, "noeol"))
    os.symlink("README", os.path.join(r.path, "noeol"))
    shutil.rmtree(os.path.join(r.path, "données"))
    r.write("données", "now a file\n")
    r.commit("typechanges")
    # tags: light, annotated (unicode message), a tag of a tag
    r.git("tag", "light")
    r.git("tag", "-a", "-m", "release ✓\n\nnotes", "v1.0",
          env={"GIT_COMMITTER_DATE": r.tick("+0200")})
    r.git("tag", "-a", "-m", "tag of a tag", "v1.0-signed", "v1.0",
          env={"GIT_COMMITTER_DATE": r.tick()})
    r.git("tag", "root-tag", root)
    # a side branch merged back
    r.git("checkout", "-q", "-b", "side", "HEAD~2")
    r.write("side.txt", "side\n" * 5)
    r.commit("on side")
    r.write("side.txt", "side\n" * 3 + "changed\n")
    r.commit("more on side")
    r.git("checkout", "-q", "main")
    r.write("main.txt", "main\n")
    r.commit("on main")
    r.git("merge", "-q", "--no-ff", "-m", "merge side", "side",
          env={"GIT_AUTHOR_DATE": r.tick(), "GIT_COMMITTER_DATE": r.tick()})
    # an orphan branch: a second root
    r.git("checkout", "-q", "--orphan", "orphan")
    r.git("rm", "-q", "-rf", ".")
    r.write("orphan.txt", "alone\n")
    r.commit("second root")
    # a detached HEAD on a commit no ref reaches
    r.git("checkout", "-q", "--detach", "main")
    r.write("floating.txt", "floating\n")
    r.commit("detached commit")
    return r


def test_every_field_matches_git(rich, fake, tmp_path):
    out = collect(rich, fake, tmp_path / "state")
    records = fake.take()
    src = os.path.basename(rich.path)  # no origin: the directory's name
    check_envelope(records, src)
    kinds = by_kind(records)

    expected = rich.text("rev-list", "--all").split()
    commits = {r["body"]["sha"]: r for r in kinds["git.commit"]}
    assert len(kinds["git.commit"]) == len(commits) == len(expected)
    assert set(commits) == set(expected)
    for sha, rec in commits.items():
        check_commit(rich, rec["body"])
        assert rec["ts"] == rec["body"]["committer_time"] * 1_000_000_000

    # the cases the fixture built are all there
    bodies = [c["body"] for c in commits.values()]
    assert sum(1 for b in bodies if not b["parents"]) == 2                 # two roots
    assert any(len(b["parents"]) == 2 for b in bodies)                       # a merge
    assert any(b["message"] == "" for b in bodies)                           # empty message
    assert any(f["binary"] for b in bodies for f in b["files"])              # binary
    assert any("raw" in b and "author_name" in b["raw"] for b in bodies)     # invalid UTF-8
    latin = [b for b in bodies if b["author_name"] == "François" and "raw" in b]
    assert latin and latin[0]["raw"]["author_name"] == b"Fran\xe7ois"        # converted
    head = rich.text("rev-parse", "HEAD")
    assert head in commits                                                   # detached HEAD

    # branches: name, target, head (HEAD is detached: none is HEAD)
    refs = dict(line.split() for line in
                rich.text("for-each-ref", "refs/heads", "--format=%(refname:short) %(objectname)")
                .splitlines())
    got = {b["body"]["name"]: b["body"] for b in kinds["git.branch"]}
    assert set(got) == set(refs) == {"main", "side", "orphan"}
    for name, body in got.items():
        assert body["target"] == refs[name] and body["head"] is False

    # tags: peeled target, annotated or not, tagger, message
    tags = {t["body"]["name"]: t["body"] for t in kinds["git.tag"]}
    assert set(tags) == set(rich.text("tag", "-l").split())
    for name, body in tags.items():
        assert body["target"] == rich.text("rev-parse", f"{name}^{{}}")
        kind = rich.text("cat-file", "-t", f"refs/tags/{name}")
        assert body["annotated"] == (kind == "tag")
        if kind == "tag":
            fmt = "%(taggername)%00%(taggeremail:trim)%00%(contents)"
            name_, email, contents = rich.git("for-each-ref", f"refs/tags/{name}",
                                              f"--format={fmt}").decode().split("\x00")
            assert (body["tagger_name"], body["tagger_email"]) == (name_, email)
            assert body["message"] == contents[:-1]  # for-each-ref adds a newline
            tagged = rich.git("cat-file", "tag", f"refs/tags/{name}")
            when = int(re.search(rb"^tagger .* (\d+) [+-]\d{4}$", tagged, re.M).group(1))
            assert body["tagger_time"] == when
        else:
            assert "tagger_name" not in body and "message" not in body
    assert tags["v1.0-signed"]["target"] == tags["v1.0"]["target"] == tags["light"]["target"]
    assert tags["v1.0"]["tagger_tz"] == 120

    # run.start says what ran on what
    start = records[0]["body"]
    assert start["source"] == os.path.realpath(rich.path)
    assert start["config"]["repository"] == os.path.realpath(rich.path)
    assert "event=run.end" in out.stderr and "status=ok" in out.stderr


def test_ids_are_stable_and_source_overrides(rich, fake, tmp_path):
    collect(rich, fake, tmp_path / "s1")
    first = {r["body"]["sha"]: r["id"] for r in fake.take() if r["kind"] == "git.commit"}
    # a full re-collection (no state) sends the same ids
    collect(rich, fake, tmp_path / "s2")
    second = {r["body"]["sha"]: r["id"] for r in fake.take() if r["kind"] == "git.commit"}
    assert first == second
    # the id is the hash of kind, src and sha (proto/record.c)
    src = os.path.basename(rich.path)  # no origin: the directory's name
    sha, rid = next(iter(first.items()))
    key = b"omni.id/1\x00git.commit\x00" + src.encode() + b"\x00" + msgpack.packb(sha)
    assert hashlib.sha256(key).digest()[:16] == rid
    # --source names the repository instead of its path
    collect(rich, fake, tmp_path / "s3", "--source=github.com/acme/rich")
    records = fake.take()
    assert {r["src"] for r in records} == {"github.com/acme/rich"}
    third = {r["body"]["sha"]: r["id"] for r in records if r["kind"] == "git.commit"}
    assert set(third) == set(first) and not set(third.values()) & set(first.values())


def test_incremental_runs_send_only_new_commits(tmp_path, fake):
    r = Repo(tmp_path / "inc").init()
    for i in range(5):
        r.write("f", f"{i}\n")
        r.commit(f"c{i}")
    r.git("tag", "v0")
    state = tmp_path / "state"
    collect(r, fake, state)
    kinds = by_kind(fake.take())
    assert len(kinds["git.commit"]) == 5
    files = os.listdir(state / "git")
    assert len(files) == 1 and files[0].endswith(".state")

    # nothing new: no commits, but branches and tags again (they move)
    collect(r, fake, state)
    records = fake.take()
    kinds = by_kind(records)
    assert "git.commit" not in kinds
    assert len(kinds["git.branch"]) == 1 and len(kinds["git.tag"]) == 1
    assert records[-1]["body"]["counts"] == {"git.branch": 1, "git.tag": 1}

    # one new commit: exactly one
    r.write("f", "new\n")
    new = r.commit("new")
    collect(r, fake, state)
    commits = by_kind(fake.take())["git.commit"]
    assert [c["body"]["sha"] for c in commits] == [new]
    check_commit(r, commits[0]["body"])

    # a new branch on an old commit, then a commit on it: only that one
    r.git("checkout", "-q", "-b", "topic", "HEAD~3")
    collect(r, fake, state)
    assert "git.commit" not in by_kind(fake.take())
    r.write("g", "topic\n")
    topic = r.commit("topic")
    collect(r, fake, state)
    assert [c["body"]["sha"] for c in by_kind(fake.take())["git.commit"]] == [topic]

    # history rewritten (amend, as after a force push): the new commit only
    r.git("checkout", "-q", "main")
    amended = r.commit("amended", extra=("--amend",))
    collect(r, fake, state)
    assert [c["body"]["sha"] for c in by_kind(fake.take())["git.commit"]] == [amended]

    # an interrupted history of runs: the state file lost -> everything again,
    # with the same ids (idempotent downstream)
    shutil.rmtree(state)
    collect(r, fake, state)
    assert len(by_kind(fake.take())["git.commit"]) == int(r.text("rev-list", "--all", "--count"))


def test_state_only_after_everything_is_acknowledged(tmp_path):
    r = Repo(tmp_path / "ack").init()
    for i in range(3):
        r.write("f", f"{i}\n")
        r.commit(f"c{i}")
    silent = FakeIngestd(silent=True)
    try:
        out = collect(r, silent, tmp_path / "state", "--give-up=1s", "--ack-timeout=300ms",
                      check=False)
    finally:
        silent.close()
    assert out.returncode == 1
    assert not os.path.exists(tmp_path / "state" / "git")  # nothing remembered
    ok = FakeIngestd()
    try:
        collect(r, ok, tmp_path / "state")
        assert len(by_kind(ok.take())["git.commit"]) == 3
    finally:
        ok.close()


def test_unreachable_ingestd_fails_within_give_up(tmp_path):
    r = Repo(tmp_path / "u").init()
    r.write("f", "x\n")
    r.commit("one")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    out = collect(r, f"tcp://127.0.0.1:{port}", tmp_path / "state", "--give-up=2s",
                  "--ack-timeout=500ms", check=False, timeout=30)
    elapsed = time.monotonic() - start
    assert out.returncode == 1, out.stderr
    assert 1.5 <= elapsed < 10, elapsed
    assert f"tcp://127.0.0.1:{port}" in out.stderr
    assert "no acknowledgement from ingestd" in out.stderr
    assert "error: collectord git: the run failed" in out.stderr


@pytest.mark.parametrize("case", ["missing", "not-a-repo", "a-file", "no-argument", "two",
                                  "bad-since", "bad-branch", "bad-flag"])
def test_bad_input_is_a_clear_error(tmp_path, case):
    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "file").write_text("x")
    r = Repo(tmp_path / "ok").init()
    r.commit("one")
    args = {
        "missing": [str(tmp_path / "nope")],
        "not-a-repo": [str(plain)],
        "a-file": [str(tmp_path / "file")],
        "no-argument": [],
        "two": [r.path, r.path],
        "bad-since": ["--since=last tuesday", r.path],
        "bad-branch": ["--branch=nope", r.path],
        "bad-flag": ["--no-such-flag=1", r.path],
    }[case]
    out = subprocess.run([COLLECTORD, "git", "--once", "--intake=tcp://127.0.0.1:1",
                          f"--state-dir={tmp_path}/st", *args],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, (case, out.stderr)
    message = {
        "missing": "No such file or directory",
        "not-a-repo": f"not a git repository: {plain}",
        "a-file": "not a git repository",
        "no-argument": "the repository path is missing",
        "two": "one repository path",
        "bad-since": "collectord.since: bad value \"last tuesday\"",
        "bad-branch": "no branch or ref \"nope\"",
        "bad-flag": "unknown flag --no-such-flag",
    }[case]
    assert message in out.stderr, out.stderr


def test_unknown_mode_and_usage():
    out = subprocess.run([COLLECTORD, "gti"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown mode \"gti\"" in out.stderr and "git" in out.stderr
    out = subprocess.run([COLLECTORD, "git", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for key in ("--intake", "--state-dir", "--branch", "--since", "--max-commits", "--once",
                "--interval", "--give-up", "REPO_PATH"):
        assert key in out.stdout, key


def test_bare_repository_and_shallow_clone(rich, fake, tmp_path):
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", "--no-local", rich.path, str(bare)],
                   check=True)
    collect(str(bare), fake, tmp_path / "s1")
    records = fake.take()
    # named by its origin: a local path stays a path
    check_envelope(records, str(rich.path).rstrip("/"))
    b = Repo(bare)
    got = {r["body"]["sha"]: r["body"] for r in records if r["kind"] == "git.commit"}
    assert set(got) == set(b.text("rev-list", "--all").split())
    for body in got.values():
        check_commit(b, body)

    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth=3", "--no-single-branch",
                    f"file://{rich.path}", str(shallow)], check=True)
    s = Repo(shallow)
    collect(s, fake, tmp_path / "s2")
    got = {r["body"]["sha"]: r["body"] for r in fake.take() if r["kind"] == "git.commit"}
    assert set(got) == set(s.text("rev-list", "--all").split())
    with open(os.path.join(s.git_dir(), "shallow")) as f:
        boundary = set(f.read().split())
    assert boundary and boundary <= set(got)
    for sha, body in got.items():
        # in a shallow clone git itself shows the boundary against the empty tree
        assert body.get("shallow", False) == (sha in boundary and bool(body["parents"]))
        check_commit(s, body)


def test_branch_since_and_max_commits(rich, fake, tmp_path):
    collect(rich, fake, tmp_path / "s1", "--branch=side")
    kinds = by_kind(fake.take())
    assert {c["body"]["sha"] for c in kinds["git.commit"]} == \
        set(rich.text("rev-list", "side").split())
    assert [b["body"]["name"] for b in kinds["git.branch"]] == ["side"]

    collect(rich, fake, tmp_path / "s2", "--branch=side,orphan")
    kinds = by_kind(fake.take())
    assert {c["body"]["sha"] for c in kinds["git.commit"]} == \
        set(rich.text("rev-list", "side", "orphan").split())

    # --since: what git log --since gives (without its stop-at-first-old rule)
    cutoff = rich.clock - 10 * 3600
    collect(rich, fake, tmp_path / "s3", f"--since=@{cutoff}")
    got = {c["body"]["sha"] for c in by_kind(fake.take())["git.commit"]}
    times = dict(l.split() for l in rich.text("log", "--all", "--format=%H %ct").splitlines())
    assert got == {sha for sha, t in times.items() if int(t) >= cutoff} and got

    # --max-commits: the newest N; the state does not move, so the next run
    # sends the same N again
    collect(rich, fake, tmp_path / "s4", "--max-commits=3")
    first = [c["body"]["sha"] for c in by_kind(fake.take())["git.commit"]]
    assert len(first) == 3
    collect(rich, fake, tmp_path / "s4", "--max-commits=3")
    assert [c["body"]["sha"] for c in by_kind(fake.take())["git.commit"]] == first


def test_huge_commit_fits_a_record(tmp_path, fake):
    r = Repo(tmp_path / "huge").init()
    n = 70_000
    stream = [b"commit refs/heads/main\ncommitter C <c@x> 1700000000 +0000\ndata 4\nbig\n"]
    for i in range(n):
        stream.append(b"M 100644 inline dir%d/a-rather-long-file-name-%06d.txt\ndata 2\n%d\n"
                      % (i % 100, i, i % 10))
    stream.append(b"\n")
    # and one file of many lines changed by a second commit
    big = b"".join(b"line %d\n" % i for i in range(200_000))
    stream.append(b"commit refs/heads/main\ncommitter C <c@x> 1700000100 +0000\ndata 5\nlong\n")
    stream.append(b"M 100644 inline big.txt\ndata %d\n%s\n" % (len(big), big))
    r.git("fast-import", "--quiet", input=b"".join(stream))
    collect(r, fake, tmp_path / "state", timeout=300)
    raws = {msgpack.unpackb(raw)["body"]["sha"]: len(raw)
            for raw, rec in zip(fake.raw, fake.records) if rec["kind"] == "git.commit"}
    commits = {c["body"]["sha"]: c["body"] for c in by_kind(fake.take())["git.commit"]}
    first = r.text("rev-list", "--max-parents=0", "HEAD")
    body = commits[first]
    assert body["files_changed"] == n and body["insertions"] == n
    assert body["files_truncated"] is True and 0 < len(body["files"]) < n
    assert raws[first] <= 4 * 1024 * 1024
    assert [f["path"] for f in body["files"]] == \
        [p.decode() for p, _, _ in git_numstat(r, first, EMPTY_TREE)[:len(body["files"])]]
    check_commit(r, commits[r.text("rev-parse", "HEAD")])


def test_interval_repeats_and_sigterm_drains(tmp_path):
    r = Repo(tmp_path / "iv").init()
    fast_history(r, 300)
    # slow ACKs: SIGTERM arrives while batches are in flight
    slow = FakeIngestd(ack_delay=0.2)
    try:
        proc = subprocess.Popen([COLLECTORD, "git", f"--intake={slow.endpoint}",
                                 f"--state-dir={tmp_path}/state", "--once",
                                 "--batch-records=10", "--window=2", "--progress=log",
                                 "--progress-interval=100ms", r.path],
                                stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        while slow.batches < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        records = slow.take()
        assert records[-1]["kind"] == "run.end"
        assert records[-1]["body"]["status"] == "interrupted"
        assert 0 < len(by_kind(records)["git.commit"]) < 300
        assert "event=progress " in err
        assert not os.path.exists(tmp_path / "state" / "git")  # not complete: no state
    finally:
        slow.close()

    # --interval: a second run starts by itself and finds nothing new
    ok = FakeIngestd()
    try:
        proc = subprocess.Popen([COLLECTORD, "git", f"--intake={ok.endpoint}",
                                 f"--state-dir={tmp_path}/state", "--interval=300ms",
                                 "--progress=off", r.path], stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with ok.lock:
                ends = [x for x in ok.records if x["kind"] == "run.end"]
            if len(ends) >= 2:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        records = ok.take()
        runs = [x["run"] for x in records if x["kind"] == "run.start"]
        assert len(runs) >= 2 and len(set(runs)) == len(runs)
        per_run = collections.Counter(x["run"] for x in records if x["kind"] == "git.commit")
        assert per_run[runs[0]] == 300 and per_run[runs[1]] == 0
    finally:
        ok.close()


def test_threads_give_the_same_records(rich, fake, tmp_path):
    results = []
    for threads in (1, 3):
        collect(rich, fake, tmp_path / f"t{threads}", f"--threads={threads}")
        results.append([(r["kind"], r["id"], r["body"]) for r in fake.take()
                        if r["kind"] == "git.commit"])
    assert results[0] == results[1]


# ---------------------------------------------------------------------------
# Through the real pipeline: collectord -> ingestd -> archiverd

PIPELINE = all(os.path.exists(os.path.join(BIN, b)) for b in ("ingestd", "archiverd"))


def _archived_commits(archive_dir):
    from omni import archive_lines
    return [line for line in archive_lines(archive_dir) if line["kind"] == "git.commit"]


def _wait_commits(p, count, timeout=120):
    from omni import wait_until
    return wait_until(lambda: len(_archived_commits(p.archive_dir)) >= count, timeout,
                      f"{count} git.commit lines in the archive")


@pytest.mark.skipif(not PIPELINE, reason="ingestd and archiverd not built")
def test_pipeline_archive_matches_rev_list(rich, pipeline, workdir):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    state = os.path.join(workdir, "state")
    collect(rich, p.intake, state)
    expected = set(rich.text("rev-list", "--all").split())
    _wait_commits(p, len(expected))
    lines = _archived_commits(p.archive_dir)
    assert len(lines) == len(expected)
    assert {line["body"]["sha"] for line in lines} == expected

    # a second run adds none
    collect(rich, p.intake, state)
    from omni import wait_until
    wait_until(lambda: p.ingestd.metrics()["omni_ingestd_records_acked_by_all_total"]
               == p.ingestd.metrics()["omni_ingestd_records_accepted_total"], 30, "drained")
    assert len(_archived_commits(p.archive_dir)) == len(expected)

    # after a new commit exactly one
    rich.git("checkout", "-q", "main")
    rich.write("later.txt", "later\n")
    new = rich.commit("later")
    collect(rich, p.intake, state)
    _wait_commits(p, len(expected) + 1)
    lines = _archived_commits(p.archive_dir)
    assert len(lines) == len(expected) + 1
    assert new in {line["body"]["sha"] for line in lines}


@pytest.mark.skipif(not PIPELINE, reason="ingestd and archiverd not built")
def test_pipeline_ingestd_killed_mid_stream(tmp_path, pipeline, workdir):
    n = 4000
    r = Repo(tmp_path / "long").init()
    fast_history(r, n)
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    p.archiverd().start()
    log = open(os.path.join(workdir, "collectord.log"), "w")
    proc = subprocess.Popen([COLLECTORD, "git", "--once", f"--intake={p.intake}",
                             f"--state-dir={workdir}/state", "--batch-records=20",
                             "--window=4", "--ack-timeout=2s", "--give-up=60s",
                             "--progress=off", "--threads=1", r.path],
                            stdout=log, stderr=log)
    log.close()
    try:
        from omni import wait_until
        wait_until(lambda: p.ingestd.metrics().get("omni_ingestd_records_accepted_total", 0)
                   >= 200, 60, "200 records accepted by ingestd", interval=0.005)
        assert proc.poll() is None, "collectord finished before ingestd was killed"
        p.ingestd.kill9()
        time.sleep(0.5)  # the collector meets a dead intake for a moment
        p.ingestd.start()
        assert proc.wait(timeout=300) == 0, open(os.path.join(workdir, "collectord.log")).read()
        with open(os.path.join(workdir, "collectord.log")) as f:
            text = f.read()
        assert "event=intake.disconnected" in text, text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _wait_commits(p, n, timeout=180)
    lines = _archived_commits(p.archive_dir)
    ids = collections.Counter(line["id"] for line in lines)
    assert not [i for i, c in ids.items() if c > 1], "duplicates in the archive"
    assert {line["body"]["sha"] for line in lines} == set(r.text("rev-list", "--all").split())
    assert len(lines) == n


def _postgres_answers():
    try:
        import psycopg2
        dsn = os.environ.get("OMNI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no server to test with
        return False


@pytest.mark.skipif(not (PIPELINE and os.path.exists(os.path.join(BIN, "relationald"))
                         and _postgres_answers()),
                    reason="ingestd, relationald or PostgreSQL not available")
def test_pipeline_relational_stores_what_git_says(rich, pipeline, workdir, pg_database):
    import psycopg2
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    p.writer("relationald", [f"--dsn={pg_database}"], binary_name="relationald").start()
    collect(rich, p.intake, os.path.join(workdir, "state"))
    expected = rich.text("rev-list", "--all").split()
    conn = psycopg2.connect(pg_database)
    conn.autocommit = True
    cur = conn.cursor()

    def count():
        cur.execute("SELECT count(*) FROM commits")
        return cur.fetchone()[0]

    from omni import wait_until
    wait_until(lambda: count() == len(expected), 60, "every commit in PostgreSQL")
    wait_until(lambda: cur.execute("SELECT count(*) FROM runs WHERE status = 'ok'")
               or cur.fetchone()[0] == 1, 30, "the run row")
    cur.execute("SELECT sha, insertions, deletions, files_changed, author_name, raw IS NOT NULL "
                "FROM commits")
    rows = {r[0]: r[1:] for r in cur.fetchall()}
    assert set(rows) == set(expected)
    for sha in expected:
        f = git_commit(rich, sha)
        base = f["parents"][0] if f["parents"] else EMPTY_TREE
        numstat = git_numstat(rich, sha, base)
        ins, dels, changed, author, has_raw = rows[sha]
        assert (ins, dels, changed) == (sum(n[1] or 0 for n in numstat),
                                        sum(n[2] or 0 for n in numstat), len(numstat))
        assert author == f["author_name"]
        assert has_raw == (f["author_name"].encode() != f["author_name_bytes"]
                           or f["message"].encode() != f["message_bytes"])
        cur.execute("SELECT f.path, f.insertions, f.deletions, f.is_binary FROM commit_files f "
                    "JOIN commits c ON c.id = f.commit_id WHERE c.sha = %s ORDER BY path", (sha,))
        stored = sorted(cur.fetchall())
        want = sorted((path.decode("utf-8", "replace"), i, d, i is None) for path, i, d in numstat)
        assert [(s[0], s[3]) for s in stored] == [(w[0], w[3]) for w in want], sha
        assert all((s[1] or 0, s[2] or 0) == (w[1] or 0, w[2] or 0) for s, w in zip(stored, want))
    cur.execute("SELECT name, target FROM branches")
    assert dict(cur.fetchall()) == dict(line.split() for line in rich.text(
        "for-each-ref", "refs/heads", "--format=%(refname:short) %(objectname)").splitlines())
    cur.execute("SELECT count(*) FROM tags")
    assert cur.fetchone()[0] == len(rich.text("tag", "-l").split())
    conn.close()
