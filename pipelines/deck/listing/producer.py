"""The listings of a resource's windows, made ahead of the load that takes them, for one sync.

A load takes listed windows whole, in time order, until they hold `max_runs_per_load`
(`walker.WindowWalker.walk`); which windows it takes depends on the data alone. How far ahead
they are listed is this module's business, and only a matter of speed: the producer keeps
`workers` windows listing at every moment (the oldest of the plan first; a window found too big
is replaced by its parts as soon as its first page says so), also while dlt normalizes and loads
the load before, and holds at most `horizon` listed windows no load took yet, so that memory
stays bounded (listings that wait are packed: `ListedWindow.packed`).

It never touches state: every window stays in the committed plan until the load that takes it
commits, so a kill loses nothing and the next sync lists again what was held here. A listing
that failed is handed to the load that takes it, which raises its error then (a failure of a
window no load reaches is never seen, as with a window never listed).

Why not dlt's own parallel extraction: a window's listing spans loads (it is listed while dlt
loads the load before), and the next listing depends on what the previous one found (the cuts).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from deck.core.windows import Window
from deck.listing.listed import Opened, _Fetched

logger = logging.getLogger("deck")

Fetch = Callable[[Window, threading.Event, Opened | None], _Fetched]


class WindowProducer:
    """Lists a plan's windows ahead of their load, `workers` at once, at most `horizon` held."""

    def __init__(
        self, workers: int, horizon: int | None = None, records_ahead: int | None = None
    ) -> None:
        self.workers = workers
        # How much is listed ahead: at most `horizon` windows and `records_ahead` records held
        # (listed, or being listed) that no load took yet. A sync bounds records (what memory
        # holds), not windows: windows differ in size, and a count of them made the producer
        # stop while dlt loaded a load, then list the last big windows one worker each.
        self.horizon = None if horizon is None else max(workers, horizon)
        self.records_ahead = records_ahead
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deck-window")
        self._pending: list[Window] = []  # the plan's windows no load took, oldest first
        # What each window was cut into (by its first page, or what a load's take of it left),
        # and the windows the current walk took: what a load commits is told from these alone
        # (`remainder`), never from which cuts the workers happened to reach first.
        self._children: dict[Window, list[Window]] = {}
        self._taken: set[Window] = set()
        self._futures: dict[Window, Future[_Fetched]] = {}
        self._records: dict[Window, int] = {}  # records fetched so far, per window started
        self._opened: dict[Window, Opened] = {}  # first pages fetched when a window was cut
        self._changed = threading.Condition(threading.RLock())
        self._stop = threading.Event()  # set when the sync ends: fetches stop between pages
        self._fetch: Fetch | None = None
        self._after: Window | None = None  # listed once the plan's windows have all started

    def plan(self, windows: list[Window], fetch: Fetch) -> None:
        """The windows to list from now on (a load's plan), and how (its walker's fetch):
        listings of windows no longer planned are dropped, those still planned are kept, and
        a planned window already cut is planned as its parts."""
        with self._changed:
            self._fetch = fetch
            # What a take left of a window is not a partition of it: a window taken by an
            # earlier walk and planned again (the re-list of the top can plan the same bounds)
            # is listed again whole.
            for window in self._taken:
                self._children.pop(window, None)
            self._taken = set()
            self._pending = sorted(
                (w for window in windows for w in self._frontier(window)), key=Window.sort_key
            )
            planned = set(self._pending)
            if self._after in planned:
                self._after = None
            self._opened = {w: o for w, o in self._opened.items() if w in planned}
            for window in [w for w in self._futures if w not in planned and w != self._after]:
                self._futures.pop(window).cancel()
                self._records.pop(window, None)
            self._schedule()

    def list_after(self, window: Window) -> None:
        """List `window` once every planned window has started (the top a later walk lists
        once more, as late as it can be without waiting for the loads): kept until a walk
        plans it or another window replaces it here."""
        with self._changed:
            if self._after is not None and self._after != window:
                self._drop(self._after)
            self._after = window
            self._schedule()

    def pending(self) -> list[Window]:
        """The windows no load took yet, oldest first, as cut so far."""
        with self._changed:
            return list(self._pending)

    def remainder(self, windows: list[Window]) -> list[Window]:
        """What is left of `windows` (the walk's plan) after the windows this walk took: a
        window none of whose parts was taken stays whole, however far the workers cut it, so
        that what a load commits depends on the data alone."""
        with self._changed:
            return sorted(
                (w for window in windows for w in self._left_of(window)), key=Window.sort_key
            )

    def _frontier(self, window: Window) -> list[Window]:
        children = self._children.get(window)
        if children is None:
            return [window]
        return [w for child in children for w in self._frontier(child)]

    def _touched(self, window: Window) -> bool:
        return window in self._taken or any(
            self._touched(child) for child in self._children.get(window, ())
        )

    def _left_of(self, window: Window) -> list[Window]:
        if not self._touched(window):
            return [window]
        return [w for child in self._children.get(window, ()) for w in self._left_of(child)]

    def take(self) -> tuple[Window, _Fetched] | None:
        """The oldest window's listing (waiting for it), None when no window is left; raises
        the error of a listing that failed (the window stays planned and is listed again
        when next asked for)."""
        with self._changed:
            while True:
                if not self._pending:
                    return None
                window = self._pending[0]
                future = self._futures.get(window)
                if future is None:
                    if self._stop.is_set():
                        raise RuntimeError("sync stopped")
                    self._schedule()
                    future = self._futures[window]
                if future.done():
                    break
                self._changed.wait()
            if future.exception() is not None:
                self._drop(window)
                raise future.exception()  # type: ignore[misc]
            return window, future.result()

    def taken(
        self, window: Window, parts: list[Window], opened: dict[Window, Opened] | None = None
    ) -> None:
        """A load took `window`; `parts` (what a cut of it left) are planned instead, listed
        on from the first pages `opened` holds."""
        with self._changed:
            self._taken.add(window)
            self._replace(window, parts, opened)
            self._schedule()

    def split(
        self, window: Window, parts: list[Window], opened: dict[Window, Opened] | None = None
    ) -> None:
        """`window`'s first page cut it: its `parts` are planned instead."""
        with self._changed:
            self._replace(window, parts, opened)
            self._schedule()

    def _replace(
        self, window: Window, parts: list[Window], opened: dict[Window, Opened] | None = None
    ) -> None:
        self._drop(window)
        self._opened.update({w: o for w, o in (opened or {}).items() if w in parts})
        self._children[window] = list(parts)
        self._pending = sorted(
            [w for w in self._pending if w != window] + parts, key=Window.sort_key
        )

    def counted(self, window: Window, records: int) -> None:
        """A page of `window` came back with `records` (for the progress estimate)."""
        with self._changed:
            if window in self._records:
                self._records[window] += records

    def records_in_flight(self) -> dict[Window, int]:
        """Records fetched so far of every window started and not yet taken by a load."""
        with self._changed:
            return dict(self._records)

    def crowded(self) -> bool:
        """Whether more listings are done than workers list at once (they wait for a load)."""
        with self._changed:
            return sum(future.done() for future in self._futures.values()) >= self.workers

    def _drop(self, window: Window) -> None:
        self._futures.pop(window, None)
        self._records.pop(window, None)

    def _schedule(self) -> None:
        """Under the lock: windows whose first page cut them are replaced by their parts, and
        the oldest windows not started are started, up to `workers` listing at once and
        `horizon` held (the oldest always: a load waits for it)."""
        split = [
            window for window, future in self._futures.items()
            if future.done() and not future.cancelled() and future.exception() is None
            and future.result().listed is None
        ]
        for window in split:
            if window in self._pending:  # not one listed early, which no walk planned yet
                fetched = self._futures[window].result()
                self._replace(window, fetched.parts, fetched.opened)
        if self._stop.is_set() or self._fetch is None:
            return
        listing = sum(not future.done() for future in self._futures.values())
        for i, window in enumerate(self._pending):
            if window in self._futures:
                continue
            if i and (listing >= self.workers or self._full()):
                break
            self._start(window)
            listing += 1
        after = self._after
        if (
            after is not None and after not in self._futures and listing < self.workers
            and all(window in self._futures for window in self._pending)
        ):
            self._start(after)

    def _start(self, window: Window) -> None:
        self._records[window] = 0
        opened = self._opened.pop(window, None)
        future = self._pool.submit(self._fetch, window, self._stop, opened)  # type: ignore[arg-type]
        self._futures[window] = future
        future.add_done_callback(self._done)

    def _full(self) -> bool:
        """Under the lock: whether as much is held ahead as the producer may hold."""
        if self.horizon is not None and len(self._futures) >= self.horizon:
            return True
        return self.records_ahead is not None and sum(self._records.values()) >= self.records_ahead

    def _done(self, future: Future[_Fetched]) -> None:
        """A listing ended (in its worker thread): start the next, wake the load."""
        with self._changed:
            try:
                self._schedule()
            except RuntimeError:  # the pool was shut down: the sync ends
                pass
            self._changed.notify_all()

    def close(self, wait: bool = False) -> None:
        """The sync (or a walk of its own) ends: listings no load took are dropped, fetches stop
        between pages; `wait` for the stopped ones only when none can be stalled."""
        self._stop.set()
        with self._changed:
            if self._futures:
                logger.debug("Dropping %d listed windows no load took", len(self._futures))
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
            self._records.clear()
            self._pending, self._children, self._taken = [], {}, set()
            self._opened = {}
            self._after = None
            self._changed.notify_all()
        self._pool.shutdown(wait=wait, cancel_futures=True)
