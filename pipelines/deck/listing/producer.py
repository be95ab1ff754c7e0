"""The listings of a resource's windows, made ahead of the load that takes them, for one sync.

A load takes listed windows whole, in time order, until the next would not fit in
`max_runs_per_load` (`walker.WindowWalker.walk`); which windows it takes depends on the data
alone. How far ahead they are listed is this module's business, and only a matter of speed: the
producer keeps up to `workers` windows listing (oldest first) and holds at most `horizon`
listings no load took yet, so that Deck's request budget is spent while dlt normalizes and loads
the previous load, and memory stays bounded (listings that wait are packed:
`ListedWindow.packed`).

It never touches state: every window stays in the committed plan until the load that takes it
commits, so a kill loses nothing and the next sync lists again what was held here. A listing
that failed is handed to the load that takes it, which raises its error then (a failure of a
window no load reaches is never seen, as with a window never listed).

Why not `dlt.sources.incremental` and dlt's own parallel extraction: a window's listing spans
loads (it is listed while dlt loads the load before), and dlt's extract knows no such thing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from deck.core.windows import Window
from deck.listing.listed import _Fetched

logger = logging.getLogger("deck")

Fetch = Callable[[Window, threading.Event], _Fetched]


class WindowProducer:
    """Lists windows ahead of their load, `workers` at once, at most `horizon` held."""

    def __init__(self, workers: int, horizon: int) -> None:
        self.workers = workers
        self.horizon = max(workers, horizon)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deck-window")
        self._futures: dict[Window, Future[_Fetched]] = {}
        self._records: dict[Window, int] = {}  # records fetched so far, per window started
        self._lock = threading.Lock()
        self._stop = threading.Event()  # set when the sync ends: fetches stop between pages
        self._fetch: Fetch | None = None

    def use(self, fetch: Fetch) -> None:
        """How windows are listed from now on (the walker of the current load)."""
        self._fetch = fetch

    def schedule(self, pending: list[Window]) -> None:
        """Start listing the oldest of `pending` not started yet, up to `horizon` held (the
        oldest always: the load waits for it); drop listings of windows no longer planned (a
        plan that ended, or a window cut since)."""
        planned = set(pending)
        with self._lock:
            for window in [w for w in self._futures if w not in planned]:
                self._futures.pop(window).cancel()
                self._records.pop(window, None)
            for i, window in enumerate(pending):
                if self._stop.is_set() or self._fetch is None:
                    break
                if i and len(self._futures) >= self.horizon:
                    break
                if window not in self._futures:
                    self._records[window] = 0
                    self._futures[window] = self._pool.submit(self._fetch, window, self._stop)

    def result(self, window: Window) -> _Fetched:
        """The listing of `window` (waiting for it), and its error if it failed. The window
        stays held until `forget`."""
        with self._lock:
            future = self._futures.get(window)
        if future is None:  # the sync is closing (or the window was never scheduled)
            raise RuntimeError("sync stopped")
        try:
            return future.result()
        except BaseException:
            self.forget(window)
            raise

    def split_ones(self) -> dict[Window, list[Window]]:
        """Windows whose listing came back as parts only: each with the parts to list instead."""
        with self._lock:
            futures = list(self._futures.items())
        return {
            window: future.result().parts
            for window, future in futures
            if future.done() and not future.cancelled() and future.exception() is None
            and future.result().listed is None
        }

    def forget(self, window: Window) -> None:
        """A load took `window` (or it was cut): its listing is no longer held."""
        with self._lock:
            self._futures.pop(window, None)
            self._records.pop(window, None)

    def counted(self, window: Window, records: int) -> None:
        """A page of `window` came back with `records` (for the progress estimate)."""
        with self._lock:
            if window in self._records:
                self._records[window] += records

    def crowded(self) -> bool:
        """Whether more listings are done than workers list at once (they wait for a load)."""
        with self._lock:
            futures = list(self._futures.values())
        return sum(future.done() for future in futures) >= self.workers

    def records_in_flight(self) -> dict[Window, int]:
        """Records fetched so far of every window started and not yet taken by a load."""
        with self._lock:
            return dict(self._records)

    def close(self, wait: bool = False) -> None:
        """The sync (or a walk of its own) ends: listings no load took are dropped, fetches stop
        between pages; `wait` for the stopped ones only when none can be stalled."""
        self._stop.set()
        with self._lock:
            if self._futures:
                logger.debug("Dropping %d listed windows no load took", len(self._futures))
            for future in self._futures.values():
                future.cancel()
            self._futures.clear()
            self._records.clear()
        self._pool.shutdown(wait=wait, cancel_futures=True)
