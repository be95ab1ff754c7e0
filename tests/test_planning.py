"""Unit tests of window planning and cutting: pure functions, no HTTP."""

from datetime import datetime, timedelta, timezone

import pytest
from deck.core.state import Plan, SeenRun, TaskRunState
from deck.core.windows import Window
from deck.listing.planning import (
    clip_windows,
    finish_plan,
    forget_future_watermark,
    initial_plan,
    split_window,
)

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
CLOCK = T0 + timedelta(days=30)
TEN_MIN = timedelta(minutes=10)


def page(stamps):
    return [{"id": f"trun_{i}", "created_at": s.isoformat()} for i, s in enumerate(stamps)]


def test_a_first_sync_plans_the_whole_range_and_will_record_its_coverage():
    plan = initial_plan(TaskRunState(), T0, None, TEN_MIN, CLOCK)

    assert plan.windows == [Window(T0, None)]
    assert (plan.extends_coverage, plan.new_covered_from) == (True, T0)


def test_a_later_sync_lists_from_the_lookback_below_the_watermark():
    watermark = T0 + timedelta(days=3)
    state = TaskRunState(watermark=watermark, covered_from=T0,
                         recent={"trun_1": SeenRun(watermark, "ab")})

    plan = initial_plan(state, T0, None, TEN_MIN, CLOCK)

    assert plan.windows == [Window(watermark - TEN_MIN, None)]
    assert plan.max_seen == watermark and set(plan.recent) == {"trun_1"}


def test_an_earlier_start_date_adds_the_older_history_first():
    state = TaskRunState(watermark=T0 + timedelta(days=3), covered_from=T0)
    earlier = T0 - timedelta(days=10)

    plan = initial_plan(state, earlier, None, TEN_MIN, CLOCK)

    assert plan.windows[0] == Window(earlier, T0)
    assert (plan.extends_coverage, plan.new_covered_from) == (True, earlier)


def test_a_watermark_after_decks_clock_is_dropped_and_history_listed_again():
    state = TaskRunState(watermark=CLOCK + timedelta(days=365), covered_from=None)

    plan = initial_plan(state, None, None, TEN_MIN, CLOCK)

    assert plan.windows == [Window(None, None)]
    assert state.watermark is None


def test_finishing_a_plan_moves_the_watermark_and_the_recent_zone():
    state = TaskRunState()
    plan = Plan([], True, None, T0, {"trun_2": SeenRun(T0, "cd")})

    finish_plan(state, plan)

    assert (state.watermark, state.covered_from, state.plan) == (T0, None, None)
    assert set(state.recent) == {"trun_2"}


def test_a_record_to_list_again_starts_the_next_plan_at_or_before_it():
    """An event of a filtered sync whose run cannot be placed yet (`Plan.reread`): the next
    sync's top window starts at or before it, however far the listing went past it and whatever
    the lookback is then; the watermark and the recent zone stay those of what was listed."""
    held = T0 + timedelta(seconds=7, milliseconds=250)
    newest = T0 + timedelta(hours=2)
    state = TaskRunState()
    plan = Plan([], max_seen=newest, recent={"evt_new": SeenRun(newest, "")})
    plan.recent["evt_held"] = SeenRun(held, "")
    plan.reread("evt_held", held)

    finish_plan(state, plan)
    following = initial_plan(state, None, None, timedelta(seconds=5), CLOCK)

    assert (state.watermark, set(state.recent)) == (newest, {"evt_new"})
    assert following.windows == [Window(T0 + timedelta(seconds=7), None)]


def test_a_record_to_list_again_inside_the_lookback_changes_nothing():
    state = TaskRunState()
    plan = Plan([], max_seen=T0)
    plan.reread("evt_held", T0 - timedelta(minutes=1))
    finish_plan(state, plan)

    assert initial_plan(state, None, None, TEN_MIN, CLOCK).windows == [Window(T0 - TEN_MIN, None)]


def test_a_plan_that_leaves_nothing_undecided_forgets_the_last_ones():
    state = TaskRunState(reread_from=T0 - timedelta(days=1))
    finish_plan(state, Plan([], max_seen=T0))

    assert state.reread_from is None


# ---- which watermark vouches for Deck's clock (review of issue 22) ------------------------------


def test_a_watermark_in_decks_future_is_dropped_however_fast_this_machines_clock_is():
    """The review's case: this machine's clock is 1 h fast and the watermark (left by an older
    version, or bounded by this machine's clock) lies 40 min after Deck's clock. Deck's quorum
    decides; this machine's clock, whatever it says, does not keep the watermark."""
    deck_clock = datetime.now(timezone.utc) - timedelta(hours=1)
    state = TaskRunState(watermark=deck_clock + timedelta(minutes=40), covered_from=T0)

    assert forget_future_watermark(state, deck_clock, TEN_MIN)
    assert (state.watermark, state.covered_from, state.watermark_vouched) == (None, None, False)


def test_a_watermark_decks_clock_had_passed_is_kept_whatever_its_answers_agree_on_now():
    """Dates well behind a vouched watermark are left out (clock.DeckClock.vouch); those a few
    minutes behind are kept, and must not drop it under a lookback shorter than that."""
    watermark = CLOCK + timedelta(minutes=4)
    state = TaskRunState(watermark=watermark, covered_from=None, watermark_vouched=True)

    assert not forget_future_watermark(state, CLOCK, timedelta(minutes=1))
    assert state.watermark == watermark


def test_finishing_a_plan_vouches_only_for_a_watermark_decks_agreed_clock_has_passed():
    def finished(watermark, max_seen, deck_clock, vouched=False):
        state = TaskRunState(watermark=watermark, watermark_vouched=vouched)
        finish_plan(state, Plan([], max_seen=max_seen), deck_clock)
        return state.watermark, state.watermark_vouched

    later = T0 + TEN_MIN
    assert finished(None, T0, CLOCK) == (T0, True)
    assert finished(None, T0, T0 - timedelta(seconds=1)) == (T0, True)  # the truncated second
    assert finished(None, T0, T0 - timedelta(seconds=2)) == (T0, False)  # a run in the future
    assert finished(None, T0, None) == (T0, False)  # bounded by this machine's clock
    assert finished(T0, later, None, vouched=True) == (later, False)  # moved without a quorum
    assert finished(T0, T0, None, vouched=True) == (T0, True)  # unchanged: still passed
    assert finished(T0, later, CLOCK) == (later, True)


def test_a_window_with_a_start_is_cut_into_parts_of_about_pages_per_window_pages():
    """Ten days whose first page (100 runs) spans 99 minutes: ~145 pages, six parts of 25."""
    window = Window(T0, T0 + timedelta(days=10))
    newest_first = [T0 + timedelta(days=10) - timedelta(minutes=i) for i in range(100)]

    parts = split_window(window, page(newest_first), True, page_size=100, pages_per_window=25,
                         clock=CLOCK)

    forty_hours = timedelta(hours=40)
    assert parts == [Window(T0 + forty_hours * i, T0 + forty_hours * (i + 1)) for i in range(6)]


def test_a_window_with_no_end_is_cut_up_to_decks_clock_and_its_last_part_stays_open():
    start = CLOCK - timedelta(days=10)
    oldest_first = [start + timedelta(minutes=i) for i in range(100)]

    parts = split_window(Window(start, None), page(oldest_first), True, page_size=100,
                         pages_per_window=25, clock=CLOCK)

    forty_hours = timedelta(hours=40)
    assert parts == [
        *(Window(start + forty_hours * i, start + forty_hours * (i + 1)) for i in range(5)),
        Window(start + forty_hours * 5, None),
    ]


def test_one_first_page_cuts_a_window_into_at_most_64_parts():
    """A page from a burst can make a sparse year look dense: each part costs a request."""
    window = Window(CLOCK - timedelta(days=365), CLOCK)
    burst = [CLOCK - timedelta(seconds=i) for i in range(100)]

    parts = split_window(window, page(burst), True, page_size=100, pages_per_window=25,
                         clock=CLOCK)

    assert len(parts) == 64
    assert parts[0].start == window.start and parts[-1].end == window.end


def test_a_window_whose_start_is_unknown_peels_one_slice_off_the_end_its_first_page_shows():
    window = Window(None, CLOCK)
    newest_first = [CLOCK - timedelta(minutes=i) for i in range(100)]

    parts = split_window(window, page(newest_first), True, page_size=100, pages_per_window=25,
                         clock=CLOCK)

    cut = newest_first[-1] - (newest_first[0] - newest_first[-1]) * 24  # 25 pages back
    assert parts == [Window(None, cut), Window(cut, CLOCK)]


def test_a_sparse_history_open_towards_the_past_is_sliced_no_further_back_than_2000():
    window = Window(None, CLOCK)
    yearly = [CLOCK - timedelta(days=365 * i) for i in range(100)]  # a run a year, 99 years

    parts = split_window(window, page(yearly), True, page_size=100, pages_per_window=25,
                         clock=CLOCK)

    assert parts[0] == Window(None, datetime(2000, 1, 1, tzinfo=timezone.utc))


def test_a_window_that_fits_is_listed_whole():
    window = Window(T0, T0 + timedelta(hours=1))
    stamps = [T0 + timedelta(hours=1) - timedelta(seconds=30 * i) for i in range(100)]

    assert split_window(window, page(stamps), True, page_size=100, pages_per_window=25,
                        clock=CLOCK) == []


def test_a_run_dated_in_the_future_does_not_steer_the_cut():
    window = Window(None, None)
    stamps = [datetime(2099, 1, 1, tzinfo=timezone.utc)] + [
        CLOCK - timedelta(minutes=i) for i in range(99)
    ]

    parts = split_window(window, page(stamps), True, page_size=100, pages_per_window=25,
                         clock=CLOCK)

    assert parts and all(p.start is None or p.start.year == 2026 for p in parts)


def test_a_watermark_a_few_seconds_after_decks_clock_is_kept():
    watermark = CLOCK + timedelta(seconds=5)  # another of Deck's servers, a little ahead
    state = TaskRunState(watermark=watermark, covered_from=None)

    plan = initial_plan(state, None, None, TEN_MIN, CLOCK)

    assert state.watermark == watermark
    assert plan.windows == [Window(watermark - TEN_MIN, None)]


def test_without_decks_own_clock_the_watermark_is_kept():
    state = TaskRunState(watermark=CLOCK + timedelta(days=365), covered_from=None)

    initial_plan(state, None, None, TEN_MIN, None)

    assert state.watermark == CLOCK + timedelta(days=365)


def test_parts_planned_for_a_whole_window_are_clipped_to_the_rest_its_first_page_left():
    parts = [
        Window(T0, T0 + TEN_MIN),
        Window(T0 + TEN_MIN, T0 + 3 * TEN_MIN),
        Window(T0 + 3 * TEN_MIN, None),
    ]
    rest = Window(T0, T0 + 2 * TEN_MIN)  # newest first: the first page covered [T0+20min, end)

    assert clip_windows(parts, rest) == [
        Window(T0, T0 + TEN_MIN),
        Window(T0 + TEN_MIN, T0 + 2 * TEN_MIN),
    ]


def test_clipping_to_an_unbounded_rest_keeps_the_parts_it_overlaps():
    parts = [Window(None, T0), Window(T0, T0 + TEN_MIN)]

    assert clip_windows(parts, Window(T0 - TEN_MIN, None)) == [
        Window(T0 - TEN_MIN, T0),
        Window(T0, T0 + TEN_MIN),
    ]


def test_a_window_too_short_for_a_whole_step_of_its_precision_is_listed_whole():
    """A page in no time order holding a whole second (so maybe printed to the second): its
    halves on whole seconds would be the window itself, listed again and again."""
    window = Window(T0, T0 + timedelta(milliseconds=1_900))
    in_no_order = [T0 + timedelta(milliseconds=ms) for ms in (300, 0, 600) * 3 + (300,)]

    assert split_window(window, page(in_no_order), True, page_size=10, pages_per_window=2,
                        clock=CLOCK) == []
