"""Lists a plan's windows in parallel, under the sync's one rate limiter, and hands them to the
load whole, in time order.

The same walker lists `GET /task-runs` and `GET /events`: both are lists of records with an `id`
and a `created_at`, filtered by a half-open `created_at` range and paged by cursor.

A load takes listed windows whole, oldest first, until they hold its `limit` records (the
load's `max_runs_per_load`) or none is left: so it holds at most one listing more than that
(`options.listing_cut`: at most a load). Where a load ends therefore depends on the data alone,
never on which thread got a page first: the windows are listed ahead by the sync's
`producer.WindowProducer`, `workers` at once, and a window listed but not taken waits there for
the next load.

A window too big to list whole is cut (`planning.split_window`) after its first page: that page's
stretch of the window is handed over as listed, and the parts of the rest are listed instead,
each from its own first page, fetched as the window is cut (`_opening`). So a cut costs no
request, and the progress estimate learns every part's density at once. A window whose start
could not be proven keeps its first page as a probe. A listing that holds `listing_cut` records
is cut where it got to (`planning.cut_listed_part`): the part listed is
handed to the load as a window of its own, and the rest is planned and listed on from the same
cursor (`continuation`), so no listing holds more than a load (except records sharing one
printed instant, which no bound can part) and a load boundary costs no request. Windows are
therefore cut to `pages_per_window` whatever the load size: every window costs its last page,
mostly part-empty, so fewer windows cost fewer requests.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from deck.api.client import Page
from deck.core import records
from deck.core.observers import ListingObserver
from deck.core.records import Rejection
from deck.core.windows import ONE_US, Window, page_stamps
from deck.listing.history_start import find_start
from deck.listing.intake import checked_page, created_at_of
from deck.listing.listed import ListedWindow, Opened, _Fetched
from deck.listing.planning import clip_windows, cut_listed_part, split_window
from deck.listing.producer import WindowProducer

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


def continuation(rest: Window, fetched: list[Page], pages: Iterator[Page]) -> Opened:
    """The rest of a listing cut part-way (`planning.cut_listed_part`), to be listed from the
    same cursor: its first page is what the pages so far hold of it (the records sharing the
    cut's instant, `deferred_to`), the rest follows from `pages`. Together they are exactly what
    the listing of the whole window still had to give of `rest`, as the pages of a listing come
    in time order; so a cut costs no request. A sync that ends before the rest is listed plans
    it as a window of its own, listed afresh."""
    items = [run for page in fetched for run in page.items if rest.contains(created_at_of(run))]
    check = records.Checked(runs=list(items), created=[created_at_of(run) for run in items])
    first = Page(items=items, has_more=True, request_id=fetched[-1].request_id)
    return Opened(pages, first, [check], continued=True)


class WindowWalker:
    """Walks one load's windows; `pending` keeps those it did not take (for the next load)."""

    def __init__(
        self,
        list_pages: Callable[[dict[str, Any]], Iterator[Page]],
        params: dict[str, Any],
        *,
        page_size: int,
        workers: int,
        pages_per_window: int,
        listing_cut: int | None = None,
        clock: Callable[[], datetime],
        progress: ListingObserver | None = None,
        producer: WindowProducer | None = None,
        noun: str = "records",
    ) -> None:
        self.noun = noun  # for log lines
        self.list_pages = list_pages  # DeckClient.list_task_runs or .list_events
        self.params = params  # the list's filters, sent with every window
        self.page_size = page_size
        self.workers = workers
        self.pages_per_window = pages_per_window
        # Records after which a listing is cut (its window was denser than its first page showed).
        self.listing_cut = max(1, listing_cut or 2 * pages_per_window * page_size)
        self.clock = clock
        self.progress = progress
        self.pending: list[Window] = []
        self.producer = producer  # the sync's (None: one of its own for each walk)
        self._lock = threading.Lock()
        self._listing: WindowProducer | None = None  # the producer of the current walk

    def outlook(self) -> tuple[list[Window], dict[Window, int]]:
        """The windows not started and those started (with the records fetched of each so
        far): what is left of this walk, for the progress estimate (read from another thread)."""
        with self._lock:
            listing = self._listing
        if listing is None:
            return list(self.pending), {}
        pending = listing.pending()
        started = listing.records_in_flight()
        return [w for w in pending if w not in started], {
            w: n for w, n in started.items() if w in set(pending)
        }

    def walk(self, windows: list[Window], limit: int | None = None) -> Iterator[ListedWindow]:
        """Listed windows, taken whole in time order until they hold `limit` records or none
        is left; `pending` keeps the rest."""
        producer = self.producer or WindowProducer(self.workers, self.workers)
        with self._lock:
            self.pending = sorted(windows, key=Window.sort_key)
            self._listing = producer
        if self.progress is not None:  # from now on this walk is the work left
            self.progress.follow(self.outlook, self.clock, self.page_size)
        taken, ended = 0, False
        try:
            if limit is None or limit > 0:
                producer.plan(self.pending, self._fetch)
                while limit is None or taken < limit:
                    got = producer.take()
                    if got is None:
                        break
                    window, fetched = got
                    if self.progress is not None:
                        for probe in [fetched.probe, *fetched.probes]:
                            if probe is not None:
                                self.progress.probed(*probe)
                        for part, records in fetched.sized:
                            self.progress.sized(part, records)
                    listed = fetched.listed
                    if listed is None:
                        producer.split(window, fetched.parts, fetched.opened)
                        continue
                    producer.taken(window, fetched.parts, fetched.opened)
                    taken += listed.records - len(listed.deferred)  # the rest's are its own
                    if self.progress is not None:
                        self.progress.listed(listed.window, listed.records)
                    yield listed.unpacked()  # packed when it waited
                with self._lock:
                    self.pending = producer.remainder(self.pending)
            ended = True
        finally:
            # Ctrl-C/SIGTERM, a failed window, or dlt closing the generator: do not wait for
            # reads that may be stalled (their results are thrown away anyway). The sync's
            # producer lists on while dlt loads this load.
            if self.producer is None:
                with self._lock:
                    self._listing = None  # what is left is `pending` alone
                producer.close(wait=ended)

    def list_after(self, window: Window) -> None:
        """List `window` once every window planned has started, for a later walk of this sync
        (nothing without a sync's producer: a walk of its own drops its listings as it ends)."""
        if self.producer is not None:
            self.producer.list_after(window)

    def _fetch(
        self, window: Window, stop: threading.Event, opened: Opened | None = None
    ) -> _Fetched:
        """In a worker: the window's pages, or the parts to list instead when it is too big.
        `opened`: its first page, fetched when the window it was cut from was (`_open`)."""
        listing = self._listing
        planned = window  # the producer's key, whatever this listing makes of the window
        counted = listing.counted if listing is not None else (lambda window, records: None)

        def count(_: Window, records: int) -> None:
            counted(planned, records)

        continued = opened is not None and opened.continued
        if opened is not None:
            pages, first, checks = opened.pages, opened.first, opened.checks
        else:
            pages = self.list_pages({**self.params, **window.params()})
            checks = []
            first = checked_page(next(pages), checks)
        if window.start is None and first.has_more and not continued:
            # Open towards the past: find where the history starts, so that every window is
            # bounded (loads take them oldest first; the estimate knows the span).
            start = find_start(
                self.list_pages, {**self.params, **window.params()}, first, self.noun,
                at_once=self.workers,
            )
            if start is not None and (window.end is None or start < window.end):
                window = Window(start, window.end)
        parts = [] if continued else split_window(
            window,
            first.items,
            first.has_more,
            page_size=self.page_size,
            pages_per_window=self.pages_per_window,
            clock=self.clock(),
        )
        probe = (window, first.items) if first.has_more and not continued else None
        if parts:
            pages.close()
            # The first page is data, not only a probe: the part of the window it covers is
            # listed (as at a cut), and only the rest is planned in parts. Except in a window
            # open towards the past: there the first pages are probes that find where history
            # starts (for the estimate).
            cut = self._cut(window, [first], checks) if window.start is not None else None
            if cut is None:  # open start, a page in no order, or a rejected record on it
                return self._opening(_Fetched(parts=parts, probe=probe), stop)
            listed, rest = cut
            count(window, len(first.items))
            return self._held(listing, self._opening(_Fetched(
                probe=probe,
                parts=clip_windows(parts, rest),
                listed=ListedWindow(
                    listed, [first], locate(listed, checks), deferred=deferred_to(rest, [first])
                ),
            ), stop))
        count(window, len(first.items))
        fetched = [first]
        held, cut_at = len(first.items), self.listing_cut
        while fetched[-1].has_more:
            if stop.is_set():
                raise RuntimeError("sync stopped")  # the sync ends, or another window failed
            # A load's worth listed (the window was denser than its first page showed): cut it
            # where the pages reached, once the part before the cut holds that much (the
            # records sharing the cut's instant go to the rest), so that a load taking the part
            # is full. No place to cut (one printed instant): the listing goes on.
            cut = self._cut(window, fetched, checks) if held >= cut_at else None
            deferred = deferred_to(cut[1], fetched) if cut is not None else {}
            if cut is not None and held - len(deferred) >= cut_at:
                listed, rest = cut
                return self._held(listing, _Fetched(
                    probe=probe,
                    parts=[rest],
                    opened={rest: continuation(rest, fetched, pages)},
                    listed=ListedWindow(listed, fetched, locate(listed, checks), deferred=deferred),
                ))
            page = next(pages, None)
            if page is None:
                break
            fetched.append(checked_page(page, checks))
            held += len(fetched[-1].items)
            count(window, len(fetched[-1].items))
        return self._held(
            listing,
            _Fetched(listed=ListedWindow(window, fetched, locate(window, checks)), probe=probe),
        )

    def _opening(self, fetched: _Fetched, stop: threading.Event) -> _Fetched:
        """`fetched` with the first page of each of its parts, `workers` fetched at once: each
        part's listing goes on from it when the part's turn comes (a first page is data, so this
        costs no request), and the estimate learns every part's density now rather than as the
        parts are listed, oldest first, one load after another."""
        if len(fetched.parts) < 2:
            return fetched

        def first_page(part: Window) -> tuple[Window, Opened]:
            if stop.is_set():
                raise RuntimeError("sync stopped")
            pages = self.list_pages({**self.params, **part.params()})
            checks: list[records.Checked] = []
            return part, Opened(pages, checked_page(next(pages), checks), checks)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="deck-open") as pool:
            fetched.opened = dict(pool.map(first_page, fetched.parts))
        for part, opened in fetched.opened.items():
            if opened.first.has_more:
                fetched.probes.append((part, opened.first.items))
            else:
                fetched.sized.append((part, len(opened.first.items)))
        return fetched

    def _held(self, listing: WindowProducer | None, fetched: _Fetched) -> _Fetched:
        """A listing that will wait for its load is packed (`ListedWindow.packed`): only when
        more are done than workers list at once, so the windows a load takes as they come are
        not packed and unpacked for nothing."""
        if listing is not None and fetched.listed is not None and listing.crowded():
            fetched.listed = fetched.listed.packed()
        return fetched

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
