"""``GET /events`` of the Deck simulator, over real HTTP (issue 11: run lifecycle from events).

The connector will rebuild run lifecycles from these events, so they must agree with the runs the
simulator serves (``runs()`` is the ground truth the event log did not compute), page like
``/task-runs`` does, expire after the retention window, and carry both spellings older Deck
pages use. Expected types and spellings are written out by hand here, from FACTS.md.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from deck_simulator import DeckSimulator

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
# the documented spelling each served status stands for (FACTS.md: older pages)
CANONICAL = {"pending": "review_required", "cancelling": "canceling"}
# the event type of each served data.status, worked out from FACTS.md
TYPE_OF = {
    "queued": "task_run.queued",
    "running": "task_run.running",
    "review_required": "task_run.pending",
    "pending": "task_run.pending",
    "completed": "task_run.completed",
    "failed": "task_run.failed",
    "canceling": "task_run.canceling",
    "cancelling": "task_run.cancelling",
    "canceled": "task_run.canceled",
    "interaction_required": "task_run.interaction_required",
}
SUMMARY_FIELDS = [
    "id",
    "object",
    "status",
    "result",
    "task_id",
    "credential_id",
    "agent_id",
    "source_id",
    "runtime_ms",
    "created_at",
    "updated_at",
]


def ms(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def canonical(status: str) -> str:
    return CANONICAL.get(status, status)


@pytest.fixture
def sim() -> Iterator[DeckSimulator]:
    simulator = DeckSimulator(seed=5, runs=400, history_days=10, now=NOW).start()
    try:
        yield simulator
    finally:
        simulator.stop()


def session_for(sim: DeckSimulator) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {sim.api_key}"
    return session


@pytest.fixture
def http(sim: DeckSimulator) -> Iterator[requests.Session]:
    with session_for(sim) as session:
        yield session


def get(http: requests.Session, sim: DeckSimulator, **params: Any) -> requests.Response:
    return http.get(sim.base_url + "/events", params=params, timeout=10)


def walk(http: requests.Session, sim: DeckSimulator, **params: Any) -> list[Any]:
    """Every event a cursor walk returns, page after page (checking each page's envelope)."""
    out: list[Any] = []
    query = dict(params)
    while True:
        response = get(http, sim, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "has_more", "next_cursor", "request_id"}
        assert (body["next_cursor"] is None) == (not body["has_more"])
        out.extend(body["data"])
        if not body["has_more"]:
            return out
        query["cursor"] = body["next_cursor"]


def by_run(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events per run id, oldest first (walk order ascending)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in sorted(events, key=lambda e: (e["created_at"], e["id"])):
        out[event["data"]["id"]].append(event)
    return out


def assert_validation_error(response: requests.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == VALIDATION_TYPE
    assert field in body["errors"], body
    assert body["request_id"].startswith("req_")


# ---------------------------------------------------------------------------- consistency


def test_every_run_has_a_queued_event_at_its_creation(sim: DeckSimulator, http: requests.Session):
    events = walk(http, sim, limit=100)
    queued = {e["data"]["id"]: e["created_at"] for e in events if e["type"] == "task_run.queued"}
    runs = sim.runs()
    assert len(runs) == 400
    assert queued == {run["id"]: run["created_at"] for run in runs}


def test_latest_event_of_each_run_is_its_current_state(sim: DeckSimulator, http: requests.Session):
    sim.advance(3 * 3600, new_runs=30)  # lifecycle steps of advance() emit events too
    events = by_run(walk(http, sim, limit=100))
    runs = sim.runs()
    assert set(events) == {run["id"] for run in runs}
    for run in runs:
        latest = events[run["id"]][-1]["data"]
        assert canonical(latest["status"]) == canonical(run["status"]), run["id"]
        assert latest["result"] == run["result"]
        assert latest["runtime_ms"] == run["runtime_ms"]
        # every lifecycle step changes the status, so the last change is the last update
        assert latest["updated_at"] == run["updated_at"]


def test_events_of_a_run_go_forward_in_time_and_each_changes_status(
    sim: DeckSimulator, http: requests.Session
):
    sim.advance(86_400, new_runs=20)
    for run_id, events in by_run(walk(http, sim, limit=100)).items():
        assert events[0]["type"] == "task_run.queued", run_id
        times = [ms(e["created_at"]) for e in events]
        assert times == sorted(times)
        statuses = [canonical(e["data"]["status"]) for e in events]
        assert all(a != b for a, b in zip(statuses, statuses[1:], strict=False)), statuses


def test_event_shape_is_the_run_summary_at_that_moment(sim: DeckSimulator, http: requests.Session):
    runs = {run["id"]: run for run in sim.runs()}
    events = walk(http, sim, limit=100)
    for event in events:
        assert list(event) == ["id", "object", "type", "data", "created_at"]
        assert re.fullmatch(r"evt_[0-9a-f]{24}", event["id"])
        assert event["object"] == "event"
        assert TIMESTAMP.match(event["created_at"])
        data = event["data"]
        run = runs[data["id"]]
        expected = list(SUMMARY_FIELDS)
        if "workflow_id" in run:
            expected.insert(expected.index("runtime_ms"), "workflow_id")
        assert list(data) == expected
        assert event["type"] == TYPE_OF[data["status"]]
        assert data["updated_at"] == event["created_at"]
        for field in ("object", "task_id", "credential_id", "agent_id", "source_id", "created_at"):
            assert data[field] == run[field]
        if "workflow_id" in run:
            assert data["workflow_id"] == run["workflow_id"]
        if data["status"] in ("queued", "running"):
            assert data["result"] is None and data["runtime_ms"] is None
    assert len({e["id"] for e in events}) == len(events)


def test_add_runs_with_a_status_emits_queued_and_that_status_at_created_at(
    sim: DeckSimulator, http: requests.Session
):
    created = NOW - timedelta(hours=2)
    (run_id,) = sim.add_runs(1, created_at=created, status="failed")
    events = by_run(walk(http, sim, limit=100))[run_id]
    # both at the same millisecond: their order is the ids' order, so compare as a set
    assert {(e["type"], e["data"]["status"], e["created_at"]) for e in events} == {
        ("task_run.queued", "queued", iso(created)),
        ("task_run.failed", "failed", iso(created)),
    }
    assert len(events) == 2


def test_update_run_emits_an_event_at_the_clock(sim: DeckSimulator, http: requests.Session):
    (run_id,) = sim.add_runs(1, status="running")
    sim.advance(90)
    sim.update_run(run_id, status="review_required")
    latest = by_run(walk(http, sim, limit=100))[run_id][-1]
    assert latest["type"] == "task_run.pending"
    assert latest["data"]["status"] in ("review_required", "pending")
    assert latest["created_at"] == iso(NOW + timedelta(seconds=90))


def test_advance_emits_each_transition_at_its_own_time(sim: DeckSimulator, http: requests.Session):
    run_ids = sim.add_runs(12)  # queued at the clock; their steps are scheduled after it
    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for _ in range(30):  # small steps, so that most intermediate states are observed
        for run in map(sim.run, run_ids):
            state = (canonical(run["status"]), run["updated_at"])
            if state not in seen[run["id"]]:
                seen[run["id"]].append(state)
        sim.advance(20)
    events = by_run(walk(http, sim, limit=100))
    for run_id in run_ids:
        served = [(canonical(e["data"]["status"]), e["created_at"]) for e in events[run_id]]
        assert served[0] == ("queued", iso(NOW))
        # each state the run was observed in is an event at the time of that state
        assert [state for state in served if state in seen[run_id]] == seen[run_id]
    assert sum(len(states) for states in seen.values()) >= 3 * len(run_ids)


# ---------------------------------------------------------------------------- listing


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_pagination_walks_every_event_exactly_once(
    sim: DeckSimulator, http: requests.Session, order: str
):
    sim.order = order
    truth = [e["id"] for e in sim.events()]
    assert len(truth) > 1000
    walked = [e["id"] for e in walk(http, sim, limit=37)]
    assert walked == (truth if order == "oldest_first" else truth[::-1])


def test_created_after_excludes_events_at_that_exact_millisecond(
    sim: DeckSimulator, http: requests.Session
):
    at = NOW - timedelta(days=1, minutes=7)
    batch = set(sim.add_runs(4, created_at=at, status="running"))
    at_iso = iso(at)
    after = walk(http, sim, limit=100, created_after=at_iso)
    assert after and all(ms(e["created_at"]) > at for e in after)
    just_before = iso(at - timedelta(milliseconds=1))
    including = walk(http, sim, limit=100, created_after=just_before)
    at_that_ms = {(e["data"]["id"], e["type"]) for e in including if e["created_at"] == at_iso}
    expected = {(r, t) for r in batch for t in ("task_run.queued", "task_run.running")}
    assert at_that_ms == expected
    assert len(including) == len(after) + 8


def test_created_before_excludes_events_at_that_exact_millisecond(
    sim: DeckSimulator, http: requests.Session
):
    at = NOW - timedelta(days=2, seconds=3)
    batch = sim.add_runs(3, created_at=at, status="queued")
    before = walk(http, sim, limit=100, created_before=iso(at))
    assert before and all(ms(e["created_at"]) < at for e in before)
    through = walk(http, sim, limit=100, created_before=iso(at + timedelta(milliseconds=1)))
    assert {e["data"]["id"] for e in through if e["created_at"] == iso(at)} == set(batch)


def test_type_filter_returns_exactly_those_types(sim: DeckSimulator, http: requests.Session):
    wanted = {"task_run.completed", "task_run.failed"}
    got = walk(http, sim, limit=100, **{"type[]": sorted(wanted)})
    truth = [e for e in sim.events() if e["type"] in wanted]
    assert got == truth[::-1]
    assert {e["type"] for e in got} == wanted


def test_type_filter_also_accepted_without_brackets(sim: DeckSimulator, http: requests.Session):
    got = walk(http, sim, limit=100, type="task_run.queued")
    # runs created in one batch share a millisecond: ids order them differently, so compare sets
    assert sorted((e["created_at"], e["data"]["id"]) for e in got) == sorted(
        (r["created_at"], r["id"]) for r in sim.runs()
    )
    assert {e["type"] for e in got} == {"task_run.queued"}


def test_type_filter_on_review_and_cancel_matches_both_spellings(
    sim: DeckSimulator, http: requests.Session
):
    truth = sim.events()
    review = walk(http, sim, limit=100, **{"type[]": "task_run.pending"})
    assert (
        review == [e for e in truth if e["data"]["status"] in ("review_required", "pending")][::-1]
    )
    cancel = walk(http, sim, limit=100, **{"type[]": "task_run.canceling"})
    assert cancel == [e for e in truth if e["data"]["status"] in ("canceling", "cancelling")][::-1]
    assert cancel


@pytest.mark.parametrize("value", ["task_run.paused", "queued", "task_run.review_required", "*"])
def test_unknown_type_is_a_validation_error(sim: DeckSimulator, http: requests.Session, value: str):
    assert_validation_error(get(http, sim, **{"type[]": ["task_run.queued", value]}), "type")


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "007"])
def test_limit_outside_1_to_100_is_a_validation_error(
    sim: DeckSimulator, http: requests.Session, limit: str
):
    assert_validation_error(get(http, sim, limit=limit), "limit")


@pytest.mark.parametrize("limit", [1, 100])
def test_limit_bounds_are_accepted(sim: DeckSimulator, http: requests.Session, limit: int):
    body = get(http, sim, limit=limit).json()
    assert len(body["data"]) == limit and body["has_more"] is True


def test_default_page_is_twenty_newest_events(sim: DeckSimulator, http: requests.Session):
    body = get(http, sim).json()
    assert body["data"] == sim.events()[::-1][:20]


def test_task_runs_cursor_is_rejected_on_events(sim: DeckSimulator, http: requests.Session):
    runs_page = http.get(sim.base_url + "/task-runs", params={"limit": 2}, timeout=10).json()
    assert_validation_error(get(http, sim, cursor=runs_page["next_cursor"]), "cursor")


def test_cursor_bound_to_its_type_filter(sim: DeckSimulator, http: requests.Session):
    page = get(http, sim, limit=2, **{"type[]": "task_run.queued"}).json()
    assert_validation_error(get(http, sim, cursor=page["next_cursor"]), "cursor")


# ---------------------------------------------------------------------------- retention


def test_events_older_than_retention_are_not_served():
    with DeckSimulator(seed=9, runs=300, history_days=45, now=NOW) as sim, session_for(sim) as http:
        cutoff = NOW - timedelta(days=30)
        served = walk(http, sim, limit=100)
        assert served and all(ms(e["created_at"]) >= cutoff for e in served)
        recent = {r["id"] for r in sim.runs() if ms(r["created_at"]) >= cutoff}
        old = {r["id"] for r in sim.runs() if ms(r["created_at"]) < cutoff - timedelta(hours=1)}
        assert recent and old
        queued = {e["data"]["id"] for e in served if e["type"] == "task_run.queued"}
        assert queued == recent


def test_events_already_expired_when_seeded_are_not_kept():
    """Documented memory saving for the benchmarks' 500k runs: the log starts at the cutoff."""
    sim = DeckSimulator(seed=9, runs=300, history_days=45, now=NOW)
    log = sim.event_log()
    assert log == sim.events()
    assert ms(log[0]["created_at"]) >= NOW - timedelta(days=30)


def test_advance_past_retention_drops_events(sim: DeckSimulator, http: requests.Session):
    before = walk(http, sim, limit=100)
    sim.advance(31 * 86_400)
    cutoff = NOW + timedelta(days=1)  # the clock is NOW + 31 days; retention is 30 days
    after = walk(http, sim, limit=100)
    assert after and all(ms(e["created_at"]) >= cutoff for e in after)
    assert not {e["id"] for e in before} & {e["id"] for e in after}  # history was 10 days
    log = sim.event_log()
    assert [e for e in log if ms(e["created_at"]) >= cutoff] == after[::-1]
    assert {e["id"] for e in before} <= {e["id"] for e in log}  # expired, but still logged


def test_expired_events_do_not_count_for_has_more(sim: DeckSimulator, http: requests.Session):
    sim.advance(31 * 86_400)
    served = len(sim.events())
    assert 0 < served <= 100
    body = get(http, sim, limit=served).json()
    assert len(body["data"]) == served and body["has_more"] is False


def test_retention_can_be_changed(sim: DeckSimulator):
    everything = sim.events()
    sim.event_retention_days = 1
    assert sim.events() == [e for e in everything if ms(e["created_at"]) >= NOW - timedelta(1)]


# ---------------------------------------------------------------------------- spellings


def test_both_spellings_of_review_and_cancel_events_are_served():
    with (
        DeckSimulator(seed=21, runs=3000, history_days=20, now=NOW) as sim,
        session_for(sim) as http,
    ):
        served = walk(http, sim, limit=100)
    pairs = Counter((e["type"], e["data"]["status"]) for e in served)
    for event_type, status in pairs:
        assert TYPE_OF[status] == event_type
    review = pairs["task_run.pending", "review_required"] + pairs["task_run.pending", "pending"]
    cancel = pairs["task_run.canceling", "canceling"] + pairs["task_run.cancelling", "cancelling"]
    assert review > 100 and cancel > 50
    assert 0.15 < pairs["task_run.pending", "pending"] / review < 0.45
    assert 0.15 < pairs["task_run.cancelling", "cancelling"] / cancel < 0.45


def test_events_are_the_same_for_the_same_seed_whatever_the_retention():
    short = DeckSimulator(seed=3, runs=200, history_days=20, now=NOW, event_retention_days=5)
    full = DeckSimulator(seed=3, runs=200, history_days=20, now=NOW)
    cutoff = NOW - timedelta(days=5)
    assert short.events() == [e for e in full.events() if ms(e["created_at"]) >= cutoff]
    assert short.runs() == full.runs()


# ---------------------------------------------------------------------------- shared machinery


def test_fault_injected_on_events_is_served_there(sim: DeckSimulator, http: requests.Session):
    sim.inject("503", path="/events")
    runs = http.get(sim.base_url + "/task-runs", timeout=10)
    assert runs.status_code == 200
    assert sim.pending_faults() == 1
    assert get(http, sim).status_code == 503
    assert get(http, sim).status_code == 200
    assert sim.pending_faults() == 0


def test_fault_without_path_hits_events_too(sim: DeckSimulator, http: requests.Session):
    sim.inject("has_more_lie")
    body = get(http, sim).json()
    assert body["data"] == [] and body["has_more"] is True


def test_events_share_the_rate_limit_of_task_runs(sim: DeckSimulator, http: requests.Session):
    sim.rate_limit = (3, 3600.0)
    assert http.get(sim.base_url + "/task-runs", timeout=10).status_code == 200
    assert get(http, sim).status_code == 200
    assert get(http, sim).status_code == 200
    limited = get(http, sim)
    assert limited.status_code == 429
    assert limited.json()["errors"][0]["code"] == "rate_limit_exceeded"
    assert http.get(sim.base_url + "/task-runs", timeout=10).status_code == 429


def test_events_need_the_api_key(sim: DeckSimulator):
    response = requests.get(sim.base_url + "/events", timeout=10)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "unauthorized"


def test_events_requests_are_logged(sim: DeckSimulator, http: requests.Session):
    sim.clear_requests()
    get(http, sim, limit=5, **{"type[]": "task_run.failed"})
    (request,) = sim.requests
    assert request.path == "/v2/events"
    assert request.params == {"limit": ["5"], "type[]": ["task_run.failed"]}
    assert request.status == 200


def is_event(value: Any) -> bool:
    return isinstance(value, dict) and value.get("object") == "event"


def test_raw_event_is_served_verbatim_at_its_position(sim: DeckSimulator, http: requests.Session):
    at = NOW - timedelta(hours=5)
    hostile = [{"id": 7, "type": ["x"], "data": "not a run"}, "just text", None]
    handles = [sim.add_raw_event(record, created_at=at) for record in hostile]
    assert len(set(handles)) == 3
    served = walk(http, sim, limit=10)
    positions = [i for i, e in enumerate(served) if not is_event(e)]
    assert len(positions) == 3
    assert sorted(map(repr, (served[i] for i in positions))) == sorted(map(repr, hostile))
    # newest first: the events served before the raw ones are not older, those after not newer
    assert all(ms(e["created_at"]) >= at for e in served[: positions[0]])
    assert all(ms(e["created_at"]) <= at for e in served[positions[-1] + 1 :])
    assert len(served) == len(sim.events()) + 3  # ground truth leaves raw events out


def test_replaced_raw_event_is_served_instead(sim: DeckSimulator, http: requests.Session):
    handle = sim.add_raw_event("first", created_at=NOW - timedelta(hours=1))
    sim.replace_raw_event(handle, {"replaced": True})
    raw = [e for e in walk(http, sim, limit=100) if not is_event(e)]
    assert raw == [{"replaced": True}]


def test_type_filter_matches_raw_events_by_their_type_field(
    sim: DeckSimulator, http: requests.Session
):
    sim.add_raw_event({"type": "task_run.failed"}, created_at=NOW - timedelta(hours=1))
    sim.add_raw_event({"type": "task_run.queued"}, created_at=NOW - timedelta(hours=1))
    sim.add_raw_event(["task_run.failed"], created_at=NOW - timedelta(hours=1))
    raw = [
        e for e in walk(http, sim, limit=100, **{"type[]": "task_run.failed"}) if not is_event(e)
    ]
    assert raw == [{"type": "task_run.failed"}]
