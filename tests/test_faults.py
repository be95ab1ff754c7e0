"""Transient faults are retried within a budget; the warehouse is exact afterwards."""

import logging
import re
import socket
import time
from email.utils import formatdate

import pytest
from deck.api.session import RetryPolicy
from deck.core.errors import DeckTransientError
from dlt.pipeline.exceptions import PipelineStepFailed
from support import FAST_RETRIES, Warehouse, assert_matches_ground_truth


def retry_warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and r.name == "deck" and "retry" in r.getMessage()]


def cause_of(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


@pytest.fixture
def populated(simulator):
    simulator.advance(3600 * 24 * 2, new_runs=450)
    return simulator


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "drop", "truncate", "non_json"])
def test_transient_fault_during_pagination_is_retried(populated, warehouse, caplog, kind):
    populated.inject(kind, times=2, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    result = warehouse.sync()

    assert result.retries == 2
    assert len(retry_warnings(caplog)) == 2
    assert populated.pending_faults() == 0
    assert_matches_ground_truth(warehouse, populated.runs())


def test_429_without_retry_after_backs_off_exponentially(populated, warehouse, caplog):
    populated.inject("429", times=3, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync(backoff_base_s=0.05, backoff_cap_s=1.0)

    waits = [float(re.search(r"in ([\d.]+) s$", m).group(1)) for m in retry_warnings(caplog)]
    assert len(waits) == 3
    for attempt, wait in enumerate(waits, start=1):
        base = 0.05 * 2 ** (attempt - 1)
        assert base <= wait <= base * 1.25 + 0.01, waits
    assert "HTTP 429" in retry_warnings(caplog)[0]
    assert_matches_ground_truth(warehouse, populated.runs())


def test_429_retry_after_seconds_is_honoured(populated, warehouse, caplog):
    populated.inject("429", retry_after="1", path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync()

    assert re.search(r"HTTP 429 .*retry 1 of 7 in 1\.00 s$", retry_warnings(caplog)[0])
    listing = [r for r in populated.requests if r.path.endswith("/task-runs")]
    assert [r.status for r in listing[:2]] == [429, 200]
    assert_matches_ground_truth(warehouse, populated.runs())


def test_429_retry_after_zero_waits_a_little_instead_of_hot_looping(populated, warehouse, caplog):
    populated.inject("429", retry_after="0", times=2, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync()

    assert [m.endswith("in 0.25 s") for m in retry_warnings(caplog)] == [True, True]
    listing = [r for r in populated.requests if r.path.endswith("/task-runs")]
    assert [r.status for r in listing[:3]] == [429, 429, 200]
    assert_matches_ground_truth(warehouse, populated.runs())


def test_429_retry_after_http_date_is_honoured(populated, warehouse, caplog):
    # The exact arithmetic is unit-tested against a frozen clock (test_http_units); here the
    # header must reach the policy: a date is honoured (at least the 0.25 s floor, at most its
    # 3 s), where the fast backoff alone would wait 0.01-0.06 s.
    populated.inject("429", retry_after=formatdate(time.time() + 3, usegmt=True), path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync()

    wait = float(re.search(r"in ([\d.]+) s$", retry_warnings(caplog)[0]).group(1))
    assert 0.25 <= wait <= 3.0
    assert_matches_ground_truth(warehouse, populated.runs())


def test_a_server_that_never_answers_is_a_timeout_then_a_retry(populated, warehouse, caplog):
    populated.inject("hang", delay=0, path="/task-runs")  # until the simulator stops
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync(read_timeout_s=0.5)

    assert "ReadTimeout" in retry_warnings(caplog)[0]
    assert_matches_ground_truth(warehouse, populated.runs())


def test_slow_answers_within_the_timeout_are_simply_waited_for(populated, warehouse, caplog):
    populated.inject("slow", delay=0.3, times=3, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    result = warehouse.sync()

    assert result.retries == 0
    assert_matches_ground_truth(warehouse, populated.runs())


def test_exhausted_retry_budget_fails_clearly_with_the_last_request_id(populated, warehouse):
    populated.inject("503", times=10)

    with pytest.raises(PipelineStepFailed) as info:
        warehouse.sync(request_max_attempts=3)

    error = cause_of(info.value)
    assert isinstance(error, DeckTransientError)
    last_503 = [r for r in populated.requests if r.status == 503][-1]
    assert last_503 is not None
    assert re.fullmatch(
        r"Deck API kept failing for GET /v2/test: 3 attempts, the last one got HTTP 503"
        r" \(.+\)\. This is usually temporary \(rate limit or an outage\): run the sync again"
        r" later; nothing was lost, it resumes where the last successful load stopped\."
        r" \(request_id req_[0-9a-f]+\)",
        str(error),
    )
    assert "task_runs" not in Warehouse.tables(warehouse) if warehouse.path.exists() else True


def test_connection_refused_is_retried_then_fails_clearly(tmp_path, simulator):
    # Bound but never listening: connections are refused, and no other process (another xdist
    # worker's simulator) can take the port while the sync tries it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", simulator)
        with pytest.raises(PipelineStepFailed) as info:
            wh.sync(base_url=f"http://127.0.0.1:{port}/v2", request_max_attempts=2)
    message = str(cause_of(info.value))
    assert message.startswith("Deck API kept failing for GET /v2/test: 2 attempts, the last one"
                              " got ConnectionError")


def test_failed_sync_then_rerun_leaves_an_exact_warehouse(populated, warehouse):
    warehouse.sync()
    populated.advance(3600 * 6, new_runs=300)
    populated.inject("500", times=4, path="/task-runs")
    with pytest.raises(PipelineStepFailed):
        warehouse.sync(request_max_attempts=2)

    warehouse.sync()

    assert_matches_ground_truth(warehouse, populated.runs())


@pytest.mark.unit
def test_default_backoff_starts_at_one_second_doubles_and_caps_at_thirty():
    policy = RetryPolicy()
    for attempt, base in [(1, 1), (2, 2), (3, 4), (5, 16), (6, 30), (9, 30)]:
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert min(waits) >= base and max(waits) <= min(30, base * 1.25)


@pytest.mark.unit
def test_timeouts_are_always_set():
    policy = RetryPolicy()
    assert policy.connect_timeout_s > 0 and policy.read_timeout_s > 0
    assert FAST_RETRIES["backoff_base_s"] < policy.backoff_base_s
