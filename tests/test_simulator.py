"""The Deck API simulator speaks HTTP as Deck's reference says; these tests pin that over real HTTP.

Everything the connector's own tests prove rests on the simulator being right, so each documented
behaviour (auth, validation, keyset pagination, filters, errors, rate limit) and each injectable
fault is checked here against the simulator's ground truth (`runs()`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from deck_simulator import (
    DEMO_API_KEY,
    FINAL_STATUSES,
    OPEN_STATUSES,
    DeckSimulator,
    RecordedRequest,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
RUN_FIELDS = [
    "id",
    "object",
    "status",
    "result",
    "task_id",
    "credential_id",
    "session_id",
    "agent_id",
    "source_id",
    "runtime_ms",
    "output",
    "errors",
    "interaction",
    "created_at",
    "updated_at",
]
NEWER_FIELDS = {"workflow_id", "input", "storage", "canceled_at"}
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"


@pytest.fixture
def sim() -> Iterator[DeckSimulator]:
    simulator = DeckSimulator(seed=42, runs=600, history_days=10).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.headers.update(AUTH)
        yield session


def get(http: requests.Session, sim: DeckSimulator, path: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("timeout", 5)
    return http.get(sim.base_url + path, **kwargs)


def walk(
    http: requests.Session, sim: DeckSimulator, between_pages: Any = None, **params: Any
) -> list[dict[str, Any]]:
    """Every run a cursor walk returns, page after page."""
    out: list[dict[str, Any]] = []
    query = dict(params)
    while True:
        response = get(http, sim, "/task-runs", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "has_more", "next_cursor", "request_id"}
        out.extend(body["data"])
        assert (body["next_cursor"] is None) == (not body["has_more"])
        if not body["has_more"]:
            return out
        query["cursor"] = body["next_cursor"]
        if between_pages is not None:
            between_pages()


def sort_key(run: dict[str, Any]) -> tuple[str, str]:
    return (run["created_at"], run["id"])


def ids(runs: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in runs]


def assert_validation_error(response: requests.Response, field: str) -> dict[str, Any]:
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["type"] == VALIDATION_TYPE
    assert body["title"] == "One or more validation errors occurred."
    assert body["status"] == 400
    assert isinstance(body["traceId"], str) and body["traceId"]
    assert field in body["errors"], body
    assert all(isinstance(m, str) for m in body["errors"][field])
    return body


# ---------------------------------------------------------------------------- auth and basics


@pytest.mark.parametrize("header", [None, "Bearer sk_live_wrong", DEMO_API_KEY, "Basic abc"])
def test_missing_or_wrong_key_is_401_with_error_body(sim: DeckSimulator, header: str | None):
    headers = {} if header is None else {"Authorization": header}
    response = requests.get(sim.base_url + "/task-runs", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["errors"] == [
        {
            "type": "auth",
            "code": "unauthorized",
            "message": "Invalid API key provided.",
            "field": None,
        }
    ]
    assert body["request_id"].startswith("req_")
    assert response.headers["X-Request-Id"] == body["request_id"]


def test_test_endpoint_and_request_ids(sim: DeckSimulator, http: requests.Session):
    first = get(http, sim, "/test")
    second = get(http, sim, "/test")
    assert first.status_code == 200
    assert first.json() == {"status": "ready", "environment": "live"}
    assert first.headers["X-Request-Id"].startswith("req_")
    assert first.headers["X-Request-Id"] != second.headers["X-Request-Id"]
    listed = get(http, sim, "/task-runs").json()
    assert re.fullmatch(r"req_[0-9a-f]+", listed["request_id"])


def test_unknown_path_is_404_error_response(sim: DeckSimulator, http: requests.Session):
    response = get(http, sim, "/agents")
    assert response.status_code == 404
    body = response.json()
    assert body["errors"][0]["code"] == "not_found"
    assert body["request_id"].startswith("req_")


def test_keep_alive_reuses_one_connection(sim: DeckSimulator, http: requests.Session):
    opened = sim.connections_opened
    for _ in range(5):
        assert get(http, sim, "/task-runs", params={"limit": 3}).status_code == 200
    assert get(http, sim, "/task-runs/trun_000000000000000000000000").status_code == 404
    assert sim.connections_opened - opened == 1


# ---------------------------------------------------------------------------- run objects


def test_run_objects_have_the_documented_fields(sim: DeckSimulator, http: requests.Session):
    runs = walk(http, sim, limit=100)
    assert len(runs) == 600
    newer = 0
    for run in runs:
        assert list(run)[: len(RUN_FIELDS)] == RUN_FIELDS
        extra = set(run) - set(RUN_FIELDS)
        assert extra in (set(), NEWER_FIELDS)
        newer += bool(extra)
        assert run["object"] == "task_run"
        assert re.fullmatch(r"trun_[0-9a-f]{24}", run["id"])
        assert re.fullmatch(r"task_[0-9a-f]{24}", run["task_id"])
        assert re.fullmatch(r"agt_[0-9a-f]{24}", run["agent_id"])
        assert run["source_id"] is None or run["source_id"].startswith("src_")
        assert run["credential_id"] is None or run["credential_id"].startswith("cred_")
        assert run["session_id"] is None or run["session_id"].startswith("sess_")
        assert TIMESTAMP.match(run["created_at"]) and TIMESTAMP.match(run["updated_at"])
        assert run["updated_at"] >= run["created_at"]
        if run["status"] in FINAL_STATUSES:
            assert run["runtime_ms"] is not None and int(run["runtime_ms"]) > 0
        else:
            assert run["runtime_ms"] is None and run["result"] is None
        if run["status"] == "failed":
            assert run["result"] == "failure" and 1 <= len(run["errors"]) <= 2
            for error in run["errors"]:
                assert set(error) == {"type", "code", "message", "field"}
        if run["status"] == "completed":
            assert run["result"] in ("success", "unknown")
    assert 0.15 < newer / len(runs) < 0.45
    assert runs == sorted(sim.runs(), key=sort_key, reverse=True)


def test_runtime_ms_is_sometimes_a_numeric_string(sim: DeckSimulator):
    runtimes = [r["runtime_ms"] for r in sim.runs() if r["runtime_ms"] is not None]
    as_strings = [v for v in runtimes if isinstance(v, str)]
    as_ints = [v for v in runtimes if isinstance(v, int)]
    assert as_strings and as_ints
    assert all(re.fullmatch(r"[1-9]\d*", v) for v in as_strings)


def test_output_shapes_and_types_drift(sim: DeckSimulator):
    outputs = [r["output"] for r in sim.runs() if r["status"] == "completed"]
    kinds = {type(o).__name__ for o in outputs}
    assert {"dict", "list", "str"} <= kinds
    amount_types = {
        type(o["amount"]).__name__ for o in outputs if isinstance(o, dict) and "amount" in o
    }
    assert {"int", "str"} <= amount_types


def test_equal_created_at_batches_exist_in_generated_history():
    simulator = DeckSimulator(seed=3, runs=3000)
    created = [r["created_at"] for r in simulator.runs()]
    assert len(set(created)) < len(created)


def test_same_seed_gives_byte_identical_runs():
    def dump(seed: int) -> str:
        simulator = DeckSimulator(seed=seed, runs=400)
        simulator.advance(3600, new_runs=50)
        return json.dumps(simulator.runs())

    assert dump(7) == dump(7)
    assert dump(7) != dump(8)


def test_get_run_by_id_and_404(sim: DeckSimulator, http: requests.Session):
    truth = sim.runs()[123]
    response = get(http, sim, f"/task-runs/{truth['id']}")
    assert response.status_code == 200
    assert response.headers["X-Request-Id"].startswith("req_")
    assert response.json() == truth == sim.run(truth["id"])
    missing = get(http, sim, "/task-runs/trun_000000000000000000000000")
    assert missing.status_code == 404
    assert missing.json()["errors"] == [
        {
            "type": "request",
            "code": "resource_not_found",
            "message": "Task run trun_000000000000000000000000 not found.",
            "field": None,
        }
    ]


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000"])
def test_limit_out_of_bounds_is_400(sim: DeckSimulator, http: requests.Session, limit: str):
    body = assert_validation_error(get(http, sim, "/task-runs", params={"limit": limit}), "limit")
    assert body["errors"] == {"limit": ["The field limit must be between 1 and 100."]}


@pytest.mark.parametrize("limit", ["abc", "1.5", "05", ""])
def test_limit_not_an_integer_is_400(sim: DeckSimulator, http: requests.Session, limit: str):
    assert_validation_error(get(http, sim, "/task-runs", params={"limit": limit}), "limit")


def test_limit_default_and_bounds(sim: DeckSimulator, http: requests.Session):
    assert len(get(http, sim, "/task-runs").json()["data"]) == 20
    assert len(get(http, sim, "/task-runs", params={"limit": 1}).json()["data"]) == 1
    assert len(get(http, sim, "/task-runs", params={"limit": "100"}).json()["data"]) == 100


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize(
    "value", ["yesterday", "2025-13-01T00:00:00Z", "2025-12-01T00:00:00 00:00"]
)
def test_bad_date_is_400(sim: DeckSimulator, http: requests.Session, field: str, value: str):
    assert_validation_error(get(http, sim, "/task-runs", params={field: value}), field)


@pytest.mark.parametrize(
    "params, field",
    [
        ({"status": ["completed", "done"]}, "status"),
        ({"status": "pending"}, "status"),
        ({"outcome": "maybe"}, "outcome"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
    ],
)
def test_invalid_filter_values_are_400(
    sim: DeckSimulator, http: requests.Session, params: dict[str, Any], field: str
):
    assert_validation_error(get(http, sim, "/task-runs", params=params), field)


def test_cursor_from_other_filters_is_400(sim: DeckSimulator, http: requests.Session):
    first = get(http, sim, "/task-runs", params={"limit": 5, "status": "completed"}).json()
    cursor = first["next_cursor"]
    assert cursor and re.fullmatch(r"[A-Za-z0-9_=-]+", cursor)
    same = get(
        http, sim, "/task-runs", params={"limit": 5, "status": "completed", "cursor": cursor}
    )
    assert same.status_code == 200
    other = get(http, sim, "/task-runs", params={"limit": 5, "status": "failed", "cursor": cursor})
    assert_validation_error(other, "cursor")


def test_unknown_query_parameters_are_ignored(sim: DeckSimulator, http: requests.Session):
    response = get(http, sim, "/task-runs", params={"limit": 2, "starting_after": "trun_x"})
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2


# ---------------------------------------------------------------------------- pagination


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
@pytest.mark.parametrize("limit", [7, 100])
def test_walk_returns_every_run_once_in_order(
    sim: DeckSimulator, http: requests.Session, order: str, limit: int
):
    sim.order = order
    got = walk(http, sim, limit=limit)
    truth = sorted(sim.runs(), key=sort_key, reverse=order == "newest_first")
    assert ids(got) == ids(truth)


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_equal_created_at_across_page_boundary(
    sim: DeckSimulator, http: requests.Session, order: str
):
    sim.order = order
    same = sim.now - timedelta(hours=5)
    batch = sim.add_runs(25, created_at=same)
    got = walk(http, sim, limit=10)
    assert len(got) == len(set(ids(got))) == 625
    assert set(batch) <= set(ids(got))
    window = walk(
        http,
        sim,
        limit=4,
        created_after=(same - timedelta(milliseconds=1)).isoformat(),
        created_before=(same + timedelta(milliseconds=1)).isoformat(),
    )
    assert sorted(ids(window)) == sorted(batch)


def test_runs_created_between_pages_do_not_shift_pages(sim: DeckSimulator, http: requests.Session):
    before = sim.runs()
    got = walk(http, sim, lambda: sim.advance(60, new_runs=5), limit=50)
    assert ids(got) == ids(sorted(before, key=sort_key, reverse=True))
    assert len(sim.runs()) > len(before)

    sim.order = "oldest_first"
    known = {r["id"] for r in sim.runs()}
    got = walk(http, sim, lambda: sim.add_runs(2), limit=50)
    assert len(got) == len(set(ids(got)))
    assert known <= set(ids(got))  # new runs sort after the cursor: seen at the end, nothing lost


def test_cursor_keeps_its_order_when_the_setting_changes(
    sim: DeckSimulator, http: requests.Session
):
    first = get(http, sim, "/task-runs", params={"limit": 50}).json()
    sim.order = "oldest_first"
    rest = walk(http, sim, limit=50, cursor=first["next_cursor"])
    combined = first["data"] + rest
    assert ids(combined) == ids(sorted(sim.runs(), key=sort_key, reverse=True))


# ---------------------------------------------------------------------------- filters


def test_created_after_and_before_are_exclusive(sim: DeckSimulator, http: requests.Session):
    truth = sim.runs()
    pivot = truth[300]["created_at"]
    after = walk(http, sim, limit=100, created_after=pivot)
    assert all(r["created_at"] > pivot for r in after)
    assert ids(after) == ids(
        sorted([r for r in truth if r["created_at"] > pivot], key=sort_key, reverse=True)
    )
    before = walk(http, sim, limit=100, created_before=pivot)
    assert sorted(ids(before)) == sorted(r["id"] for r in truth if r["created_at"] < pivot)
    exact = walk(http, sim, created_after="2000-01-01T00:00:00Z", created_before=pivot)
    assert pivot not in {r["created_at"] for r in exact}


@pytest.mark.parametrize(
    "fmt",
    [
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"),
        lambda d: d.isoformat(),
        lambda d: d.astimezone(timezone(timedelta(hours=2))).isoformat(),
        lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    ],
)
def test_date_filter_formats(sim: DeckSimulator, http: requests.Session, fmt: Any):
    cut = datetime(2025, 12, 27, 6, 30, tzinfo=UTC)
    got = walk(http, sim, limit=100, created_after=fmt(cut))
    want = [
        r
        for r in sim.runs()
        if datetime.fromisoformat(r["created_at"].replace("Z", "+00:00")) > cut
    ]
    assert sorted(ids(got)) == sorted(ids(want))


def _filter_cases(truth: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    run = next(r for r in truth if r.get("workflow_id") and r["credential_id"] and r["source_id"])
    other_source = next(
        r["source_id"] for r in truth if r["source_id"] not in (None, run["source_id"])
    )
    return [
        ({"status": "completed"}, lambda r: r["status"] == "completed"),
        ({"status": ["failed", "canceled"]}, lambda r: r["status"] in ("failed", "canceled")),
        ({"outcome": "failure"}, lambda r: r["result"] == "failure"),
        ({"outcome": ["success", "unknown"]}, lambda r: r["result"] in ("success", "unknown")),
        ({"source_id": run["source_id"]}, lambda r: r["source_id"] == run["source_id"]),
        (
            {"source_id": [run["source_id"], other_source]},
            lambda r: r["source_id"] in (run["source_id"], other_source),
        ),
        ({"agent_id": run["agent_id"]}, lambda r: r["agent_id"] == run["agent_id"]),
        (
            {"credential_id": run["credential_id"]},
            lambda r: r["credential_id"] == run["credential_id"],
        ),
        ({"task_id": run["task_id"]}, lambda r: r["task_id"] == run["task_id"]),
        ({"workflow_id": run["workflow_id"]}, lambda r: r.get("workflow_id") == run["workflow_id"]),
        ({"search": run["id"][5:17].upper()}, lambda r: r["id"] == run["id"]),
        ({"search": run["task_id"]}, lambda r: r["task_id"] == run["task_id"]),
        (
            {"status": "completed", "agent_id": run["agent_id"]},
            lambda r: r["status"] == "completed" and r["agent_id"] == run["agent_id"],
        ),
    ]


def test_each_filter_matches_ground_truth(sim: DeckSimulator, http: requests.Session):
    truth = sim.runs()
    for params, predicate in _filter_cases(truth):
        got = walk(http, sim, limit=37, **params)
        want = [r for r in truth if predicate(r)]
        assert want, params
        assert ids(got) == ids(sorted(want, key=sort_key, reverse=True)), params


def test_search_matches_task_name_case_insensitively(sim: DeckSimulator, http: requests.Session):
    task_id = next(t for t, name in sim.tasks.items() if name == "Download invoices")
    got = walk(http, sim, limit=100, search="download INVOICES")
    assert got and {r["task_id"] for r in got} == {task_id}
    assert len(got) == sum(r["task_id"] == task_id for r in sim.runs())


def test_status_filter_includes_legacy_spellings(sim: DeckSimulator, http: requests.Session):
    pending = sim.add_runs(2, status="pending")
    cancelling = sim.add_runs(1, status="cancelling")
    assert {sim.run(i)["status"] for i in pending} == {"pending"}
    assert sim.run(cancelling[0])["status"] == "cancelling"
    review = ids(walk(http, sim, limit=100, status="review_required"))
    assert set(pending) <= set(review)
    assert cancelling[0] in ids(walk(http, sim, limit=100, status="canceling"))


# ---------------------------------------------------------------------------- clock and mutation


def test_advance_finalizes_open_runs_and_adds_new_ones(sim: DeckSimulator):
    before = {r["id"]: r for r in sim.runs()}
    opened = sim.add_runs(20)
    assert all(sim.run(i)["status"] == "queued" for i in opened)
    start = sim.now
    sim.advance(3 * 3600, new_runs=40)
    assert sim.now == start + timedelta(hours=3)
    after = {r["id"]: r for r in sim.runs()}
    assert len(after) == len(before) + 60
    moved = [after[i] for i in opened]
    assert sum(r["status"] in FINAL_STATUSES for r in moved) >= 15
    for run in moved:
        if run["status"] in FINAL_STATUSES:
            assert run["updated_at"] > run["created_at"]
            assert run["runtime_ms"] is not None
    new = [r for i, r in after.items() if i not in before and i not in opened]
    assert len(new) == 40
    assert all(
        "2026-01-01T00:00:00.000Z" < r["created_at"] <= "2026-01-01T03:00:00.000Z" for r in new
    )
    # weeks later the long-open runs (review, long plans) have closed too
    still_open = [r for r in sim.runs() if r["status"] not in FINAL_STATUSES]
    sim.advance(200 * 86400)
    for run in still_open:
        updated = sim.run(run["id"])
        assert updated["status"] in FINAL_STATUSES
        assert updated["updated_at"] > run["updated_at"]


def test_forced_status_stays_until_advance_moves_it(sim: DeckSimulator):
    [running] = sim.add_runs(1, status="running", output="kept", some_new_field={"a": 1})
    run = sim.run(running)
    assert run["status"] == "running" and run["result"] is None
    assert run["some_new_field"] == {"a": 1}
    assert run["updated_at"] == run["created_at"] == "2026-01-01T00:00:00.000Z"
    sim.advance(3600)
    run = sim.run(running)
    assert run["status"] in FINAL_STATUSES and run["updated_at"] > run["created_at"]
    assert run["output"] == "kept"  # fields given to add_runs survive later transitions
    [done] = sim.add_runs(1, status="completed", runtime_ms="123", workflow_id="wflo_x")
    done_run = sim.run(done)
    assert done_run["runtime_ms"] == "123" and done_run["result"] in ("success", "unknown")
    [review] = sim.add_runs(1, status="review_required")
    sim.advance(60)
    assert sim.run(review)["status"] == "review_required"


@pytest.mark.parametrize(
    "status",
    [
        *OPEN_STATUSES,
        *sorted(FINAL_STATUSES),
        "pending",
        "cancelling",
        "paused",  # an undocumented status stays as given
    ],
)
def test_every_forced_status_is_the_current_status(sim: DeckSimulator, status: str):
    created = sim.add_runs(150, status=status)
    assert {sim.run(i)["status"] for i in created} == {status}
    for run_id in created:
        run = sim.run(run_id)
        assert (run["runtime_ms"] is None) == (status not in FINAL_STATUSES)


def test_update_run_changes_fields_and_updated_at(sim: DeckSimulator, http: requests.Session):
    [run_id] = sim.add_runs(1, status="running")
    sim.advance(10)
    sim.update_run(run_id, status="failed", result="failure", errors=[])
    run = get(http, sim, f"/task-runs/{run_id}").json()
    assert run["status"] == "failed" and run["errors"] == []
    assert run["updated_at"] == "2026-01-01T00:00:10.000Z"
    sim.advance(86400)
    assert sim.run(run_id)["status"] == "failed"  # scheduled transitions were cancelled


def test_open_statuses_constant():
    assert OPEN_STATUSES == (
        "queued",
        "running",
        "canceling",
        "interaction_required",
        "review_required",
    )
    assert FINAL_STATUSES == {"completed", "failed", "canceled"}


# ---------------------------------------------------------------------------- request log


def test_requests_are_recorded_with_params_and_authorization(
    sim: DeckSimulator, http: requests.Session
):
    sim.clear_requests()
    get(http, sim, "/task-runs", params={"limit": 5, "status": ["queued", "running"], "search": ""})
    requests.get(sim.base_url + "/test", timeout=5)
    first, second = sim.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.status) == ("GET", "/v2/task-runs", 200)
    assert first.params == {"limit": ["5"], "status": ["queued", "running"], "search": [""]}
    assert first.authorization == f"Bearer {DEMO_API_KEY}"
    assert (second.path, second.status, second.authorization) == ("/v2/test", 401, None)
    assert first.at <= second.at
    sim.clear_requests()
    assert sim.requests == []


# ---------------------------------------------------------------------------- faults


def test_fault_429_with_retry_after_variants(sim: DeckSimulator, http: requests.Session):
    sim.inject("429", retry_after="2")
    sim.inject("429", retry_after="Wed, 21 Oct 2026 07:28:00 GMT")
    sim.inject("429")
    first, second, third = (get(http, sim, "/task-runs") for _ in range(3))
    for response in (first, second, third):
        assert response.status_code == 429
        assert response.json()["errors"][0]["code"] == "rate_limit_exceeded"
        assert response.json()["errors"][0]["type"] == "rate_limit"
    assert first.headers["Retry-After"] == "2"
    assert second.headers["Retry-After"] == "Wed, 21 Oct 2026 07:28:00 GMT"
    assert "Retry-After" not in third.headers
    assert get(http, sim, "/task-runs").status_code == 200
    assert sim.rate_limited_count == 3


@pytest.mark.parametrize("kind", ["500", "502", "503", "504"])
def test_fault_server_errors(sim: DeckSimulator, http: requests.Session, kind: str):
    sim.inject(kind, times=2)
    statuses = [get(http, sim, "/task-runs").status_code for _ in range(3)]
    assert statuses == [int(kind), int(kind), 200]
    sim.inject(kind)
    body = get(http, sim, "/task-runs").json()
    assert body["errors"][0]["type"] == "api" and body["errors"][0]["code"] == "api_error"
    assert body["request_id"].startswith("req_")


def test_faults_apply_before_auth_and_follow_path_filter(
    sim: DeckSimulator, http: requests.Session
):
    sim.inject("503", path="/task-runs/")
    sim.inject("500")
    assert requests.get(sim.base_url + "/test", timeout=5).status_code == 500  # no key, fault first
    assert get(http, sim, "/task-runs").status_code == 200  # path does not contain /task-runs/
    run_id = sim.runs()[0]["id"]
    assert get(http, sim, f"/task-runs/{run_id}").status_code == 503
    assert sim.pending_faults() == 0


def test_fault_drop_closes_without_answer(sim: DeckSimulator, http: requests.Session):
    sim.inject("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(http, sim, "/task-runs")
    assert sim.requests[-1].status == 0
    assert get(http, sim, "/task-runs").status_code == 200


def test_fault_truncate_breaks_the_body(sim: DeckSimulator, http: requests.Session):
    sim.inject("truncate")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get(http, sim, "/task-runs", params={"limit": 50})
    assert sim.requests[-1].status == 200
    assert get(http, sim, "/task-runs").status_code == 200


def test_fault_hang_times_out_and_stop_ends_it():
    simulator = DeckSimulator(seed=1, runs=10).start()
    simulator.inject("hang", times=2)  # no delay: hangs until stop()
    with pytest.raises(requests.exceptions.ReadTimeout):  # it never answers: a client timeout
        requests.get(simulator.base_url + "/task-runs", headers=AUTH, timeout=0.3)
    outcome: list[BaseException] = []

    def waiting_client() -> None:
        try:  # 60 s only bounds a failure; stop() must end the hang long before
            requests.get(simulator.base_url + "/task-runs", headers=AUTH, timeout=(5, 60))
        except requests.exceptions.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=waiting_client)
    client.start()
    while len(simulator.requests) < 2 and client.is_alive():
        client.join(0.01)  # until the second request is in the server
    simulator.stop()
    client.join()

    assert [type(exc) for exc in outcome] == [requests.exceptions.ConnectionError]
    assert [r.status for r in simulator.requests] == [0, 0]


def test_fault_hang_with_short_delay_then_closes(sim: DeckSimulator, http: requests.Session):
    sim.inject("hang", delay=0.2)
    with pytest.raises(requests.exceptions.ConnectionError):  # closed, not a client timeout
        get(http, sim, "/task-runs", timeout=(5, 60))


def test_fault_slow_answers_normally_after_delay(sim: DeckSimulator, http: requests.Session):
    sim.inject("slow", delay=0.3)
    started = time.monotonic()
    response = get(http, sim, "/task-runs")
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and len(response.json()["data"]) == 20


def test_fault_non_json_and_bad_shape(sim: DeckSimulator, http: requests.Session):
    sim.inject("non_json")
    sim.inject("bad_shape")
    html = get(http, sim, "/task-runs")
    assert html.status_code == 200
    assert html.headers["Content-Type"] == "text/html"
    assert html.text == "<html><body>502 Bad Gateway</body></html>"
    shape = get(http, sim, "/task-runs")
    assert shape.status_code == 200
    assert shape.json()["items"] == [] and "data" not in shape.json()


def test_fault_redirect(sim: DeckSimulator, http: requests.Session):
    sim.inject("redirect", location="https://login.example.invalid/")
    response = get(http, sim, "/task-runs", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://login.example.invalid/"
    sim.inject("redirect")
    followed = get(http, sim, "/task-runs", params={"limit": 3})
    assert followed.status_code == 200 and len(followed.json()["data"]) == 3
    assert [r.status for r in sim.requests[-2:]] == [302, 200]


def test_unknown_fault_kind_is_rejected(sim: DeckSimulator):
    with pytest.raises(ValueError):
        sim.inject("teapot")


# ---------------------------------------------------------------------------- holding requests


def call_in_thread(sim: DeckSimulator, path: str, out: list[Any]) -> threading.Thread:
    """GET `path` in a thread; its status code (or exception type) goes to `out`."""

    def call() -> None:
        try:  # 60 s only bounds a failure
            response = requests.get(sim.base_url + path, headers=AUTH, timeout=(5, 60))
            out.append(response.status_code)
        except requests.exceptions.RequestException as exc:
            out.append(type(exc))

    thread = threading.Thread(target=call)
    thread.start()
    return thread


def wait_until(condition: Any, thread: threading.Thread) -> None:
    while not condition() and thread.is_alive():
        thread.join(0.01)


def test_hold_answers_nothing_from_the_first_match_until_released(
    sim: DeckSimulator, http: requests.Session
):
    gate = sim.hold(lambda request: request.path == "/v2/task-runs")
    assert get(http, sim, "/test").status_code == 200  # before the match: answered
    out: list[Any] = []
    first = call_in_thread(sim, "/task-runs", out)
    wait_until(gate.reached.is_set, first)
    second = call_in_thread(sim, "/test", out)  # after the match: held too, whatever it is
    wait_until(lambda: len(sim.requests) == 3, second)

    assert gate.reached.is_set() and out == []
    assert [(r.path, r.status) for r in sim.requests] == [
        ("/v2/test", 200),
        ("/v2/task-runs", 0),
        ("/v2/test", 0),
    ]
    gate.release()
    first.join()
    second.join()
    assert sorted(out) == [200, 200]
    assert [r.status for r in sim.requests] == [200, 200, 200]
    assert get(http, sim, "/task-runs").status_code == 200  # released: no more holding


def test_hold_without_condition_holds_every_request_and_ends_at_stop(sim: DeckSimulator):
    gate = sim.hold()
    out: list[Any] = []
    client = call_in_thread(sim, "/test", out)
    wait_until(gate.reached.is_set, client)
    assert gate.reached.is_set()
    sim.stop()
    client.join()
    assert out == [requests.exceptions.ConnectionError]
    assert [r.status for r in sim.requests] == [0]


def test_a_new_hold_releases_the_previous_one(sim: DeckSimulator, http: requests.Session):
    first = sim.hold()
    out: list[Any] = []
    client = call_in_thread(sim, "/test", out)
    wait_until(first.reached.is_set, client)
    second = sim.hold(lambda request: request.path == "/v2/task-runs")
    client.join()
    assert out == [200]
    assert get(http, sim, "/test").status_code == 200
    assert not second.reached.is_set()


# ------------------------------------------------------------------------ rate limit and latency


def test_rate_limit_answers_429_past_budget(sim: DeckSimulator, http: requests.Session):
    sim.rate_limit = (5, 3600.0)  # a window no test run outlasts
    statuses = [get(http, sim, "/test").status_code for _ in range(8)]
    assert statuses == [200] * 5 + [429] * 3
    limited = get(http, sim, "/task-runs")
    assert limited.json()["errors"][0] == {
        "type": "rate_limit",
        "code": "rate_limit_exceeded",
        "message": "Rate limit exceeded. Retry later.",
        "field": None,
    }
    assert "Retry-After" not in limited.headers
    sim.rate_limit_retry_after = True
    retry_after = get(http, sim, "/test").headers["Retry-After"]
    assert retry_after.isdigit() and 3500 <= int(retry_after) <= 3600  # until the oldest leaves
    assert sim.rate_limited_count == 5
    sim.rate_limit = (8, 3600.0)  # rejected requests did not count: exactly 3 more fit
    assert [get(http, sim, "/test").status_code for _ in range(4)] == [200] * 3 + [429]
    sim.rate_limit = None
    assert get(http, sim, "/test").status_code == 200


def test_rate_limit_window_slides(sim: DeckSimulator, http: requests.Session):
    sim.rate_limit = (1, 0.05)
    assert get(http, sim, "/test").status_code == 200
    time.sleep(0.1)  # longer than the window: only ever more so on a slow machine
    assert get(http, sim, "/test").status_code == 200


def test_latency_is_served_concurrently(sim: DeckSimulator):
    """Six requests answered (status recorded) and all still in their latency sleep at once."""
    sim.latency = 3600  # only stop() ends it
    errors: list[type] = []

    def call() -> None:
        try:  # 60 s only bounds a failure
            requests.get(sim.base_url + "/test", headers=AUTH, timeout=(5, 60))
        except requests.exceptions.RequestException as exc:
            errors.append(type(exc))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    while [r.status for r in sim.requests] != [200] * 6 and any(t.is_alive() for t in threads):
        threads[0].join(0.01)
    assert [r.status for r in sim.requests] == [200] * 6
    assert errors == []  # none was answered: all six sleep at the same time
    sim.stop()
    for thread in threads:
        thread.join()
    assert errors == [requests.exceptions.ConnectionError] * 6


def test_a_large_history_is_generated_and_listed_page_by_page():
    """50,000 runs, walked for ten pages (their speed is the benchmarks' business, not a test's:
    `benchmarks/run.py` reports the simulator's generation time)."""
    simulator = DeckSimulator(seed=2, runs=50_000).start()
    try:
        truth = simulator.runs()
        assert len(truth) == 50_000
        newest_first = sorted(truth, key=sort_key, reverse=True)
        with requests.Session() as session:
            session.headers.update(AUTH)
            seen: list[str] = []
            params: dict[str, Any] = {"limit": 100}
            for _ in range(10):
                page = session.get(simulator.base_url + "/task-runs", params=params, timeout=30)
                assert page.status_code == 200
                seen += [run["id"] for run in page.json()["data"]]
                params["cursor"] = page.json()["next_cursor"]
        assert seen == [run["id"] for run in newest_first[:1000]]
    finally:
        simulator.stop()


def test_the_control_stats_count_the_searches_for_the_start_of_history_apart(sim, http):
    """`make bench` holds requests to a bound that counts the search apart (benchmarks/run.py)."""
    from deck_simulator.cli import _stats

    get(http, sim, "/task-runs", params={"limit": 100})
    get(http, sim, "/task-runs", params={"limit": 1, "created_before": "2025-06-01T00:00:00Z"})
    get(http, sim, "/task-runs", params={"limit": 1, "created_after": "2025-06-01T00:00:00Z"})

    assert {k: v for k, v in _stats(sim).items() if k in ("requests", "start_searches")} == {
        "requests": 3, "start_searches": 1,
    }
