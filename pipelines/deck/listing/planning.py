"""Which `created_at` windows a load lists, and how a window too big to list whole is cut.

Pure functions over the typed state (`state.py`) and `Window`s: no I/O, so the rules that decide
what is read (and therefore what could be missed) are unit-tested in milliseconds.

- A first sync lists `[start_date, end_date)`; later syncs list from the lookback below the
  watermark (runs that became visible late), plus older history when `start_date` moves back.
- A window's first page shows how dense it is: a window with a start is cut into parts of about
  `pages_per_window` pages (`split_window`), each cut again by its own first page if it was
  denser than that page showed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from math import ceil as ceil_int
from typing import Any

from deck.core.clock import TRUNCATED
from deck.core.state import ListingState, Plan
from deck.core.windows import (
    EARLIEST_PLAUSIBLE,
    Window,
    after,
    coarsest_grain,
    estimate_pages,
    floor,
    format_timestamp,
    is_plausible,
    lookback_start,
    page_direction,
    page_stamps,
)

logger = logging.getLogger("deck")

# Below this a window is not split further, however dense (runs can share one timestamp).
MIN_WINDOW_SPAN = timedelta(seconds=1)

# At most this many parts from one first page: a page from a burst can make a sparse window look
# dense, and every part costs at least one request. A window that needs more is cut again by the
# first pages of its parts (a level more per 64x).
MAX_PARTS = 64


def top_window(watermark: datetime, end: datetime | None, lookback: timedelta) -> Window:
    """New runs: from the lookback below the watermark, so runs that became visible late
    (created before runs already listed, committed after) are still found. Its start is a whole
    second (`windows.lookback_start`)."""
    return Window(lookback_start(watermark, lookback), end)


def forget_future_watermark(
    state: ListingState, deck_clock: datetime | None, lookback: timedelta
) -> bool:
    """Drop a watermark after Deck's clock (`clock.DeckClock.at_most`: the date its answers
    agree it has not passed; None: they do not agree on one yet), so that all of history is
    listed again: it can only come from a run dated in the future, followed under an older
    version of this code (one that let a single answer move its clock) or while no `Date` could
    be read (this machine's clock bounds the watermark then, and it may be fast), and the runs
    it skipped are found no other way. Judged by Deck's answers alone: this machine's clock may
    be wrong either way. Never a watermark Deck's answers had passed when it was committed
    (`state.watermark_vouched`): `Date`s well behind that one are left out as wrong
    (`clock.DeckClock.vouch`), so a stale `Date` cannot make it look like one in the future.
    The lookback is the margin for servers whose clocks differ by a few seconds. Checked when a
    plan is made and again when it is finished, since a sync's first plan is made before its
    answers agree on a clock."""
    if (
        state.watermark is None
        or state.watermark_vouched
        or deck_clock is None
        or state.watermark <= deck_clock + lookback
    ):
        return False
    logger.warning(
        "The saved watermark %s lies after Deck's clock (%s): a run dated in the future was"
        " followed by an earlier version, or while Deck's Date headers could not be read and"
        " this machine's clock bounded the watermark. Listing all of history again to find the"
        " runs it skipped; rows already loaded stay.",
        format_timestamp(state.watermark),
        format_timestamp(deck_clock),
    )
    state.watermark, state.covered_from, state.recent = None, None, {}
    state.watermark_vouched, state.reread_from = False, None
    return True


def initial_plan(
    state: ListingState,
    start: datetime | None,
    end: datetime | None,
    lookback: timedelta,
    deck_clock: datetime | None,
) -> Plan:
    """The windows a sync must list, from what state says is already covered (after
    `forget_future_watermark` with Deck's clock, when its answers agree on one yet:
    `clock.DeckClock.at_most`)."""
    forget_future_watermark(state, deck_clock, lookback)
    if state.watermark is None:
        return Plan([Window(start, end)], extends_coverage=True, new_covered_from=start)
    plan = Plan([], max_seen=state.watermark, recent=dict(state.recent))
    lower = state.covered_from
    if lower is not None and (start is None or start < lower):
        plan.windows.append(Window(start, lower))
        plan.extends_coverage, plan.new_covered_from = True, start
    top = top_window(state.watermark, end, lookback)
    if state.reread_from is not None and state.reread_from < top.start:
        # a record the last plan left undecided lies below the lookback: from it, on a whole
        # second (outward, as the lookback's edge)
        top = Window(lookback_start(state.reread_from, timedelta(0)), end)
        if lower is not None and top.start < lower:
            top = Window(lower, end)
    if top.end is None or top.start < top.end:
        plan.windows.append(top)
    return plan


def finish_plan(state: ListingState, plan: Plan, deck_clock: datetime | None = None) -> None:
    """Every window listed: the watermark becomes the newest `created_at` seen, and the record
    the plan must list again (`Plan.reread_from`) is kept for the next plan (`initial_plan`).

    Taken from Deck's own timestamps, never from this machine's clock, and never past Deck's
    clock (a run dated in the future is loaded, but does not hide the runs created before it).
    A watermark that moved is vouched for only when Deck's answers agree its clock has passed
    it (`deck_clock`, see `vouch_for_watermark`): not one bounded by this machine's clock.
    """
    state.plan = None
    if plan.extends_coverage:
        state.covered_from = plan.new_covered_from
    if plan.max_seen is not None and (state.watermark is None or plan.max_seen >= state.watermark):
        if plan.max_seen != state.watermark:
            state.watermark_vouched = False
        state.watermark = plan.max_seen
        state.recent = plan.recent
    state.reread_from = plan.reread_from
    vouch_for_watermark(state, deck_clock)


def vouch_for_watermark(state: ListingState, deck_clock: datetime | None) -> None:
    """Record that Deck's clock has passed the watermark, when its answers agree it has
    (`deck_clock`: `clock.DeckClock.at_least`, None when they do not agree on one). Later syncs
    leave out a `Date` well behind a vouched watermark (`clock.DeckClock.vouch`); a watermark
    bounded by this machine's clock alone, which may be fast, vouches for nothing."""
    if (
        state.watermark is not None
        and deck_clock is not None
        and state.watermark <= deck_clock + TRUNCATED
    ):
        state.watermark_vouched = True


def retention_gap(
    state: ListingState, clock: datetime, retention: timedelta
) -> Window | None:
    """The interval whose events were never loaded and that Deck no longer keeps, if any.

    Everything up to the watermark was loaded; Deck keeps events created after `clock -
    retention`. When the watermark is older than that, the events between the two are gone.
    A first sync has no watermark: its history simply starts `retention` before it.
    """
    if state.watermark is None:
        return None
    oldest_kept = clock - retention
    if state.watermark >= oldest_kept:
        return None
    return Window(state.watermark, oldest_kept)


def split_window(
    window: Window,
    first_page: list[dict[str, Any]],
    has_more: bool,
    *,
    page_size: int,
    pages_per_window: int,
    clock: datetime,
) -> list[Window]:
    """Cut a window that holds more than ~`pages_per_window` pages; [] to list it whole.

    A window with a start (`history_start.find_start` found where history begins, or a plan's
    bound) is cut into parts of about `pages_per_window` pages each, judged from its first
    page's time density, up to `MAX_PARTS` (an end of None is taken as Deck's `clock`, the last
    part staying open): the producer lists them oldest first, `workers` at once, so the first
    load's windows are listed first and it commits while the rest is listed. The walker keeps
    the first page as data and clips the parts to what it left (`clip_windows`), so a cut costs
    no request. Only a window whose start could not be proven (a run dated before 2000) is cut
    the old way: one slice of `pages_per_window` pages off the end its first page shows, the
    rest cut again when listed.

    The order only steers how windows are cut: correctness rests on the half-open windows alone.
    Timestamps Deck's clock rules out (a run dated in the future) are left out of the density,
    so one bad record cannot make the cutter reach for year 277.
    """
    stamps = [s for s in page_stamps(first_page) if is_plausible(s, clock)]
    if not has_more or len(set(stamps)) < 2:
        return []
    span = window.span
    if span is not None and span <= MIN_WINDOW_SPAN:
        return []
    step = coarsest_grain(stamps)  # cuts on whole steps of the precision Deck printed at
    if window.start is not None:
        end = window.end if window.end is not None else max(clock, max(stamps) + step)
        measured = Window(window.start, end)
        pages = estimate_pages(measured, stamps, len(first_page), page_size)
        if pages <= pages_per_window * 1.5:
            return []
        parts = measured.split(min(MAX_PARTS, max(2, ceil_int(pages / pages_per_window))), step)
        if len(parts) < 2:  # too short for a whole step: listed whole
            return []
        return [*parts[:-1], Window(parts[-1].start, window.end)]
    low, high = min(stamps), max(stamps)
    slice_span = (high - low) * (pages_per_window - 1)
    direction = page_direction(stamps)
    if direction == "newest_first":
        cut = floor(_back(low, slice_span), step)
    elif direction == "oldest_first":
        cut = floor(_forward(high, slice_span, clock), step)  # never past Deck's clock
    else:
        return []
    if not window.contains(cut):
        return []
    return [Window(window.start, cut), Window(cut, window.end)]


def _back(instant: datetime, by: timedelta) -> datetime:
    """`instant - by`, but no earlier than `EARLIEST_PLAUSIBLE` (a sparse history's slices can
    reach past year 1, where datetime overflows)."""
    try:
        return max(instant - by, EARLIEST_PLAUSIBLE)
    except OverflowError:
        return EARLIEST_PLAUSIBLE


def _forward(instant: datetime, by: timedelta, clock: datetime) -> datetime:
    """`instant + by`, but no later than Deck's `clock`."""
    try:
        return min(instant + by, clock)
    except OverflowError:
        return clock


def clip_windows(windows: list[Window], to: Window) -> list[Window]:
    """The parts of `windows` inside `to`, empty ones left out.

    A split window whose first page was kept (`walker`): its parts are planned for the whole
    window, and clipped to the rest that page did not cover.
    """
    clipped = []
    for window in windows:
        start = _latest(window.start, to.start)
        end = _earliest(window.end, to.end)
        if start is None or end is None or start < end:
            clipped.append(Window(start, end))
    return clipped


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two window starts (None: unbounded)."""
    return b if a is None else a if b is None else max(a, b)


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two window ends (None: unbounded)."""
    return b if a is None else a if b is None else min(a, b)


def cut_listed_part(window: Window, stamps: list[datetime]) -> tuple[Window, Window] | None:
    """Where a window listed only in part splits: (the part listed to its end, the rest).

    A load that is full (`max_runs_per_load`) stops listing a window after a page. `stamps` are
    the `created_at` of that window's records in the order Deck returned them. In newest-first
    order every run newer than the oldest one listed has been read, but the oldest timestamp may
    continue on the next page, and inside Deck it may stand for any instant up to the next step
    of the precision it was printed at (`windows.after`); so the rest is `[start, after(oldest))`
    and the listed part what is above it. Oldest-first mirrors that: the rest starts at the
    newest one listed (an instant Deck printed, so on a whole step of its precision). None when
    the order is neither (nothing can be said about what was read) or when the listed part would
    be empty (the pages hold a single printed instant: the load must go on to make progress).
    """
    inside = [s for s in stamps if window.contains(s)]
    direction = page_direction(inside) if len(set(inside)) > 1 else None
    if direction == "newest_first":
        edge = after(min(inside))
        if edge > max(inside):
            return None
        return Window(edge, window.end), Window(window.start, edge)
    if direction == "oldest_first":
        edge = max(inside)
        if edge <= min(inside):
            return None
        return Window(window.start, edge), Window(edge, window.end)
    return None
