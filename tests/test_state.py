"""Unit tests of the pure parts of incremental state: no HTTP, no dlt, milliseconds each."""

from datetime import datetime, timedelta, timezone

import pytest
from deck.core.clock import DeckClock
from deck.core.filters import Filters
from deck.core.state import (
    UNKNOWN_FINGERPRINT,
    OpenRun,
    Plan,
    SavedStateError,
    SeenRun,
    TaskRunState,
    fingerprint,
)
from deck.core.stats import RequestStats, SyncStats
from deck.core.windows import Window
from deck.listing.intake import RunTracker

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
TEN_MIN = timedelta(minutes=10)


def test_fingerprint_changes_with_any_field_but_not_with_key_order():
    run = {"id": "trun_1", "status": "running", "updated_at": "2026-03-01T12:00:00Z"}
    same = {"updated_at": "2026-03-01T12:00:00Z", "status": "running", "id": "trun_1"}
    failed = {**run, "status": "failed"}
    with_errors = {**run, "errors": [{"code": "timeout"}]}

    assert fingerprint(run) == fingerprint(same)
    assert len({fingerprint(run), fingerprint(failed), fingerprint(with_errors)}) == 3


def test_state_of_the_previous_layout_is_upgraded_with_unknown_fingerprints():
    old = {
        "filters": "[]",
        "watermark": "2026-03-01T12:00:00.000000Z",
        "covered_from": "-inf",
        "boundary": {"trun_b": "2026-03-01T12:00:01Z"},
        "open_runs": {"trun_o": ["2026-02-01T00:00:00.000000Z", "2026-02-01T00:00:05Z", True]},
    }

    state = TaskRunState.load(old)

    assert state.watermark == T0
    assert state.covered_from is None  # all history
    assert state.recent["trun_b"].fingerprint == UNKNOWN_FINGERPRINT
    assert state.open_runs["trun_o"] == OpenRun(
        datetime(2026, 2, 1, tzinfo=timezone.utc), UNKNOWN_FINGERPRINT, True
    )


def test_state_round_trips_through_dlts_dict():
    state = TaskRunState(filters="[]", watermark=T0, covered_from=T0 - timedelta(days=30))
    state.open_runs["trun_o"] = OpenRun(T0, "abc", False)
    state.plan = Plan([Window(T0, None)], True, None, T0, {})
    raw: dict = {"stale": 1}

    state.save(raw)

    assert "stale" not in raw and raw["version"] == 2
    assert TaskRunState.load(raw) == state


@pytest.mark.parametrize(
    ("saved", "field", "problem"),
    [
        ({"watermark": "garbage"}, "watermark", "= 'garbage' is not an ISO 8601 timestamp"),
        ({"covered_from": 12}, "covered_from", "= 12 is not an ISO 8601 timestamp"),
        ({"version": 2, "open_runs": {"trun_o": "open"}}, "open_runs", None),
        ({"version": 2, "plan": {"windows": "all"}}, "plan", None),
    ],
    ids=["watermark", "covered_from", "open_runs", "plan"],
)
def test_a_saved_value_that_cannot_be_read_is_named_by_its_field(saved, field, problem):
    with pytest.raises(SavedStateError) as info:
        TaskRunState.load(saved)

    assert info.value.field == field
    if problem is not None:
        assert info.value.problem == problem
    else:
        assert info.value.problem.startswith("is not in the layout this connector saves (")


def test_whether_decks_clock_vouched_for_the_watermark_is_kept_and_absent_means_not():
    raw: dict = {}
    TaskRunState(watermark=T0, watermark_vouched=True).save(raw)

    assert raw["watermark_vouched"] is True
    assert TaskRunState.load(raw).watermark_vouched
    del raw["watermark_vouched"]  # saved by an earlier version: nothing vouched for it
    assert not TaskRunState.load(raw).watermark_vouched


def test_plan_never_moves_max_seen_past_the_clock():
    plan = Plan([])
    plan.see("trun_now", T0, "a", clock=T0, lookback=TEN_MIN)
    plan.see("trun_future", T0 + timedelta(days=365), "b", clock=T0, lookback=TEN_MIN)

    assert plan.max_seen == T0
    assert set(plan.recent) == {"trun_now", "trun_future"}


def test_plan_keeps_only_runs_within_the_lookback_of_the_newest():
    plan = Plan([])
    plan.see("trun_old", T0, "a", clock=T0 + timedelta(hours=1), lookback=TEN_MIN)
    plan.see("trun_near", T0 + timedelta(minutes=25), "b", clock=T0 + timedelta(hours=1),
             lookback=TEN_MIN)
    plan.see("trun_new", T0 + timedelta(minutes=30), "c", clock=T0 + timedelta(hours=1),
             lookback=TEN_MIN)

    assert set(plan.recent) == {"trun_near", "trun_new"}
    assert not plan.in_zone(T0 + timedelta(minutes=19), TEN_MIN)
    assert plan.in_zone(T0 + timedelta(minutes=20), TEN_MIN)


def test_window_bounds_outside_plausible_years_are_left_out_of_the_request():
    year_277 = datetime(277, 1, 1, tzinfo=timezone.utc)
    year_2150 = datetime(2150, 1, 1, tzinfo=timezone.utc)

    assert Window(year_277, T0).params() == {"created_before": "2026-03-01T12:00:00.000Z"}
    assert Window(T0, year_2150).params() == {"created_after": "2026-03-01T11:59:59.999Z"}
    assert Window(year_277, T0).contains(T0 - timedelta(days=1))


def test_window_bounds_are_whole_milliseconds_rounded_outward():
    inside = Window(T0 + timedelta(microseconds=1500), T0 + timedelta(microseconds=2001))

    assert inside.params() == {
        "created_after": "2026-03-01T12:00:00.000Z",  # floor(.0015) - 1 ms
        "created_before": "2026-03-01T12:00:00.003Z",  # ceil(.002001)
    }


def answers(clock: DeckClock, headers: list[str], local: datetime) -> None:
    """Answers received one after another at the same moment of this machine's clock."""
    for header in headers:
        clock.observe(header, local=local)


def test_deck_clock_is_the_date_its_answers_agree_on_plus_the_truncated_second():
    clock = DeckClock()
    local = T0 + timedelta(days=200)  # this machine's clock is far from Deck's: no matter
    answers(clock, ["Sun, 01 Mar 2026 11:59:58 GMT", "Sun, 01 Mar 2026 12:00:00 GMT",
                    "Sun, 01 Mar 2026 12:00:01 GMT", "not a date"], local)

    assert clock.now(local=local) == T0 + timedelta(seconds=1)  # the median of three, + 1 s
    later = local + timedelta(minutes=30)  # never ahead of what Deck said, however long after
    assert clock.now(local=later) == T0 + timedelta(seconds=1)


def test_a_pause_between_answers_is_not_taken_for_a_skewed_host(caplog):
    clock = DeckClock()
    answers(clock, ["Sun, 01 Mar 2026 12:00:00 GMT"] * 3, T0)
    answers(clock, ["Sun, 01 Mar 2026 12:30:00 GMT"], T0 + timedelta(minutes=30))

    assert [r for r in caplog.records if r.levelname == "WARNING"] == []
    assert clock.now(local=T0 + timedelta(minutes=30)) == T0 + timedelta(seconds=1)  # lags: safe


def test_one_skewed_answer_does_not_move_decks_clock(caplog):
    clock = DeckClock()
    answers(clock, ["Sun, 01 Mar 2026 12:00:00 GMT"] * 3 + ["Sun, 01 Mar 2026 14:00:00 GMT",
                                                           "Tue, 01 Jan 2036 00:00:00 GMT"], T0)

    assert clock.now(local=T0) == T0 + timedelta(seconds=1)
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(
        "Deck answered with a Date header of 2026-03-01T14:00:00+00:00, 2.0 h ahead of the clock"
        " its other answers agree on (2026-03-01T12:00:00+00:00): a host with a skewed clock."
    )


def test_before_answers_agree_the_lowest_date_is_decks_clock():
    clock = DeckClock()
    answers(clock, ["Sun, 01 Mar 2026 14:00:00 GMT", "Sun, 01 Mar 2026 12:00:00 GMT"], T0)

    assert clock.now(local=T0) == T0 + timedelta(seconds=1)
    assert clock.agreed() is None  # not enough to plan from


def test_two_answers_agree_on_decks_clock_only_as_far_as_both_go():
    """Whether the watermark is vouched for (at_least) or lies in Deck's future (at_most) is told
    from two answers already (a sync of two requests), but never by one of them alone: a stale
    Date on GET /test neither vouches nor makes the watermark look like the future."""
    clock = DeckClock()
    answers(clock, ["Sat, 28 Feb 2026 12:00:00 GMT"], T0)  # one day stale
    assert (clock.at_least(), clock.at_most()) == (None, None)

    answers(clock, ["Sun, 01 Mar 2026 12:00:00 GMT"], T0)
    assert (clock.at_least(), clock.at_most()) == (T0 - timedelta(days=1), T0)
    assert clock.agreed() is None  # still not enough to bound the watermark by

    answers(clock, ["Sun, 01 Mar 2026 12:00:00 GMT"], T0)
    assert clock.at_least() == clock.at_most() == clock.agreed() == T0  # the median of three


def test_deck_clock_far_ahead_of_this_machine_is_bounded():
    stats = RequestStats()
    for _ in range(3):
        stats.observe_date("Thu, 01 Jan 2099 00:00:00 GMT")

    assert stats.deck_now() < datetime.now(timezone.utc) + timedelta(days=2)


def test_a_run_the_previous_sync_loaded_is_known_after_newer_runs_were_listed_first():
    """A backfill lists newest first: by the time it reaches the lookback below the watermark,
    the plan's own zone has moved on. The run the previous sync loaded there is still a re-read,
    not a new run."""
    edge = {"id": "trun_edge", "created_at": T0.isoformat(), "status": "completed"}
    newer = {"id": "trun_newer", "created_at": (T0 + timedelta(days=4)).isoformat(),
             "status": "completed"}
    state = TaskRunState(watermark=T0, recent={"trun_edge": SeenRun(T0, fingerprint(edge))})
    plan = Plan([], max_seen=T0, recent=dict(state.recent))
    stats = SyncStats()
    tracker = RunTracker(state, Filters({}), stats, TEN_MIN)
    window, clock = Window(T0 - TEN_MIN, None), T0 + timedelta(days=5)

    tracker.accept([dict(newer)], window, plan, clock)
    tracker.accept([dict(edge)], window, plan, clock)

    assert (stats.new_runs, stats.updated_runs) == (1, 0)
