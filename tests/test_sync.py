"""How a sync walks Deck's pages and keeps one row per run at its latest state.

Scenarios about what the rows hold (final state weeks later, child rows replaced, BIGINT and
timestamptz types, newer API fields, drifting output shapes) run on every destination, DuckDB
included, in tests/test_destinations.py.
"""

from datetime import timedelta
from pathlib import Path

import pytest
from deck_simulator import DeckSimulator
from support import Warehouse, assert_matches_ground_truth, make_simulator, ts


def list_requests(sim: DeckSimulator):
    return [r for r in sim.requests if r.path.endswith("/task-runs")]


def test_first_sync_loads_every_run_across_many_pages(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=1_250)

    result = warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())
    assert len(warehouse.runs()) == 1_250
    assert result.pages >= 13
    # pages of Deck's maximum, and the search for where history starts (one record each)
    limits = {tuple(r.params.get("limit", ())) for r in list_requests(simulator)}
    assert limits == {("100",), ("1",)}


def test_both_sort_orders_give_the_ground_truth_and_identical_tables(tmp_path: Path):
    """A backfill and an incremental sync under each sort order Deck may use."""
    contents = []
    for order in ("newest_first", "oldest_first"):
        sim = make_simulator(seed=5, runs=900, history_days=20, order=order)
        try:
            wh = Warehouse(tmp_path / f"{order}.duckdb", tmp_path / f"dlt-{order}", sim)
            wh.sync(pages_per_window=2)
            sim.advance(3600 * 24 * 10, new_runs=300)
            wh.sync(pages_per_window=2)
            assert_matches_ground_truth(wh, sim.runs())
            contents.append(
                wh.query(
                    "SELECT id, status, result, runtime_ms, updated_at FROM deck.task_runs"
                    " ORDER BY id"
                )
            )
        finally:
            sim.stop()
    assert contents[0] == contents[1]
    assert len(contents[0]) == 1_200


def test_equal_created_at_across_a_page_boundary_loses_nothing(simulator, warehouse):
    simulator.advance(60, new_runs=30)
    same = simulator.now - timedelta(seconds=10)
    ids = simulator.add_runs(250, created_at=same)

    warehouse.sync()

    loaded = warehouse.runs()
    assert set(ids) <= set(loaded)
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_runs_created_on_the_watermark_after_a_sync_are_loaded_next_time(simulator, warehouse):
    simulator.advance(600, new_runs=120)
    warehouse.sync()
    newest = max(ts(r["created_at"]) for r in simulator.runs())

    late = simulator.add_runs(3, created_at=newest)
    result = warehouse.sync()

    assert set(late) <= set(warehouse.runs())
    assert result.new_runs == 3
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_second_sync_fetches_only_the_new_pages(simulator, warehouse):
    simulator.advance(3600 * 24 * 5, new_runs=1_000)
    warehouse.sync()
    simulator.advance(3600, new_runs=150)
    simulator.clear_requests()

    result = warehouse.sync()

    new_listing = [r for r in list_requests(simulator) if "status" not in r.params]
    assert len(new_listing) == 2, [r.params for r in new_listing]
    assert all("created_after" in r.params for r in new_listing)
    assert result.new_runs == 150
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_no_change_sync_makes_a_handful_of_requests(simulator, warehouse):
    simulator.advance(3600 * 24 * 3, new_runs=600)
    warehouse.sync()
    simulator.clear_requests()

    result = warehouse.sync()

    assert result.new_runs == 0 and result.updated_runs == 0
    assert len(simulator.requests) <= 3, [(r.path, r.params) for r in simulator.requests]
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_open_runs_are_rechecked_without_rereading_history(simulator, warehouse):
    simulator.advance(3600 * 24 * 30, new_runs=2_000)
    opened = simulator.add_runs(
        3, status="running", created_at=simulator.now - timedelta(days=12)
    )
    warehouse.sync()
    simulator.update_run(opened[0], status="failed", result="failure", runtime_ms=5,
                         errors=[{"type": "task", "code": "timeout", "message": "Timed out",
                                  "field": None}])
    simulator.clear_requests()

    warehouse.sync()

    by_id = [r for r in simulator.requests if "/task-runs/" in r.path]
    assert [r.path.rsplit("/", 1)[1] for r in by_id] == [opened[0]]
    assert len(simulator.requests) <= 5
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_repeated_syncs_leave_no_duplicate_ids(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=400)
    for _ in range(4):
        warehouse.sync()
        simulator.advance(1800, new_runs=40)
    warehouse.sync()
    counts = warehouse.query("SELECT count(*) AS n, count(DISTINCT id) AS d FROM deck.task_runs")
    assert counts[0]["n"] == counts[0]["d"] == len(simulator.runs())
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_unknown_status_is_stored_as_sent_and_kept_open(simulator, warehouse):
    [run_id] = simulator.add_runs(1, status="pending")
    warehouse.sync()
    assert warehouse.runs()[run_id]["status"] == "pending"

    simulator.advance(3600 * 24)
    simulator.update_run(run_id, status="completed", result="success", runtime_ms=10)
    warehouse.sync()
    assert warehouse.runs()[run_id]["status"] == "completed"


def test_a_backfill_commits_its_progress_window_by_window(simulator, warehouse):
    simulator.advance(3600 * 24 * 10, new_runs=1_500)

    result = warehouse.sync(max_runs_per_load=300, pages_per_window=2)

    assert result.loads >= 4
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_start_and_end_date_bound_what_is_loaded(simulator, warehouse):
    simulator.advance(3600 * 24 * 10, new_runs=500)
    truth = simulator.runs()
    stamps = sorted(ts(r["created_at"]) for r in truth)
    start, end = stamps[100], stamps[400]

    warehouse.sync(start_date=start.isoformat(), end_date=end.isoformat())

    expected = [r for r in truth if start <= ts(r["created_at"]) < end]
    assert_matches_ground_truth(warehouse, expected)
    sent = list_requests(simulator)[0].params
    assert "created_after" in sent and "created_before" in sent


def test_moving_start_date_earlier_backfills_the_gap(simulator, warehouse):
    simulator.advance(3600 * 24 * 10, new_runs=400)
    truth = simulator.runs()
    middle = sorted(ts(r["created_at"]) for r in truth)[200]
    warehouse.sync(start_date=middle.isoformat())
    assert len(warehouse.runs()) == 200

    warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_deleted_warehouse_is_loaded_again_from_scratch(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=300)
    warehouse.sync()
    warehouse.path.unlink()

    result = warehouse.sync()

    assert result.new_runs == 300
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_runs_arriving_between_the_loads_of_a_long_backfill_are_all_loaded(simulator, warehouse):
    # Each round commits one load (100 to 200 runs: loads end on listings' edges) while the
    # backfill is still unfinished, and 100 runs arrive after it; the last sync loads the rest
    # in several loads. Each load costs most of a second of dlt's own work.
    simulator.advance(3600 * 24 * 10, new_runs=500)
    for _ in range(2):  # one committed load at a time, with more runs arriving in between
        first = warehouse.sync(max_runs_per_load=100, pages_per_window=2, max_loads=1)
        assert first.loads == 1 and len(warehouse.runs()) < len(simulator.runs())  # unfinished
        simulator.advance(900, new_runs=100)

    warehouse.sync(max_runs_per_load=100, pages_per_window=2)

    assert_matches_ground_truth(warehouse, simulator.runs())


BACKFILL_RUNS = 4_000  # in pages of 50, seven loads at 500 per load


@pytest.mark.parametrize("max_runs_per_load", [500, 50_000])
def test_a_backfill_costs_requests_in_proportion_to_its_pages_at_any_load_size(
    tmp_path: Path, max_runs_per_load: int
):
    sim = make_simulator(seed=3, runs=BACKFILL_RUNS, history_days=60)
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)

    result = warehouse.sync(max_runs_per_load=max_runs_per_load, page_size=50)

    assert len(warehouse.runs()) == BACKFILL_RUNS
    listings = list_requests(sim)
    pages = BACKFILL_RUNS // 50
    # the requests that find the start of history (and the opening page) bound no start
    probes = sum("created_after" not in r.params for r in listings)
    # the listing engine issue's bound: each window's last page is partly empty, a load boundary
    # costs none (83 requests for 80 pages at either load size, beside 25 of the search)
    assert len(listings) <= 1.05 * pages + probes, (len(listings), result.loads, probes)
