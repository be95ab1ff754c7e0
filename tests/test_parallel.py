"""Parallel window fetching: same warehouse as a sequential sync, within the shared rate budget."""

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


def test_workers_share_one_rate_limiter_and_earn_no_429(tmp_path: Path):
    sim = make_simulator(seed=32, runs=3_000, history_days=10, latency=0.02,
                         rate_limit=(15, 1.0))
    try:
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        result = wh.sync(max_workers=6, pages_per_window=3, rate_limit_requests=15,
                         rate_limit_period_s=1.0)
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
