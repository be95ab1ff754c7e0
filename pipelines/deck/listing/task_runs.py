"""One load of `task_runs`: list the planned windows, retry quarantined records, re-check open runs.

The windows are walked as for any listing by `created_at` (`windowed.WindowedLoad`); what is
particular to runs is that they change after they are created: each listed run is compared with
the version the warehouse holds (`intake.RunTracker`), runs still open are re-checked after the
windows (`open_runs`), and records that could not be placed are retried (`quarantine`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from deck.api.client import DeckClient
from deck.core.options import SourceOptions
from deck.core.state import Plan, TaskRunState
from deck.core.stats import SyncStats
from deck.listing.intake import RunTracker
from deck.listing.listed import ListedWindow
from deck.listing.open_runs import OpenRunRecheck
from deck.listing.producer import WindowProducer
from deck.listing.quarantine import Quarantine
from deck.listing.windowed import WindowedLoad

logger = logging.getLogger("deck")


class TaskRunLoad(WindowedLoad[TaskRunState]):
    """Yields what one load of `task_runs` writes (run batches, quarantine rows)."""

    noun = "runs"

    def __init__(
        self,
        client: DeckClient,
        options: SourceOptions,
        raw_state: dict[str, Any],
        stats: SyncStats,
        *,
        redact: list[str],
        producer: WindowProducer | None = None,
        open_seen: set[str] | None = None,
        selected: set[str] | None = None,
    ) -> None:
        super().__init__(
            client,
            options,
            raw_state,
            TaskRunState.load(raw_state),
            stats,
            list_pages=client.list_task_runs,
            params=options.filters.listing_params(),
            filters_fingerprint=options.filters.fingerprint(),
            producer=producer,
        )
        self.tracker = RunTracker(
            self.state, options.filters, stats, options.lookback, open_seen=open_seen,
            selected=selected,
        )
        self.quarantine = Quarantine(
            client, options.filters, self.state, stats, self.tracker, redact
        )

    def _state_for_new_filters(self) -> TaskRunState:
        # Quarantined records are retried whatever the filters: their rows must not linger.
        return TaskRunState(rejected=self.state.rejected)

    def _selects_by_state(self) -> bool:
        return self.options.filters.selects_by_state

    def _load_window(self, listed: ListedWindow, plan: Plan) -> Iterator[Any]:
        self.stats.windows += 1
        clock = self.clock()
        for page in listed.pages:
            runs = self.tracker.accept(page.items, listed.window, plan, clock)
            self.loaded += len(runs)
            if runs:
                yield runs
        yield from self.quarantine.rows(listed.rejected)

    def _after_listing(self) -> Iterator[Any]:
        yield from self.quarantine.retry()
        yield from OpenRunRecheck(
            self.client,
            self.options.filters,
            self.state,
            self.stats,
            self.tracker,
            self.quarantine,
            start=self.options.start,
            end=self.options.end,
            workers=self.options.workers,
        ).run()
        yield from self.quarantine.resolve_fetched_by_id()
