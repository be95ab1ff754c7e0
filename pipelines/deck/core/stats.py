"""What a sync did, counted once for the whole sync (every load of it) and read by the summary."""

from __future__ import annotations

from dataclasses import dataclass, field

from deck.api.session import RequestStats
from deck.progress.estimate import SyncProgress


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
    # what is left and how fast (progress.py): the estimate the progress display shows
    progress: SyncProgress = field(default_factory=SyncProgress)
