"""What lives for a whole sync rather than one load: one HTTP client, one stats object, and the
producers that list windows ahead of the loads that take them.

dlt builds a fresh source for every `pipeline.run`, and a sync runs many. Were each source to
build its own client, every load would start a new rate limiter while Deck's 10-second window
still counts the previous load's requests. `sync()` therefore opens a `SyncScope`; `deck()`
takes its client and stats from the scope that is open, and only builds its own when it runs
outside one (`pipeline.run(deck())`). This keeps runner plumbing out of `deck()`'s signature,
which is dlt configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from deck.api.client import DeckClient
from deck.core.stats import SyncStats
from deck.listing.events import SelectedRuns
from deck.listing.producer import WindowProducer
from deck.resources.loaded_runs import LoadedRuns


@dataclass
class SyncScope:
    """The client (its rate limiter and request counter) and stats shared by a sync's loads."""

    stats: SyncStats = field(default_factory=SyncStats)
    client: DeckClient | None = None
    credentials_checked: bool = False
    # Resources that listed everything in this sync: later loads (which continue a backfill of
    # the other resource) skip them instead of spending requests on a second no-change pass.
    finished: set[str] = field(default_factory=set)
    # Per resource: its windows, listed ahead of the loads that take them, also while dlt loads
    # the load before (`deck.listing.producer.WindowProducer`).
    producers: dict[str, WindowProducer] = field(default_factory=dict)
    # Ids of the runs a load of this sync saw open (listed or re-checked): a later load of the
    # same sync does not re-check them (`open_runs.OpenRunRecheck`); the next sync does.
    open_seen: set[str] = field(default_factory=set)
    # Ids of the runs the sync's task_runs handled (listed in a selected state, or open and in
    # scope), and in a filtered sync what its events follow once task_runs is listed to its end
    # (`deck.listing.events.SelectedRuns`: these, the open runs tracked, the warehouse's rows).
    selected_runs: set[str] = field(default_factory=set)
    events_follow: SelectedRuns | None = None
    runs_listing_began: float | None = None  # time.monotonic() as task_runs began listing
    # Which run ids have a task_runs row: `deck.sync` passes one that waits for a DuckDB file
    # a reader holds; None: the pipeline dlt extracts for is asked directly.
    loaded_runs: LoadedRuns | None = None
    # What was said once for the whole sync (a warning not repeated by every load).
    said: set[str] = field(default_factory=set)

    def client_for(self, build: Callable[[SyncStats], DeckClient]) -> DeckClient:
        """The sync's client, built by the first load that needs it."""
        if self.client is None:
            self.client = build(self.stats)
        return self.client

    def producer_for(self, resource: str, workers: int, records_ahead: int) -> WindowProducer:
        """Who lists `resource`'s windows ahead of the loads that take them."""
        if resource not in self.producers:
            self.producers[resource] = WindowProducer(workers, records_ahead=records_ahead)
        return self.producers[resource]

    def close(self) -> None:
        for producer in self.producers.values():
            producer.close()
        if self.client is not None:
            self.client.close()


_current: ContextVar[SyncScope | None] = ContextVar("deck_sync_scope", default=None)


def current_scope() -> SyncScope | None:
    return _current.get()


@contextmanager
def sync_scope(scope: SyncScope) -> Iterator[SyncScope]:
    """Make `scope` the one `deck()` uses until the block ends; closes its client then."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)
        scope.close()
