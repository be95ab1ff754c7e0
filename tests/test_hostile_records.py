"""Records that are valid JSON but hostile to a warehouse: every one of them loads (or, when it
cannot be placed, is quarantined) and never blocks the runs after it. Real HTTP (the simulator
serves the records), real DuckDB; expected values are written out here, not computed by the code
under test."""

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List

import duckdb
import pytest
from deck_simulator import DeckSimulator
from support import Warehouse, expected_runtime, ts
from support.cli import run_main
from support.destinations import DESTINATIONS, make_warehouse

UTC = timezone.utc
WIDE_OUTPUT = 12345678901234567890123
WIDE_IN_LIST = 98765432109876543210987
WIDE_INPUT = -123456789012345678901
WIDE_RUNTIME = 123456789012345678901234


@dataclass
class Hostile:
    """One page of the simulator holding every kind of hostile record, good runs between."""

    sim: DeckSimulator
    good: List[str] = field(default_factory=list)
    ids: Dict[str, str] = field(default_factory=dict)  # kind -> run id
    raw: Dict[str, str] = field(default_factory=dict)  # kind -> simulator handle
    records: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # kind -> raw record served


def build(sim: DeckSimulator) -> Hostile:
    """Hostile records at odd seconds, a good run at every even second: each bad record has good
    runs right after it on the same page (newest first or oldest first)."""
    h = Hostile(sim)
    base = sim.now - timedelta(hours=1)

    def at(second: int) -> datetime:
        return base + timedelta(seconds=second)

    h.good = [sim.add_runs(1, created_at=at(2 * i), status="completed")[0] for i in range(16)]

    def add(kind: str, second: int, **fields: Any) -> None:
        h.ids[kind] = sim.add_runs(1, created_at=at(second), status="completed", **fields)[0]

    add("wide_output", 1, output={"account_number": WIDE_OUTPUT, "bank": "ACME"})
    add("wide_in_list", 3, output={"accounts": [{"n": WIDE_IN_LIST, "kind": "iban"}]})
    add("wide_input", 5, input={"account": WIDE_INPUT})
    add("wide_runtime", 7, runtime_ms=WIDE_RUNTIME)
    add("surrogate_value", 9, output={"name": "caf\ud83d!"})
    add("surrogate_key", 11, output={"k\ud83d": "v"})
    add("status_object", 13)
    sim.update_run(h.ids["status_object"], status={})
    add("runtime_text", 15, runtime_ms="n/a")

    template = sim.run(h.good[0])

    def raw(kind: str, second: int, record: Dict[str, Any]) -> None:
        h.records[kind] = record
        h.raw[kind] = sim.add_raw_record(record, created_at=at(second))

    raw("created_space_offset", 17, {**template, "id": "trun_odd_space",
                                     "created_at": at(17).strftime("%Y-%m-%d %H:%M:%S+0000"),
                                     "updated_at": "soon"})
    raw("created_basic", 19, {**template, "id": "trun_odd_basic",
                              "created_at": at(19).strftime("%Y%m%dT%H%M%SZ"),
                              "updated_at": at(19).strftime("%Y-%m-%dt%H:%M:%S,5z")})
    raw("no_id", 21, {k: v for k, v in template.items() if k != "id"})
    raw("yesterday", 23, {**template, "id": "trun_yesterday", "created_at": "yesterday"})
    raw("not_an_object", 25, "garbage")
    raw("long_fraction", 27, {**template, "id": "trun_long_fraction",
                              "created_at": at(27).strftime("%Y-%m-%dt%H:%M:%S,1234567z"),
                              "canceled_at": "2025-12-31T23:59:59.999999999+01:00"})
    return h


@pytest.fixture
def hostile(simulator: DeckSimulator) -> Hostile:
    return build(simulator)


def by_id(warehouse: Warehouse, sql: str) -> Dict[str, Dict[str, Any]]:
    return {row["id"]: row for row in warehouse.query(sql)}


def assert_good_runs_loaded(warehouse: Warehouse, h: Hostile) -> None:
    """Every run of the simulator is in the warehouse, at its current state (the hostile ones'
    special fields are checked by their own tests)."""
    rows = warehouse.runs()
    truth = {run["id"]: run for run in h.sim.runs()}
    assert set(truth) <= set(rows)
    for run_id in h.good:
        run, row = truth[run_id], rows[run_id]
        assert (row["status"], row["result"], row["runtime_ms"], row["created_at"],
                row["updated_at"], row["agent_id"], row["task_id"]) == (
            run["status"], run["result"], expected_runtime(run["runtime_ms"]),
            ts(run["created_at"]), ts(run["updated_at"]), run["agent_id"], run["task_id"])


def past_the_lookback(sim: DeckSimulator) -> None:
    """A run an hour after everything else: the next sync's new-runs listing (which re-reads
    the 10 minutes below it) no longer covers the earlier runs."""
    sim.advance(3600)
    sim.add_runs(1, status="completed")


def test_wide_integers_are_stored_with_every_digit_and_the_page_loads(hostile, warehouse):
    result = warehouse.sync()

    assert_good_runs_loaded(warehouse, hostile)
    rows = by_id(warehouse, "SELECT * FROM deck.task_runs")
    ids = hostile.ids
    assert rows[ids["wide_output"]]["output__account_number__v_text"] == "12345678901234567890123"
    assert rows[ids["wide_output"]]["output__bank"] == "ACME"
    assert rows[ids["wide_input"]]["input__account__v_text"] == "-123456789012345678901"
    assert rows[ids["wide_runtime"]]["runtime_ms__v_text"] == "123456789012345678901234"
    assert rows[ids["wide_runtime"]]["runtime_ms"] is None
    nested = warehouse.query(
        "SELECT r.id, a.n__v_text, a.kind FROM deck.task_runs__output__accounts a"
        " JOIN deck.task_runs r ON a._dlt_parent_id = r._dlt_id"
    )
    assert nested == [{"id": ids["wide_in_list"], "n__v_text": "98765432109876543210987",
                       "kind": "iban"}]
    assert result.new_runs == 16 + 8 + 3  # good + simulator's hostile + loadable raw records


def test_a_wide_integer_beside_a_bigint_column_of_the_same_field_loads(simulator, warehouse):
    """20-digit account numbers arrive beside shorter ones: the BIGINT column exists first."""
    short = simulator.add_runs(1, status="completed", output={"account_number": 42})[0]
    warehouse.sync()
    simulator.advance(60)
    wide = simulator.add_runs(1, status="completed", output={"account_number": WIDE_OUTPUT})[0]

    warehouse.sync()

    rows = by_id(warehouse, "SELECT id, output__account_number, output__account_number__v_text"
                            " FROM deck.task_runs")
    assert rows[short]["output__account_number"] == 42
    assert rows[wide]["output__account_number"] is None
    assert rows[wide]["output__account_number__v_text"] == "12345678901234567890123"


def test_lone_surrogates_in_values_and_keys_become_the_replacement_character(hostile, warehouse):
    warehouse.sync()

    assert_good_runs_loaded(warehouse, hostile)
    rows = by_id(warehouse, "SELECT * FROM deck.task_runs")
    assert rows[hostile.ids["surrogate_value"]]["output__name"] == "caf\ufffd!"
    # dlt's snake_case naming turns the replacement character of the key into "x"
    assert rows[hostile.ids["surrogate_key"]]["output__kx"] == "v"


def test_wrong_typed_known_fields_load_what_can_be_loaded(hostile, warehouse, caplog):
    caplog.set_level(logging.WARNING, logger="deck")
    warehouse.sync()

    assert_good_runs_loaded(warehouse, hostile)
    rows = by_id(warehouse, "SELECT * FROM deck.task_runs")
    assert rows[hostile.ids["status_object"]]["status"] == "{}"
    assert rows[hostile.ids["runtime_text"]]["runtime_ms"] is None
    base = hostile.sim.now - timedelta(hours=1)
    odd = rows["trun_odd_space"]
    assert (odd["created_at"], odd["updated_at"]) == (base + timedelta(seconds=17), None)
    basic = rows["trun_odd_basic"]
    assert (basic["created_at"], basic["updated_at"]) == (
        base + timedelta(seconds=19), base + timedelta(seconds=19, milliseconds=500))
    long = rows["trun_long_fraction"]
    assert (long["created_at"], long["canceled_at"]) == (
        base + timedelta(seconds=27, microseconds=123456),
        datetime(2025, 12, 31, 22, 59, 59, 999999, tzinfo=UTC))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"Run {hostile.ids['runtime_text']}: runtime_ms='n/a' is not a number; stored as NULL." \
        in warnings
    assert "Run trun_odd_space: updated_at='soon' is not an ISO 8601 timestamp; stored as NULL." \
        in warnings


def test_a_run_with_a_non_string_status_stays_open_and_is_rechecked(hostile, warehouse):
    past_the_lookback(hostile.sim)
    warehouse.sync()
    hostile.sim.advance(60)
    hostile.sim.update_run(hostile.ids["status_object"], status="completed", result="success")
    hostile.sim.clear_requests()

    result = warehouse.sync()

    assert warehouse.runs()[hostile.ids["status_object"]]["status"] == "completed"
    assert result.updated_runs == 1
    run_id = hostile.ids["status_object"]
    fetched = [r.path for r in hostile.sim.requests if r.path.endswith(run_id)]
    assert fetched == [f"/v2/task-runs/{run_id}"]


def quarantine(warehouse: Warehouse) -> Dict[str, Dict[str, Any]]:
    return {row["key"]: row for row in warehouse.query("SELECT * FROM deck.task_runs_rejected")}


def list_request_ids(sim: DeckSimulator) -> List[str]:
    return [r.request_id for r in sim.requests if r.path == "/v2/task-runs" and r.status == 200]


def test_records_that_cannot_be_placed_are_quarantined_whole(hostile, warehouse, caplog):
    caplog.set_level(logging.WARNING, logger="deck")
    result = warehouse.sync()

    assert_good_runs_loaded(warehouse, hostile)
    assert result.quarantined == 3
    rows = quarantine(warehouse)
    by_raw = {row["raw_json"]: row for row in rows.values()}
    expected = {
        "no_id": (None, "The record has no id, so it cannot be merged."),
        "yesterday": ("trun_yesterday", "Run trun_yesterday has created_at='yesterday', which is"
                      " not an ISO 8601 timestamp, so it cannot be placed in time."),
        "not_an_object": (None, "The record is a JSON str, not an object."),
    }
    assert sorted(by_raw) == sorted(
        json.dumps(hostile.records[kind], separators=(",", ":")) for kind in expected)
    (request_id,) = list_request_ids(hostile.sim)  # the one page of the listing
    for kind, (run_id, reason) in expected.items():
        row = by_raw[json.dumps(hostile.records[kind], separators=(",", ":"))]
        assert (row["run_id"], row["reason"], row["request_id"]) == (run_id, reason, request_id)
        assert row["first_seen_at"] == row["last_seen_at"]
        assert row["resolved"] is None
        assert (f"Quarantined a task run Deck returned (request_id {request_id}): {reason} It is"
                " kept whole in task_runs_rejected and retried at the next sync; the runs after"
                " it load normally.") in [r.getMessage() for r in caplog.records]


def test_the_api_key_is_never_written_into_the_quarantine(simulator, warehouse):
    """Should Deck ever echo the key inside a broken record, the quarantine keeps it out."""
    simulator.add_raw_record({"status": "completed", "input": {"token": simulator.api_key}},
                             created_at=simulator.now - timedelta(minutes=1))

    warehouse.sync()

    (row,) = quarantine(warehouse).values()
    assert row["raw_json"] == '{"status":"completed","input":{"token":"[api_key hidden]"}}'


def test_quarantined_records_are_retried_and_leave_the_quarantine_once_fixed(hostile, warehouse):
    past_the_lookback(hostile.sim)
    warehouse.sync()
    first = quarantine(warehouse)
    template = hostile.sim.run(hostile.good[0])
    fixed_at = ts(template["created_at"]) + timedelta(seconds=21)
    hostile.sim.replace_raw_record(hostile.raw["no_id"], {
        **hostile.records["no_id"], "id": "trun_was_without_id",
        "created_at": fixed_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    hostile.sim.clear_requests()

    result = warehouse.sync()

    assert result.new_runs == 1 and result.updated_runs == 0
    assert result.quarantined == 2
    assert warehouse.runs()["trun_was_without_id"]["created_at"] == fixed_at
    second = quarantine(warehouse)
    assert {row["run_id"] for row in second.values()} == {"trun_yesterday", None}
    assert set(second) < set(first)
    for key, row in second.items():  # still broken: seen again, first_seen kept
        assert row["first_seen_at"] == first[key]["first_seen_at"]
        assert row["last_seen_at"] > first[key]["last_seen_at"]
    # each quarantined record's range was listed once more (two records share one range)
    ranges = [r.params for r in hostile.sim.requests
              if r.path == "/v2/task-runs" and "status" not in r.params]
    assert len(ranges) == 1 + 3  # the new-runs window, then the range of each record

    hostile.sim.replace_raw_record(hostile.raw["yesterday"], {
        **hostile.records["yesterday"],
        "created_at": (fixed_at + timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")})
    hostile.sim.replace_raw_record(hostile.raw["not_an_object"], {
        **template, "id": "trun_was_garbage",
        "created_at": (fixed_at + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S.000Z")})

    third = warehouse.sync()

    assert (third.new_runs, third.quarantined) == (2, 0)
    assert quarantine(warehouse) == {}
    assert {"trun_yesterday", "trun_was_garbage", "trun_was_without_id"} <= set(warehouse.runs())


def test_an_open_run_fetched_by_id_without_a_created_at_is_quarantined_then_loaded(
    simulator, warehouse
):
    # Created two hours before the newest run: past the lookback, so later syncs reach it only
    # through the open-run re-check (by id, once it left the open statuses).
    (run_id,) = simulator.add_runs(1, status="running",
                                   created_at=simulator.now - timedelta(hours=2))
    simulator.advance(1)
    simulator.add_runs(1, status="completed")
    warehouse.sync()
    simulator.advance(60)
    simulator.update_run(run_id, status="completed", result="success")
    good_created_at = simulator.run(run_id)["created_at"]
    simulator.serve_fields(run_id, created_at="2026-13-45T99:00:00Z")

    second = warehouse.sync()

    assert second.quarantined == 1
    assert warehouse.runs()[run_id]["status"] == "running"  # the last good version stays
    (row,) = quarantine(warehouse).values()
    assert (row["run_id"], row["request_id"], row["reason"]) == (
        run_id, None, f"Run {run_id} has created_at='2026-13-45T99:00:00Z', which is not an"
        " ISO 8601 timestamp, so it cannot be placed in time.")

    simulator.serve_fields(run_id, created_at=good_created_at)
    third = warehouse.sync()

    assert (third.quarantined, third.updated_runs) == (0, 1)
    assert warehouse.runs()[run_id]["status"] == "completed"
    assert quarantine(warehouse) == {}


def test_a_bad_record_on_a_later_page_does_not_block_the_pages_after_it(simulator, warehouse):
    """250 runs over three pages; a record without id in the middle of the second page."""
    base = simulator.now - timedelta(hours=2)
    ids = [simulator.add_runs(1, created_at=base + timedelta(seconds=i), status="completed")[0]
           for i in range(250)]
    simulator.add_raw_record({"object": "task_run", "status": "completed"},
                             created_at=base + timedelta(seconds=125, milliseconds=500))

    result = warehouse.sync()

    assert set(warehouse.runs()) == set(ids)
    assert (result.new_runs, result.quarantined) == (250, 1)


@pytest.fixture
def cli_simulator():
    sim = DeckSimulator(seed=5, runs=0).start()
    yield sim
    sim.stop()


def test_the_cli_says_runs_were_quarantined_and_exits_3(tmp_path, cli_simulator):
    h = build(cli_simulator)
    env = {"SOURCES__DECK__API_KEY": cli_simulator.api_key,
           "SOURCES__DECK__BASE_URL": cli_simulator.base_url}

    first = run_main(tmp_path, env=env)

    assert first.returncode == 3, first.stderr
    assert ("  quarantined: 3 runs (see deck.task_runs_rejected); they are retried at the next"
            " sync\n") in first.stdout
    assert "27 new, 0 updated (27 in the warehouse)" in first.stdout
    assert first.stderr.count("WARNING Quarantined a task run Deck returned (request_id req_") == 3
    assert "Traceback" not in first.stderr

    template = cli_simulator.run(h.good[0])
    # A record that had an id comes back with it; the others get one.
    ids = {"no_id": "trun_fixed_no_id", "yesterday": "trun_yesterday",
           "not_an_object": "trun_fixed_not_an_object"}
    for kind, second in (("no_id", 21), ("yesterday", 23), ("not_an_object", 25)):
        stamp = f"2025-12-31T23:00:{second}.000Z"  # where Deck listed it all along
        cli_simulator.replace_raw_record(h.raw[kind], {
            **template, "id": ids[kind], "created_at": stamp, "updated_at": stamp})
    second = run_main(tmp_path, env=env)

    assert second.returncode == 0, second.stderr
    assert "quarantined" not in second.stdout
    assert "3 new, 0 updated (30 in the warehouse)" in second.stdout
    with duckdb.connect(str(tmp_path / "deck_task_runs.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deck.task_runs_rejected").fetchone() == (0,)
    assert os.path.exists(tmp_path / "deck_task_runs.duckdb")


@pytest.mark.parametrize("kind", DESTINATIONS)
def test_quarantine_and_wide_integers_work_on_every_destination(kind, tmp_path, simulator,
                                                                 request):
    server = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    wh = make_warehouse(kind, tmp_path, simulator, server)
    base = simulator.now - timedelta(hours=1)
    (wide,) = simulator.add_runs(1, created_at=base, status="completed",
                                 output={"n": WIDE_OUTPUT})
    handle = simulator.add_raw_record({"status": "completed"},
                                      created_at=base + timedelta(seconds=1))
    simulator.add_runs(1, created_at=base + timedelta(seconds=2), status="completed")

    first = wh.sync()

    assert first.quarantined == 1
    assert wh.runs()[wide]["output__n__v_text"] == "12345678901234567890123"
    (row,) = wh.rows("task_runs_rejected")
    assert (row["raw_json"], row["reason"]) == (
        '{"status":"completed"}', "The record has no id, so it cannot be merged.")

    simulator.replace_raw_record(handle, {**simulator.run(wide), "id": "trun_fixed",
                                          "created_at": "2025-12-31T23:00:01.000Z"})
    second = wh.sync()

    assert (second.quarantined, second.new_runs) == (0, 1)
    assert wh.rows("task_runs_rejected") == []
    assert "trun_fixed" in wh.runs()


def test_an_open_run_with_an_integer_id_is_fetched_by_id_once_it_finishes(simulator, warehouse):
    """Its id is stored as its digits; fetched by id later, the answer's integer id is that run."""
    (run_id,) = simulator.add_runs(1, status="running", ids=["12345"],
                                   created_at=simulator.now - timedelta(hours=2))
    simulator.serve_fields(run_id, id=12345)
    simulator.advance(1)
    simulator.add_runs(1, status="completed")  # the watermark's run, 2 h later
    warehouse.sync()
    simulator.advance(60)
    simulator.update_run(run_id, status="completed", result="success")
    simulator.clear_requests()

    result = warehouse.sync()

    assert [r.path for r in simulator.requests if r.path.endswith("/12345")] == [
        "/v2/task-runs/12345"
    ]
    assert result.updated_runs == 1
    assert warehouse.runs()["12345"]["status"] == "completed"


def test_an_integer_just_past_signed_64_bits_is_stored_as_text_and_the_page_loads(
    simulator, warehouse
):
    """2**63 .. 2**64-1 pass a plain JSON encoder (unsigned 64 bits) but not dlt's BIGINT."""
    simulator.advance(600, new_runs=3)
    [run] = simulator.add_runs(1, status="completed", output={"n": 2**63}, runtime_ms=2**64 - 1)

    result = warehouse.sync()

    assert result.new_runs == 4
    row = warehouse.runs()[run]
    assert (row["output__n__v_text"], row["runtime_ms__v_text"]) == (
        "9223372036854775808", "18446744073709551615"
    )
