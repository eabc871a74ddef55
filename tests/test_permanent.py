"""Permanent errors are said as such: a database or role that does not exist
is logged once at error with a hint, /health answers 503 with the reason,
the writer keeps asking at its backoff ceiling and stores everything once
an operator fixes it; `create_database` makes the database itself. A writer
that ingestd does not know is told so in its /health, and the two logs say
it once, not once a second."""
import os
import re
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg2

from omni import pg_admin_dsn, scalar, send, synthetic_commits, wait_until


def admin_exec(sql):
    conn = psycopg2.connect(pg_admin_dsn())
    conn.autocommit = True
    conn.cursor().execute(sql)
    conn.close()


def dsn_for(name, user=None):
    parts = urlsplit(pg_admin_dsn())
    netloc = parts.netloc
    if user:
        netloc = user + "@" + netloc.split("@", 1)[-1]
    return urlunsplit(parts._replace(path="/" + name, netloc=netloc))


def lines(daemon, event):
    return [l for l in daemon.log().splitlines() if f"event={event}" in l]


def test_missing_database_then_created_by_the_operator(pipeline):
    name = "omni_test_missing_" + uuid.uuid4().hex[:10]
    p = pipeline(writers=("relational",))
    p.ingestd.start()
    rel = p.writer("relationald", [f"--dsn={dsn_for(name)}", "--retry-max=1s"])
    try:
        rel.start()   # starts: a database that is not there yet is not a start-up error
        status, text = rel.health()
        assert status == 503, text
        assert f'database "{name}" does not exist' in text and "create_database" in text, text
        send(p.intake, [f for _, f in synthetic_commits(300, src="acme")])
        wait_until(lambda: lines(rel, "store.refused"), 30,
                   "the writer to log the refusal as permanent")
        assert "level=error" in lines(rel, "store.refused")[0]
        refused = lines(rel, "pg.refused")
        assert len(refused) == 1 and "level=error" in refused[0] and "hint:" in refused[0], \
            rel.log()
        assert p.acked("relational") == 0
        # The operator creates it: stored without a restart, nothing lost
        admin_exec(f'CREATE DATABASE "{name}"')
        p.wait_acked("relational", 300, timeout=60)
        assert scalar(dsn_for(name), "SELECT count(*) FROM commits") == 300
        wait_until(lambda: rel.health()[0] == 200, 30, "relationald healthy again")
        assert len(lines(rel, "pg.refused")) == 1
    finally:
        p.stop()
        admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_create_database_and_metricsd(pipeline):
    name = "omni_test_created_" + uuid.uuid4().hex[:10]
    p = pipeline(writers=("relational", "metrics"))
    p.ingestd.start()
    try:
        rel = p.writer("relationald", [f"--dsn={dsn_for(name)}", "--create-database"]).start()
        met = p.writer("metricsd", [f"--dsn={dsn_for(name)}", "--create-database"]).start()
        send(p.intake, [f for _, f in synthetic_commits(200, src="acme")])
        p.wait_acked("relational", 200, timeout=60)
        p.wait_acked("metrics", 200, timeout=60)
        assert scalar(dsn_for(name), "SELECT count(*) FROM commits") == 200
        assert scalar(dsn_for(name), "SELECT count(*) FROM points WHERE name = 'git.commits'") \
            == 200
        # One of them made it (the other found it made, or made it first)
        assert lines(rel, "pg.database_created") or lines(met, "pg.database_created")
    finally:
        p.stop()
        admin_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_missing_role_and_metricsd_missing_database(pipeline):
    role = "omni_no_such_role_" + uuid.uuid4().hex[:8]
    name = "omni_test_missing_" + uuid.uuid4().hex[:10]
    p = pipeline(writers=("relational", "metrics"))
    p.ingestd.start()
    rel = p.writer("relationald", [f"--dsn={dsn_for('postgres', user=role)}"])
    met = p.writer("metricsd", [f"--dsn={dsn_for(name)}"])
    try:
        rel.start()
        met.start()
        status, text = rel.health()
        assert status == 503 and f'role "{role}" does not exist' in text \
            and "create the role" in text, text
        status, text = met.health()
        assert status == 503 and f'database "{name}" does not exist' in text, text
        for d in (rel, met):
            assert len(lines(d, "pg.refused")) == 1, d.log()
    finally:
        p.stop()


def test_unknown_writer_said_once_and_in_health(pipeline, pg_database):
    p = pipeline(writers=("archive",))
    p.ingestd.start()
    met = p.writer("metricsd", [f"--dsn={pg_database}"])
    try:
        met.start()
        wait_until(lambda: 'writer "metrics" is not configured in ingestd.writers'
                   in met.health()[1], 30, "metricsd's /health to say why")
        assert met.health()[0] == 503
        # It says HELLO every second; over a few seconds each log has one line
        time.sleep(4)
        unknown = lines(p.ingestd, "delivery.unknown_writer")
        assert len(unknown) == 1 and "configured=archive" in unknown[0] \
            and "hint=" in unknown[0], p.ingestd.log()
        assert len(lines(met, "delivery.reset")) == 1, met.log()
    finally:
        p.stop()
