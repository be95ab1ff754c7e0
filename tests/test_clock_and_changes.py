"""Deck's clock, late-visible runs and silent changes: no timing of Deck's may lose a run.

Each scenario runs the sync over real HTTP against the simulator and compares the warehouse with
the simulator's ground truth.
"""

from datetime import datetime, timedelta, timezone

from support import assert_matches_ground_truth

FAILED_WITH_TIMEOUT = {
    "status": "failed",
    "result": "failure",
    "runtime_ms": 1_800_000,
    "errors": [{"type": "task", "code": "timeout", "message": "Timed out", "field": None}],
}


def request_timestamps(simulator) -> list[datetime]:
    """Every created_after/created_before the server received."""
    stamps = []
    for request in simulator.requests:
        for name in ("created_after", "created_before"):
            for value in request.params.get(name, []):
                stamps.append(datetime.fromisoformat(value.replace("Z", "+00:00")))
    return stamps


def test_a_run_dated_a_year_ahead_does_not_hide_the_runs_created_after_it(simulator, warehouse):
    simulator.advance(3600 * 24 * 3, new_runs=300)
    simulator.add_runs(1, created_at=simulator.now + timedelta(days=365), status="completed")
    warehouse.sync()

    simulator.advance(3600 * 24, new_runs=120)
    result = warehouse.sync()

    assert result.new_runs == 120
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_run_dated_2099_neither_breaks_the_window_cutter_nor_reaches_a_request(
    simulator, warehouse
):
    simulator.advance(3600 * 24 * 20, new_runs=1_500)
    simulator.add_runs(1, created_at="2099-06-01T00:00:00Z", status="completed")

    warehouse.sync(pages_per_window=2, max_runs_per_load=400)
    simulator.advance(3600 * 24, new_runs=80)
    warehouse.sync(pages_per_window=2)

    stamps = request_timestamps(simulator)
    assert stamps and all(
        datetime(2000, 1, 1, tzinfo=timezone.utc) <= s <= datetime(2100, 1, 1, tzinfo=timezone.utc)
        for s in stamps
    ), sorted(stamps)[:3] + sorted(stamps)[-3:]
    assert all(r.status == 200 for r in simulator.requests)
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_without_a_date_header_the_watermark_stops_at_this_machines_clock(simulator, warehouse):
    simulator.date_header = ""
    simulator.advance(3600 * 24, new_runs=50)
    simulator.add_runs(1, created_at=datetime.now(timezone.utc) + timedelta(days=30),
                       status="completed")
    warehouse.sync()

    simulator.advance(3600, new_runs=20)
    warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_run_that_becomes_visible_late_is_loaded_by_the_next_sync(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=200)
    warehouse.sync()
    # Committed after that sync, but created 9 minutes before the newest run it loaded.
    newest = max(datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
                 for r in simulator.runs())
    [late] = simulator.add_runs(1, created_at=newest - timedelta(minutes=9), status="completed")

    result = warehouse.sync()

    assert result.new_runs == 1 and result.updated_runs == 0
    assert late in warehouse.runs()
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_longer_lookback_finds_runs_that_become_visible_later_still(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=200)
    warehouse.sync(lookback_s=3600)
    newest = max(datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
                 for r in simulator.runs())
    [late] = simulator.add_runs(1, created_at=newest - timedelta(minutes=50), status="completed")

    warehouse.sync(lookback_s=3600)

    assert late in warehouse.runs()
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_rereading_the_lookback_reloads_no_unchanged_run(simulator, warehouse):
    # 300 runs in the last 10 minutes: the lookback re-reads them all on every sync.
    simulator.advance(3600 * 24, new_runs=100)
    simulator.advance(600, new_runs=300)
    warehouse.sync()
    loads_before = warehouse.query("SELECT count(DISTINCT _dlt_load_id) AS n FROM deck.task_runs")
    simulator.clear_requests()

    result = warehouse.sync()

    assert (result.new_runs, result.updated_runs) == (0, 0)
    pages = [r for r in simulator.requests if r.path.endswith("/task-runs")]
    assert len(pages) <= 5, [(r.path, r.params) for r in simulator.requests]
    loads_after = warehouse.query("SELECT count(DISTINCT _dlt_load_id) AS n FROM deck.task_runs")
    assert loads_after == loads_before
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_an_open_run_that_fails_without_a_new_updated_at_is_reloaded(simulator, warehouse):
    simulator.advance(3600 * 24 * 2, new_runs=150)
    [run_id] = simulator.add_runs(1, status="running", created_at=simulator.now
                                  - timedelta(days=1))
    warehouse.sync()
    kept = simulator.run(run_id)["updated_at"]

    simulator.advance(3600)
    simulator.update_run(run_id, updated_at=kept, **FAILED_WITH_TIMEOUT)
    result = warehouse.sync()

    assert result.updated_runs == 1
    row = warehouse.runs()[run_id]
    assert (row["status"], row["result"]) == ("failed", "failure")
    assert warehouse.errors()[run_id] == [("task", "timeout", "Timed out", None)]
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_new_run_that_changes_without_a_new_updated_at_is_reloaded(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=40)
    [run_id] = simulator.add_runs(1, status="running")
    warehouse.sync()

    simulator.update_run(run_id, updated_at=simulator.run(run_id)["updated_at"],
                         **FAILED_WITH_TIMEOUT)
    warehouse.sync()

    assert warehouse.runs()[run_id]["status"] == "failed"
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_multi_load_backfill_counts_each_run_once(simulator, warehouse):
    # Five loads of 400 over windows of 300: four load boundaries, each inside a window or on
    # its edge, where a run could be counted twice (3,000 runs made eight loads, no other case).
    simulator.advance(3600 * 24 * 10, new_runs=1_800)

    result = warehouse.sync(max_runs_per_load=400, pages_per_window=3)

    assert result.loads > 3
    assert (result.new_runs, result.updated_runs) == (1_800, 0)
    assert_matches_ground_truth(warehouse, simulator.runs())
