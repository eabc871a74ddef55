"""Fixtures for the integration tests. Every daemon runs as its own process
over TCP on free ports; databases are real servers, created per test."""
import fcntl
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


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "alone: holds the machine by itself while it runs (it asserts a time bound)")


def _lock(path, how):
    """flock on a file of the checkout: nothing to clean up, released if the worker dies;
    two runs in one checkout share it, which only serialises their `alone` tests."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, how)
    return fd


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Under pytest-xdist, a test marked `alone` runs while no other test does: its time
    bound is the product's, not that of two tests sharing two cores and one FerretDB.
    Every test holds a lock shared, an `alone` one holds it exclusive; a
    turnstile taken first keeps the other workers from starving the exclusive one."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    here = os.path.dirname(os.path.abspath(__file__))
    turnstile = _lock(here, fcntl.LOCK_EX)
    try:
        held = _lock(os.path.join(here, "conftest.py"),
                     fcntl.LOCK_EX if item.get_closest_marker("alone") else fcntl.LOCK_SH)
    finally:
        os.close(turnstile)
    try:
        yield
    finally:
        os.close(held)


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
