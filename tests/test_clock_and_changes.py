"""Deck's clock, late-visible runs and silent changes: no timing of Deck's may lose a run.

Each scenario runs the sync over real HTTP against the simulator and compares the warehouse with
the simulator's ground truth.
"""

import json
import re
from datetime import datetime, timedelta, timezone

from deck.core.windows import format_timestamp
from support import assert_events_match, assert_matches_ground_truth

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


# ---- a wrong Date header costs no re-list (issue 22, item 7) ------------------------------------

NINETEEN_NINETY_NINE = datetime(1999, 6, 1, tzinfo=timezone.utc)
WRONG_HEADER = (
    r", and [0-9.]+ (years|days|h) behind this machine's clock: the header is wrong \(a host's"
    r" clock, or a stale cache in front of Deck\), so it is not taken for Deck's clock and"
    r" nothing is listed again\. With no other answer to go by, this machine's clock \+ 5\.0 min"
    r" bounds the watermark, as without a Date header\. \(Said once per sync\.\)"
)


def requests_received(simulator) -> list[tuple[str, list]]:
    """What the server received (path and query), in a comparable order."""
    return sorted((r.path, sorted(r.params.items())) for r in simulator.requests)


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]


def synced_with_events(simulator, warehouse):
    """A history of runs and events, synced; then the requests of a no-change sync."""
    warehouse.with_events = True
    simulator.advance(3600 * 24 * 3, new_runs=300)
    warehouse.sync()
    simulator.clear_requests()
    warehouse.sync()
    baseline = requests_received(simulator)
    simulator.clear_requests()
    return baseline


def test_a_date_in_1999_on_every_answer_costs_a_no_change_sync_nothing_more(
    simulator, warehouse, caplog
):
    baseline = synced_with_events(simulator, warehouse)
    simulator.skew_dates((NINETEEN_NINETY_NINE - simulator.now).total_seconds())

    for _ in range(2):  # the second sync under the wrong clock costs no re-list either
        caplog.clear()
        warehouse.sync()

        assert requests_received(simulator) == baseline
        [warning] = warnings(caplog)
        assert re.fullmatch(
            r"Deck answered GET /v2/test with a Date header of 1999-06-01T00:00:00\+00:00,"
            r" outside the years 2000-2100" + WRONG_HEADER, warning
        ), warning
        simulator.clear_requests()
    assert_matches_ground_truth(warehouse, simulator.runs())
    assert_events_match(warehouse, simulator.events())


def test_a_stale_date_on_the_key_check_alone_lists_nothing_again(simulator, warehouse, caplog):
    baseline = synced_with_events(simulator, warehouse)

    for _ in range(2):
        simulator.skew_dates(-86400, requests={1})  # GET /test, the first request of the sync
        caplog.clear()
        warehouse.sync()

        assert requests_received(simulator) == baseline
        [warning] = warnings(caplog)  # what was seen, and nothing of an "earlier version"
        assert re.fullmatch(
            r"Deck answered GET /v2/test with a Date header of 2026-01-03T00:00:00\+00:00,"
            r" 2[34]\.\d h behind the newest record an earlier sync listed"
            r" \(2026-01-03T23:5[0-9:.]+\+00:00\)" + WRONG_HEADER, warning
        ), warning
        simulator.clear_requests()


def test_after_a_sync_under_a_wrong_clock_the_next_lists_nothing_again(simulator, warehouse):
    baseline = synced_with_events(simulator, warehouse)
    simulator.advance(3600, new_runs=120)
    simulator.skew_dates((NINETEEN_NINETY_NINE - simulator.now).total_seconds())
    result = warehouse.sync()  # loads what is new, under a clock of 1999
    assert result.new_runs == 120
    simulator.skew_dates(None)
    simulator.clear_requests()

    warehouse.sync()

    assert len(simulator.requests) == len(baseline), requests_received(simulator)
    assert_matches_ground_truth(warehouse, simulator.runs())
    assert_events_match(warehouse, simulator.events())


# ---- this machine's clock never outvotes Deck's answers (review of issue 22) ------------------

FORGOTTEN = (
    r"The saved watermark \S+ lies after Deck's clock \(\S+\): a run dated in the future was"
    r" followed by an earlier version, or while Deck's Date headers could not be read and this"
    r" machine's clock bounded the watermark\. Listing all of history again to find the runs it"
    r" skipped; rows already loaded stay\."
)


def runs_state_file(warehouse):
    return warehouse.pipelines_dir / warehouse.pipeline_name / "state.json"


def assert_this_machines_clock_is_fast(simulator):
    # These cases need this machine's clock after the watermark (the simulator's clock is in
    # January 2026, so any machine's clock of now is): this is the "fast" one
    assert datetime.now(timezone.utc) > simulator.now + timedelta(hours=1)


def test_a_watermark_this_machines_fast_clock_bounded_does_not_outvote_decks_dates(
    simulator, warehouse, caplog
):
    assert_this_machines_clock_is_fast(simulator)
    simulator.date_header = ""  # no Date: this machine's clock + 5 min bounds the watermark
    simulator.advance(3600 * 24, new_runs=50)
    simulator.add_runs(1, created_at=simulator.now + timedelta(minutes=40), status="completed")
    warehouse.sync()  # the watermark follows that run, 40 min into Deck's future
    simulator.date_header = None
    simulator.advance(1200, new_runs=30)  # created below the watermark's lookback

    caplog.clear()
    for _ in range(2):  # the one that finds Deck's clock, and the one that lists all again
        warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())
    said = warnings(caplog)
    assert sum(bool(re.fullmatch(FORGOTTEN, w)) for w in said) == 1, said
    assert not any(w.startswith("Deck answered") for w in said), said  # its Dates were taken


def test_a_watermark_an_older_version_left_in_decks_future_is_dropped(simulator, warehouse):
    """The review's case: state an older version saved (no `watermark_vouched`), its watermark
    40 min after Deck's clock and before this machine's."""
    assert_this_machines_clock_is_fast(simulator)
    simulator.advance(3600 * 24, new_runs=50)
    warehouse.sync()
    path = runs_state_file(warehouse)
    saved = json.loads(path.read_text())
    runs_state = saved["sources"]["deck"]["resources"]["task_runs"]
    runs_state["watermark"] = format_timestamp(simulator.now + timedelta(minutes=40))
    runs_state.pop("watermark_vouched", None)
    path.write_text(json.dumps(saved))
    simulator.advance(1200, new_runs=30)

    for _ in range(2):
        warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())
