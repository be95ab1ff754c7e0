"""Parallel window fetching: same warehouse as a sequential sync, within the shared rate budget."""

import logging
import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

from support import Warehouse, assert_matches_ground_truth, make_simulator


def snapshot(wh: Warehouse):
    return wh.query(
        "SELECT id, status, result, runtime_ms, created_at, updated_at FROM deck.task_runs"
        " ORDER BY id"
    )


def test_parallel_and_sequential_syncs_give_identical_warehouses(tmp_path: Path):
    sim = make_simulator(seed=31, runs=2_500, history_days=20)
    try:
        sequential = Warehouse(tmp_path / "seq.duckdb", tmp_path / "dlt-seq", sim)
        parallel = Warehouse(tmp_path / "par.duckdb", tmp_path / "dlt-par", sim)
        sequential.sync(max_workers=1, pages_per_window=3)
        result = parallel.sync(max_workers=6, pages_per_window=3)
        assert result.new_runs == 2_500
        assert snapshot(sequential) == snapshot(parallel)
        assert_matches_ground_truth(parallel, sim.runs())
    finally:
        sim.stop()


def test_workers_share_one_rate_limiter_across_loads_and_earn_no_429(tmp_path: Path):
    """One limiter for the whole sync: the loads of a backfill, and the windows listed ahead
    while dlt loads each of them, all count against the same budget."""
    sim = make_simulator(seed=32, runs=3_000, history_days=10, latency=0.02,
                         rate_limit=(15, 1.0))
    try:
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        result = wh.sync(max_workers=6, pages_per_window=3, rate_limit_requests=15,
                         rate_limit_period_s=1.0, max_runs_per_load=900)
        assert result.loads >= 3
        assert sim.rate_limited_count == 0
        assert result.retries == 0
        stamps = sorted(r.at for r in sim.requests)
        busiest = max(
            sum(1 for t in stamps[i:] if t - start < 1.0) for i, start in enumerate(stamps)
        )
        assert busiest <= 15
        assert_matches_ground_truth(wh, sim.runs())
    finally:
        sim.stop()


def test_a_rate_limited_server_is_survived_when_the_budget_is_set_too_high(tmp_path: Path):
    sim = make_simulator(seed=33, runs=1_500, history_days=10, rate_limit=(10, 1.0))
    try:
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        result = wh.sync(max_workers=4, pages_per_window=3, rate_limit_requests=200,
                         backoff_base_s=0.2, backoff_cap_s=1.0)
        assert sim.rate_limited_count > 0 and result.retries >= sim.rate_limited_count
        assert_matches_ground_truth(wh, sim.runs())
    finally:
        sim.stop()


def test_windows_listed_ahead_while_a_load_is_loaded_are_not_listed_again(tmp_path: Path):
    """While dlt normalizes and loads one load, the next load's windows are listed; the next
    load takes those listings instead of sending the same requests again."""
    sim = make_simulator(seed=34, runs=3_000, history_days=10)
    marks: dict[str, list[int]] = {"committing": [], "committed": []}

    class Marks(logging.Handler):
        """Notes how many requests Deck had when the sync said a load's walk ended and when
        the load committed; at the first, waits until a request listed ahead has arrived."""

        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if message.startswith("Committing after"):
                seen = len(sim.requests)
                marks["committing"].append(seen)
                deadline = 600  # a sync point, not a timing assertion: fails only if it hangs
                while len(sim.requests) == seen and deadline:
                    threading.Event().wait(0.1)
                    deadline -= 1
            elif message.startswith("Load ") and "committed" in message:
                marks["committed"].append(len(sim.requests))

    handler = Marks()
    logging.getLogger("deck").addHandler(handler)
    try:
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        result = wh.sync(pages_per_window=2, max_runs_per_load=600)
    finally:
        logging.getLogger("deck").removeHandler(handler)
        sim.stop()

    assert result.loads >= 4
    # requests arrived between the end of a load's walk and its commit: listed ahead
    assert all(b > a for a, b in zip(marks["committing"], marks["committed"], strict=True))
    sent = Counter(
        (r.path, tuple(sorted((k, tuple(v)) for k, v in r.params.items()))) for r in sim.requests
    )
    assert [request for request, n in sent.items() if n > 1] == []
    assert_matches_ground_truth(wh, sim.runs())


def test_a_backfill_rechecks_open_runs_once_per_sync_not_once_per_load(simulator, warehouse):
    """The runs a backfill's first load saw open are not listed again by each later load minutes
    after (a few % of every run, per load); the next sync re-checks them."""
    simulator.advance(3600 * 24 * 10, new_runs=1_500)
    opened = simulator.add_runs(
        5, status="running", created_at=simulator.now - timedelta(days=9, hours=23)
    )

    result = warehouse.sync(max_runs_per_load=300, pages_per_window=2)

    assert result.loads >= 4
    open_listings = [r for r in simulator.requests if "status" in r.params]
    by_id = [r for r in simulator.requests if "/task-runs/" in r.path]
    assert (open_listings, by_id, result.open_rechecked) == ([], [], 0)
    assert_matches_ground_truth(warehouse, simulator.runs())

    simulator.update_run(opened[0], status="completed", result="success", runtime_ms=7)
    simulator.clear_requests()
    warehouse.sync()

    assert [r.path.rsplit("/", 1)[1] for r in simulator.requests if "/task-runs/" in r.path] == [
        opened[0]
    ]
    assert_matches_ground_truth(warehouse, simulator.runs())
