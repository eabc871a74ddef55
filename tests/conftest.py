"""Fixtures for the integration tests. Every daemon runs as its own process
over TCP on free ports; databases are real servers, created per test."""
import os
import shutil
import tempfile
import uuid

import pytest

from omni import Pipeline

# Under `make test` (tools/with-test-services.sh sets OMNI_REQUIRE_SERVICES)
# every capability a test needs is installed or started by the project, so a
# test that skips has lost its capability: that fails the run instead of
# passing quietly. Run by hand without it, a missing server still skips.
REQUIRE = os.environ.get("OMNI_REQUIRE_SERVICES", "") not in ("", "0")


def _skip_to_failure(report, what):
    if REQUIRE and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"{what} skipped under OMNI_REQUIRE_SERVICES: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _skip_to_failure(outcome.get_result(), item.nodeid)


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _skip_to_failure(outcome.get_result(), collector.nodeid)


@pytest.fixture
def workdir():
    path = tempfile.mkdtemp(prefix="omni-test-")
    yield path
    # OMNI_KEEP_WORKDIR=1 keeps the daemons' logs and stores for a look
    if not os.environ.get("OMNI_KEEP_WORKDIR"):
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
        if p.nats:
            p.nats.stop()
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
