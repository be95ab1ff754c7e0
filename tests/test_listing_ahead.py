"""`walker.ListingAhead`: what is listed between loads, and how much of it is held in memory.

Pure logic over a stand-in for one window's listing (no HTTP): the sync-level behaviour, over real
HTTP, is in test_parallel.py and test_crash.py.
"""

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from deck.api.client import Page
from deck.core.windows import Window, parse_timestamp
from deck.listing.ahead import ListingAhead
from deck.listing.listed import ListedWindow, _Fetched
from deck.listing.walker import WindowWalker
from deck.progress.estimate import ListingProgress

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def windows(n: int) -> list[Window]:
    return [Window(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1)) for i in range(n)]


class Listings:
    """Lists any window whole, except those in `cut`, which it cuts in two (as a window too
    big to list whole is); records every window it was asked to list."""

    def __init__(self, cut: set[Window] = frozenset()) -> None:
        self.cut = cut
        self.listed: list[Window] = []
        self.lock = threading.Lock()

    def __call__(self, window: Window, stop: threading.Event) -> _Fetched:
        with self.lock:
            self.listed.append(window)
        if window in self.cut:
            middle = window.start + (window.end - window.start) / 2
            return _Fetched(parts=[Window(window.start, middle), Window(middle, window.end)])
        return _Fetched(listed=ListedWindow(window))


def listed_ahead(ahead: ListingAhead, pending: list[Window], listing: Listings) -> None:
    ahead.start(pending, listing)
    ahead._thread.join()  # it stops by itself once it holds `limit` listed windows


def test_it_lists_the_oldest_pending_windows_up_to_its_limit():
    ahead, listing, pending = ListingAhead(workers=3, limit=4), Listings(), windows(10)

    listed_ahead(ahead, pending, listing)

    assert sorted(listing.listed, key=Window.sort_key) == pending[:4]


def test_windows_it_cut_do_not_count_against_the_limit_but_their_parts_do():
    pending = windows(10)
    listing = Listings(cut={pending[0]})
    ahead = ListingAhead(workers=1, limit=3)

    listed_ahead(ahead, pending, listing)

    half = pending[0].start + timedelta(minutes=30)
    assert listing.listed == [
        pending[0],
        Window(pending[0].start, half),
        Window(half, pending[0].end),
        pending[1],
    ]


def test_the_next_load_takes_each_listing_once_and_what_it_left_is_not_listed_again():
    ahead, listing, pending = ListingAhead(workers=2, limit=2), Listings(), windows(6)
    listed_ahead(ahead, pending, listing)

    assert ahead.take(pending[0]).result().listed.window == pending[0]
    assert ahead.take(pending[0]) is None
    listed_ahead(ahead, pending[1:], listing)  # the next load stopped after taking one window

    assert sorted(listing.listed, key=Window.sort_key) == pending[:3]


def test_a_window_whose_listing_failed_is_left_for_the_next_load_to_list():
    def failing(window: Window, stop: threading.Event) -> _Fetched:
        raise RuntimeError("Deck answered 503 eight times")

    ahead, pending = ListingAhead(workers=1, limit=2), windows(3)
    ahead.start(pending, failing)
    ahead._thread.join()

    assert ahead.take(pending[0]) is None


def test_closing_drops_every_listing_no_load_took():
    ahead, listing, pending = ListingAhead(workers=2, limit=2), Listings(), windows(4)
    listed_ahead(ahead, pending, listing)

    ahead.close()

    assert [ahead.take(w) for w in pending] == [None] * 4


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

    listed = list(walker.walk([Window(T0, T0 + timedelta(hours=1))], has_room=lambda n: True))

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


def test_windows_listed_ahead_wait_packed_and_the_next_load_gets_every_run_of_them_once():
    deck = InMemoryDeck(2_000)
    ahead = ListingAhead(workers=2, limit=3)
    # One worker for the load's own walk: with two, which window the budget of 800 cuts depends
    # on how their pages interleave (a busy machine cut the second one). Listing ahead has two.
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=1, pages_per_window=5,
        clock=lambda: T0 + timedelta(days=1), ahead=ahead,
    )
    # five windows of 400 runs (4 pages each: listed whole, never split)
    plan = [Window(T0 + timedelta(seconds=400 * i), T0 + timedelta(seconds=400 * (i + 1)))
            for i in range(5)]

    first = list(walker.walk(plan, has_room=lambda n: True, limit=800))
    walker.list_ahead()  # what the load does when it stops at its budget
    ahead._thread.join()
    held = [ahead.peek(w).result().listed for w in walker.pending if ahead.peek(w) is not None]
    second = list(walker.walk(walker.pending, has_room=lambda n: True))

    assert [w.window for w in first] == plan[:2] and len(held) == 3
    assert all(listed.pages == [] and listed.records == 400 for listed in held)
    ids = [run["id"] for w in first + second for page in w.pages for run in page.items]
    assert sorted(ids) == sorted(run["id"] for run in deck.runs)  # each once
    assert deck.pages_served == 5 * 4  # nothing listed ahead was listed again


def late_load_of_a_backfill() -> list[ListedWindow]:
    """One walk over five windows of 400 runs (1 s apart) with room for all of them, with a
    progress estimate following it and windows listed ahead (as in a later load of a sync)."""
    deck = InMemoryDeck(2_000)
    ahead = ListingAhead(workers=1, limit=1)
    walker = WindowWalker(
        deck.list_pages, {}, page_size=100, workers=1, pages_per_window=5,
        clock=lambda: T0 + timedelta(days=1), progress=ListingProgress("runs"), ahead=ahead,
    )
    plan = [Window(T0 + timedelta(seconds=400 * i), T0 + timedelta(seconds=400 * (i + 1)))
            for i in range(5)]
    return list(walker.walk(plan, has_room=lambda n: True, limit=50_000))


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
