"""Fixtures and hooks only; the helpers they use live in tests/support/.

`simulator` and `warehouse` are per test. `postgres_server` is one PostgreSQL server per session
(under pytest-xdist: per worker process), each test taking a fresh database of its own.
`first_demo` is the one `--demo` run of the session, shared by every xdist worker
(support.shared): the CLI's and the notebooks' tests read it, or copy it first.
"""

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deck_simulator import DeckSimulator
from hypothesis import settings as hypothesis_settings
from support import Warehouse, make_simulator
from support.cli import run_cli
from support.postgres import PostgresServer, PostgresUnavailable, require_psycopg2
from support.shared import shared

# Property tests (tests/test_properties_*.py): the same examples on every run, so CI is
# deterministic and a failure reproduces; HYPOTHESIS_PROFILE=dev searches more, at random.
hypothesis_settings.register_profile(
    "ci", derandomize=True, database=None, max_examples=40, deadline=None, print_blob=True
)
hypothesis_settings.register_profile("dev", max_examples=1000, deadline=None, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def simulator() -> Iterator[DeckSimulator]:
    sim = make_simulator(seed=11, runs=0)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def warehouse(tmp_path: Path, simulator: DeckSimulator) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb", tmp_path / "dlt", simulator)


@pytest.fixture(scope="session")
def first_demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess]:
    """A checkout after its first `--demo` run (as a user runs it: support.cli), and that run's
    result; built once per session. Tests only read it (or copy it first)."""

    def build(checkout: Path) -> list:
        done = run_cli(checkout, "--demo")
        return [done.returncode, done.stdout, done.stderr]

    checkout, (code, stdout, stderr) = shared(tmp_path_factory, "first-demo", build)
    return checkout, subprocess.CompletedProcess(["--demo"], code, stdout, stderr)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; a missing installation fails, never skips."""
    try:
        require_psycopg2()
        server = PostgresServer.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests cannot run: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# pytest-xdist's `--dist load` hands tests out in collection order, so a long test collected
# last keeps one worker busy after the others ran out. The files holding the longest single
# tests (15-25 s each on a quiet 2-core machine, build/suite-costs) go first and the unit tests
# (milliseconds each) last, where they fill the workers' ends.
LONGEST_FIRST = (
    "test_events.py", "test_soak.py", "test_destinations.py", "test_crash.py",
    "test_shared_warehouse.py", "test_memory.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("unit"):
            return 2
        return 0 if item.path.name in LONGEST_FIRST else 1

    items.sort(key=rank)  # stable: each file's tests keep their order


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """In CI (CI=true) a skipped test is a failure: CI installs everything every test needs, so
    a skip there means a test silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
