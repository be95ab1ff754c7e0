"""What a sync did, counted once for the whole sync (every load of it) and read by the summary.

`RequestStats` is the HTTP client's own counter (`deck.api.session` counts every attempt in
it) and remembers Deck's clock; `SyncStats` holds it beside the records counted by the listing,
and the observer the listing reports its progress to (`deck.core.observers`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

from deck.core.clock import DeckClock
from deck.core.observers import NoProgress, ProgressObserver


@dataclass
class RequestStats:
    """What the sync cost, for the CLI summary and the benchmarks."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0  # answers with HTTP 429 (Deck's rate limit)
    pages: int = 0
    last_request_id: str | None = None
    clock: DeckClock = field(default_factory=DeckClock, repr=False)  # from `Date` headers
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe_date(self, header: str | None, source: str | None = None) -> None:
        """Remember Deck's clock from a response's `Date` header (see `clock.DeckClock`);
        `source` names the request ("GET /v2/test") for a warning."""
        self.clock.observe(header, source=source)

    def deck_now(self) -> datetime:
        """The latest moment at which Deck can have created a run listed so far."""
        return self.clock.now()

    def count(
        self,
        *,
        request: bool = False,
        retry: bool = False,
        page: bool = False,
        throttled: bool = False,
    ) -> None:
        with self._lock:
            self.requests += request
            self.retries += retry
            self.pages += page
            self.throttled += throttled


@dataclass
class SyncStats:
    """Runs and requests of one sync, across all its loads. One object per `sync()` (or per
    `deck()` source when it is run on its own), shared by every load and worker thread;
    `requests` is the HTTP client's own counter."""

    new_runs: int = 0
    updated_runs: int = 0
    new_events: int = 0
    event_gaps: int = 0  # retention holes found in the event history (task_run_event_gaps)
    events_unavailable: bool = False  # Deck answered GET /events with 404
    windows: int = 0
    open_rechecked: int = 0
    quarantined: int = 0  # distinct records put in (or kept in) quarantine
    not_relisted: int = 0  # records a cut left to the rest of a window that did not come back
    ended_early: list[str] = field(default_factory=list)  # why a sync ended with work left
    top_relisted: set[str] = field(default_factory=set)  # listings whose top was re-listed
    requests: RequestStats = field(default_factory=RequestStats)
    # Who follows the listings' progress: `sync()` gives the estimate the progress display
    # shows (`deck.progress.estimate.SyncProgress`); nobody when `deck()` runs on its own.
    progress: ProgressObserver = field(default_factory=NoProgress)
