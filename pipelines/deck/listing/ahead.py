"""Windows listed ahead of the load that will take them, while dlt loads the one before.

A load ends at `max_runs_per_load`; dlt then normalizes and loads it, for seconds, while Deck's
request budget goes unspent. `ListingAhead` lists the windows the load left meanwhile, with the
walker's own fetch (`walker.WindowWalker.list_ahead`), and the next walk takes them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from deck.core.windows import Window
from deck.listing.listed import _Fetched

logger = logging.getLogger("deck")


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
