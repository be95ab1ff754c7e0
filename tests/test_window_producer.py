"""`producer.WindowProducer` and `walker.WindowWalker.walk`: which windows a load takes, what is
listed ahead of it, and how much of that is held in memory.

Pure logic over stand-ins for Deck's list (no HTTP): the sync-level behaviour, over real HTTP, is
in test_parallel.py and test_crash.py.
"""

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from deck.api.client import Page
from deck.core.windows import Window, parse_timestamp
from deck.listing.listed import ListedWindow, _Fetched
from deck.listing.producer import WindowProducer
from deck.listing.walker import WindowWalker
from deck.progress.estimate import ListingProgress

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def windows(n: int) -> list[Window]:
    return [Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1)) for i in range(n)]


class Listings:
    """Lists any window whole; records every window it was asked to list."""

    def __init__(self) -> None:
        self.listed: list[Window] = []
        self.lock = threading.Lock()

    def __call__(self, window: Window, stop: threading.Event, opened: Any = None) -> _Fetched:
        with self.lock:
            self.listed.append(window)
        return _Fetched(listed=ListedWindow(window))


def planned(producer: WindowProducer, pending: list[Window], listing: Listings) -> None:
    """Plan `pending` and wait until the producer has listed all it will (its horizon)."""
    producer.plan(pending, listing)
    while True:
        with producer._changed:
            futures = list(producer._futures.values())
        for future in futures:
            future.exception()  # waits
        with producer._changed:
            if all(f.done() for f in producer._futures.values()):
                return


def test_it_lists_the_oldest_pending_windows_up_to_its_horizon():
    producer, listing, pending = WindowProducer(workers=3, horizon=4), Listings(), windows(10)

    planned(producer, pending, listing)

    assert sorted(listing.listed, key=Window.sort_key) == pending[:4]


def test_a_window_taken_makes_room_and_what_is_held_is_not_listed_again():
    producer, listing, pending = WindowProducer(workers=2, horizon=2), Listings(), windows(6)
    planned(producer, pending, listing)

    window, fetched = producer.take()
    producer.taken(window, fetched.parts)
    planned(producer, producer.pending(), listing)

    assert fetched.listed.window == window == pending[0]
    assert sorted(listing.listed, key=Window.sort_key) == pending[:3]


def test_a_window_found_too_big_is_replaced_by_its_parts_without_a_load_asking():
    half = T0 + timedelta(minutes=30)

    def cutting_the_first(window: Window, stop: threading.Event, opened: Any = None) -> _Fetched:
        if window == windows(1)[0]:
            return _Fetched(parts=[Window(T0, half), Window(half, window.end)])
        return _Fetched(listed=ListedWindow(window))

    producer, pending = WindowProducer(workers=1, horizon=3), windows(3)
    planned(producer, pending, cutting_the_first)

    assert producer.pending() == [Window(T0, half), Window(half, pending[0].end), *pending[1:]]
    assert producer.records_in_flight().keys() == {Window(T0, half), Window(half, pending[0].end),
                                                  pending[1]}


def test_listings_of_windows_no_longer_planned_are_dropped():
    producer, listing, pending = WindowProducer(workers=2, horizon=2), Listings(), windows(4)
    planned(producer, pending, listing)

    planned(producer, pending[2:], listing)  # the first two were taken by a load that committed

    assert producer.records_in_flight().keys() == set(pending[2:])


def test_a_failed_listing_raises_in_the_load_that_takes_it_and_is_listed_again_next():
    calls = []

    def failing_once(window: Window, stop: threading.Event, opened: Any = None) -> _Fetched:
        calls.append(window)
        if len(calls) == 1:
            raise RuntimeError("Deck answered 503 eight times")
        return _Fetched(listed=ListedWindow(window))

    producer, pending = WindowProducer(workers=1, horizon=1), windows(1)
    producer.plan(pending, failing_once)

    with pytest.raises(RuntimeError, match="503"):
        producer.take()
    assert producer.take()[1].listed.window == pending[0]
    assert calls == [pending[0], pending[0]]


def test_closing_drops_every_listing_no_load_took():
    producer, listing, pending = WindowProducer(workers=2, horizon=2), Listings(), windows(4)
    planned(producer, pending, listing)

    producer.close(wait=True)

    assert producer.records_in_flight() == {} and producer.take() is None


class InMemoryDeck:
    """`GET /task-runs` over `n` runs one second apart, newest first, 100 per page: what the
    walker sees of Deck's list, minus HTTP. Counts the pages it served."""

    def __init__(self, n: int) -> None:
        self.runs = [
            {"id": f"trun_{i:05d}", "created_at": (T0 + timedelta(seconds=i)).isoformat()}
            for i in range(n)
        ]
        self.pages_served = 0
        self.lock = threading.Lock()

    def list_pages(self, params: dict) -> Iterator[Page]:
        after = params.get("created_after")
        before = params.get("created_before")
        chosen = [
            run
            for run in reversed(self.runs)
            if (after is None or parse_timestamp(run["created_at"]) > parse_timestamp(after))
            and (before is None or parse_timestamp(run["created_at"]) < parse_timestamp(before))
        ]
        for at in range(0, max(len(chosen), 1), 100):
            with self.lock:
                self.pages_served += 1
            more = at + 100 < len(chosen)
            yield Page(items=chosen[at : at + 100], has_more=more, request_id=None)


def test_a_split_window_hands_over_its_first_page_so_every_request_brings_data():
    deck = InMemoryDeck(2_000)
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=3, pages_per_window=2,
        clock=lambda: T0 + timedelta(days=1),
    )

    listed = list(walker.walk([Window(T0, T0 + timedelta(hours=1))]))

    handed_over = [page for window in listed for page in window.pages]
    in_windows = sorted(
        run["id"]
        for window in listed
        for page in window.pages
        for run in page.items
        if window.window.contains(parse_timestamp(run["created_at"]))
    )
    assert len(listed) > 3  # the hour of 2,000 runs was split, more than once
    assert in_windows == sorted(run["id"] for run in deck.runs)
    assert deck.pages_served == len(handed_over)


class FirstPagesOnlyDeck(InMemoryDeck):
    """Serves every listing's first page, and its next ones only once `go_on` is set (`held`
    is set when a listing waits for it): with one worker, nothing moves while a test reads the
    estimate."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.go_on, self.held = threading.Event(), threading.Event()

    def list_pages(self, params: dict) -> Iterator[Page]:
        for number, page in enumerate(super().list_pages(params)):
            if number:
                self.held.set()
                if not self.go_on.wait(timeout=60):
                    raise RuntimeError("held for a minute")
            yield page


def test_the_estimate_knows_every_parts_density_from_the_first_cut():
    """Runs in the first and the last 1,000 s of 4,000, none between. The first page of every
    part is fetched as the window is cut, so the estimate sees the gap as soon as the first
    window is taken: close to 2,000 (filled from the two ends it would read ~4,000)."""
    deck = FirstPagesOnlyDeck(4_000)
    deck.runs = deck.runs[:1_000] + deck.runs[3_000:]
    progress = ListingProgress("runs")
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=1, pages_per_window=2,
        clock=lambda: T0 + timedelta(days=1), progress=progress,
    )
    walk = walker.walk([Window(T0, T0 + timedelta(seconds=4_000))], limit=100)
    try:
        next(walk)
        assert deck.held.wait(timeout=60)  # the worker waits for the oldest part's second page
        total = progress.listed_records() + progress.remaining(T0 + timedelta(days=1)).records
    finally:
        deck.go_on.set()
        walk.close()

    assert 1_800 <= total <= 2_200


def test_windows_listed_ahead_wait_for_the_next_load_which_gets_every_run_of_them_once():
    deck = InMemoryDeck(2_000)
    producer = WindowProducer(workers=2, horizon=3)
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=2, pages_per_window=5,
        clock=lambda: T0 + timedelta(days=1), producer=producer,
    )
    # five windows of 400 runs (4 pages each: listed whole, never split)
    plan = [Window(T0 + timedelta(seconds=400 * i), T0 + timedelta(seconds=400 * (i + 1)))
            for i in range(5)]

    first = list(walker.walk(plan, limit=800))
    planned(producer, walker.pending, walker._fetch)  # listed while dlt loads
    held = [producer._futures[w].result().listed for w in walker.pending]
    second = list(walker.walk(walker.pending))

    assert [w.window for w in first] == plan[:2] and len(held) == 3
    assert all(listed.records == 400 for listed in held)
    ids = [run["id"] for w in first + second for page in w.pages for run in page.items]
    assert sorted(ids) == sorted(run["id"] for run in deck.runs)  # each once
    assert deck.pages_served == 5 * 4  # nothing listed ahead was listed again


class GatedDeck(InMemoryDeck):
    """`InMemoryDeck` whose oldest window answers only once every other window was listed:
    the worst order the threads could finish in."""

    def __init__(self, n: int, oldest: Window, others: int) -> None:
        super().__init__(n)
        self.oldest, self.others = oldest, others
        self.done = threading.Semaphore(0)

    def list_pages(self, params: dict) -> Iterator[Page]:
        if params.get("created_before") == self.oldest.params().get("created_before"):
            for _ in range(self.others):
                self.done.acquire()
            yield from super().list_pages(params)
            return
        for page in super().list_pages(params):
            if not page.has_more:
                self.done.release()
            yield page


def loads_of(deck: InMemoryDeck, plan: list[Window], workers: int, limit: int) -> list[list]:
    producer = WindowProducer(workers=workers, horizon=len(plan))
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=workers, pages_per_window=5,
        clock=lambda: T0 + timedelta(days=1), producer=producer,
    )
    loads, pending = [], plan
    while pending:
        loads.append([w.window for w in walker.walk(pending, limit=limit)])
        pending = walker.pending
    producer.close()
    return loads


def test_where_a_load_ends_depends_on_the_data_not_on_which_thread_finished_first():
    # windows of 300, 400, 300, 400, 300, 300 runs; loads of at least 800
    edges = [0, 300, 700, 1_000, 1_400, 1_700, 2_000]
    plan = [Window(T0 + timedelta(seconds=a), T0 + timedelta(seconds=b))
            for a, b in zip(edges, edges[1:], strict=False)]
    one_thread = loads_of(InMemoryDeck(2_000), plan, workers=1, limit=800)

    worst_order = loads_of(GatedDeck(2_000, plan[0], others=4), plan, workers=5, limit=800)

    assert one_thread == worst_order == [plan[0:3], plan[3:6]]


def late_load_of_a_backfill() -> list[ListedWindow]:
    """One walk over five windows of 400 runs (1 s apart) with room for all of them, with a
    progress estimate following it and windows listed ahead (as in a later load of a sync)."""
    deck = InMemoryDeck(2_000)
    producer = WindowProducer(workers=1, horizon=1)
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=1, pages_per_window=5,
        clock=lambda: T0 + timedelta(days=1), progress=ListingProgress("runs"),
        producer=producer,
    )
    plan = [Window(T0 + timedelta(seconds=400 * i), T0 + timedelta(seconds=400 * (i + 1)))
            for i in range(5)]
    return list(walker.walk(plan, limit=50_000))


def ids_inside(listed: list[ListedWindow]) -> list[str]:
    return [
        run["id"]
        for window in listed
        for page in window.pages
        for run in page.items
        if window.window.contains(parse_timestamp(run["created_at"]))
    ]


def test_a_late_load_of_a_backfill_ends_at_its_budget_not_at_the_progress_estimate():
    listed = late_load_of_a_backfill()

    assert len(ids_inside(listed)) == 2_000  # room for all: the estimate does not split it


def test_a_window_denser_than_its_first_page_showed_is_cut_where_its_listing_reached_the_cap():
    deck = InMemoryDeck(2_000)  # one hour holding 2,000 runs, planned as one window
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=1, pages_per_window=50,
        listing_cut=500, clock=lambda: T0 + timedelta(days=1),
    )

    listed = list(walker.walk([Window(T0 + timedelta(seconds=1_000), T0 + timedelta(hours=1))]))

    # cut once the part before the oldest second listed holds five pages' worth (500 runs: after
    # six pages); the rest, that second's run first, goes on from the same cursor, so the 1,000
    # runs cost their 10 pages and the cut no request
    assert [len(ids_inside([w])) for w in listed] == [599, 401]
    assert sorted(ids_inside(listed)) == [r["id"] for r in deck.runs[1_000:]]
    assert deck.pages_served == 10


def test_a_packed_listing_gives_back_exactly_the_values_it_held():
    items = [{"id": "trun_1", "created_at": T0.isoformat(), "n": 2**80, "s": "\udcff"}]
    listed = ListedWindow(windows(1)[0], [Page(items, False, "req_1")])

    packed = listed.packed()

    assert packed.pages == [] and packed.records == 1
    assert packed.unpacked().pages == [Page(items, False, "req_1")]


def test_a_load_commits_a_window_the_workers_cut_whole_until_it_takes_a_part_of_it():
    pending = windows(3)
    half = pending[1].start + timedelta(minutes=30)
    first_half, second_half = Window(pending[1].start, half), Window(half, pending[1].end)

    def cutting_the_second(window: Window, stop: threading.Event, opened: Any = None) -> _Fetched:
        if window == pending[1]:
            return _Fetched(parts=[first_half, second_half])
        return _Fetched(listed=ListedWindow(window))

    producer = WindowProducer(workers=2, horizon=4)
    planned(producer, pending, cutting_the_second)
    assert producer.pending() == [pending[0], first_half, second_half, pending[2]]

    window, fetched = producer.take()
    producer.taken(window, fetched.parts)
    assert producer.remainder(pending) == pending[1:]  # as if the workers had not got there

    window, fetched = producer.take()
    producer.taken(window, fetched.parts)
    assert window == first_half
    assert producer.remainder(pending) == [second_half, pending[2]]


def test_a_window_a_load_took_is_listed_again_when_a_later_walk_plans_it_again():
    """The re-list of the top can plan the very bounds an earlier load of the sync took."""
    producer, listing, pending = WindowProducer(workers=2, horizon=2), Listings(), windows(2)
    producer.plan(pending, listing)
    while (got := producer.take()) is not None:
        producer.taken(got[0], got[1].parts)

    producer.plan(pending, listing)
    again = []
    while (got := producer.take()) is not None:
        producer.taken(got[0], got[1].parts)
        again.append(got[0])

    assert again == pending
    assert producer.remainder(pending) == []


def test_a_window_to_list_after_the_plan_starts_once_every_planned_window_has_started():
    producer, listing, pending = WindowProducer(workers=1, horizon=1), Listings(), windows(3)
    *plan, top = pending
    producer.list_after(top)
    planned(producer, plan, listing)
    assert listing.listed == plan[:1]

    for _ in plan:
        producer.taken(*(lambda got: (got[0], got[1].parts))(producer.take()))
        planned(producer, producer.pending(), listing)

    assert listing.listed == pending


def test_a_window_listed_after_the_plan_is_taken_from_that_listing_when_the_next_walk_plans_it():
    producer, listing = WindowProducer(workers=2, horizon=2), Listings()
    first, top = windows(2)
    producer.list_after(top)
    planned(producer, [first], listing)
    producer.taken(*(lambda got: (got[0], got[1].parts))(producer.take()))

    producer.plan([top], listing)
    window, fetched = producer.take()

    assert (window, fetched.listed.window) == (top, top)
    assert sorted(listing.listed, key=Window.sort_key) == [first, top]  # listed once
