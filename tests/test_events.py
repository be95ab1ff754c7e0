"""`task_run_events`: every event Deck keeps, once each, compared with the simulator's event log.

Ground truth is the simulator's own log (`DeckSimulator.events()`: what `GET /events` serves now;
`event_log()`: everything ever emitted, expired events included), never the connector's output.
"""

from datetime import datetime, timedelta, timezone

import duckdb
import pytest
from deck.core.tables import EVENT_GAPS_TABLE
from deck.runtime.runner import unfinished_plans
from deck_simulator import DeckSimulator
from support import Warehouse, assert_events_match, assert_matches_ground_truth, make_simulator, ts
from support.lifecycle import assert_lifecycle_models_match

DAY = 24 * 3600


@pytest.fixture
def warehouse(tmp_path, simulator):
    """Runs and events, as a user syncs by default."""
    return Warehouse(tmp_path / "warehouse.duckdb", tmp_path / "dlt", simulator, with_events=True)


@pytest.fixture
def month_sim():
    """45 days of history: Deck (the simulator) keeps only the last 30 days of events."""
    sim = make_simulator(seed=5, runs=1_500, history_days=45)
    yield sim
    sim.stop()


def stamp(at: datetime) -> str:
    """As Deck prints a timestamp: milliseconds, `Z`."""
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def requests_to(sim: DeckSimulator, path: str) -> int:
    return sum(1 for r in sim.requests if r.path.endswith(path))


def test_a_first_sync_loads_every_event_deck_keeps(tmp_path, month_sim):
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", month_sim, with_events=True)

    result = warehouse.sync()

    truth = month_sim.events()
    oldest_kept = month_sim.now - timedelta(days=30)
    assert truth and min(ts(e["created_at"]) for e in truth) >= oldest_kept
    # runs older than that existed: their events are gone from Deck, and are not invented
    assert any(ts(run["created_at"]) < oldest_kept for run in month_sim.runs())
    assert_events_match(warehouse, truth)
    assert result.new_events == len(truth)
    assert_matches_ground_truth(warehouse, month_sim.runs())


def test_the_lifecycle_models_match_the_simulators_event_log(tmp_path, month_sim):
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", month_sim, with_events=True)
    oldest_kept = month_sim.now - timedelta(days=30)
    warehouse.sync()
    month_sim.advance(3 * 3600, new_runs=150)

    warehouse.sync()

    # what the first sync found, and everything since: events that expired from Deck in between
    # stay in the warehouse
    loaded = [e for e in month_sim.event_log() if ts(e["created_at"]) >= oldest_kept]
    assert len(loaded) > len(month_sim.events())
    assert_events_match(warehouse, loaded)
    assert_lifecycle_models_match(warehouse.rows, loaded, datetime.now(timezone.utc))
    complete = warehouse.query(
        "SELECT history_complete, count(*) AS n FROM deck.task_run_lifecycle GROUP BY 1"
    )
    # runs created before Deck's 30 days have events but not their queued one
    assert {r["history_complete"] for r in complete} == {True, False}


def test_legacy_spellings_are_stored_as_sent(tmp_path, month_sim):
    warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", month_sim, with_events=True)
    warehouse.sync()

    rows = warehouse.query(
        "SELECT type, status, count(*) AS n FROM deck.task_run_events"
        " WHERE status IN ('pending', 'cancelling') OR type IN ('task_run.pending',"
        " 'task_run.cancelling') GROUP BY 1, 2"
    )
    seen = {(r["type"], r["status"]) for r in rows}
    truth = {
        (e["type"], e["data"]["status"])
        for e in month_sim.events()
        if e["data"]["status"] in ("pending", "cancelling")
        or e["type"] in ("task_run.pending", "task_run.cancelling")
    }
    assert ("task_run.pending", "pending") in truth
    assert ("task_run.cancelling", "cancelling") in truth
    assert seen == truth


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_incremental_syncs_load_each_new_event_once_in_either_sort_order(tmp_path, order):
    sim = make_simulator(seed=8, runs=400, history_days=10, order=order)
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim, with_events=True)
        warehouse.sync(pages_per_window=2)
        for hours in (1, 7, 30):
            sim.advance(3600 * hours, new_runs=120)
            warehouse.sync(pages_per_window=2)
            assert_events_match(warehouse, sim.events())
        assert_matches_ground_truth(warehouse, sim.runs())
    finally:
        sim.stop()


def test_events_sharing_one_timestamp_across_pages_are_all_loaded(simulator, warehouse):
    simulator.add_runs(250, created_at=simulator.now - timedelta(hours=2), status="queued")
    simulator.advance(60)

    warehouse.sync(page_size=100)

    assert_events_match(warehouse, simulator.events())
    queued = warehouse.query(
        "SELECT count(*) AS n FROM deck.task_run_events WHERE type = 'task_run.queued'"
    )
    assert queued[0]["n"] >= 250


def test_a_sync_with_nothing_new_asks_for_events_once(simulator, warehouse):
    simulator.advance(DAY, new_runs=300)
    warehouse.sync()
    simulator.clear_requests()

    result = warehouse.sync()

    assert result.new_events == 0
    assert requests_to(simulator, "/events") == 1
    assert_events_match(warehouse, simulator.events())


def test_new_events_cost_about_one_request_per_hundred(simulator, warehouse):
    simulator.advance(DAY, new_runs=50)
    warehouse.sync()
    before = len(simulator.events())
    simulator.advance(3600, new_runs=400)
    simulator.clear_requests()

    warehouse.sync()

    new = len(simulator.events()) - before
    assert new > 400
    assert requests_to(simulator, "/events") <= -(-new // 100) + 2
    assert_events_match(warehouse, simulator.events())


def test_a_backfill_of_events_commits_in_loads_and_ends_exact(simulator, warehouse):
    # ~3 events a run: ~1,400 events make five or more loads of 300, so the events' own
    # backfill spans several loads (1,200 runs made about fourteen, at a few seconds each).
    simulator.advance(5 * DAY, new_runs=450)

    result = warehouse.sync(max_runs_per_load=300, pages_per_window=1)

    assert result.loads > 2
    assert_events_match(warehouse, simulator.events())
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_connector_idle_longer_than_retention_records_the_gap(simulator, warehouse, caplog):
    simulator.advance(DAY, new_runs=100)
    warehouse.sync()
    last_loaded = max(ts(e["created_at"]) for e in simulator.events())
    simulator.advance(40 * DAY, new_runs=200)

    result = warehouse.sync()

    oldest_kept = simulator.now - timedelta(days=30)
    [gap] = warehouse.query(f"SELECT * FROM deck.{EVENT_GAPS_TABLE}")
    assert gap["gap_start"] == last_loaded
    assert oldest_kept <= gap["gap_end"] <= oldest_kept + timedelta(seconds=1)
    assert result.event_gaps == 1
    assert any(
        "Task-run events from" in r.getMessage() and "are missing" in r.getMessage()
        for r in caplog.records
    )
    # Everything Deck still keeps is loaded, and what was loaded before stays.
    expected = {e["id"]: e for e in simulator.event_log() if ts(e["created_at"]) <= last_loaded}
    expected.update({e["id"]: e for e in simulator.events()})
    assert_events_match(warehouse, list(expected.values()))


def test_a_sync_within_retention_records_no_gap(simulator, warehouse):
    simulator.advance(DAY, new_runs=100)
    warehouse.sync()
    simulator.advance(29 * DAY, new_runs=100)

    result = warehouse.sync()

    assert result.event_gaps == 0
    assert EVENT_GAPS_TABLE not in warehouse.tables()


def test_events_turned_off_cost_no_request_and_create_no_table(simulator, warehouse):
    simulator.advance(DAY, new_runs=200)

    warehouse.sync(events=False)

    assert requests_to(simulator, "/events") == 0
    assert "task_run_events" not in warehouse.tables()
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_events_follow_the_agent_filter(simulator, warehouse):
    simulator.advance(DAY, new_runs=300)
    agent = simulator.agents[0]

    warehouse.sync(agent_id=agent)

    assert_events_match(
        warehouse, [e for e in simulator.events() if e["data"]["agent_id"] == agent]
    )


def test_an_event_without_an_id_is_quarantined_and_the_rest_load(simulator, warehouse):
    simulator.advance(DAY, new_runs=200)
    bad = {"object": "event", "type": "task_run.running", "data": {"id": "trun_x"},
           "created_at": "2025-12-31T12:00:00.000Z"}
    simulator.add_raw_event(bad, created_at="2025-12-31T12:00:00.000Z")

    result = warehouse.sync()

    assert result.quarantined == 1
    [row] = warehouse.query("SELECT * FROM deck.task_run_events_rejected")
    assert row["reason"] == "The record has no id, so it cannot be merged."
    assert '"trun_x"' in row["raw_json"]
    assert_events_match(warehouse, simulator.events())


def test_a_full_refresh_reloads_the_runs_and_keeps_the_event_history(simulator, warehouse):
    simulator.advance(DAY, new_runs=200)
    warehouse.sync()
    first = simulator.events()
    simulator.advance(31 * DAY, new_runs=100)

    result = warehouse.sync(full_refresh=True)

    assert result.new_runs == len(simulator.runs())  # every run loaded again
    assert_matches_ground_truth(warehouse, simulator.runs())
    # the events of the first sync are gone from Deck, and still in the warehouse
    assert not {e["id"] for e in first} & {e["id"] for e in simulator.events()}
    assert_events_match(warehouse, first + simulator.events())


def test_a_dropped_events_table_is_reloaded_from_what_deck_keeps_and_runs_stay(
    simulator, warehouse, caplog
):
    simulator.advance(DAY, new_runs=200)
    warehouse.sync()
    with duckdb.connect(str(warehouse.path)) as con:
        con.execute("DROP VIEW deck.task_run_status_history")
        con.execute("DROP VIEW deck.task_run_lifecycle")
        con.execute("DROP VIEW deck.daily_task_run_waits")
        con.execute("DROP TABLE deck.task_run_events")
    simulator.advance(3600, new_runs=20)

    result = warehouse.sync()

    assert result.new_runs < 200  # the 200 runs loaded before were not loaded again
    assert_events_match(warehouse, simulator.events())
    assert_matches_ground_truth(warehouse, simulator.runs())
    assert any(
        "deck.task_run_events is missing from the warehouse (dropped?): reloading the events"
        " Deck still keeps (the last 30 days)" in r.getMessage()
        for r in caplog.records
    )


def test_events_turned_off_in_the_middle_of_their_backfill_leave_their_plan_for_later(
    simulator, warehouse
):
    from deck import deck
    from support import FAST_RETRIES

    simulator.advance(5 * DAY, new_runs=800)
    warehouse.pipeline().run(
        deck(api_key=simulator.api_key, base_url=simulator.base_url, max_runs_per_load=300,
             pages_per_window=1, **FAST_RETRIES)
    )  # one load: both backfills stopped with windows left

    warehouse.sync(events=False)  # finishes the runs, and does not wait for the events

    assert_matches_ground_truth(warehouse, simulator.runs())
    assert 0 < len(warehouse.events()) < len(simulator.events())
    warehouse.sync()
    assert_events_match(warehouse, simulator.events())


# ---- events of a filtered sync: those of the runs it selected (issue 22, item 6) ---------------

# Deck documents an event's `data` only as "a summary of the run": none of these need be there.
OWNER_FIELDS = {"agent_id", "credential_id", "source_id", "task_id", "workflow_id"}
OPEN = {"queued", "running", "canceling", "interaction_required", "review_required"}


def first(truth, key):
    """A value of `key` that some but not all runs have, from the ground truth."""
    return sorted({r[key] for r in truth if r.get(key)})[0]


def task_name_search(sim):
    """A task's name, as `search` matches it (task name, task id or run id), and the runs'."""
    task_id, name = sorted(sim.tasks.items(), key=lambda item: item[1])[0]
    needle = name.lower()

    def matches(run):
        return (needle in sim.tasks.get(run["task_id"] or "", "").lower()
                or needle in (run["task_id"] or "") or needle in run["id"])
    return needle, matches


SCOPE_FILTERS = {
    "agent_id": lambda sim, t: ({"agent_id": first(t, "agent_id")},
                                lambda r, v: r["agent_id"] == v["agent_id"]),
    "credential_id": lambda sim, t: ({"credential_id": first(t, "credential_id")},
                                     lambda r, v: r["credential_id"] == v["credential_id"]),
    "task_id": lambda sim, t: ({"task_id": first(t, "task_id")},
                               lambda r, v: r["task_id"] == v["task_id"]),
    "workflow_id": lambda sim, t: ({"workflow_id": first(t, "workflow_id")},
                                   lambda r, v: r.get("workflow_id") == v["workflow_id"]),
    "source_id": lambda sim, t: ({"source_id": sorted({r["source_id"] for r in t
                                                      if r["source_id"]})[:2]},
                                 lambda r, v: r["source_id"] in v["source_id"]),
    "search": lambda sim, t: (lambda needle, matches: (
        {"search": needle}, lambda r, v: matches(r)))(*task_name_search(sim)),
}


def events_of(sim, run_ids):
    return [e for e in sim.events() if e["data"]["id"] in run_ids]


@pytest.mark.parametrize("name", sorted(SCOPE_FILTERS))
def test_events_of_a_filtered_sync_are_those_of_the_runs_it_selected(
    simulator, warehouse, name
):
    simulator.advance(3 * DAY, new_runs=400)
    simulator.event_summary_omits = OWNER_FIELDS
    options, predicate = SCOPE_FILTERS[name](simulator, simulator.runs())

    warehouse.sync(**options)

    selected = [r for r in simulator.runs() if predicate(r, options)]
    assert 0 < len(selected) < 400
    assert_matches_ground_truth(warehouse, selected)
    expected = events_of(simulator, {r["id"] for r in selected})
    assert expected and set(warehouse.events()) == {e["id"] for e in expected}


@pytest.mark.parametrize("options, in_state", [
    ({"status": ["completed"]}, lambda r: r["status"] == "completed"),
    ({"outcome": ["failure"]}, lambda r: r["result"] == "failure"),
])
def test_events_of_a_sync_filtered_by_state_are_those_of_its_runs_and_its_open_runs(
    simulator, warehouse, caplog, options, in_state
):
    simulator.advance(3 * DAY, new_runs=400)
    simulator.event_summary_omits = OWNER_FIELDS

    warehouse.sync(**options)

    selected = [r for r in simulator.runs() if in_state(r)]
    assert_matches_ground_truth(warehouse, selected)
    tracked = {r["id"] for r in selected} | {
        r["id"] for r in simulator.runs() if r["status"] in OPEN
    }
    assert set(warehouse.events()) == {e["id"] for e in events_of(simulator, tracked)}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "task_run_events follows the runs this sync selects, by id; status and outcome select"
        " runs by their current state, so it also holds the events of the open runs in scope"
        " that the sync tracks (they may yet reach a selected state), and a run that ends in"
        " another state keeps the events loaded while it was open. Join task_run_events to"
        " task_runs (task_run_id = id) to keep only the runs in the selected states."
    ]


def test_events_of_a_filtered_sync_follow_its_runs_across_loads_and_syncs(simulator, warehouse):
    simulator.advance(3 * DAY, new_runs=300)
    simulator.event_summary_omits = OWNER_FIELDS
    agent = first(simulator.runs(), "agent_id")

    first_sync = warehouse.sync(agent_id=agent, max_runs_per_load=150, pages_per_window=1)
    simulator.advance(2 * 3600, new_runs=50)  # new runs, and open ones move on
    warehouse.sync(agent_id=agent, max_runs_per_load=150, pages_per_window=1)

    assert first_sync.loads > 1
    selected = [r for r in simulator.runs() if r["agent_id"] == agent]
    assert_matches_ground_truth(warehouse, selected)
    expected = events_of(simulator, {r["id"] for r in selected})
    assert set(warehouse.events()) == {e["id"] for e in expected}


def test_events_of_a_filtered_backfill_spread_over_several_syncs_are_all_loaded(
    simulator, warehouse
):
    """A scheduled job capped at one load per run (`max_loads = 1`): the runs' backfill ends in a
    later sync than the ones that loaded most of them, and the events of those earlier runs must
    still be found (they are in the warehouse, not among the runs the last sync handled)."""
    simulator.advance(3 * DAY, new_runs=800)
    simulator.event_summary_omits = OWNER_FIELDS
    sources = sorted({r["source_id"] for r in simulator.runs() if r["source_id"]})[1:]

    syncs = 0  # three loads of runs: the first two syncs list runs, the events wait for them
    while syncs == 0 or unfinished_plans(warehouse.pipeline(), ["task_runs", "task_run_events"]):
        warehouse.sync(source_id=sources, max_runs_per_load=250, max_loads=2)
        syncs += 1
        assert syncs < 20, "the backfill never ended"

    selected = [r for r in simulator.runs() if r["source_id"] in sources]
    assert len(selected) > 2 * 250  # the runs alone take three syncs
    assert_matches_ground_truth(warehouse, selected)
    expected = events_of(simulator, {r["id"] for r in selected})
    assert set(warehouse.events()) == {e["id"] for e in expected}


@pytest.mark.parametrize("key_check_date_ahead_s", [0, 1200], ids=["decks_clock", "a_host_ahead"])
def test_an_event_whose_run_appears_after_the_runs_were_listed_is_loaded_by_the_next_sync(
    simulator, warehouse, key_check_date_ahead_s
):
    """A run created while a sync lists (after its runs were listed, before its events): its
    event cannot be placed yet, so the next sync, which lists the run, lists the event again,
    however far the events went past it in between; also when the host that answered the key
    check, the sync's first request, has a clock 20 minutes ahead."""
    simulator.advance(3 * DAY, new_runs=400)
    if key_check_date_ahead_s:
        simulator.skew_dates(key_check_date_ahead_s, requests={1})
    agent = first(simulator.runs(), "agent_id")
    model = next(r for r in simulator.runs() if r["agent_id"] == agent)
    other = next(r for r in simulator.runs() if r["agent_id"] != agent)
    began = simulator.now
    run = {**model, "id": "trun_created_during_the_sync",
           "created_at": stamp(began + timedelta(minutes=5))}
    event = {"id": "evt_of_the_run_created_during_the_sync", "object": "event",
             "type": "task_run.queued",
             "created_at": stamp(began + timedelta(minutes=5, seconds=1)),
             "data": {"id": run["id"], "object": "task_run", "status": "queued"}}
    later = {**event, "id": "evt_later_of_another_run",
             "created_at": stamp(began + timedelta(minutes=19)),
             "data": {"id": other["id"], "object": "task_run", "status": "queued"}}

    def twenty_minutes_pass_before_the_events(request):
        """A hook, never a hold: the first request for events finds Deck 20 minutes on."""
        if request.path.endswith("/events") and simulator.now == began:
            simulator.advance(20 * 60)
            simulator.add_raw_record(run, created_at=run["created_at"])
            simulator.add_raw_event(event, created_at=event["created_at"])
            simulator.add_raw_event(later, created_at=later["created_at"])
        return False

    simulator.hold(twenty_minutes_pass_before_the_events)
    warehouse.sync(agent_id=agent)
    assert simulator.now > began  # the hook ran
    assert run["id"] not in warehouse.runs() and event["id"] not in warehouse.events()
    simulator.advance(3600)
    warehouse.sync(agent_id=agent)

    assert run["id"] in warehouse.runs()
    assert warehouse.events()[event["id"]]["task_run_id"] == run["id"]
