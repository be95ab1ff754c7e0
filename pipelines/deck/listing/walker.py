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
(`ListingAhead`), so the sync keeps spending Deck's request budget across load boundaries; the
next load takes such a listing only when it fits in its own `limit`.
"""

from __future__ import annotations

import logging
import pickle
import threading
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deck.api.client import Page
from deck.core import records
from deck.core.observers import ListingObserver
from deck.core.records import Rejection
from deck.core.windows import ONE_US, Window, page_stamps
from deck.listing.intake import checked_page, created_at_of
from deck.listing.planning import clip_windows, cut_listed_part, split_window

logger = logging.getLogger("deck")


@dataclass
class ListedWindow:
    """A window listed to its last page: its loadable pages and the records it had to reject.

    A window listed ahead waits for the next load with its pages `packed` (pickled and
    compressed: ~0.1 KB per run instead of ~1.9 KB as parsed dicts), so the up to one load's
    worth of windows held while dlt loads (`SourceOptions.windows_ahead`; where a sync's memory
    peaks) costs a few MiB at the default 50,000 runs rather than ~95 MiB.
    """

    window: Window
    pages: list[Page] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    packed_pages: bytes | None = None  # `pages`, pickled and compressed (`pages` is empty)
    packed_records: int = 0
    # Records listed here that a cut left to the rest of the window (id -> created_at): the
    # listing of the rest must bring each of them again (`Plan.account`).
    deferred: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        if self.packed_pages is not None:
            return self.packed_records
        return sum(len(page.items) for page in self.pages)

    def packed(self) -> ListedWindow:
        """This listing with its pages pickled and compressed. Pickle, not JSON: it gives back
        exactly the values the checks passed (integers beyond 64 bits, NaN, lone surrogates);
        the bytes never leave this process. zlib at level 1 takes 449 bytes of pickle per run
        to ~120 for ~7 us of CPU per run, packing and unpacking."""
        if self.packed_pages is not None:
            return self
        pages = [(page.items, page.has_more, page.request_id) for page in self.pages]
        pickled = pickle.dumps(pages, protocol=pickle.HIGHEST_PROTOCOL)
        return ListedWindow(
            self.window,
            rejected=self.rejected,
            packed_pages=zlib.compress(pickled, level=1),
            packed_records=self.records,
            deferred=self.deferred,
        )

    def unpacked(self) -> ListedWindow:
        """This listing with its pages parsed (itself when they are)."""
        if self.packed_pages is None:
            return self
        pages = [
            Page(items, more, request_id)
            for items, more, request_id in pickle.loads(zlib.decompress(self.packed_pages))
        ]
        return ListedWindow(self.window, pages, self.rejected, deferred=self.deferred)


@dataclass
class _Fetched:
    parts: list[Window] = field(default_factory=list)
    listed: ListedWindow | None = None


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


class ListingAhead:
    """Windows listed ahead of the load that will take them, for one resource of one sync.

    A load ends at `max_runs_per_load`; dlt then normalizes and loads it, for seconds, while
    Deck's request budget goes unspent. Between loads this lists the windows the load left, in
    the order the next load will take them, following their cuts, and holds at most `limit`
    listed windows (plus those in flight) in memory, packed (`ListedWindow.packed`). It never
    touches state: the windows stay in the committed plan until the load that takes them
    commits, so a kill while listing ahead loses nothing. The next walk `halt`s it and `take`s
    each window's listing (done or still in flight); what no load takes is dropped when the
    sync ends (`close`).
    """

    def __init__(self, workers: int, limit: int) -> None:
        self.workers = workers
        self.limit = limit
        self._futures: dict[Window, Future[_Fetched]] = {}
        self._stop = threading.Event()  # set when the sync ends: fetches stop between pages
        self._halt = threading.Event()  # set when the next walk begins: no new fetch starts
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def start(
        self, windows: list[Window], fetch: Callable[[Window, threading.Event], _Fetched]
    ) -> None:
        self.halt()
        self._halt.clear()
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-ahead")
        self._thread = threading.Thread(
            target=self._list, args=(sorted(windows, key=Window.sort_key), fetch, self._pool),
            name="deck-ahead", daemon=True,
        )
        self._thread.start()

    def _list(
        self,
        pending: list[Window],
        fetch: Callable[[Window, threading.Event], _Fetched],
        pool: ThreadPoolExecutor,
    ) -> None:
        in_flight: dict[Future[_Fetched], Window] = {}
        held = 0  # listed windows kept for the next load
        try:
            while not self._halt.is_set():
                while pending and len(in_flight) < self.workers and held + len(in_flight) < (
                    self.limit
                ):
                    window = pending.pop(0)
                    if window not in self._futures:  # else listed ahead of an earlier load
                        self._futures[window] = pool.submit(fetch, window, self._stop)
                    in_flight[self._futures[window]] = window
                if not in_flight:
                    return
                done, _ = wait(in_flight, timeout=0.05, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: in_flight[f].sort_key()):
                    window = in_flight.pop(future)
                    if future.exception() is not None:
                        self._futures.pop(window, None)  # the next load lists it itself
                        return
                    fetched = future.result()
                    if fetched.parts:
                        pending = sorted(pending + fetched.parts, key=Window.sort_key)
                    if fetched.listed is not None:
                        held += 1
        finally:
            pool.shutdown(wait=False)

    def halt(self) -> None:
        """Start no new listing; wait for those in flight (the next walk counts each listing's
        records against its own budget before it takes it)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        wait(list(self._futures.values()))

    def peek(self, window: Window) -> Future[_Fetched] | None:
        """The listing of `window` made ahead, left in place."""
        return self._futures.get(window)

    def take(self, window: Window) -> Future[_Fetched] | None:
        """The listing of `window` made ahead (done or in flight), if there is one."""
        return self._futures.pop(window, None)

    def close(self) -> None:
        """The sync ends: listings no load took are dropped, fetches stop between pages."""
        self.halt()
        self._stop.set()
        if self._futures:
            logger.debug("Dropping %d windows listed ahead that no load took", len(self._futures))
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
