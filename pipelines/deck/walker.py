"""Lists a plan's windows in parallel, under the sync's one rate limiter, in time order.

The same walker lists `GET /task-runs` and `GET /events`: both are lists of records with an `id`
and a `created_at`, filtered by a half-open `created_at` range and paged by cursor.

A window is handed to the load only once it was listed to its last page, and no window is
started unless the load has room for it, so a committed load never throws work away and memory
holds at most `workers` windows. A window too big to list whole is cut (`planning.split_window`)
after its first page, and its parts are listed instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import records
from .client import Page
from .intake import checked_page
from .planning import split_window
from .records import Rejection
from .windows import ONE_US, Window


@dataclass
class ListedWindow:
    """A window listed to its last page: its loadable pages and the records it had to reject."""

    window: Window
    pages: list[Page] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


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
    ) -> None:
        self.list_pages = list_pages  # DeckClient.list_task_runs or .list_events
        self.params = params  # the list's filters, sent with every window
        self.page_size = page_size
        self.workers = workers
        self.pages_per_window = pages_per_window
        self.clock = clock
        self.pending: list[Window] = []

    @property
    def runs_per_window(self) -> int:
        """The most runs one window can bring (it is cut when it would hold more)."""
        return self.pages_per_window * self.page_size

    def walk(
        self, windows: list[Window], has_room: Callable[[int], bool]
    ) -> Iterator[ListedWindow]:
        """Listed windows, oldest first among those done together. `has_room(n)` says whether
        the load can take another window while `n` are in flight."""
        self.pending = sorted(windows, key=Window.sort_key)
        in_flight: dict[Future[_Fetched], Window] = {}
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-window")
        interrupted = False
        try:
            while self.pending or in_flight:
                while self.pending and len(in_flight) < self.workers and has_room(len(in_flight)):
                    window = self.pending.pop(0)
                    in_flight[pool.submit(self._fetch, window, stop)] = window
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: in_flight[f].sort_key()):
                    in_flight.pop(future)
                    fetched = future.result()
                    if fetched.parts:
                        self.pending = sorted(self.pending + fetched.parts, key=Window.sort_key)
                    elif fetched.listed is not None:
                        yield fetched.listed
        except BaseException:
            # Ctrl-C/SIGTERM, a failed window, or dlt closing the generator: do not wait for
            # reads that may be stalled (their results are thrown away anyway).
            interrupted = True
            raise
        finally:
            stop.set()
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def _fetch(self, window: Window, stop: threading.Event) -> _Fetched:
        """In a worker: the window's pages, or the parts to list instead when it is too big."""
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
        if parts:
            pages.close()
            return _Fetched(parts=parts)
        fetched = [first]
        for page in pages:
            if stop.is_set():
                raise RuntimeError("sync stopped")  # only after another window failed
            fetched.append(checked_page(page, checks))
        return _Fetched(listed=ListedWindow(window, fetched, locate(window, checks)))
