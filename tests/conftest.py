"""Fixtures for the integration tests. Every daemon runs as its own process
over TCP on free ports; databases are real servers, created per test."""
import os
import shutil
import tempfile
import uuid

import pytest

from omni import Pipeline


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="omni-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pipeline(workdir):
    """A Pipeline object; the test starts what it needs, everything is stopped after."""
    made = []

    def make(**kwargs):
        p = Pipeline(workdir, **kwargs)
        made.append(p)
        return p

    yield make
    failures = []
    for p in made:
        for d in p.daemons:
            if d.running():
                try:
                    d.stop()
                except AssertionError as e:
                    failures.append(str(e))
    if failures:
        pytest.fail("\n".join(failures))


def _pg_admin_dsn():
    return os.environ.get("OMNI_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database (dsn), dropped after the test. The server is
    OMNI_TEST_PG_DSN's (any database on it) or the local one at 127.0.0.1:5432."""
    import psycopg2
    admin = _pg_admin_dsn()
    name = "omni_test_" + uuid.uuid4().hex[:12]
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(admin)
    dsn = urlunsplit(parts._replace(path="/" + name))
    yield dsn
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()
