"""Per-project access in PostgreSQL: relationald's and metricsd's rows, stored
by the real daemons fed through ingestd, read by login roles that were given
access with omnictl grant (docs/operations.md, "Per-project access").

Roles belong to the whole cluster while each test has its own database: every
role made here has a unique name and is dropped at the end. The shared
omni_reader and omni_viewer roles stay (other databases of the cluster may use
them); a private server checks that their creation survives several databases
migrated at once."""
import os
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import msgpack
import psycopg2
import pytest

from omni import (ROOT, binary, make_record, make_record_metric, private_pg,  # noqa: F401
                  query, record_id, scalar, send, synthetic_commits)

ACME = "github.com/acme/%"
SOURCES = ["github.com/acme/api", "github.com/acme/web", "github.com/other/tool"]
COMMITS_PER_SOURCE = 1500
MON = 1_704_067_200  # Monday 2024-01-01 00:00 UTC
DAY = 86400

# Every relation a viewer may read, and how the owner picks a source's rows of
# it (x is the relation's row; %(p)s the pattern).
BY_ID = "x.source_id IN (SELECT id FROM sources WHERE name LIKE %(p)s)"
RELATIONS = {
    # relationald: tables
    "sources": "x.name LIKE %(p)s",
    "runs": BY_ID, "commits": BY_ID, "branches": BY_ID, "tags": BY_ID, "ci_builds": BY_ID,
    "ci_tests": BY_ID, "code_stats": BY_ID,
    "commit_files": "x.commit_id IN (SELECT c.id FROM commits c JOIN sources s "
                    "ON s.id = c.source_id WHERE s.name LIKE %(p)s)",
    "rejected_records": "x.source LIKE %(p)s",
    # relationald: views
    "contributors": "x.source LIKE %(p)s", "commit_activity_daily": "x.source LIKE %(p)s",
    "commit_activity_weekly": "x.source LIKE %(p)s", "build_success_rate": "x.source LIKE %(p)s",
    "slowest_tests": "x.source LIKE %(p)s", "flakiest_tests": "x.source LIKE %(p)s",
    # relationald 003: projects
    "projects": BY_ID, "source_projects": "x.source LIKE %(p)s",
    "commits_canonical": "x.source LIKE %(p)s", "project_contributors": "x.project LIKE %(p)s",
    "file_churn": "x.source LIKE %(p)s", "code_size": "x.source LIKE %(p)s",
    # relationald 004: stored analysis results (omni-report --intake)
    "analysis_summaries": BY_ID, "analysis_trend": "x.source LIKE %(p)s",
    # metricsd: the points and its views (metricsd 6: the series)
    "points": "x.source LIKE %(p)s", "series": "x.source LIKE %(p)s",
    "commits_per_day": "x.repository LIKE %(p)s", "commits_per_week": "x.repository LIKE %(p)s",
    "build_success_weekly": "x.source LIKE %(p)s", "test_duration_weekly": "x.source LIKE %(p)s",
    "host_per_minute": "x.host LIKE %(p)s",
    # relationald 8: totals per source kept as rows are written (omni-report)
    "commit_author_totals": BY_ID, "commit_path_totals": BY_ID, "ci_build_totals": BY_ID,
    "ci_test_totals": BY_ID,
    # relationald 10: the test totals' tables (ci_test_totals is their view)
    "ci_test_cases": BY_ID, "ci_test_runs": BY_ID,
    # metricsd 7: host figures of closed days, and the days pending
    "host_daily": "x.source LIKE %(p)s", "host_daily_pending": "x.source LIKE %(p)s",
}


# ---------------------------------------------------------------------------
# Helpers


def as_role(dsn, role):
    """The dsn with `role` as the user (the test server trusts local logins)."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


def digest(dsn, relation, where="true", params=None):
    """(rows, md5 of the rows as text in order) of a relation, as dsn's user."""
    return tuple(query(dsn, f"SELECT count(*), md5(coalesce(string_agg(x::text, '|' "
                            f"ORDER BY x::text), '')) FROM {relation} x WHERE {where}",
                       params)[0])


def omnictl(*args):
    out = subprocess.run([binary("omnictl"), *args], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stdout, out.stderr


class Roles:
    """Uniquely named roles of the cluster, dropped at the end."""

    def __init__(self, admin_dsn):
        self.admin = admin_dsn
        self.tag = uuid.uuid4().hex[:8]
        self.made = []

    def exec(self, sql):
        conn = psycopg2.connect(self.admin)
        try:
            conn.autocommit = True
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def make(self, name, login=True):
        role = f"omni_t_{name}_{self.tag}"
        self.exec(f'CREATE ROLE "{role}" {"LOGIN" if login else "NOLOGIN"}')
        self.made.append(role)
        return role

    def drop(self):
        for role in reversed(self.made):
            self.exec(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def roles(pg_database):
    r = Roles(pg_database)
    yield r
    r.drop()


def source_frames(src, index):
    """Every kind relationald and metricsd store, for one source."""
    run_ts = (MON + 30 * DAY) * 10**9 + index
    # the project is named after the source, so a pattern on sources
    # picks the same projects
    frames = [make_record("run.start", src, {"collector": "git", "source": src,
                                             "project": f"{src}-project",
                                             "started": run_ts}, run_ts)]
    frames += [f for _, f in synthetic_commits(COMMITS_PER_SOURCE, src=src, files=2)]
    # PostgreSQL refuses a time zone that does not fit its smallint column
    bad = {"sha": "f" * 40, "parents": [], "author_name": "X", "author_email": "x@example.org",
           "author_time": MON, "author_tz": 100000, "committer_name": "X",
           "committer_email": "x@example.org", "committer_time": MON, "committer_tz": 0,
           "message": "refused", "files_changed": 0, "insertions": 0, "deletions": 0}
    frames.append(make_record("git.commit", src, bad, MON * 10**9))
    frames.append(make_record("git.branch", src, {"name": "main", "target": "a" * 40,
                                                  "head": True}, run_ts))
    frames.append(make_record("git.tag", src, {"name": "v1", "target": "a" * 40,
                                               "annotated": False}, run_ts))
    for n in range(4):
        started = (MON + n * DAY) * 10**9
        frames.append(make_record("ci.build", src, {
            "pipeline": "build", "build_id": str(n), "status": ("success", "failure")[n % 2],
            "started": started, "duration": 60.0 + n}, started))
        for name, status, flaky in (("t_ok", "passed", None), ("t_flaky", "passed", n == 2),
                                    ("t_flip", ("passed", "failed")[n % 2], None)):
            body = {"suite": "unit", "class": "S", "name": name, "status": status,
                    "duration": 1.0 + n, "pipeline": "build", "build_id": str(n)}
            if flaky is not None:
                body["flaky"] = flaky
            frames.append(make_record("ci.test", src, body, started + 1))
    frames.append(make_record("code.stats", src, {"rev": "a" * 40, "language": "C", "files": 3,
                                                  "blank": 1, "comment": 2, "code": 30}, run_ts))
    # a report's figures for the source (omni-report --intake)
    figures = {"day": "2024-02-01", "commits": COMMITS_PER_SOURCE, "authors": 1, "files": 2,
               "builds": 4, "success_rate": 0.5, "test_runs": 12, "tests": 3, "bus_factor": 1}
    frames.append(msgpack.packb({
        "v": 1, "id": record_id("analysis.summary", src, ("2024-02-01", None, None)),
        "kind": "analysis.summary", "src": src, "col": "omni-report", "run": "report-1",
        "ts": run_ts, "body": figures}, use_bin_type=True))
    for k, name in enumerate(("host.cpu.user", "host.mem.used", "host.load.1")):
        frames.append(make_record_metric(src, (MON + 60 * k) * 10**9, name, float(k + index)))
    frames.append(make_record("run.end", src, {"collector": "git", "source": src, "status": "ok",
                                               "counts": {}, "started": run_ts, "finished": run_ts + 1,
                                               "duration": 0.001}, run_ts))
    return frames


def store_everything(pipeline, dsn):
    """relationald and metricsd (started together on one database, so both
    run the shared access SQL at once) store every source's records."""
    p = pipeline(writers=("relational", "metrics"))
    p.ingestd.start()
    daemons = [p.writer(name, [f"--dsn={dsn}"]).start(wait=False)
               for name in ("relationald", "metricsd")]
    for d in daemons:
        d.wait_ready()
    frames = [f for i, src in enumerate(SOURCES) for f in source_frames(src, i)]
    send(p.intake, frames)
    kinds = [msgpack.unpackb(f)["kind"] for f in frames]
    # ingestd routes each kind to the writers that store it (proto/kinds.c)
    p.wait_acked("relational", sum(k != "metric" for k in kinds), 300)
    p.wait_acked("metrics", sum(k in ("metric", "git.commit", "ci.build", "ci.test")
                                for k in kinds), 300)
    # metricsd's host days: the closed ones computed (as metricsd does when
    # due), and a day still open for every source (as the current day is)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    try:
        conn.cursor().execute("SELECT metricsd_host_daily_refresh (1000)")
        conn.cursor().execute("SELECT metricsd_host_daily_mark (%s, ARRAY[current_date, "
                              "current_date, current_date])", (SOURCES,))
    finally:
        conn.close()
    return p


# ---------------------------------------------------------------------------
# Tests


def test_roles_see_only_their_sources_in_every_table_and_view(pipeline, pg_database, roles):
    store_everything(pipeline, pg_database)
    dsn_flag = f"--dsn={pg_database}"

    # Every relation of a source's data is covered, and no materialized view
    # (which row-level security cannot protect) exists
    granted = {r[0] for r in query(pg_database, """
        SELECT table_name FROM information_schema.role_table_grants
        WHERE grantee = 'omni_viewer' AND privilege_type = 'SELECT'""")}
    assert granted == set(RELATIONS)
    assert scalar(pg_database, "SELECT count(*) FROM pg_matviews") == 0
    views = {r[0] for r in query(pg_database, """
        SELECT table_name FROM information_schema.views WHERE table_schema = 'public'""")}
    assert views <= set(RELATIONS)

    team = roles.make("acme")
    group = roles.make("acme_group", login=False)
    member = roles.make("member")
    roles.exec(f'GRANT "{group}" TO "{member}"')
    stranger = roles.make("stranger")
    reader = roles.make("reader")
    roles.exec(f'GRANT omni_reader TO "{reader}"')

    rc, out, err = omnictl("grant", team, ACME, dsn_flag)
    assert rc == 0, err
    assert f"granted {team} the sources LIKE '{ACME}'" in out and "2 of 3 sources" in out
    assert omnictl("grant", group, ACME, dsn_flag)[0] == 0
    # A member of omni_viewer with no grant: the state after a revoke
    roles.exec(f'GRANT omni_viewer TO "{stranger}"')

    for relation, where in RELATIONS.items():
        everything = digest(pg_database, relation)
        acme = digest(pg_database, relation, where % {"p": "%s"}, (ACME,))
        assert 0 < acme[0] < everything[0], (relation, acme, everything)
        assert digest(as_role(pg_database, team), relation) == acme, relation
        assert digest(as_role(pg_database, member), relation) == acme, relation
        assert digest(as_role(pg_database, stranger), relation)[0] == 0, relation
        assert digest(as_role(pg_database, reader), relation) == everything, relation

    # No way around the policies: partitions, grants, another role's patterns
    part = scalar(pg_database, "SELECT part FROM metricsd_partitions () LIMIT 1")
    for sql in (f"SELECT count(*) FROM {part}", "SELECT count(*) FROM omni_access_grants",
                "SELECT count(*) FROM schema_migrations"):
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            query(as_role(pg_database, team), sql)
    assert scalar(as_role(pg_database, stranger),
                  "SELECT omni_visible_patterns (%s)", (team,)) == []
    assert scalar(as_role(pg_database, team),
                  "SELECT omni_visible_patterns (current_user)") == [ACME]

    # A granted role dropped since: the others are not disturbed, and grants shows it
    gone = roles.make("gone")
    assert omnictl("grant", gone, "github.com/other/%", dsn_flag)[0] == 0
    roles.exec(f'DROP ROLE "{gone}"')
    assert digest(as_role(pg_database, team), "commits")[0] == 2 * COMMITS_PER_SOURCE
    rc, out, _ = omnictl("grants", dsn_flag)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ROLE", "PATTERN", "GRANTED"]
    assert any(line.split()[:2] == [team, ACME] for line in lines)
    assert any(line.split()[:2] == [group, ACME] for line in lines)
    assert any(gone in line and "no such role" in line for line in lines)

    # Revoked: the role sees nothing; the group's members still see theirs
    rc, out, err = omnictl("revoke", team, ACME, dsn_flag)
    assert rc == 0, err
    assert f"revoked {team}" in out and "0 grants left" in out
    for relation in RELATIONS:
        assert digest(as_role(pg_database, team), relation)[0] == 0, relation
    assert digest(as_role(pg_database, member), "points")[0] > 0
    assert omnictl("revoke", group, ACME, dsn_flag)[0] == 0
    assert digest(as_role(pg_database, member), "contributors")[0] == 0


def test_policies_are_not_pathological(pipeline, pg_database, roles):
    """A few thousand rows: the granted role's queries take about the owner's
    time (the policy's patterns and sources are computed once per query)."""
    store_everything(pipeline, pg_database)
    team = roles.make("acme")
    assert omnictl("grant", team, ACME, f"--dsn={pg_database}")[0] == 0
    team_dsn = as_role(pg_database, team)
    report = []
    for sql, owner_sql in (
            ("SELECT count(*) FROM commit_files",
             "SELECT count(*) FROM commit_files f JOIN commits c ON c.id = f.commit_id "
             "JOIN sources s ON s.id = c.source_id WHERE s.name LIKE 'github.com/acme/%'"),
            ("SELECT count(*) FROM commits",
             "SELECT count(*) FROM commits c JOIN sources s ON s.id = c.source_id "
             "WHERE s.name LIKE 'github.com/acme/%'"),
            ("SELECT sum(commits) FROM contributors",
             "SELECT sum(commits) FROM contributors WHERE source LIKE 'github.com/acme/%'"),
            ("SELECT count(*) FROM points",
             "SELECT count(*) FROM points WHERE source LIKE 'github.com/acme/%'"),
            ("SELECT sum(commits) FROM commits_per_day",
             "SELECT sum(commits) FROM commits_per_day WHERE repository LIKE "
             "'github.com/acme/%'")):
        timings = {}
        for who, dsn, text in (("owner", pg_database, owner_sql), ("team", team_dsn, sql)):
            conn = psycopg2.connect(dsn)
            try:
                cur = conn.cursor()
                cur.execute(text)  # warm
                result = cur.fetchone()[0]
                start = time.perf_counter()
                for _ in range(5):
                    cur.execute(text)
                    cur.fetchone()
                timings[who] = ((time.perf_counter() - start) / 5, result)
            finally:
                conn.close()
        assert timings["team"][1] == timings["owner"][1], sql
        report.append(f"{sql}: owner {timings['owner'][0] * 1000:.1f} ms, "
                      f"team {timings['team'][0] * 1000:.1f} ms")
        # Generous: the shared machine is noisy; pathological would be 100x
        assert timings["team"][0] < 5 * timings["owner"][0] + 0.05, report[-1]
    print("\n" + "\n".join(report))


def test_omnictl_grant_errors(pipeline, pg_database, roles):
    dsn_flag = f"--dsn={pg_database}"
    # A database the migrations have not run on yet
    rc, _, err = omnictl("grants", dsn_flag)
    assert rc == 1
    assert "no per-project access tables" in err and "start relationald or metricsd" in err

    p = pipeline(writers=("relational",))
    p.writer("relationald", [dsn_flag]).start()
    team = roles.make("acme")
    for args, code, words in (
            (("grant", team, ""), 2, "empty pattern"),
            (("grant", team, "github.com/acme\\"), 2, "lone backslash"),
            (("grant", team, "a\tb"), 2, "control character"),
            (("grant", "omni_viewer", ACME), 2, "shared roles"),
            (("grant", team), 2, "two arguments"),
            (("grants", "extra"), 2, "no argument"),
            (("grant", f"omni_t_nobody_{roles.tag}", ACME), 1, "no such role"),
            (("revoke", team, ACME), 1, "has no grant"),
    ):
        rc, out, err = omnictl(*args, dsn_flag)
        assert rc == code and words in err, (args, rc, err)
        assert not out
    rc, out, _ = omnictl("grants", dsn_flag)
    assert rc == 0 and "no grants in database" in out
    # Granting twice is one grant
    assert omnictl("grant", team, ACME, dsn_flag)[0] == 0
    rc, out, _ = omnictl("grant", team, ACME, dsn_flag)
    assert rc == 0 and "already granted" in out
    assert scalar(pg_database, "SELECT count(*) FROM omni_access_grants") == 1
    # No server there
    rc, _, err = omnictl("grants", "--dsn=postgresql://postgres@127.0.0.1:1/none")
    assert rc == 1 and "cannot connect to PostgreSQL" in err


def test_shared_roles_made_once_by_databases_migrated_at_once(private_pg):
    """omni_reader and omni_viewer are the cluster's: four databases running
    the access SQL at the same moment on a fresh server all succeed."""
    with open(os.path.join(ROOT, "pg", "sql", "access.sql")) as f:
        sql = f.read()
    names = [f"db{i}" for i in range(4)]
    admin = psycopg2.connect(private_pg.dsn)
    admin.autocommit = True
    for name in names:
        admin.cursor().execute(f"CREATE DATABASE {name}")
    admin.close()
    conns = [psycopg2.connect(private_pg.dsn.rsplit("/", 1)[0] + "/" + name) for name in names]
    barrier = threading.Barrier(len(conns))
    errors = []

    def migrate(conn):
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            barrier.wait()
            cur.execute(sql)
            conn.commit()
        except Exception as e:  # reported below, with the others
            errors.append(repr(e))

    threads = [threading.Thread(target=migrate, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in conns:
        c.close()
    assert errors == []
    assert query(private_pg.dsn, "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname "
                                 "LIKE 'omni_%' ORDER BY 1") == \
        [("omni_reader", False), ("omni_viewer", False)]
    for name in names:
        dsn = private_pg.dsn.rsplit("/", 1)[0] + "/" + name
        assert scalar(dsn, "SELECT omni_visible_patterns (current_user)") == ["%"]
