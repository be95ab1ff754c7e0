"""The core scenarios against every reading of Deck's contract that its documentation leaves open.

Deck's reference says only "created before this timestamp (ISO 8601)": a bound may be read to
the microsecond, truncated to the millisecond or refused when finer; a run printed `.123` may be
`.123456` inside Deck, one printed to the second may carry milliseconds; bounds may be inclusive;
timestamps may end in `+00:00` or drop a zero fraction. The simulator serves each reading
(`deck_simulator.READINGS`), and every scenario here must load exactly Deck's runs (and events)
under each of them, in both sort orders where order matters, and end. Small data and small loads
(`page_size` 20) so that every scenario cuts windows many times.
"""

from datetime import timedelta

import pytest
from deck_simulator import READINGS, DeckSimulator
from support import (
    Warehouse,
    assert_events_match,
    assert_matches_ground_truth,
    make_simulator,
    ts,
)

ORDERS = ("newest_first", "oldest_first")
SMALL = {"page_size": 20, "pages_per_window": 3}
GUARD_LOADS = 40  # a sync that reaches this many loads is taken as one that would never end


@pytest.fixture(params=sorted(READINGS))
def reading(request: pytest.FixtureRequest) -> str:
    return request.param


def deck(reading: str, order: str = "newest_first", **kwargs) -> DeckSimulator:
    return make_simulator(seed=5, runs=0, contract=reading, order=order, **kwargs)


def warehouse_of(tmp_path, simulator: DeckSimulator, events: bool = False) -> Warehouse:
    return Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", simulator, with_events=events)


def sync_to_the_end(warehouse: Warehouse, ended: tuple[str, ...] = (), **options):
    """One sync that ends on its own with nothing missing: neither stopped by the guard nor by
    the runner's rule against a load that changes nothing (unless `ended` says why)."""
    result = warehouse.sync(max_loads=GUARD_LOADS, **options)
    assert result.loads < GUARD_LOADS, f"the sync did not end after {result.loads} loads"
    assert result.not_relisted == 0
    assert result.ended_early == list(ended)
    return result


@pytest.mark.parametrize("order", ORDERS)
def test_a_backfill_over_small_loads_through_a_tie_larger_than_a_window_loads_every_run_once(
    tmp_path, reading, order
):
    """Windows of 60 records (3 pages of 20) are cut many times, once inside 160 runs sharing
    one millisecond, and the loads of 100 runs end on those cuts (a load takes the window of the
    tie whole, with what else that window holds: the runs around it make three loads at least)."""
    sim = deck(reading, order)
    sim.advance(3600 * 24 * 2, new_runs=300)
    tie_at = sim.now - timedelta(hours=30)
    sim.add_runs(160, created_at=tie_at + timedelta(milliseconds=7), status="completed")
    sim.advance(60, new_runs=10)
    warehouse = warehouse_of(tmp_path, sim)

    result = sync_to_the_end(warehouse, max_runs_per_load=100, **SMALL)

    assert result.loads >= 3
    assert_matches_ground_truth(warehouse, sim.runs())


def test_a_sync_stopped_after_a_commit_resumes_exactly(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 24, new_runs=300)
    warehouse = warehouse_of(tmp_path, sim)
    first = warehouse.sync(max_loads=2, max_runs_per_load=100, **SMALL)
    assert first.loads == 2 and len(warehouse.runs()) < 300  # stopped half-way, committed
    sim.advance(120, new_runs=30)

    sync_to_the_end(warehouse, max_runs_per_load=100, **SMALL)

    assert_matches_ground_truth(warehouse, sim.runs())


def test_an_incremental_sync_finds_new_runs_and_one_visible_late(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 24, new_runs=150)
    warehouse = warehouse_of(tmp_path, sim)
    sync_to_the_end(warehouse, **SMALL)
    newest = max(ts(run["created_at"]) for run in sim.runs())
    sim.add_runs(1, created_at=newest - timedelta(minutes=9), status="completed")
    sim.advance(1800, new_runs=90)

    result = sync_to_the_end(warehouse, **SMALL)

    assert result.new_runs >= 91
    assert_matches_ground_truth(warehouse, sim.runs())


def test_an_events_backfill_over_small_loads_loads_every_event_once(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 24 * 2, new_runs=60)
    warehouse = warehouse_of(tmp_path, sim, events=True)

    sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)

    assert_matches_ground_truth(warehouse, sim.runs())
    assert_events_match(warehouse, sim.events())


def test_a_quarantined_record_in_its_neighbours_millisecond_is_found_again(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 4, new_runs=100)
    [neighbour] = sim.add_runs(1, created_at=sim.now - timedelta(hours=2), status="completed")
    at = sim.run(neighbour)["created_at"]
    raw = sim.add_raw_record({"status": "completed"}, created_at=ts(at))  # no id: quarantined
    sim.advance(3600, new_runs=20)  # past the lookback: only the retry reaches it again
    warehouse = warehouse_of(tmp_path, sim)
    first = sync_to_the_end(warehouse, **SMALL)
    assert first.quarantined == 1
    sim.replace_raw_record(raw, {**sim.run(neighbour), "id": "trun_fixed"})

    result = sync_to_the_end(warehouse, **SMALL)

    assert result.quarantined == 0
    assert "trun_fixed" in warehouse.runs()


def test_a_lookback_holding_more_than_a_load_ends_every_sync_with_or_without_new_runs(
    tmp_path, reading
):
    sim = deck(reading)
    sim.advance(480, new_runs=160)  # 160 runs in the last 8 minutes: all inside the lookback
    warehouse = warehouse_of(tmp_path, sim)
    sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)
    sim.advance(60, new_runs=10)

    with_new = sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)
    sim.advance(60)
    # nothing new: the top, its parts, the one re-list of the top, its parts; not ended early
    # (which would leave the plan for the next sync, to end early the same way, for ever)
    nothing_new = sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)

    assert with_new.loads <= 3 and nothing_new.loads <= 4
    assert_matches_ground_truth(warehouse, sim.runs())


def test_a_tie_larger_than_a_load_at_the_newest_millisecond_ends_the_sync(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 6, new_runs=160)
    sim.add_runs(150, created_at=sim.now, status="completed")
    warehouse = warehouse_of(tmp_path, sim)

    sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)  # a multi-load plan, re-listed
    result = sync_to_the_end(warehouse, max_runs_per_load=120, **SMALL)

    assert result.loads <= 2
    assert_matches_ground_truth(warehouse, sim.runs())


def test_events_answering_404_end_the_sync_with_the_runs_loaded(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600, new_runs=60)
    sim.inject("404", times=100, path="/events")
    warehouse = warehouse_of(tmp_path, sim, events=True)

    result = sync_to_the_end(
        warehouse, ended=("Deck has no GET /events for this key: events were not synced",), **SMALL
    )

    assert result.loads == 1
    assert_matches_ground_truth(warehouse, sim.runs())


def test_a_host_with_a_skewed_clock_hides_no_run(tmp_path, reading):
    sim = deck(reading)
    sim.advance(3600 * 24, new_runs=100)
    warehouse = warehouse_of(tmp_path, sim)
    sync_to_the_end(warehouse, **SMALL)
    # one Deck host two hours ahead: its Date header, and a run it dated by its own clock
    sim.add_runs(1, created_at=sim.now + timedelta(hours=2), status="completed")
    sim.clear_requests()
    sim.skew_dates(7200, requests={2})
    sync_to_the_end(warehouse, **SMALL)
    sim.skew_dates(None)
    # the next sync comes when the skewed run's date minus the lookback lies behind Deck's clock:
    # had that run moved the watermark, the runs created until then would never be listed
    sim.advance(3600 * 2 - 300, new_runs=100)

    sync_to_the_end(warehouse, **SMALL)

    assert_matches_ground_truth(warehouse, sim.runs())
