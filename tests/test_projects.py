"""Projects, not paths: source names from the origin remote, projects,
.mailmap, reachability, renames and the views of docs/queries.md, through the
real pipeline (collectord -> ingestd -> relationald -> PostgreSQL) on
generated repositories whose answers git itself gives."""
import collections
import json
import os
import subprocess

from omni import BIN, commit_to, git, init_repo, query, scalar, wait_until

COLLECTORD = os.path.join(BIN, "collectord")
URL = "github.com/acme/widget"
MON = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
DAY = 86400


def start(pipeline, dsn):
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    p.writer("relationald", [f"--dsn={dsn}"]).start()
    return p


def run(p, mode, *args, state="state"):
    cmd = [COLLECTORD, mode, "--once", f"--intake={p.intake}", "--progress=off",
           "--give-up=60s", "--instance=test", f"--state-dir={p.workdir}/{state}", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "GITHUB_", "CI"))}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stderr[-4000:]}"
    return out


def drained(p):
    def done():
        m = p.ingestd.metrics()
        return m.get("omni_ingestd_records_accepted_total", 0) > 0 and \
            m.get("omni_ingestd_records_acked_by_all_total") == \
            m.get("omni_ingestd_records_accepted_total")
    wait_until(done, 120, "every record stored", interval=0.05)


def shortlog(repo):
    """{email: commits} of `git shortlog -sne --all` (the .mailmap applied)."""
    out = git(repo, "shortlog", "-sne", "--all").decode()
    counts = {}
    for line in out.splitlines():
        n, rest = line.strip().split("\t", 1)
        counts[rest[rest.rindex("<") + 1:-1]] = int(n)
    return counts


def history(repo):
    """Two authors over three weeks, the middle one empty."""
    init_repo(repo)
    commit_to(repo, "Ann", "ann@example.org", MON + 3600, "+0000", "one", {"a.txt": "a\n"})
    commit_to(repo, "Bob", "bob@example.org", MON + DAY, "+0100", "two", {"b.txt": "b\nb\n"})
    commit_to(repo, "Ann", "ann@example.org", MON + 14 * DAY, "+0000", "three",
              {"a.txt": "a\nA\n"})


def test_two_clones_and_ci_builds_are_one_project(pipeline, pg_database, workdir):
    upstream = os.path.join(workdir, "upstream")
    history(upstream)
    clones = []
    for name, url in (("one", "https://bot@GitHub.com:443/acme/widget.git"),
                      ("two", "git@github.com:acme/widget")):
        path = os.path.join(workdir, name)
        subprocess.run(["git", "clone", "-q", upstream, path], check=True)
        git(path, "remote", "set-url", "origin", url)
        clones.append(path)
    runs = {"workflow_runs": [
        {"id": 1, "name": "CI", "status": "completed", "conclusion": "success",
         "run_started_at": "2024-01-01T10:00:00Z", "updated_at": "2024-01-01T10:05:00Z",
         "html_url": f"https://{URL}/actions/runs/1",
         "repository": {"html_url": f"https://{URL}", "full_name": "acme/widget"}}]}
    builds = os.path.join(workdir, "runs.json")
    with open(builds, "w") as f:
        json.dump(runs, f)
    p = start(pipeline, pg_database)
    for i, path in enumerate(clones):
        run(p, "git", path, state=f"state{i}")  # two machines: each its own state
    run(p, "builds", "--project=widget", builds)
    drained(p)
    assert [r[0] for r in query(pg_database, "SELECT name FROM sources")] == [URL]
    assert scalar(pg_database, "SELECT count(*) FROM commits") == 3
    got = {r[0]: r[1] for r in query(pg_database,
                                     "SELECT author_email, commits FROM contributors")}
    assert got == shortlog(upstream) == {"ann@example.org": 2, "bob@example.org": 1}
    assert scalar(pg_database, "SELECT count(*) FROM ci_builds b JOIN sources s "
                               "ON s.id = b.source_id WHERE s.name = %s", (URL,)) == 1
    # The builds run named the project; every view has it
    assert query(pg_database, "SELECT source, project FROM source_projects") == [(URL, "widget")]
    assert query(pg_database, "SELECT project, author_email, commits FROM project_contributors "
                              "ORDER BY 2") == [("widget", "ann@example.org", 2),
                                                ("widget", "bob@example.org", 1)]
    assert query(pg_database, "SELECT project, builds, succeeded FROM build_success_rate") == \
        [("widget", 1, 1)]
    # Commits per week: the empty middle week is a zero row
    assert query(pg_database, "SELECT week::text, commits, authors FROM commit_activity_weekly "
                              "ORDER BY week") == [("2024-01-01", 2, 2), ("2024-01-08", 0, 0),
                                                   ("2024-01-15", 1, 1)]


def test_mailmap_joins_two_emails(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "mm")
    history(repo)
    commit_to(repo, "Ann Old", "ann@old.example.org", MON + 15 * DAY, "+0000", "old address",
              {"c.txt": "c\n"})
    commit_to(repo, "Ann", "ann@example.org", MON + 16 * DAY, "+0000", "mailmap",
              {".mailmap": "Ann Author <ann@example.org> <ann@old.example.org>\n"
                           "Ann Author <ann@example.org>\n"})
    p = start(pipeline, pg_database)
    run(p, "git", repo)
    drained(p)
    want = shortlog(repo)
    assert want == {"ann@example.org": 4, "bob@example.org": 1}
    got = {r[0]: (r[1], r[2]) for r in query(
        pg_database, "SELECT author_email, commits, author_name FROM contributors")}
    assert got == {"ann@example.org": (4, "Ann Author"), "bob@example.org": (1, "Bob")}
    # the raw columns are what git stores
    raw = collections.Counter(r[0] for r in query(pg_database, "SELECT author_email FROM commits"))
    assert raw == {"ann@example.org": 3, "ann@old.example.org": 1, "bob@example.org": 1}
    assert scalar(pg_database, "SELECT count(*) FROM commits WHERE author_email_mailmap "
                               "= 'ann@example.org' AND author_email = 'ann@old.example.org'") == 1


def test_amended_and_force_moved_commits_are_flagged(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "moved")
    history(repo)
    git(repo, "checkout", "-q", "-b", "topic")
    topic = commit_to(repo, "Cy", "cy@example.org", MON + 15 * DAY, "+0000", "topic",
                      {"t.txt": "t\n"})
    git(repo, "checkout", "-q", "main")
    tip = git(repo, "rev-parse", "HEAD").decode().strip()
    p = start(pipeline, pg_database)
    run(p, "git", repo)
    drained(p)
    assert scalar(pg_database, "SELECT count(*) FROM commits WHERE reachable") == 4
    # amend main's tip; move topic back onto main
    git(repo, "commit", "-q", "--amend", "-m", "three, amended",
        env={"GIT_COMMITTER_DATE": f"{MON + 20 * DAY} +0000"})
    git(repo, "branch", "-f", "topic", "main")
    run(p, "git", repo)
    drained(p)
    flagged = {r[0] for r in query(pg_database, "SELECT sha FROM commits WHERE NOT reachable")}
    assert flagged == {tip, topic}
    assert scalar(pg_database, "SELECT count(*) FROM commits") == 5  # kept
    listed = len(git(repo, "rev-list", "--all").split())
    assert scalar(pg_database, "SELECT sum(commits) FROM contributors") == listed == 3
    assert scalar(pg_database, "SELECT sum(commits) FROM commit_activity_daily") == 3
    assert "cy@example.org" not in {r[0] for r in query(
        pg_database, "SELECT author_email FROM contributors")}
    # the branch comes back: its commit and its parent (main's old tip) are
    # reachable again
    git(repo, "branch", "-f", "topic", topic)
    run(p, "git", repo)
    drained(p)
    assert scalar(pg_database, "SELECT count(*) FROM commits WHERE NOT reachable") == 0
    assert scalar(pg_database, "SELECT sum(commits) FROM contributors") == 5


def numstat(repo, sha):
    out = git(repo, "diff", "--numstat", "--no-renames", f"{sha}^", sha).decode()
    rows = [line.split("\t") for line in out.splitlines()]
    lines = [(0 if r[0] == "-" else int(r[0]), 0 if r[1] == "-" else int(r[1])) for r in rows]
    return sum(i for i, _ in lines), sum(d for _, d in lines), len(rows)


def test_rename_with_edits_file_churn_follows(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "ren")
    init_repo(repo)
    text = "".join(f"line {i}\n" for i in range(20))
    commit_to(repo, "Ann", "ann@example.org", MON, "+0000", "add", {"old.txt": text})
    git(repo, "mv", "old.txt", "new.txt")
    renamed = commit_to(repo, "Ann", "ann@example.org", MON + DAY, "+0000", "move and edit",
                        {"new.txt": text.replace("line 3\n", "line three\n")})
    commit_to(repo, "Bob", "bob@example.org", MON + 2 * DAY, "+0000", "edit",
              {"new.txt": text.replace("line 3\n", "line three\n") + "more\n",
               "logo.bin": b"\x00\x01binary"})
    p = start(pipeline, pg_database)
    run(p, "git", repo)
    drained(p)
    # git pairs them at its default similarity
    status = git(repo, "diff", "-M", "--name-status", f"{renamed}^", renamed).decode()
    assert status.startswith("R") and status.split()[1:] == ["old.txt", "new.txt"]
    assert query(pg_database, "SELECT f.path, f.old_path FROM commit_files f JOIN commits c "
                              "ON c.id = f.commit_id WHERE c.sha = %s ORDER BY 1", (renamed,)) == \
        [("new.txt", "old.txt"), ("old.txt", None)]
    for sha in git(repo, "rev-list", "HEAD", "^HEAD~2").decode().split():
        assert query(pg_database, "SELECT insertions, deletions, files_changed FROM commits "
                                  "WHERE sha = %s", (sha,)) == [numstat(repo, sha)]
    # binary files: NULL lines
    assert query(pg_database, "SELECT insertions, deletions, is_binary FROM commit_files "
                              "WHERE path = 'logo.bin'") == [(None, None, True)]
    churn = {r[0]: r[1:] for r in query(
        pg_database, "SELECT path, commits, insertions, deletions, binary_changes, former_paths "
                     "FROM file_churn")}
    # old.txt: +20 (add), -20 (deleted by the move); new.txt: +20 (move), +1 (edit)
    assert churn == {"new.txt": (3, 41, 20, 0, ["old.txt"]), "logo.bin": (1, 0, 0, 1, None)}


def test_tag_time_zone_and_code_size(pipeline, pg_database, workdir):
    repo = os.path.join(workdir, "tz")
    init_repo(repo)
    commit_to(repo, "Ann", "ann@example.org", MON, "+0000", "c",
              {"a.c": "int a;\n\n/* c */\nint b;\n", "b.py": "x = 1\n"})
    git(repo, "tag", "-a", "-m", "release", "v1", env={"GIT_COMMITTER_DATE": f"{MON} -0730"})
    p = start(pipeline, pg_database)
    run(p, "git", repo)
    run(p, "code", repo)
    drained(p)
    assert query(pg_database, "SELECT name, tagger_tz FROM tags") == [("v1", -450)]
    assert query(pg_database, "SELECT language, files, code, comment, blank, at "
                              "= to_timestamp(%s) FROM code_size ORDER BY 1", (MON,)) == \
        [("C", 1, 2, 1, 1, True), ("Python", 1, 1, 0, 0, True)]
