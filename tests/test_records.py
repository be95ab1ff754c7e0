"""Pure checks of deck.core.records: what a hostile record becomes before it reaches dlt."""

import json
from datetime import datetime, timedelta, timezone

import pytest
from deck.core import record_values, records

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

UTC = timezone.utc


def run(**fields):
    base = {"id": "trun_1", "object": "task_run", "status": "completed",
            "created_at": "2026-01-01T12:00:00.123Z", "updated_at": "2026-01-01T12:01:00.000Z"}
    return {**base, **fields}


def test_wide_integers_move_to_text_variant_keys_with_every_digit():
    value = {"a": 2**63, "b": 2**63 - 1, "c": -(2**63), "d": -(2**63) - 1,
             "l": [1, 10**30, {"x": 10**25}]}
    assert record_values.sanitize(value) == {
        "a__v_text": "9223372036854775808", "b": 9223372036854775807,
        "c": -9223372036854775808, "d__v_text": "-9223372036854775809",
        "l": [1, {"value__v_text": "1" + "0" * 30}, {"x__v_text": "1" + "0" * 25}],
    }


def test_lone_surrogates_in_keys_and_values_become_u_fffd_and_the_rest_is_kept():
    parsed = json.loads('{"k\\ud83d": "caf\\udc00e", "ok": "\\ud83d\\ude00"}')
    assert record_values.sanitize(parsed) == {"k\ufffd": "caf\ufffde", "ok": "\U0001F600"}


def test_non_finite_floats_become_null():
    assert record_values.sanitize([float("nan"), float("inf"), 1e308]) == [None, None, 1e308]


def test_a_clean_record_is_returned_as_is_without_a_copy():
    record = run(output={"n": 5})
    checked = records.check_page([record])
    assert checked.runs[0] is record and checked.rejected == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (48211, 48211), ("48211", 48211), (" 7 ", 7), ("48211.9", 48211), (12.0, 12),
        (2**70, str(2**70)), (str(2**70), str(2**70)), ("n/a", None), ({}, None),
        (float("inf"), None), ("1e400", None), (None, None), (True, None),
    ],
)
def test_runtime_ms_coercion(value, expected):
    assert record_values.coerce_runtime_ms(value) == expected


def test_prepare_puts_a_wide_runtime_in_its_text_variant_and_warns_on_text():
    warnings: list[str] = []
    wide = records.prepare(run(runtime_ms=str(10**20)), warnings)
    assert (wide["runtime_ms"], wide["runtime_ms__v_text"]) == (None, "1" + "0" * 20)
    bad = records.prepare(run(runtime_ms="n/a"), warnings)
    assert bad["runtime_ms"] is None
    assert warnings == ["Run trun_1: runtime_ms='n/a' is not a number; stored as NULL."]


@pytest.mark.parametrize(
    "text",
    [
        "2026-01-01 12:00:00+0000", "20260101T120000Z", "2026-01-01T12:00:00,000z",
        "2026-01-01T13:00:00.0000000+01:00", "2026-01-01T12:00:00", "2026-01-01t12:00:00Z",
    ],
)
def test_odd_iso_forms_parse_and_are_rewritten_to_one_form(text):
    checked = records.check_page([run(created_at=text)])
    assert checked.created == [datetime(2026, 1, 1, 12, tzinfo=UTC)]
    assert checked.runs[0]["created_at"] == "2026-01-01T12:00:00.000000Z"


def test_known_text_fields_of_another_type_become_their_json_text():
    checked = records.check_page([run(status={}, result=["x"], agent_id=5, task_id=2**70,
                                      id=12345)])
    got = checked.runs[0]
    assert (got["id"], got["status"], got["result"], got["agent_id"], got["task_id"]) == (
        "12345", "{}", '["x"]', "5", str(2**70))


def test_an_unparseable_updated_at_becomes_null_with_a_warning():
    checked = records.check_page([run(updated_at="soon", canceled_at=5)])
    assert (checked.runs[0]["updated_at"], checked.runs[0]["canceled_at"]) == (None, None)
    assert checked.warnings == [
        "Run trun_1: updated_at='soon' is not an ISO 8601 timestamp; stored as NULL.",
        "Run trun_1: canceled_at=5 is not an ISO 8601 timestamp; stored as NULL.",
    ]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"status": "completed"}, "The record has no id, so it cannot be merged."),
        (run(id=""), "The record's id '' is not a non-empty string, so it cannot be merged."),
        (run(id={"a": 1}),
         "The record's id {'a': 1} is not a non-empty string, so it cannot be merged."),
        (run(created_at="yesterday"), "Run trun_1 has created_at='yesterday', which is not an"
         " ISO 8601 timestamp, so it cannot be placed in time."),
        (run(created_at=None), "Run trun_1 has created_at=None, which is not an ISO 8601"
         " timestamp, so it cannot be placed in time."),
        ([1, 2], "The record is a JSON list, not an object."),
    ],
)
def test_records_that_cannot_be_placed_are_rejected_whole(record, reason):
    checked = records.check_page([run(id="trun_0"), record, run(id="trun_2")])
    assert [r["id"] for r in checked.runs] == ["trun_0", "trun_2"]
    (rejection,) = checked.rejected
    assert rejection.reason == reason
    assert json.loads(rejection.raw) == record


def test_the_raw_json_of_a_rejected_record_keeps_wide_ints_and_escapes_surrogates():
    record = json.loads('{"n": 123456789012345678901234567890, "s": "\\ud83d"}')
    rejection = records.check_page([record]).rejected[0]
    assert rejection.raw == '{"n":123456789012345678901234567890,"s":"\\ud83d"}'
    assert rejection.raw.encode("utf-8")  # storable


def test_a_rejected_record_is_bounded_by_its_neighbours_in_either_order():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    at = [t + timedelta(seconds=s) for s in (1, 2, 3)]
    lo, hi = t, t + timedelta(hours=1)
    assert records.bounds([at[0], at[1], None, at[2]], lo, hi) == [(at[1], at[2])]
    assert records.bounds([at[2], None, at[1], at[0]], lo, hi) == [(at[1], at[2])]
    assert records.bounds([None, at[0], at[1]], lo, hi) == [(lo, at[0])]
    assert records.bounds([at[2], at[0], None, at[1]], lo, hi) == [(lo, hi)]  # unsorted


def test_locate_lists_the_runs_already_known_in_a_rejected_records_range():
    page = [run(id="a", created_at="2026-01-01T00:00:01Z"), {"status": "x"},
            run(id="b", created_at="2026-01-01T00:00:02Z"),
            run(id="c", created_at="2026-01-01T00:00:02Z"),
            run(id="d", created_at="2026-01-01T00:00:03Z")]
    (rejection,) = records.locate([records.check_page(page)], None, None)
    assert (rejection.after, rejection.before) == (
        datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC))
    assert rejection.known == ["a", "b", "c"]
