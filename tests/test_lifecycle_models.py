"""The event-based SQL models (task_run_status_history, task_run_lifecycle, daily_task_run_waits)
against hand-built event histories whose intervals and seconds are worked out by hand below.

The event tables are created directly (support.events) with the column types the connector loads
them with, in a real DuckDB file and a real PostgreSQL database; `task_runs` comes from a real
sync of a few simulator runs, since the models are refreshed only where it exists. The same
expected values check the pure-Python oracle (support.lifecycle) that end-to-end tests use.

PostgreSQL runs in a database whose session time zone is UTC+14 (days must still be UTC dates)
and whose collation is ICU en-US (events of one lifecycle rank sharing a timestamp must still be
ordered by id bytes).
"""

import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import dlt
import pytest
from deck.warehouse.models import DeckModelError, fragment_names, model_names, refresh_models
from deck_simulator import DeckSimulator
from support import make_pipeline, make_simulator, sync_from
from support.events import (
    EVENTS_TABLE,
    GAPS_TABLE,
    create_event_tables,
    insert_rows,
    query,
    read_view,
)
from support.lifecycle import daily_waits, event_row, lifecycle_of, lifecycles
from support.postgres import PostgresServer

UTC = timezone.utc
EVENT_MODELS = ["daily_task_run_waits", "task_run_lifecycle", "task_run_status_history"]
ALL_MODELS = sorted(
    ["daily_task_run_stats", "open_task_runs", "task_run_errors", "task_run_facts", *EVENT_MODELS]
)
Row = Dict[str, Any]

# ------------------------------------------------------------------------------------------------
# the hand-built histories
# ------------------------------------------------------------------------------------------------

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 02:00 on March 3rd at UTC+14
# The open runs are placed relative to the wall clock, because "stuck" is measured against the
# database's CURRENT_TIMESTAMP: entered 2 h and 20 min before NOW, far from the 1 h threshold on
# either side whatever the test's own duration.
NOW = datetime.now(UTC).replace(microsecond=0)
S = NOW - timedelta(seconds=7260)  # created_at of the two open runs

A1, A2, A3, S1, S2, S3, TASK = "agt_1", "agt_2", "agt_3", "src_1", "src_2", "src_3", "task_1"


def at(seconds: float, base: datetime = T) -> datetime:
    return base + timedelta(seconds=seconds)


def ev(
    eid: str, run: Optional[str], when: Optional[datetime], type_: Optional[str],
    status: Optional[str], created: Optional[datetime], agent: Optional[str] = A1,
    source: Optional[str] = S1, **extra: Any,
) -> Row:
    """A task_run_events row: the event's id, type and time, and the run summary it carried."""
    return {
        "id": eid, "type": type_, "created_at": when, "task_run_id": run, "status": status,
        "run_created_at": created, "run_updated_at": when, "agent_id": agent,
        "source_id": source, "task_id": TASK, **extra,
    }


EVENTS: List[Row] = [
    # trun_normal (A1, S1): queued -> running -> completed.
    ev("evt_n1", "trun_normal", at(0), "task_run.queued", "queued", at(0)),
    ev("evt_n2", "trun_normal", at(30), "task_run.running", "running", at(0)),
    ev("evt_n3", "trun_normal", at(150), "task_run.completed", "completed", at(0),
       result="success", runtime_ms=120_000),
    # trun_human (A1, S1): an interaction, back to running, a review sent with the legacy status
    # `pending`, then canceled; the canceling event carries no status, only the legacy type
    # `task_run.cancelling`.
    ev("evt_h1", "trun_human", at(60), "task_run.queued", "queued", at(60)),
    ev("evt_h2", "trun_human", at(70), "task_run.running", "running", at(60)),
    ev("evt_h3", "trun_human", at(100), "task_run.interaction_required", "interaction_required",
       at(60)),
    ev("evt_h4", "trun_human", at(400), "task_run.running", "running", at(60)),
    ev("evt_h5", "trun_human", at(460), "task_run.pending", "pending", at(60)),
    ev("evt_h6", "trun_human", at(1060), "task_run.cancelling", None, at(60)),
    ev("evt_h7", "trun_human", at(1090), "task_run.canceled", "canceled", at(60)),
    # trun_resent (A1, S1): `running` sent twice (no transition); an event with neither status nor
    # type in the middle of its interaction; its re-sent and its last event lack agent_id.
    ev("evt_r1", "trun_resent", at(120), "task_run.queued", "queued", at(120)),
    ev("evt_r2", "trun_resent", at(180), "task_run.running", "running", at(120)),
    ev("evt_r3", "trun_resent", at(240), "task_run.running", "running", at(120), agent=None),
    ev("evt_r4", "trun_resent", at(360), "task_run.interaction_required",
       "interaction_required", at(120)),
    ev("evt_r5", "trun_resent", at(500), None, None, at(120)),
    ev("evt_r6", "trun_resent", at(560), "task_run.running", "running", at(120)),
    ev("evt_r7", "trun_resent", at(600), "task_run.failed", "failed", at(120), agent=None),
    # trun_noqueue (A2, S2): its queued event is gone (Deck keeps events 30 days). A review event
    # with no status (type task_run.pending) and a canceling one with the legacy `cancelling`.
    ev("evt_m1", "trun_noqueue", at(45), "task_run.running", "running", at(0), A2, S2),
    ev("evt_m2", "trun_noqueue", at(90), "task_run.pending", None, at(0), A2, S2),
    ev("evt_m3", "trun_noqueue", at(150), "task_run.canceling", "cancelling", at(0), A2, S2),
    ev("evt_m4", "trun_noqueue", at(170), "task_run.canceled", "canceled", at(0), A2, S2),
    # trun_tie (A2, S2): interaction_required and review_required (one lifecycle rank) share a
    # timestamp; by id bytes "evt_Q7" < "evt_q2" (an ICU en-US collation says the opposite), so
    # the interaction lasted 0 s and the review 30 s. Loaded review first, so table order does not
    # give the answer away.
    ev("evt_t1", "trun_tie", at(200), "task_run.queued", "queued", at(200), A2, S2),
    ev("evt_t2", "trun_tie", at(260), "task_run.running", "running", at(200), A2, S2),
    ev("evt_q2", "trun_tie", at(300), "task_run.review_required", "review_required", at(200),
       A2, S2),
    ev("evt_Q7", "trun_tie", at(300), "task_run.interaction_required", "interaction_required",
       at(200), A2, S2),
    ev("evt_t3", "trun_tie", at(330), "task_run.completed", "completed", at(200), A2, S2),
    # Events of one run in one millisecond, each loaded in id order, the reverse of their order in
    # the lifecycle (Deck's ids are random): the lifecycle decides, ids only within a rank.
    # trun_born (A3, S3): created already running (queued and running at once), completed later.
    ev("evt_b1", "trun_born", at(1000), "task_run.running", "running", at(1000), A3, S3),
    ev("evt_b2", "trun_born", at(1000), "task_run.queued", "queued", at(1000), A3, S3),
    ev("evt_b3", "trun_born", at(1100), "task_run.completed", "completed", at(1000), A3, S3),
    # trun_cancel (A3, S3): canceling and canceled at once.
    ev("evt_c1", "trun_cancel", at(1200), "task_run.queued", "queued", at(1200), A3, S3),
    ev("evt_c2", "trun_cancel", at(1210), "task_run.running", "running", at(1200), A3, S3),
    ev("evt_c3", "trun_cancel", at(1300), "task_run.canceled", "canceled", at(1200), A3, S3),
    ev("evt_c4", "trun_cancel", at(1300), "task_run.canceling", "canceling", at(1200), A3, S3),
    # trun_spelled (A3, S3): the legacy `cancelling` (canceling, rank 3; as sent it would be an
    # unlisted status, rank 2) at once with interaction_required (rank 2).
    ev("evt_l1", "trun_spelled", at(1400), "task_run.queued", "queued", at(1400), A3, S3),
    ev("evt_l2", "trun_spelled", at(1410), "task_run.running", "running", at(1400), A3, S3),
    ev("evt_l3", "trun_spelled", at(1500), "task_run.cancelling", "cancelling", at(1400), A3, S3),
    ev("evt_l9", "trun_spelled", at(1500), "task_run.interaction_required",
       "interaction_required", at(1400), A3, S3),
    ev("evt_l4", "trun_spelled", at(1530), "task_run.canceled", "canceled", at(1400), A3, S3),
    # trun_unlisted (A3, S3): statuses no version of the API documents, `paused` at once with
    # running and `archived` at once with completed: they rank between the two.
    ev("evt_u1", "trun_unlisted", at(1600), "task_run.queued", "queued", at(1600), A3, S3),
    ev("evt_u2", "trun_unlisted", at(1660), "task_run.paused", "paused", at(1600), A3, S3),
    ev("evt_u3", "trun_unlisted", at(1660), "task_run.running", "running", at(1600), A3, S3),
    ev("evt_u5", "trun_unlisted", at(1720), "task_run.completed", "completed", at(1600), A3, S3),
    ev("evt_u6", "trun_unlisted", at(1720), "task_run.archived", "archived", at(1600), A3, S3),
    # trun_stuck (A1, S2): waiting on a person for 2 hours now.
    ev("evt_s1", "trun_stuck", S, "task_run.queued", "queued", S, A1, S2),
    ev("evt_s2", "trun_stuck", at(60, S), "task_run.interaction_required",
       "interaction_required", S, A1, S2),
    # trun_fresh (A1, S2): created with trun_stuck, running for 20 minutes: open, not stuck.
    ev("evt_f1", "trun_fresh", S, "task_run.queued", "queued", S, A1, S2),
    ev("evt_f2", "trun_fresh", at(6060, S), "task_run.running", "running", S, A1, S2),
    # Unusable: no run id; no time; neither status nor a task_run.* type (trun_ghost has nothing
    # else, so it has no history at all).
    ev("evt_x1", None, at(10), "task_run.completed", "completed", at(0)),
    ev("evt_x2", "trun_ghost", None, "task_run.running", "running", at(0)),
    ev("evt_x3", "trun_ghost", at(5), "session.created", None, at(0)),
]
GAPS: List[Row] = [
    {"gap_start": T - timedelta(days=40), "gap_end": T - timedelta(days=31),
     "detected_at": T},
]

# Hand-computed intervals: run -> (agent, source, [(status, entered_at, left_at, opened by)]).
EXPECTED_HISTORY: Dict[str, Tuple[str, str, List[Tuple[str, datetime, Any, str]]]] = {
    "trun_normal": (A1, S1, [
        ("queued", at(0), at(30), "evt_n1"),
        ("running", at(30), at(150), "evt_n2"),
        ("completed", at(150), None, "evt_n3"),
    ]),
    "trun_human": (A1, S1, [
        ("queued", at(60), at(70), "evt_h1"),
        ("running", at(70), at(100), "evt_h2"),
        ("interaction_required", at(100), at(400), "evt_h3"),
        ("running", at(400), at(460), "evt_h4"),
        ("review_required", at(460), at(1060), "evt_h5"),
        ("canceling", at(1060), at(1090), "evt_h6"),
        ("canceled", at(1090), None, "evt_h7"),
    ]),
    "trun_resent": (A1, S1, [
        ("queued", at(120), at(180), "evt_r1"),
        ("running", at(180), at(360), "evt_r2"),
        ("interaction_required", at(360), at(560), "evt_r4"),
        ("running", at(560), at(600), "evt_r6"),
        ("failed", at(600), None, "evt_r7"),
    ]),
    "trun_noqueue": (A2, S2, [
        ("running", at(45), at(90), "evt_m1"),
        ("review_required", at(90), at(150), "evt_m2"),
        ("canceling", at(150), at(170), "evt_m3"),
        ("canceled", at(170), None, "evt_m4"),
    ]),
    "trun_tie": (A2, S2, [
        ("queued", at(200), at(260), "evt_t1"),
        ("running", at(260), at(300), "evt_t2"),
        ("interaction_required", at(300), at(300), "evt_Q7"),
        ("review_required", at(300), at(330), "evt_q2"),
        ("completed", at(330), None, "evt_t3"),
    ]),
    "trun_born": (A3, S3, [
        ("queued", at(1000), at(1000), "evt_b2"),
        ("running", at(1000), at(1100), "evt_b1"),
        ("completed", at(1100), None, "evt_b3"),
    ]),
    "trun_cancel": (A3, S3, [
        ("queued", at(1200), at(1210), "evt_c1"),
        ("running", at(1210), at(1300), "evt_c2"),
        ("canceling", at(1300), at(1300), "evt_c4"),
        ("canceled", at(1300), None, "evt_c3"),
    ]),
    "trun_spelled": (A3, S3, [
        ("queued", at(1400), at(1410), "evt_l1"),
        ("running", at(1410), at(1500), "evt_l2"),
        ("interaction_required", at(1500), at(1500), "evt_l9"),
        ("canceling", at(1500), at(1530), "evt_l3"),
        ("canceled", at(1530), None, "evt_l4"),
    ]),
    "trun_unlisted": (A3, S3, [
        ("queued", at(1600), at(1660), "evt_u1"),
        ("running", at(1660), at(1660), "evt_u3"),
        ("paused", at(1660), at(1720), "evt_u2"),
        ("archived", at(1720), at(1720), "evt_u6"),
        ("completed", at(1720), None, "evt_u5"),
    ]),
    "trun_stuck": (A1, S2, [
        ("queued", S, at(60, S), "evt_s1"),
        ("interaction_required", at(60, S), None, "evt_s2"),
    ]),
    "trun_fresh": (A1, S2, [
        ("queued", S, at(6060, S), "evt_f1"),
        ("running", at(6060, S), None, "evt_f2"),
    ]),
}

LIFECYCLE_COLUMNS = (
    "run_created_at", "current_status", "is_final", "queued_seconds", "running_seconds",
    "interaction_seconds", "review_seconds", "canceling_seconds", "total_seconds", "transitions",
    "history_complete",
)
# Hand-computed: run -> the LIFECYCLE_COLUMNS, in that order. Every run's task_id is TASK and its
# agent and source are those of EXPECTED_HISTORY.
EXPECTED_LIFECYCLE: Dict[str, Tuple[Any, ...]] = {
    # created 0, running at 30 for 120 s, completed at 150
    "trun_normal": (at(0), "completed", True, 30.0, 120.0, 0.0, 0.0, 0.0, 150.0, 2, True),
    # created 60, running 70 (queued 10 s); running 30 + 60 s; interaction 300 s; review 600 s;
    # canceling 30 s; canceled at 1090 = 1030 s after creation
    "trun_human": (at(60), "canceled", True, 10.0, 90.0, 300.0, 600.0, 30.0, 1030.0, 6, True),
    # created 120, running 180 (60 s); running 180 + 40 s; interaction 200 s; failed at 600
    "trun_resent": (at(120), "failed", True, 60.0, 220.0, 200.0, 0.0, 0.0, 480.0, 4, True),
    # created 0, first running at 45; running 45 s; review 60 s; canceling 20 s; canceled at 170
    "trun_noqueue": (at(0), "canceled", True, 45.0, 45.0, 0.0, 60.0, 20.0, 170.0, 3, False),
    # created 200, running at 260 (60 s) for 40 s; interaction 0 s; review 30 s; completed at 330
    "trun_tie": (at(200), "completed", True, 60.0, 40.0, 0.0, 30.0, 0.0, 130.0, 4, True),
    # created 1000 and running at once (0 s) for 100 s; completed at 1100
    "trun_born": (at(1000), "completed", True, 0.0, 100.0, 0.0, 0.0, 0.0, 100.0, 2, True),
    # created 1200, running at 1210 (10 s) for 90 s; canceling 0 s; canceled at 1300
    "trun_cancel": (at(1200), "canceled", True, 10.0, 90.0, 0.0, 0.0, 0.0, 100.0, 3, True),
    # created 1400, running at 1410 (10 s) for 90 s; interaction 0 s; canceling 30 s; canceled at
    # 1530
    "trun_spelled": (at(1400), "canceled", True, 10.0, 90.0, 0.0, 0.0, 30.0, 130.0, 4, True),
    # created 1600, running at 1660 (60 s) for 0 s; paused 60 s, archived 0 s (neither summed);
    # completed at 1720
    "trun_unlisted": (at(1600), "completed", True, 60.0, 0.0, 0.0, 0.0, 0.0, 120.0, 4, True),
    # never ran; its open interaction is not counted
    "trun_stuck": (S, "interaction_required", False, None, 0.0, 0.0, 0.0, 0.0, None, 1, True),
    # running since 6060 s after creation; the open running interval is not counted
    "trun_fresh": (S, "running", False, 6060.0, 0.0, 0.0, 0.0, 0.0, None, 1, True),
}

# Hand-computed: (UTC day, agent, source) -> runs, p50/p95 queue, p50/p95 interaction, stuck.
EXPECTED_DAILY: Dict[Tuple[date, str, str], Tuple[Any, ...]] = {
    # queued 30, 10, 60 -> p50 30, p95 at rank 1.9: 30 + 0.9 * 30 = 57;
    # interactions of trun_human (300) and trun_resent (200): p50 250, p95 200 + 0.95 * 100 = 295
    (T.date(), A1, S1): (3, 30.0, 57.0, 250.0, 295.0, 0),
    # queued 45, 60 -> p50 52.5, p95 45 + 0.95 * 15 = 59.25; trun_tie's interaction took 0 s
    (T.date(), A2, S2): (2, 52.5, 59.25, 0.0, 0.0, 0),
    # queued 0, 10, 10, 60 -> p50 at rank 1.5: 10, p95 at rank 2.85: 10 + 0.85 * 50 = 52.5;
    # trun_spelled's interaction took 0 s
    (T.date(), A3, S3): (4, 10.0, 52.5, 0.0, 0.0, 0),
    # only trun_fresh ran (6060 s); trun_stuck is open in its status for 2 h: stuck
    (S.date(), A1, S2): (2, 6060.0, 6060.0, None, None, 1),
}


# ------------------------------------------------------------------------------------------------
# warehouses: a few synced runs (so `task_runs` exists), the event tables, the models refreshed
# ------------------------------------------------------------------------------------------------


class EventWarehouse:
    """A dataset with task_runs from a real sync without events; event tables added by hand."""

    def __init__(self, pipeline: dlt.Pipeline, simulator: DeckSimulator):
        self.pipeline = pipeline
        self.simulator = simulator
        simulator.add_runs(3)
        sync_from(simulator, pipeline, events=False)
        self.created: List[str] = []

    def load_events(self, events: List[Row] = EVENTS, gaps: List[Row] = GAPS) -> None:
        create_event_tables(self.pipeline)
        insert_rows(self.pipeline, EVENTS_TABLE, events)
        insert_rows(self.pipeline, GAPS_TABLE, gaps)

    def refresh(self) -> List[str]:
        self.created = refresh_models(self.pipeline)
        return self.created

    def model(self, name: str) -> List[Row]:
        return read_view(self.pipeline, name)

    def history(self) -> Dict[str, List[Row]]:
        out: Dict[str, List[Row]] = {}
        for row in sorted(self.model("task_run_status_history"),
                          key=lambda r: (r["task_run_id"], r["interval_index"])):
            out.setdefault(row["task_run_id"], []).append(row)
        return out

    def lifecycle(self) -> Dict[str, Row]:
        rows = self.model("task_run_lifecycle")
        by_id = {r["task_run_id"]: r for r in rows}
        assert len(by_id) == len(rows), "one row per run"
        return by_id

    def daily(self) -> Dict[Tuple[Any, ...], Row]:
        rows = self.model("daily_task_run_waits")
        by_key = {(r["day"], r["agent_id"], r["source_id"]): r for r in rows}
        assert len(by_key) == len(rows), "one row per day x agent x source"
        return by_key


def duckdb_warehouse(root: Path, simulator: DeckSimulator) -> EventWarehouse:
    return EventWarehouse(
        make_pipeline("deck_lifecycle", root / "dlt",
                      dlt.destinations.duckdb(str(root / "warehouse.duckdb"))),
        simulator,
    )


def postgres_warehouse(server: PostgresServer, root: Path, sim: DeckSimulator) -> EventWarehouse:
    database = server.create_database(timezone="Pacific/Kiritimati", icu_locale="en-US")
    pipeline = dlt.pipeline(
        pipeline_name="deck_lifecycle_pg",
        pipelines_dir=str(root / "dlt"),
        destination=dlt.destinations.postgres(server.database_url(database)),
        dataset_name=f"deck_{uuid.uuid4().hex[:8]}",
    )
    return EventWarehouse(pipeline, sim)


@pytest.fixture(scope="session")
def duck_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventWarehouse]:
    sim = make_simulator(seed=11, runs=0)
    try:
        wh = duckdb_warehouse(tmp_path_factory.mktemp("lifecycle-duckdb"), sim)
        wh.load_events()
        wh.refresh()
        yield wh
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def pg_events(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EventWarehouse]:
    sim = make_simulator(seed=11, runs=0)
    try:
        wh = postgres_warehouse(postgres_server, tmp_path_factory.mktemp("lifecycle-pg"), sim)
        wh.load_events()
        wh.refresh()
        yield wh
    finally:
        sim.stop()


@pytest.fixture(params=["duckdb", "postgres"])
def loaded(request: pytest.FixtureRequest) -> EventWarehouse:
    """The hand-built histories loaded and the models refreshed, on each destination."""
    return request.getfixturevalue("duck_events" if request.param == "duckdb" else "pg_events")


@pytest.fixture(params=["duckdb", "postgres"])
def bare(request: pytest.FixtureRequest, simulator: DeckSimulator, tmp_path: Path):
    """A warehouse of this test's own with task_runs and no event tables, on each destination."""
    if request.param == "duckdb":
        return duckdb_warehouse(tmp_path, simulator)
    return postgres_warehouse(request.getfixturevalue("postgres_server"), tmp_path, simulator)


# ------------------------------------------------------------------------------------------------
# comparisons
# ------------------------------------------------------------------------------------------------


def history_tuples(rows: List[Row]) -> List[Tuple[Any, ...]]:
    return [
        (r["interval_index"], r["agent_id"], r["source_id"], r["task_id"], r["status"],
         r["entered_at"], r["left_at"], r["seconds_in_status"], r["is_current"], r["event_id"])
        for r in rows
    ]


def expected_history_tuples(run: str) -> List[Tuple[Any, ...]]:
    agent, source, intervals = EXPECTED_HISTORY[run]
    return [
        (index, agent, source, TASK, status, entered, left,
         None if left is None else (left - entered).total_seconds(), left is None, event)
        for index, (status, entered, left, event) in enumerate(intervals)
    ]


def as_float(value: Any) -> Any:
    return None if value is None else float(value)


# ------------------------------------------------------------------------------------------------
# the models, on DuckDB and PostgreSQL
# ------------------------------------------------------------------------------------------------


def test_refresh_creates_the_event_models_beside_the_others(loaded: EventWarehouse):
    assert loaded.created == ALL_MODELS


def test_status_history_has_the_hand_computed_intervals(loaded: EventWarehouse):
    history = loaded.history()
    assert sorted(history) == sorted(EXPECTED_HISTORY)
    for run in EXPECTED_HISTORY:
        assert history_tuples(history[run]) == expected_history_tuples(run), run


def test_old_spellings_and_type_suffixes_read_as_the_current_statuses(loaded: EventWarehouse):
    history = loaded.history()
    assert [r["status"] for r in history["trun_human"]][4:6] == ["review_required", "canceling"]
    assert [r["status"] for r in history["trun_noqueue"]][1:3] == ["review_required", "canceling"]
    sent = {r["id"]: (r["type"], r["status"]) for r in read_view(loaded.pipeline, EVENTS_TABLE)}
    assert sent["evt_h5"] == ("task_run.pending", "pending"), "the table keeps what was sent"
    assert sent["evt_m3"] == ("task_run.canceling", "cancelling")


def test_a_re_sent_status_is_not_a_transition(loaded: EventWarehouse):
    resent = loaded.history()["trun_resent"]
    assert [(r["status"], r["seconds_in_status"]) for r in resent[:3]] == [
        ("queued", 60.0), ("running", 180.0), ("interaction_required", 200.0),
    ]
    assert loaded.lifecycle()["trun_resent"]["transitions"] == 4


def test_events_of_one_rank_sharing_a_timestamp_are_ordered_by_id_bytes(loaded: EventWarehouse):
    if loaded.pipeline.destination.destination_name == "postgres":
        collated = query(loaded.pipeline,
                         "SELECT x FROM (VALUES ('evt_q2'), ('evt_Q7')) AS t(x) ORDER BY x")
        assert [r["x"] for r in collated] == ["evt_q2", "evt_Q7"], "the database's own collation"
    tie = loaded.history()["trun_tie"][2:4]
    assert [(r["status"], r["event_id"], r["seconds_in_status"]) for r in tie] == [
        ("interaction_required", "evt_Q7", 0.0), ("review_required", "evt_q2", 30.0),
    ]
    assert (loaded.lifecycle()["trun_tie"]["interaction_seconds"],
            loaded.lifecycle()["trun_tie"]["review_seconds"]) == (0.0, 30.0)


def test_a_run_created_running_is_queued_then_running_whatever_the_ids(loaded: EventWarehouse):
    born = loaded.history()["trun_born"]
    assert [(r["status"], r["event_id"], r["seconds_in_status"], r["is_current"])
            for r in born] == [
        ("queued", "evt_b2", 0.0, False), ("running", "evt_b1", 100.0, False),
        ("completed", "evt_b3", None, True),
    ]
    lifecycle = loaded.lifecycle()["trun_born"]
    assert (lifecycle["queued_seconds"], lifecycle["running_seconds"]) == (0.0, 100.0)


def test_canceling_comes_before_a_final_status_sent_at_once(loaded: EventWarehouse):
    canceled = loaded.history()["trun_cancel"][2:]
    assert [(r["status"], r["event_id"], r["is_current"]) for r in canceled] == [
        ("canceling", "evt_c4", False), ("canceled", "evt_c3", True),
    ]
    lifecycle = loaded.lifecycle()["trun_cancel"]
    assert (lifecycle["current_status"], lifecycle["is_final"], lifecycle["total_seconds"]) == (
        "canceled", True, 100.0,
    )


def test_a_legacy_spelling_is_ranked_as_the_status_it_reads_as(loaded: EventWarehouse):
    spelled = loaded.history()["trun_spelled"][2:]
    assert [(r["status"], r["event_id"], r["seconds_in_status"]) for r in spelled] == [
        ("interaction_required", "evt_l9", 0.0), ("canceling", "evt_l3", 30.0),
        ("canceled", "evt_l4", None),
    ]
    assert loaded.lifecycle()["trun_spelled"]["canceling_seconds"] == 30.0


def test_an_unlisted_status_ranks_after_running_and_before_a_final_one(loaded: EventWarehouse):
    unlisted = loaded.history()["trun_unlisted"][1:]
    assert [(r["status"], r["event_id"], r["seconds_in_status"]) for r in unlisted] == [
        ("running", "evt_u3", 0.0), ("paused", "evt_u2", 60.0), ("archived", "evt_u6", 0.0),
        ("completed", "evt_u5", None),
    ]
    lifecycle = loaded.lifecycle()["trun_unlisted"]
    assert (lifecycle["current_status"], lifecycle["queued_seconds"]) == ("completed", 60.0)


def test_events_without_a_run_a_time_or_a_status_are_left_out(loaded: EventWarehouse):
    history = loaded.history()
    assert "trun_ghost" not in history and None not in history
    assert "evt_r5" not in {r["event_id"] for rows in history.values() for r in rows}
    assert "trun_ghost" not in loaded.lifecycle()


def test_a_run_keeps_its_agent_when_later_events_lack_it(loaded: EventWarehouse):
    assert {r["agent_id"] for r in loaded.history()["trun_resent"]} == {A1}
    assert loaded.lifecycle()["trun_resent"]["agent_id"] == A1


def test_lifecycle_has_the_hand_computed_times_per_run(loaded: EventWarehouse):
    lifecycle = loaded.lifecycle()
    assert sorted(lifecycle) == sorted(EXPECTED_LIFECYCLE)
    for run, expected in EXPECTED_LIFECYCLE.items():
        row = lifecycle[run]
        agent, source, _ = EXPECTED_HISTORY[run]
        assert (row["agent_id"], row["source_id"], row["task_id"]) == (agent, source, TASK), run
        got = tuple(row[c] for c in LIFECYCLE_COLUMNS)
        assert got == expected, run


def test_lifecycle_sums_are_never_null(loaded: EventWarehouse):
    for row in loaded.lifecycle().values():
        for column in ("running_seconds", "interaction_seconds", "review_seconds",
                       "canceling_seconds"):
            assert row[column] is not None, (row["task_run_id"], column)


def test_a_run_without_its_queued_event_is_not_history_complete(loaded: EventWarehouse):
    lifecycle = loaded.lifecycle()
    assert lifecycle["trun_noqueue"]["history_complete"] is False
    assert lifecycle["trun_noqueue"]["queued_seconds"] == 45.0, "measured from run_created_at"
    assert all(r["history_complete"] is True for k, r in lifecycle.items() if k != "trun_noqueue")


def test_daily_waits_have_the_hand_computed_percentiles_and_stuck_runs(loaded: EventWarehouse):
    daily = loaded.daily()
    assert sorted(daily, key=str) == sorted(EXPECTED_DAILY, key=str)
    for key, (runs, p50q, p95q, p50i, p95i, stuck) in EXPECTED_DAILY.items():
        row = daily[key]
        assert (row["runs"], row["stuck_runs"]) == (runs, stuck), key
        for column, want in (("p50_queue_seconds", p50q), ("p95_queue_seconds", p95q),
                             ("p50_interaction_seconds", p50i),
                             ("p95_interaction_seconds", p95i)):
            got = as_float(row[column])
            assert got == (None if want is None else pytest.approx(want, rel=1e-12)), (key, column)


def test_only_open_runs_in_their_status_for_over_an_hour_are_stuck(loaded: EventWarehouse):
    group = loaded.daily()[(S.date(), A1, S2)]
    assert group["stuck_runs"] == 1  # trun_stuck (2 h), not trun_fresh (20 min)
    finished = [r for k, r in loaded.daily().items() if k != (S.date(), A1, S2)]
    assert [r["stuck_runs"] for r in finished] == [0, 0, 0], "final runs are never stuck"


def test_daily_day_is_the_utc_date_whatever_the_session_time_zone(pg_events: EventWarehouse):
    local = query(pg_events.pipeline, "SELECT CAST(CAST('2026-03-02T12:00:00+00:00' AS"
                                      " TIMESTAMP WITH TIME ZONE) AS DATE) AS d")
    assert local[0]["d"] == date(2026, 3, 3), "the session must be far from UTC (UTC+14)"
    assert {k[0] for k in pg_events.daily()} == {T.date(), S.date()}


# ------------------------------------------------------------------------------------------------
# no events table yet
# ------------------------------------------------------------------------------------------------


def test_event_models_exist_and_are_empty_without_an_events_table(bare: EventWarehouse):
    assert bare.refresh() == ALL_MODELS
    for name in EVENT_MODELS:
        assert bare.model(name) == [], name
    facts = bare.model("task_run_facts")
    assert sorted(r["id"] for r in facts) == sorted(r["id"] for r in bare.simulator.runs())


def test_event_models_read_the_events_once_the_table_exists(bare: EventWarehouse):
    bare.refresh()
    bare.load_events()

    assert bare.refresh() == ALL_MODELS
    assert sorted(bare.history()) == sorted(EXPECTED_HISTORY)
    assert bare.lifecycle()["trun_human"]["review_seconds"] == 600.0


# ------------------------------------------------------------------------------------------------
# how models and fragments are rendered (a bare DuckDB dataset with a task_runs table)
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path: Path) -> dlt.Pipeline:
    pipeline = make_pipeline("deck_tiny", tmp_path / "dlt",
                             dlt.destinations.duckdb(str(tmp_path / "tiny.duckdb")))
    with pipeline.sql_client() as client:
        client.create_dataset()
        client.execute_sql(f"CREATE TABLE {client.make_qualified_table_name('task_runs')}"
                           " (id VARCHAR)")
    return pipeline


def test_a_fragment_is_a_subquery_of_the_models_that_name_it(tiny: dlt.Pipeline, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "_ids.sql").write_text("SELECT 'a' AS id UNION ALL SELECT 'b' AS id")
    (models / "_counted.sql").write_text("SELECT COUNT(*) AS n FROM {{ ids }} i")
    (models / "id_count.sql").write_text("SELECT n FROM {{ counted }} c")

    assert refresh_models(tiny, models_dir=models) == ["id_count"]
    assert read_view(tiny, "id_count") == [{"n": 2}]


def test_fragments_that_use_each_other_in_a_loop_are_an_error(tiny: dlt.Pipeline, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "_one.sql").write_text("SELECT * FROM {{ two }} t")
    (models / "_two.sql").write_text("SELECT * FROM {{ one }} o")
    (models / "looping.sql").write_text("SELECT * FROM {{ one }} o")

    with pytest.raises(DeckModelError, match="loop: one -> two -> one"):
        refresh_models(tiny, models_dir=models)


def test_status_spellings_are_rendered_from_settings(tiny: dlt.Pipeline, tmp_path, monkeypatch):
    from deck.core import settings

    monkeypatch.setattr(settings, "STATUS_SPELLINGS", {"on_hold": "review_required"})
    models = tmp_path / "models"
    models.mkdir()
    (models / "spelled.sql").write_text(
        "SELECT CASE s {{ status_spellings }} ELSE s END AS status"
        " FROM (VALUES ('on_hold'), ('pending')) AS t(s)"
    )
    refresh_models(tiny, models_dir=models)
    assert sorted(r["status"] for r in read_view(tiny, "spelled")) == ["pending", "review_required"]


def test_status_order_is_rendered_from_settings(tiny: dlt.Pipeline, tmp_path, monkeypatch):
    from deck.core import settings

    monkeypatch.setattr(settings, "STATUS_ORDER", {"late": 1, "it's": 0})
    monkeypatch.setattr(settings, "UNLISTED_STATUS_ORDER", 7)
    models = tmp_path / "models"
    models.mkdir()
    (models / "ranked.sql").write_text(
        "SELECT s, CASE s {{ status_order }} END AS status_rank"
        " FROM (VALUES ('late'), ('it''s'), ('queued')) AS t(s)"
    )
    refresh_models(tiny, models_dir=models)
    ranks = {r["s"]: r["status_rank"] for r in read_view(tiny, "ranked")}
    assert ranks == {"late": 1, "it's": 0, "queued": 7}


def test_a_status_rank_that_is_not_an_integer_is_refused(tiny: dlt.Pipeline, tmp_path,
                                                         monkeypatch):
    from deck.core import settings

    monkeypatch.setattr(settings, "STATUS_ORDER", {"queued": "0 END; DROP TABLE task_runs --"})
    models = tmp_path / "models"
    models.mkdir()
    (models / "ranked.sql").write_text("SELECT CASE 'queued' {{ status_order }} END AS r")
    with pytest.raises(DeckModelError, match="integer status rank"):
        refresh_models(tiny, models_dir=models)
    assert read_view(tiny, "task_runs") == [], "nothing was run"


@pytest.mark.unit
def test_fragments_are_not_models():
    assert set(EVENT_MODELS) <= set(model_names())
    assert fragment_names() == ["task_run_lifecycles", "task_run_status_intervals"]
    assert not set(fragment_names()) & set(model_names())


# ------------------------------------------------------------------------------------------------
# the Python oracle, on the same histories and the same hand-computed values
# ------------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_oracle_intervals_are_the_hand_computed_ones():
    by_run: Dict[str, List[Row]] = {}
    for interval in lifecycle_of(EVENTS):
        by_run.setdefault(interval.task_run_id, []).append(interval.as_row())
    assert sorted(by_run) == sorted(EXPECTED_HISTORY)
    for run in EXPECTED_HISTORY:
        assert history_tuples(by_run[run]) == expected_history_tuples(run), run


@pytest.mark.unit
def test_oracle_lifecycles_are_the_hand_computed_ones():
    runs = lifecycles(EVENTS)
    assert sorted(runs) == sorted(EXPECTED_LIFECYCLE)
    for run, expected in EXPECTED_LIFECYCLE.items():
        assert tuple(getattr(runs[run], c) for c in LIFECYCLE_COLUMNS) == expected, run
        assert runs[run].agent_id == EXPECTED_HISTORY[run][0]


@pytest.mark.unit
def test_oracle_daily_waits_are_the_hand_computed_ones():
    got = daily_waits(EVENTS, now=NOW)
    assert sorted(got, key=str) == sorted(EXPECTED_DAILY, key=str)
    for key, (runs, *percentiles, stuck) in EXPECTED_DAILY.items():
        row = got[key]
        assert (row.runs, row.stuck_runs) == (runs, stuck), key
        got_percentiles = [row.p50_queue_seconds, row.p95_queue_seconds,
                           row.p50_interaction_seconds, row.p95_interaction_seconds]
        for value, want in zip(got_percentiles, percentiles, strict=True):
            assert value == (None if want is None else pytest.approx(want, rel=1e-12)), key


@pytest.mark.unit
def test_oracle_reads_events_as_the_api_sends_them():
    """The same histories as `GET /events` returns them give the same intervals."""
    api_events = []
    for row in EVENTS:
        when = row["created_at"]
        api_events.append({
            "id": row["id"], "object": "event", "type": row["type"],
            "created_at": None if when is None else when.isoformat().replace("+00:00", "Z"),
            "data": {
                "id": row["task_run_id"], "status": row["status"],
                "created_at": row["run_created_at"].isoformat(), "agent_id": row["agent_id"],
                "source_id": row["source_id"], "task_id": row["task_id"],
            },
        })
    assert event_row(api_events[0])["task_run_id"] == "trun_normal"
    assert lifecycle_of(api_events) == lifecycle_of(EVENTS)
