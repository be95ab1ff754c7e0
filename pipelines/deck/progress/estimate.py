"""How far a sync is: what is done, an estimate of what is left, how fast, and when it ends.

A backfill of 250k runs takes tens of minutes and many loads. Deck's list carries no total, so the
work left is estimated from the plan: the windows not listed yet (and the part of those in flight
not fetched yet) times the density of runs seen so far (records per second of `created_at`, from
the windows listed and the first page of every window cut; `density.py`). A window with no start
(a first sync of all history) has no size until the walk reaches its oldest run: until then the
total is not known and no ETA is given.

The bookkeeping (`ListingProgress`, `SyncProgress`, `RateMeter`) is pure: it takes the time as an
argument, so it is unit-tested without I/O. The listing reports to it through
`deck.core.observers`; what a reporter shows of it is a `snapshot.Snapshot`. Two reporters show
it (`display.py`), one chosen once by the CLI (`reporter_for`):

- on a terminal, `LiveProgress`: a display redrawn in place (rich, which dlt already installs),
  with the connector's log lines printed above it;
- otherwise (cron, CI, a scheduler's log), `LogProgress`: one line every `PROGRESS_EVERY_S`
  seconds and one per committed load, always cumulative over the whole sync.

`sync()` uses `LogProgress` unless told otherwise, so an orchestrator's log shows the same lines.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from deck.core.observers import Outlook
from deck.core.stats import SyncStats
from deck.core.windows import Window, page_stamps
from deck.progress.density import DensityMap
from deck.progress.snapshot import Snapshot, describe_ranges

logger = logging.getLogger("deck")

RATE_WINDOW_S = 60.0  # the rate (and so the ETA) is measured over this much recent time

_MIN = datetime.min.replace(tzinfo=timezone.utc)


def merge_windows(windows: Iterable[Window]) -> list[Window]:
    """Windows as the fewest ranges that cover them, oldest first."""
    merged: list[Window] = []
    for window in sorted(windows, key=Window.sort_key):
        if merged:
            last = merged[-1]
            touches = last.end is None or (window.start or _MIN) <= last.end
            if touches:
                if last.end is not None and (window.end is None or window.end > last.end):
                    merged[-1] = Window(last.start, window.end)
                continue
        merged.append(window)
    return merged


class RateMeter:
    """Requests per second over the last `window_s` seconds of samples (time, cumulative count).

    Recent rather than overall: a sync slows down when the rate limit starts to bite and speeds
    up after retries, and the ETA should follow.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, at: float, count: int) -> None:
        if self._samples and at <= self._samples[-1][0]:
            if count != self._samples[-1][1]:
                self._samples[-1] = (self._samples[-1][0], count)
            return
        self._samples.append((at, count))
        # keep one sample older than the window, so the rate always spans the whole window
        while len(self._samples) > 2 and self._samples[1][0] <= at - self.window_s:
            self._samples.popleft()

    def rate(self) -> float | None:
        """None until two samples at least a second apart exist."""
        if len(self._samples) < 2:
            return None
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        if t1 - t0 < 1.0:
            return None
        return (c1 - c0) / (t1 - t0)


@dataclass(frozen=True)
class Left:
    """What a listing has left, estimated: `records` to list in `windows` windows, each at least
    one request (`pages`). `at_least`: a window open towards the past is still to be sized, so
    the records are those of the other windows only."""

    records: float
    pages: int
    at_least: bool = False


class ListingProgress:
    """What one listing (task runs or events) has listed and has left, across a sync's loads.

    The walker of each load reports to it (`follow`, `probed`, `listed`, from worker threads
    too); the estimate is read by the reporter's thread, hence the lock. Done and left are both
    records listed: the estimate is of the records the listing will have listed at its end.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._map = DensityMap()
        self._listed = 0  # records on the pages of windows listed to their end
        self._covered: list[Window] = []
        self._outlook: Outlook | None = None
        self._clock: Callable[[], datetime] | None = None
        self.page_size = 100
        self.finished = False

    def follow(self, outlook: Outlook, clock: Callable[[], datetime], page_size: int) -> None:
        """The walker of the current load: its pending and in-flight windows are the work left."""
        with self._lock:
            self._outlook, self._clock, self.finished = outlook, clock, False
            self.page_size = page_size

    def _now(self) -> datetime:
        return self._clock() if self._clock is not None else datetime.now(timezone.utc)

    def probed(self, window: Window, items: list[dict[str, Any]]) -> None:
        """The first page of `window`, when more follow: how dense its stretch is, and that the
        window holds nothing beyond the record Deck returned first."""
        now = self._now()
        with self._lock:
            self._map.probed(window, page_stamps(items), now)

    def sized(self, window: Window, records: int) -> None:
        """A window whose first page held it whole, before a load takes it: its count is
        exact, and counted as listed only when taken (`listed`)."""
        now = self._now()
        with self._lock:
            self._map.listed(window, records, now)

    def listed(self, window: Window, records: int) -> None:
        """A window listed to its end (`records` on its pages)."""
        now = self._now()
        with self._lock:
            self._listed += records
            self._map.listed(window, records, now)
            self._covered = merge_windows([*self._covered, window])

    def finish(self) -> None:
        """Every window of the plan is listed: nothing is left of this listing in this sync."""
        with self._lock:
            self.finished, self._outlook = True, None

    @property
    def covered(self) -> list[Window]:
        with self._lock:
            return list(self._covered)

    def listed_records(self) -> int:
        """Records listed so far: windows listed to their end and the pages fetched of those in
        flight."""
        with self._lock:
            outlook = self._outlook
            listed = self._listed
        in_flight = outlook()[1] if outlook is not None else {}
        return listed + sum(in_flight.values())

    def remaining(self, now: datetime | None = None) -> Left | None:
        """Records estimated left to list; None when nothing was seen to judge by yet. `now`:
        Deck's clock (defaults to the walker's)."""
        with self._lock:
            if self.finished:
                return Left(0.0, 0)
            outlook, clock = self._outlook, self._clock
        if outlook is None:
            return None
        pending, in_flight = outlook()
        if now is None:
            now = clock() if clock is not None else datetime.now(timezone.utc)
        records, pages, at_least = 0.0, 0, False
        for window in [*pending, *in_flight]:
            with self._lock:
                judged = self._map.records_in(window, now)
            if judged is None:
                if window.start is not None:
                    return None  # nothing observed yet
                at_least = True
                pages += 1
                continue
            left = max(0.0, judged - in_flight.get(window, 0))
            records += left
            pages += max(0 if window in in_flight else 1, math.ceil(left / self.page_size))
        return Left(records, pages, at_least)


class SyncProgress:
    """Progress of one sync, across its loads: one `ListingProgress` per listing, the loads
    committed, and the request rate. `sync()` makes one and hands it to the sync's `SyncStats`,
    where the listing reports to it (`deck.core.observers.ProgressObserver`)."""

    def __init__(self) -> None:
        self.listings: dict[str, ListingProgress] = {}
        self.loads = 0
        self.meter = RateMeter()
        self._lock = threading.Lock()

    def listing(self, name: str) -> ListingProgress:
        with self._lock:
            if name not in self.listings:
                self.listings[name] = ListingProgress(name)
            return self.listings[name]

    def snapshot(
        self,
        stats: SyncStats,
        *,
        elapsed_s: float,
        now: datetime | None = None,
        done: bool = False,
    ) -> Snapshot:
        """The state of the sync at `elapsed_s` seconds (also a sample for the rate)."""
        requests = stats.requests.requests
        with self._lock:
            self.meter.add(elapsed_s, requests)
            rate = self.meter.rate()
            listings = list(self.listings.values())
        left = {item.name: Left(0.0, 0) if done else item.remaining(now) for item in listings}
        listed = {item.name: item.listed_records() for item in listings}
        requests_left = None
        known = [one for one in left.values() if one is not None]
        if known and len(known) == len(left) and not any(one.at_least for one in known):
            requests_left = float(sum(one.pages for one in known))
        coverage = tuple(
            (item.name, describe_ranges(item.covered)) for item in listings if item.covered
        )
        return Snapshot(
            runs=stats.new_runs + stats.updated_runs,
            events=stats.new_events,
            requests=requests,
            retries=stats.requests.retries,
            throttled=stats.requests.throttled,
            loads=self.loads,
            elapsed_s=elapsed_s,
            runs_listed=listed.get("runs", 0),
            events_listed=listed.get("events", 0),
            runs_left=_records(left.get("runs")),
            events_left=_records(left.get("events")),
            runs_at_least=_at_least(left.get("runs")),
            events_at_least=_at_least(left.get("events")),
            requests_left=requests_left,
            rate=rate,
            coverage=coverage,
            done=done,
            with_events="events" in left or stats.new_events > 0,
        )


def _records(left: Left | None) -> float | None:
    return None if left is None else left.records


def _at_least(left: Left | None) -> bool:
    return left is not None and left.at_least
