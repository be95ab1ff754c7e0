"""Properties of a whole sync against every reading of Deck's list that its documentation allows.

A story: Deck holds a history of runs (ties in one millisecond, sub-millisecond instants, runs
around 2000-01-01 and, after Deck's clock, runs dated in the future); a first sync lists it, and
may be killed after any load (its committed state is all that survives); later, with new runs
created, a second sync resumes from that state and runs to its end; a minute after it a third
finds nothing new. The connector is played by `support.deck_model.run_sync` (its walker and
planning functions, in process, `workers=1`).

What must hold whatever Deck's reading: no run is ever lost (it is loaded, or still in what the
committed state will list), each sync ends within a bounded number of loads, a finished sync has
loaded every run created before it began, and a sync that finds nothing new loads nothing again.
A run may be read many times; it is loaded twice only where the design says it need not be
(`test_a_sync_that_finds_nothing_new_loads_no_run_again`): elsewhere a re-load is a merge.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from math import ceil

import pytest
from deck.core.windows import parse_timestamp
from hypothesis import example, given
from hypothesis import strategies as st
from support.deck_model import (
    MS_US,
    BoundReading,
    Contract,
    DeckModel,
    LoadOptions,
    Run,
    Stored,
    SyncResult,
    from_us,
    printed_instant,
    run_sync,
    still_planned,
    to_us,
)

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

T0 = to_us(parse_timestamp("2026-03-01T12:00:00Z"))
NEAR_2000 = to_us(parse_timestamp("1999-12-31T23:59:59Z"))  # across EARLIEST_PLAUSIBLE
NEAR_2099 = to_us(parse_timestamp("2099-12-31T23:59:58Z"))  # before LATEST_PLAUSIBLE
MINUTE_US = 60_000 * MS_US


def loads_bound(runs: int, options: LoadOptions) -> int:
    """The most loads one sync may take to list `runs` runs.

    A load that leaves work has read more than `max_runs_per_load - page_size` records (the
    walker stops when the next page would not fit) and at least one. A run is read at most a
    few times in a sync: in its own window, again at the edge of a cut (the rest of a cut window
    starts from the oldest millisecond listed), in the one-millisecond margin below the window
    above it or at an inclusive end, and up to twice more in the re-listed lookback zone. Eight
    reads per run covers all of these; 4 loads more cover the last load (which may read less),
    the re-list of the top window, a load that starts with a first page that does not fit and
    a kill's resume. A sync that never ends exceeds any such bound.
    """
    per_load = max(1, options.max_runs_per_load - options.page_size + 1)
    return ceil(8 * runs / per_load) + 4


def instants_near(base: int, ms_span: int) -> st.SearchStrategy[int]:
    """True instants (µs) in the `ms_span` milliseconds after `base`, sub-millisecond too."""
    return st.tuples(st.integers(0, ms_span), st.integers(0, MS_US - 1)).map(
        lambda ms_us: base + ms_us[0] * MS_US + ms_us[1]
    )


INSTANT = st.one_of(
    instants_near(T0, 3),  # heavy ties: many runs in a handful of milliseconds
    instants_near(T0, 5_000),
    instants_near(T0, 3 * 86_400_000),
    instants_near(NEAR_2000, 2_000),  # far past, across 2000-01-01
)


@st.composite
def histories(draw: st.DrawFn, most: int = 40) -> list[int]:
    """Up to `most` runs; the size drawn first, so that long histories are as likely as short
    ones (a list strategy stays short on average)."""
    size = draw(st.integers(0, most))
    return draw(st.lists(INSTANT, min_size=size, max_size=size))




@dataclass(frozen=True)
class Story:
    contract: Contract
    options: LoadOptions
    history: list[int]  # created before the first sync's clock
    future: list[int]  # dated after the first sync's clock (just after it, or year 2099)
    newcomers: list[int]  # created between the two syncs
    kill_after: int | None  # loads the first sync commits before it is killed
    clock1: int
    clock2: int


@dataclass
class Told:
    """What a story did."""

    deck: DeckModel
    first: SyncResult
    second: SyncResult = field(default_factory=SyncResult)
    third: SyncResult = field(default_factory=SyncResult)  # later, with nothing new
    committed: str = "{}"  # the state after the last sync
    bounds: tuple[int, int] = (0, 0)  # loads_bound of the first and of the later syncs


def ceil_ms(instant: int) -> int:
    return -(-instant // MS_US) * MS_US


@st.composite
def stories(
    draw: st.DrawFn,
    bounds: st.SearchStrategy[BoundReading],
    stored: st.SearchStrategy[Stored],
) -> Story:
    page_size = draw(st.one_of(st.integers(1, 4), st.integers(1, 20)))
    contract = Contract(
        bounds=draw(bounds),
        stored=draw(stored),
        inclusive=draw(st.booleans()),
        order=draw(st.sampled_from(["newest_first", "oldest_first"])),
        page_size=page_size,
    )
    options = LoadOptions(
        page_size=page_size,
        pages_per_window=draw(st.integers(1, 5)),
        max_runs_per_load=draw(st.one_of(st.integers(1, 10), st.integers(1, 60))),
        lookback=draw(st.sampled_from(
            [timedelta(0), timedelta(milliseconds=1), timedelta(seconds=1),
             timedelta(minutes=10)]
        )),
    )
    history = draw(histories())
    gap_ms = draw(st.sampled_from([0, 1, 1_000, 3_600_000]))
    clock1 = ceil_ms(max(history, default=T0)) + gap_ms * MS_US
    future = draw(st.lists(
        st.one_of(instants_near(clock1 + MS_US, 5_000), instants_near(NEAR_2099, 1_000)),
        max_size=3,
    ))
    newcomers = draw(st.lists(instants_near(clock1 + MS_US, 2_000), max_size=6))
    clock2 = ceil_ms(max(newcomers, default=clock1)) + MINUTE_US
    kill_after = draw(st.none() | st.integers(1, 8))
    return Story(contract, options, history, future, newcomers, kill_after, clock1, clock2)


def tell(story: Story) -> Told:
    """The first sync (killed after `kill_after` loads, if set), then the second to its end
    and, when it ended, a third a minute later with nothing new."""
    deck = DeckModel(story.contract, story.history + story.future)
    bound1 = loads_bound(len(deck.runs), story.options)
    committed, first = run_sync(
        deck, "{}", from_us(story.clock1), story.options, story.kill_after or bound1
    )
    told = Told(deck, first, committed=committed)
    if first.refused is not None:
        return told
    deck.add(story.newcomers)
    bound2 = loads_bound(len(deck.runs), story.options)
    told.committed, told.second = run_sync(
        deck, committed, from_us(story.clock2), story.options, bound2
    )
    told.bounds = (bound1, bound2)
    if told.second.finished:
        told.committed, told.third = run_sync(
            deck, told.committed, from_us(story.clock2 + MINUTE_US), story.options, bound2
        )
    return told


def describe(runs: list[Run]) -> list[tuple[str, str, str]]:
    """(id, created_at as printed, true instant) of each run, for a failure message."""
    return [(r.id, r.printed, from_us(r.instant).isoformat()) for r in runs]


def assert_no_run_is_lost(story: Story) -> None:
    """Every run is loaded by the time a sync with nothing new has ended (a run created while
    a plan was listed may wait for the next sync; test_a_finished_sync_... says when not)."""
    told = tell(story)
    refused = told.first.refused or told.second.refused or told.third.refused
    assert refused is None, f"Deck refused a request: {refused}"
    loaded = set(told.first.loaded) | set(told.second.loaded) | set(told.third.loaded)
    unloaded = [run for run in told.deck.runs if run.id not in loaded]
    if told.third.finished:
        lost = unloaded
    else:  # a sync that does not end is test_every_sync_ends_...'s to report
        planned = still_planned(told.committed, story.options)
        lost = [r for r in unloaded if not any(w.contains(printed_instant(r)) for w in planned)]
    assert not lost, (
        f"{len(lost)} of {len(told.deck.runs)} runs were never loaded and are not planned:"
        f" {describe(lost)}; loads {told.first.loads}+{told.second.loads}+{told.third.loads},"
        f" {told.deck.requests} requests, {told.first.not_relisted + told.second.not_relisted}"
        " reported as not listed again"
    )


EXACT_STORAGE = st.sampled_from(["ms", "us_printed_ms"])


@given(stories(bounds=st.just("us"), stored=EXACT_STORAGE))
def test_no_run_is_lost_when_deck_reads_bounds_to_the_microsecond(story: Story) -> None:
    assert_no_run_is_lost(story)


# The cut of bcfc0af, `created_before = oldest listed + 1 us`, read by a JavaScript Date as the
# oldest run's own millisecond: the two runs of that millisecond were never listed again.
@example(Story(
    Contract(bounds="ms", stored="ms", inclusive=False, order="newest_first", page_size=1),
    LoadOptions(page_size=1, pages_per_window=1, max_runs_per_load=1, lookback=timedelta(0)),
    history=[T0, T0], future=[T0 + MS_US], newcomers=[], kill_after=None,
    clock1=T0, clock2=T0 + MINUTE_US,
))
@given(stories(bounds=st.just("ms"), stored=EXACT_STORAGE))
def test_no_run_is_lost_when_deck_reads_bounds_as_a_javascript_date(story: Story) -> None:
    assert_no_run_is_lost(story)


@given(stories(bounds=st.just("reject"), stored=EXACT_STORAGE))
def test_no_run_is_lost_when_deck_refuses_bounds_finer_than_a_millisecond(story: Story) -> None:
    assert_no_run_is_lost(story)


@given(stories(bounds=st.sampled_from(["us", "ms"]), stored=st.just("ms_printed_s")))
def test_no_run_is_lost_when_deck_prints_whole_seconds(story: Story) -> None:
    assert_no_run_is_lost(story)


# Found by this property on e690778: a sync with nothing new whose top window holds more than a
# load (three runs, loads of three, pages of two) listed the top, listed its parts, re-listed
# the top once and so committed the state the load before it had: the backstop took that for a
# load repeating for ever and ended the sync early; every later sync did the same, and the
# watermark never moved. The re-list is once per sync: after it, the next load differs.
@example(Story(
    Contract(bounds="us", stored="ms", inclusive=False, order="newest_first", page_size=2),
    LoadOptions(page_size=2, pages_per_window=1, max_runs_per_load=3, lookback=timedelta(0)),
    history=[T0], future=[], newcomers=[T0 + MS_US, T0 + 2 * MS_US], kill_after=None,
    clock1=T0, clock2=T0 + MINUTE_US + 2 * MS_US,
))
@given(stories(bounds=st.sampled_from(["us", "ms"]), stored=EXACT_STORAGE))
def test_every_sync_ends_within_a_bounded_number_of_loads(story: Story) -> None:
    told = tell(story)
    bound1, bound2 = told.bounds
    first_ended = told.first.finished or told.first.loads == story.kill_after
    assert first_ended and told.second.finished and told.third.finished, (
        f"a sync did not end within its bound: first sync {told.first.loads} loads"
        f" (bound {bound1}, finished={told.first.finished}, stuck={told.first.stuck},"
        f" kill after {story.kill_after}),"
        f" second {told.second.loads} loads (bound {bound2}, finished={told.second.finished},"
        f" stuck={told.second.stuck}), third {told.third.loads} (finished={told.third.finished})"
    )


# Found on 4446a8d: an oldest-first cut rounded up to the page's whole second lands after Deck's
# clock (12:00:01 > 12:00:00.001), so a run created at 12:00:00.002 while the sync was down lies
# in a window listed before the kill, below the top window the resumed sync lists.
@example(Story(
    Contract(bounds="us", stored="ms", inclusive=False, order="oldest_first", page_size=2),
    LoadOptions(page_size=2, pages_per_window=2, max_runs_per_load=30, lookback=timedelta(0)),
    history=[T0] * 28 + [NEAR_2000 + 1_000_000], future=[], newcomers=[T0 + 2 * MS_US],
    kill_after=1, clock1=T0 + MS_US, clock2=T0 + MINUTE_US + 2 * MS_US,
))
@given(stories(bounds=st.sampled_from(["us", "ms"]), stored=EXACT_STORAGE))
def test_a_finished_sync_has_loaded_every_run_created_before_it_began(story: Story) -> None:
    """The resumed sync re-lists the top of its plan: runs created while the first sync was
    down (after its windows were listed) are loaded by it, not left for the next sync."""
    told = tell(story)
    if not told.second.finished:
        return  # a sync that does not end is test_every_sync_ends_...'s to report
    loaded = set(told.first.loaded) | set(told.second.loaded)
    waiting = [run for run in told.deck.runs if run.id not in loaded]
    assert not waiting, (
        f"{len(waiting)} runs created before the second sync began were left for the next:"
        f" {describe(waiting)}; loads {told.first.loads}+{told.second.loads}"
    )


@given(stories(bounds=st.sampled_from(["us", "ms"]), stored=EXACT_STORAGE))
def test_a_sync_that_finds_nothing_new_loads_no_run_again(story: Story) -> None:
    told = tell(story)
    if not told.third.finished:
        return  # nothing to compare with: the sync that did not end fails the test above
    third = told.third
    before = set(told.first.loaded) | set(told.second.loaded)
    # Runs dated after Deck's clock are outside the claim: they never move the watermark, so
    # with nothing else to hold one they are listed (and loaded) again by every sync.
    reloaded = [
        run for run in told.deck.runs
        if run.id in set(third.loaded) and run.id in before and run.instant <= story.clock2
    ]
    assert third.refused is None, f"Deck refused a request: {third.refused}"
    assert not reloaded, f"a sync with nothing new loaded {describe(reloaded)} again"
