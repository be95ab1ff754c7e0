"""Lists a plan's windows in parallel, under the sync's one rate limiter, in time order.

The same walker lists `GET /task-runs` and `GET /events`: both are lists of records with an `id`
and a `created_at`, filtered by a half-open `created_at` range and paged by cursor.

A window is handed to the load only once it was listed to its last page, and no window is
started unless the load has room for it, so a committed load never throws work away and a walk
holds at most `workers` windows (plus those listed ahead for the next load, packed). A window
too big to list whole is cut (`planning.split_window`) after its first page: that page's stretch
of the window is handed over as listed, and the parts of the rest are listed instead (so a split
costs no request; in a window open towards the past the first page stays a probe, which sizes the
history for the progress estimate).

`limit` bounds the records one walk lists (the load's `max_runs_per_load`): a page is fetched only
when it fits, together with the pages fetched or being fetched, in `limit` records (the first page
of a walk always does, so every load makes progress). A window that reaches the limit mid-way is
handed over as the part listed so far (`planning.cut_listed_part`), and the rest waits for the
next load.

While dlt normalizes and loads a load, the next load's first windows are listed ahead
(`ahead.ListingAhead`), so the sync keeps spending Deck's request budget across load boundaries;
the next load takes such a listing only when it fits in its own `limit`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

from deck.api.client import Page
from deck.core import records
from deck.core.observers import ListingObserver
from deck.core.records import Rejection
from deck.core.windows import ONE_US, Window, page_stamps
from deck.listing.ahead import ListingAhead
from deck.listing.intake import checked_page, created_at_of
from deck.listing.listed import ListedWindow, _Fetched
from deck.listing.planning import clip_windows, cut_listed_part, split_window

logger = logging.getLogger("deck")


def locate(window: Window, checks: list[records.Checked]) -> list[Rejection]:
    """The rejected records of one listing of `window`, each with the range that holds it."""
    if not any(check.rejected for check in checks):
        return []
    hi = window.end - ONE_US if window.end is not None else None
    return records.locate(checks, window.start, hi, max_known=200)


def deferred_to(rest: Window, pages: list[Page]) -> dict[str, str]:
    """The records of checked `pages` that a cut leaves to `rest` (id -> created_at)."""
    return {
        run["id"]: run["created_at"]
        for page in pages
        for run in page.items
        if rest.contains(created_at_of(run))
    }


class WindowWalker:
    """Walks windows with up to `workers` listings at once; `pending` keeps what it did not
    start (for the next load)."""

    def __init__(
        self,
        list_pages: Callable[[dict[str, Any]], Iterator[Page]],
        params: dict[str, Any],
        *,
        page_size: int,
        workers: int,
        pages_per_window: int,
        clock: Callable[[], datetime],
        progress: ListingObserver | None = None,
        ahead: ListingAhead | None = None,
    ) -> None:
        self.list_pages = list_pages  # DeckClient.list_task_runs or .list_events
        self.params = params  # the list's filters, sent with every window
        self.page_size = page_size
        self.workers = workers
        self.pages_per_window = pages_per_window
        self.clock = clock
        self.progress = progress
        self.pending: list[Window] = []
        self.ahead = ahead  # windows the previous load of the sync listed ahead of this one
        self.limit: int | None = None  # records one walk may list (None: no limit)
        self._lock = threading.Lock()
        self._reserved = 0  # records on pages fetched (or being fetched) of windows kept
        self._in_flight: dict[Window, int] = {}  # records fetched so far, per window in flight

    @property
    def runs_per_window(self) -> int:
        """The most runs one window can bring (it is cut when it would hold more)."""
        return self.pages_per_window * self.page_size

    def outlook(self) -> tuple[list[Window], dict[Window, int]]:
        """The windows not started and those in flight (with the records fetched of each so
        far): what is left of this walk, for the progress estimate (read from another thread)."""
        with self._lock:
            return list(self.pending), dict(self._in_flight)

    def walk(
        self,
        windows: list[Window],
        has_room: Callable[[int], bool],
        limit: int | None = None,
    ) -> Iterator[ListedWindow]:
        """Listed windows, oldest first among those done together. `has_room(n)` says whether
        the load can take another window while `n` are in flight; `limit` bounds the records
        listed (see the module docstring)."""
        with self._lock:
            self.pending = sorted(windows, key=Window.sort_key)
            self.limit, self._reserved, self._in_flight = limit, 0, {}
        if self.progress is not None:  # from now on this walk is the work left
            self.progress.follow(self.outlook, self.clock, self.page_size)
        if self.ahead is not None:
            self.ahead.halt()  # from here on this walk takes what was listed ahead
        in_flight: dict[Future[_Fetched], Window] = {}
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-window")
        interrupted = False
        try:
            while self.pending or in_flight:
                while (
                    self.pending
                    and len(in_flight) < self.workers
                    and has_room(len(in_flight))
                    and self._has_budget()
                ):
                    listed_ahead = self._take_ahead(self.pending[0])
                    if listed_ahead is False:
                        break  # listed ahead, but more than this load has room for
                    with self._lock:
                        window = self.pending.pop(0)
                        self._in_flight.setdefault(window, 0)  # set when taken from ahead
                    in_flight[listed_ahead or pool.submit(self._fetch, window, stop)] = window
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: in_flight[f].sort_key()):
                    window = in_flight.pop(future)
                    fetched = future.result()
                    with self._lock:
                        self._in_flight.pop(window, None)
                        if fetched.parts:
                            self.pending = sorted(self.pending + fetched.parts, key=Window.sort_key)
                    if fetched.listed is not None:
                        if self.progress is not None:
                            self.progress.listed(fetched.listed.window, fetched.listed.records)
                        yield fetched.listed.unpacked()  # packed when listed ahead
        except BaseException:
            # Ctrl-C/SIGTERM, a failed window, or dlt closing the generator: do not wait for
            # reads that may be stalled (their results are thrown away anyway).
            interrupted = True
            raise
        finally:
            stop.set()
            pool.shutdown(wait=not interrupted, cancel_futures=True)
            with self._lock:
                self._in_flight = {}

    def _take_ahead(self, window: Window) -> Future[_Fetched] | None | bool:
        """The listing of `window` made ahead, if any and if it fits in `limit` (its records are
        then counted); False when it does not fit (it stays for the next load). A window listed
        ahead that holds more than `limit` alone (a `max_runs_per_load` below one window's
        pages) is listed again by the walk, which cuts it to the budget."""
        if self.ahead is None:
            return None
        future = self.ahead.peek(window)
        if future is None:
            return None
        if future.exception() is not None:
            self.ahead.take(window)
            return None  # listed again, by this walk: the error is met (or not) here
        fetched = future.result()
        records = fetched.listed.records if fetched.listed else 0
        with self._lock:
            if self.limit is not None and self._reserved + records > self.limit:
                if self._reserved:
                    return False
                # bigger than a whole load: this walk lists it again, cut to its budget
                self.ahead.take(window)
                return None
            self._reserved += records
            self._in_flight[window] = records  # listed: nothing of it is left (the estimate)
        return self.ahead.take(window)

    def list_ahead(self) -> None:
        """The load stopped at its budget: list the windows it left while dlt loads it."""
        if self.ahead is not None and self.pending:
            self.ahead.start(self.pending, self._fetch_ahead)

    def _fetch_ahead(self, window: Window, stop: threading.Event) -> _Fetched:
        """`_fetch` for `ListingAhead`: listed whole, and held packed until a load takes it."""
        fetched = self._fetch(window, stop, budgeted=False)
        if fetched.listed is not None:
            fetched.listed = fetched.listed.packed()
        return fetched

    def _has_budget(self) -> bool:
        with self._lock:
            return self._room()

    def _room(self) -> bool:
        """Whether one more full page fits in `limit` (the walk's first page always does, so
        that every load makes progress). Counted from what was listed, never from the progress
        estimate: where a load ends depends on the data, not on thread timing."""
        if self.limit is None or (self._reserved == 0 and self.limit > 0):
            return True
        return self._reserved + self.page_size <= self.limit

    def _reserve(self, force: bool = False) -> bool:
        """Room for one more page: its records are counted before it is fetched, so that the
        workers together never list more than `limit` (`force`: the page is fetched anyway)."""
        with self._lock:
            if not force and not self._room():
                return False
            self._reserved += self.page_size
            return True

    def _settle(self, window: Window, reserved: int, records: int) -> None:
        """A page came back with `records` of the `reserved` counted for it."""
        with self._lock:
            self._reserved += records - reserved
            if window in self._in_flight:
                self._in_flight[window] += records

    def _fetch(self, window: Window, stop: threading.Event, budgeted: bool = True) -> _Fetched:
        """In a worker: the window's pages, or the parts to list instead when it is too big (or
        the load became full before its first page). Listed ahead (not `budgeted`), a window is
        listed whole: the load that takes it counts it then (`_take_ahead`)."""
        reserve = self._reserve if budgeted else lambda force=False: True
        settle = self._settle if budgeted else lambda window, reserved, records: None
        if not reserve():
            return _Fetched(parts=[window])
        pages = self.list_pages({**self.params, **window.params()})
        checks: list[records.Checked] = []
        first = checked_page(next(pages), checks)
        parts = split_window(
            window,
            first.items,
            first.has_more,
            page_size=self.page_size,
            pages_per_window=self.pages_per_window,
            clock=self.clock(),
        )
        if budgeted and self.progress is not None and first.has_more:
            self.progress.probed(window, first.items)
        if parts:
            pages.close()
            # The first page is data, not only a probe: the part of the window it covers is
            # listed (as at a cut), and only the rest is planned in parts. Except in a window
            # open towards the past: there the first pages are probes that find where history
            # starts (for the estimate) without spending the load's budget, as they always did.
            cut = self._cut(window, [first], checks) if window.start is not None else None
            if cut is None:  # open start, a page in no order, or a rejected record on it
                settle(window, self.page_size, 0)
                return _Fetched(parts=parts)
            listed, rest = cut
            settle(window, self.page_size, len(first.items))
            return _Fetched(
                parts=clip_windows(parts, rest),
                listed=ListedWindow(
                    listed, [first], locate(listed, checks), deferred=deferred_to(rest, [first])
                ),
            )
        settle(window, self.page_size, len(first.items))
        fetched = [first]
        while fetched[-1].has_more:
            if stop.is_set():
                raise RuntimeError("sync stopped")  # only after another window failed
            if not reserve():
                cut = self._cut(window, fetched, checks)
                if cut is not None:
                    pages.close()
                    listed, rest = cut
                    return _Fetched(
                        parts=[rest],
                        listed=ListedWindow(
                            listed, fetched, locate(listed, checks),
                            deferred=deferred_to(rest, fetched),
                        ),
                    )
                reserve(force=True)  # no place to stop: the window goes on
            page = next(pages, None)
            if page is None:
                settle(window, self.page_size, 0)
                break
            fetched.append(checked_page(page, checks))
            settle(window, self.page_size, len(fetched[-1].items))
        return _Fetched(listed=ListedWindow(window, fetched, locate(window, checks)))

    @staticmethod
    def _cut(
        window: Window, fetched: list[Page], checks: list[records.Checked]
    ) -> tuple[Window, Window] | None:
        """The part of `window` its pages so far cover, and the rest; None when it cannot be
        told (pages in no order, a single timestamp, or a rejected record whose place in time
        would straddle the cut)."""
        if any(check.rejected for check in checks):
            return None
        stamps = [stamp for page in fetched for stamp in page_stamps(page.items)]
        return cut_listed_part(window, stamps)


