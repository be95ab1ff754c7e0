"""The simulator serves every plausible reading of what Deck's documentation leaves open.

Deck does not say how finely it reads ``created_after``/``created_before``, how finely it keeps
an instant, whether its bounds are really exclusive, or exactly how it prints a timestamp
(FACTS.md, Timestamps). The connector's end-to-end tests run under each reading of
``READINGS``; these tests pin, over real HTTP, that the simulator serves each one as its
``Contract`` says, and that its ``Date`` header can come from a skewed host.
"""

from __future__ import annotations

import email.utils
import io
import json
import re
from collections.abc import Iterator
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from deck_simulator import DEMO_API_KEY, READINGS, Contract, DeckSimulator
from deck_simulator.cli import build_parser, contract_from_args, control
from deck_simulator.contract import hidden_us
from support import make_simulator

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {DEMO_API_KEY}"}
EDGE = "2026-01-01T11:00:00.123Z"
"""The millisecond the edge tests create runs on."""
VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"


@pytest.fixture
def sim() -> Iterator[DeckSimulator]:
    simulator = make_simulator(seed=7, runs=300, history_days=2, now=NOW)
    try:
        yield simulator
    finally:
        simulator.stop()


def get(sim: DeckSimulator, path: str, **params: Any) -> requests.Response:
    return requests.get(sim.base_url + path, params=params, headers=AUTH, timeout=5)


def walk(sim: DeckSimulator, path: str = "/task-runs", **params: Any) -> list[dict[str, Any]]:
    """Every object a cursor walk of ``path`` returns."""
    out: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 100, **params}
    while True:
        response = get(sim, path, **query)
        assert response.status_code == 200, response.text
        body = response.json()
        out.extend(body["data"])
        if not body["has_more"]:
            return out
        query["cursor"] = body["next_cursor"]


def ids(objs: list[dict[str, Any]]) -> set[str]:
    return {o["id"] for o in objs}


def at_edge(sim: DeckSimulator, n: int = 40) -> list[str]:
    """n runs created on the same millisecond ``EDGE``."""
    return sim.add_runs(n, created_at=EDGE)


# ---------------------------------------------------------------------------- the contract


def test_the_default_contract_is_the_documented_reading(sim: DeckSimulator):
    assert sim.contract == Contract() == READINGS["documented"]
    assert DeckSimulator(contract="stored_us").contract == READINGS["stored_us"]


def test_readings_cover_every_field_that_is_left_open():
    assert set(READINGS) >= {
        "documented",
        "bounds_ms",
        "bounds_reject",
        "stored_us",
        "printed_seconds",
        "inclusive",
        "offset_format",
        "trimmed_format",
    }
    assert len(set(READINGS.values())) == len(READINGS)


@pytest.mark.parametrize(
    "fields",
    [
        {"bound_precision": "ns"},
        {"stored": "s"},
        {"timestamp_format": "iso"},
        {"inclusive_bounds": "yes"},
    ],
)
def test_an_unknown_reading_is_refused(fields: dict[str, Any]):
    with pytest.raises(ValueError):
        Contract(**fields)
    with pytest.raises(ValueError):
        DeckSimulator(contract="nonsense")


# ---------------------------------------------------------------------------- bound precision


def test_bounds_ms_truncates_a_finer_created_before_so_it_excludes_the_runs_on_its_ms(
    sim: DeckSimulator,
):
    edge = set(at_edge(sim, 3))
    bound = "2026-01-01T11:00:00.123456Z"
    assert edge <= ids(walk(sim, created_before=bound))  # exact: .123 < .123456
    sim.contract = "bounds_ms"  # switched mid-scenario
    assert not edge & ids(walk(sim, created_before=bound))  # .123 < .123: no
    assert not edge & ids(walk(sim, "/events", created_before=bound))


def test_bounds_ms_reads_a_finer_created_after_as_its_millisecond(sim: DeckSimulator):
    sim.contract = "bounds_ms"
    edge = set(at_edge(sim, 3))
    assert not edge & ids(walk(sim, created_after="2026-01-01T11:00:00.123999Z"))
    assert edge <= ids(walk(sim, created_after="2026-01-01T11:00:00.122999Z"))


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("path", ["/task-runs", "/events"])
def test_bounds_reject_answers_400_naming_the_bound_with_more_than_three_digits(
    sim: DeckSimulator, field: str, path: str
):
    sim.contract = "bounds_reject"
    response = get(sim, path, **{field: "2026-01-01T11:00:00.1234Z"})
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == VALIDATION_TYPE
    assert body["request_id"].startswith("req_")
    assert list(body["errors"]) == [field]
    assert body["errors"][field][0].startswith(f"{field}: invalid date-time")


@pytest.mark.parametrize(
    "bound",
    [
        "2026-01-01T11:00:00.123Z",
        "2026-01-01T11:00:00.12Z",
        "2026-01-01T11:00:00Z",
        "2026-01-01T11:00:00+00:00",
        "2026-01-01T11:00:00.123+00:00",
    ],
)
def test_bounds_reject_reads_three_digits_or_fewer_and_offsets_normally(
    sim: DeckSimulator, bound: str
):
    sim.contract = "bounds_reject"
    for field in ("created_after", "created_before"):
        assert get(sim, "/task-runs", **{field: bound}).status_code == 200
        assert get(sim, "/events", **{field: bound}).status_code == 200


# ---------------------------------------------------------------------------- stored precision


def test_stored_us_returns_a_run_printed_on_the_bound_after_an_exclusive_created_after(
    sim: DeckSimulator,
):
    sim.contract = "stored_us"
    edge = at_edge(sim)
    after = {i for i in edge if hidden_us(i) > 123}
    assert after and len(after) < len(edge)  # the ids give both cases
    served = [r for r in walk(sim, created_after="2026-01-01T11:00:00.123123Z") if r["id"] in edge]
    assert {r["id"] for r in served} == after
    assert {r["created_at"] for r in served} == {EDGE}  # printed on the bound's millisecond
    on_ms = {i for i in edge if hidden_us(i) > 0}
    assert ids(walk(sim, created_after=EDGE)) & set(edge) == on_ms


def test_stored_us_with_bounds_ms_reads_a_finer_bound_as_its_millisecond_but_keeps_us_runs(
    sim: DeckSimulator,
):
    sim.contract = "stored_us_bounds_ms"
    edge = at_edge(sim)
    served = ids(walk(sim, created_after="2026-01-01T11:00:00.123999Z")) & set(edge)
    assert served == {i for i in edge if hidden_us(i) > 0}


@pytest.mark.parametrize("reading", ["documented", "stored_us", "bounds_ms", "stored_us_bounds_ms"])
def test_the_halves_before_an_edge_and_after_the_ms_before_it_cover_every_run(
    sim: DeckSimulator, reading: str
):
    """[..., E) and (E-1ms, ...) together hold every run; they overlap exactly on the runs that
    lie strictly inside the millisecond before E (none when instants are kept in ms)."""
    sim.contract = reading
    at_edge(sim)
    sim.add_runs(40, created_at="2026-01-01T11:00:00.122Z")
    everything = ids(sim.runs())
    for edge_ms in (122, 123, 124):
        edge = f"2026-01-01T11:00:00.{edge_ms:03d}Z"
        before_edge = f"2026-01-01T11:00:00.{edge_ms - 1:03d}Z"
        lower = ids(walk(sim, created_before=edge))
        upper = ids(walk(sim, created_after=before_edge))
        assert lower | upper == everything
        stored_us = sim.contract.stored == "us"
        inside = {
            r["id"]
            for r in sim.runs()
            if r["created_at"] == before_edge and stored_us and hidden_us(r["id"]) > 0
        }
        assert lower & upper == inside
    assert inside or not sim.contract.stored == "us"


def test_stored_us_bounds_split_events_on_their_true_instants(sim: DeckSimulator):
    sim.contract = "stored_us"
    at_edge(sim)
    events = [e for e in sim.events() if e["created_at"] == EDGE]
    assert events
    served = ids(walk(sim, "/events", created_after=EDGE)) & ids(events)
    assert served == {e["id"] for e in events if hidden_us(int(e["id"][4:], 16)) > 0}


def test_stored_us_prints_milliseconds_and_pages_stay_in_keyset_order(sim: DeckSimulator):
    sim.contract = "stored_us"
    at_edge(sim)
    runs = walk(sim, created_after="2026-01-01T10:00:00Z")
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert all(pattern.match(r["created_at"]) for r in runs)
    keys = [(r["created_at"], r["id"]) for r in runs]
    assert keys == sorted(keys, reverse=True)
    assert len(set(keys)) == len(keys)


def test_printed_seconds_prints_every_timestamp_without_a_fraction(sim: DeckSimulator):
    sim.contract = "printed_seconds"
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    runs = walk(sim)
    assert runs
    for run in runs:
        for name in ("created_at", "updated_at"):
            assert pattern.match(run[name]), run[name]
        if run.get("canceled_at") is not None:
            assert pattern.match(run["canceled_at"])
    run = get(sim, f"/task-runs/{runs[0]['id']}").json()
    assert pattern.match(run["created_at"]) and pattern.match(run["updated_at"])
    for event in walk(sim, "/events"):
        for stamp in (
            event["created_at"],
            event["data"]["created_at"],
            event["data"]["updated_at"],
        ):
            assert pattern.match(stamp), stamp


def test_printed_seconds_serves_a_run_printed_on_the_second_after_a_later_bound(
    sim: DeckSimulator,
):
    sim.contract = "printed_seconds"
    (late,) = sim.add_runs(1, created_at="2026-01-01T11:00:05.700Z")
    (early,) = sim.add_runs(1, created_at="2026-01-01T11:00:05.300Z")
    served = walk(sim, created_after="2026-01-01T11:00:05.500Z")
    assert late in ids(served) and early not in ids(served)
    assert sim.run(late)["created_at"] == "2026-01-01T11:00:05Z"
    below = ids(walk(sim, created_before="2026-01-01T11:00:05.500Z"))
    assert early in below and late not in below


# ---------------------------------------------------------------------------- inclusive bounds


@pytest.mark.parametrize("path", ["/task-runs", "/events"])
def test_inclusive_bounds_include_runs_on_either_edge(sim: DeckSimulator, path: str):
    edge = set(at_edge(sim, 3))

    def edge_objs(objs: list[dict[str, Any]]) -> set[str]:
        """The edge runs among what was served (a run's creation event counts for it)."""
        if path == "/events":
            return {o["data"]["id"] for o in objs if o["type"] == "task_run.queued"} & edge
        return {o["id"] for o in objs} & edge

    assert not edge_objs(walk(sim, path, created_after=EDGE))
    assert not edge_objs(walk(sim, path, created_before=EDGE))
    sim.contract = "inclusive"
    assert edge_objs(walk(sim, path, created_after=EDGE)) == edge
    assert edge_objs(walk(sim, path, created_before=EDGE)) == edge
    assert not edge_objs(walk(sim, path, created_after="2026-01-01T11:00:00.123001Z"))


# ---------------------------------------------------------------------------- printing


@pytest.mark.parametrize(
    ("reading", "fraction", "whole"),
    [
        ("documented", "2026-01-01T11:00:00.123Z", "2026-01-01T11:00:07.000Z"),
        ("offset_format", "2026-01-01T11:00:00.123+00:00", "2026-01-01T11:00:07.000+00:00"),
        ("trimmed_format", "2026-01-01T11:00:00.123Z", "2026-01-01T11:00:07Z"),
        ("printed_seconds", "2026-01-01T11:00:00Z", "2026-01-01T11:00:07Z"),
    ],
)
def test_formats_print_runs_single_runs_and_events_as_specified(
    sim: DeckSimulator, reading: str, fraction: str, whole: str
):
    sim.contract = reading
    (a,) = sim.add_runs(1, created_at=EDGE, status="completed")
    (b,) = sim.add_runs(1, created_at="2026-01-01T11:00:07Z", updated_at=NOW - timedelta(hours=1))
    listed = {r["id"]: r for r in walk(sim, created_after="2026-01-01T10:59:59Z")}
    assert listed[a]["created_at"] == get(sim, f"/task-runs/{a}").json()["created_at"] == fraction
    assert listed[b]["created_at"] == whole
    assert listed[b]["updated_at"] == whole.replace("11:00:07", "11:00:00")
    events = [e for e in walk(sim, "/events") if e["data"]["id"] == a]
    assert events and all(e["data"]["created_at"] == fraction for e in events)
    assert {e["created_at"] for e in events if e["type"] == "task_run.queued"} == {fraction}


@pytest.mark.parametrize("reading", sorted(READINGS))
def test_ground_truth_is_what_the_api_prints_under_every_reading(sim: DeckSimulator, reading: str):
    sim.contract = reading
    served = walk(sim)
    assert sorted(served, key=lambda r: (r["created_at"], r["id"])) == sorted(
        sim.runs(), key=lambda r: (r["created_at"], r["id"])
    )
    run = served[0]
    assert sim.run(run["id"]) == run == get(sim, f"/task-runs/{run['id']}").json()
    served_events = walk(sim, "/events")
    assert sorted(served_events, key=lambda e: e["id"]) == sorted(
        sim.events(), key=lambda e: e["id"]
    )


def test_raw_records_are_served_as_given_under_a_reprinting_reading(sim: DeckSimulator):
    record = {"id": "trun_raw", "created_at": "2026-01-01T11:00:00.123Z", "status": "queued"}
    sim.add_raw_record(record, created_at=EDGE)
    (served_as,) = sim.add_runs(1, created_at=EDGE)
    sim.serve_fields(served_as, created_at="yesterday")
    sim.contract = "offset_format"
    served = {r["id"]: r for r in walk(sim, created_after="2026-01-01T11:00:00Z")}
    assert served["trun_raw"] == record
    assert served[served_as]["created_at"] == "yesterday"


# ---------------------------------------------------------------------------- Date header


def date_of(response: requests.Response) -> datetime:
    return email.utils.parsedate_to_datetime(response.headers["Date"])


def test_skewed_dates_land_on_the_chosen_requests_only(sim: DeckSimulator):
    sim.clear_requests()
    sim.skew_dates(3600, {2, 4})
    dates = [date_of(get(sim, "/test")) for _ in range(5)]
    skewed = [d - sim.now for d in dates]
    assert skewed == [timedelta(0), timedelta(hours=1), timedelta(0), timedelta(hours=1)] + [
        timedelta(0)
    ]


def test_skewed_dates_on_every_answer_until_cleared(sim: DeckSimulator):
    sim.skew_dates(-90.5)
    assert date_of(get(sim, "/task-runs")) == sim.now - timedelta(seconds=91)  # whole seconds
    assert date_of(get(sim, "/nowhere")) < sim.now  # errors too
    sim.skew_dates(0)
    assert date_of(get(sim, "/test")) == sim.now
    sim.skew_dates(30)
    sim.skew_dates(None)
    assert date_of(get(sim, "/test")) == sim.now


def test_a_verbatim_date_header_wins_over_the_skew(sim: DeckSimulator):
    sim.skew_dates(3600)
    sim.date_header = "Thu, 01 Jan 2026 00:00:00 GMT"
    assert get(sim, "/test").headers["Date"] == "Thu, 01 Jan 2026 00:00:00 GMT"


def test_omit_date_answers_without_a_date_header(sim: DeckSimulator):
    sim.omit_date = True
    response = get(sim, "/task-runs")
    assert response.status_code == 200
    assert "Date" not in response.headers
    sim.omit_date = False
    assert "Date" in get(sim, "/test").headers


# ---------------------------------------------------------------------------- command line


def test_cli_accepts_a_reading_its_fields_the_order_and_the_date_flags():
    args = build_parser().parse_args(
        [
            "--reading",
            "stored_us",
            "--bound-precision",
            "reject",
            "--inclusive-bounds",
            "--timestamp-format",
            "trim",
            "--order",
            "oldest_first",
            "--date-skew",
            "-2.5",
            "--omit-date",
        ]
    )
    assert contract_from_args(args) == Contract(
        bound_precision="reject", stored="us", inclusive_bounds=True, timestamp_format="trim"
    )
    assert (args.order, args.date_skew, args.omit_date) == ("oldest_first", -2.5, True)
    default = build_parser().parse_args([])
    assert contract_from_args(default) == Contract()
    assert (default.date_skew, default.omit_date) == (0.0, False)
    printed = build_parser().parse_args(["--stored", "ms_printed_s", "--no-inclusive-bounds"])
    assert contract_from_args(printed) == READINGS["printed_seconds"]


@pytest.mark.parametrize("argv", [["--reading", "loose"], ["--stored", "ns"]])
def test_cli_refuses_an_unknown_reading(argv: list[str]):
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


def test_control_command_reading_switches_the_contract(sim: DeckSimulator):
    out = io.StringIO()
    with redirect_stdout(out):
        control(sim, ["reading offset_format", "reading nope"])
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {"ok": True}
    assert "error" in second
    assert sim.contract == READINGS["offset_format"]
