"""Fixtures for the integration tests. Every daemon runs as its own process
over TCP on free ports; databases are real servers, created per test."""
import os
import shutil
import tempfile

import pytest

from omni import Pipeline, scratch_database, stop_pipelines

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
    stop_pipelines(made)


@pytest.fixture
def pg_database():
    """A fresh PostgreSQL database (dsn), dropped after the test. The server is
    OMNI_TEST_PG_DSN's (any database on it) or the local one at 127.0.0.1:5432."""
    with scratch_database() as dsn:
        yield dsn
