"""Bring every run last seen open up to date: one filtered listing, then GET the ones that left.

Runs change status long after they are created, and Deck's list can only be filtered by creation
time. Every run last seen in a non-final status is remembered (`state.open_runs`); a load lists
the runs that are open now (`status=queued,running,...`, created since the oldest remembered
one), reloads those that changed, and fetches by id only the remembered runs missing from that
listing, i.e. the ones that finished (or were deleted).

Once per sync: a run that an earlier load of the same sync listed or re-checked is left to the
next sync. A backfill's loads would otherwise each list again, minutes after listing them, the
open runs of the loads before them (some 3% of all runs, per load), spending rate budget on
versions the warehouse got moments ago.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from deck.api.client import DeckClient
from deck.core import records, settings
from deck.core.filters import Filters
from deck.core.state import OpenRun, TaskRunState
from deck.core.stats import SyncStats
from deck.core.windows import Window
from deck.listing.intake import RunTracker, checked_page, created_at_of, log_warnings, prepare
from deck.listing.quarantine import Quarantine
from deck.listing.walker import locate

logger = logging.getLogger("deck")


class OpenRunRecheck:
    """The open-run re-check of one load (after its windows were listed)."""

    def __init__(
        self,
        client: DeckClient,
        filters: Filters,
        state: TaskRunState,
        stats: SyncStats,
        tracker: RunTracker,
        quarantine: Quarantine,
        *,
        start: datetime | None,
        end: datetime | None,
        workers: int,
    ) -> None:
        self.client = client
        self.filters = filters
        self.state = state
        self.stats = stats
        self.tracker = tracker
        self.quarantine = quarantine
        self.start = start
        self.end = end
        self.workers = workers

    def run(self) -> Iterator[Any]:
        """Batches of runs to (re)load, and quarantine rows.

        With status/outcome filters the listing covers every open run in scope (not only the
        remembered ones), so that a run is loaded when it finishes in a selected state.
        """
        open_runs = self.state.open_runs
        # every run this sync `track`ed open (this load or an earlier one) is in `open_seen`
        known = self.tracker.open_seen
        stale = {rid: run for rid, run in open_runs.items() if rid not in known}
        by_state = self.filters.selects_by_state
        if not stale and not by_state:
            return
        since = self.start if by_state else min(run.created_at for run in stale.values())
        listed: set[str] = set()
        yield from self._list_open(since, listed, stale)
        finished = [rid for rid in stale if rid not in listed]
        yield from self._fetch_finished(finished)

    def _list_open(
        self, since: datetime | None, listed: set[str], stale: dict[str, OpenRun]
    ) -> Iterator[Any]:
        """One listing of the runs that are open now; yields the ones to (re)load."""
        window = Window(since, self.end)
        params = {**self.filters.scope_params(), "status": list(settings.OPEN_STATUSES)}
        for page in self.client.list_task_runs({**params, **window.params()}):
            checks: list[records.Checked] = []
            page = checked_page(page, checks)
            yield from self.quarantine.rows(locate(window, checks))
            changed: list[dict[str, Any]] = []
            for run in page.items:
                created_at = created_at_of(run)
                if not window.contains(created_at) or run["id"] in self.tracker.seen:
                    continue
                listed.add(run["id"])
                if run["id"] not in stale and not self.filters.selects_by_state:
                    continue
                if self.tracker.changed_and_selected(run, created_at):
                    changed.append(prepare(run))
            if changed:
                yield changed

    def _fetch_finished(self, finished: list[str]) -> Iterator[Any]:
        """GET by id the remembered open runs that left the open listing."""
        open_runs = self.state.open_runs
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-get") as pool:
            fetched = list(pool.map(self.client.get_task_run, finished))
        batch: list[dict[str, Any]] = []
        for rid, run in zip(finished, fetched, strict=True):
            self.stats.open_rechecked += 1
            if run is None:
                logger.warning("Run %s is no longer known to Deck; its last loaded row stays", rid)
                open_runs.pop(rid, None)
                continue
            checked = records.check_page([run])
            log_warnings(checked.warnings)
            if checked.rejected:  # stays in open_runs: fetched again at the next sync
                yield from self.quarantine.rows(checked.rejected, by_id=True)
                continue
            run = checked.runs[0]
            if self.tracker.changed_and_selected(run, created_at_of(run)):
                batch.append(prepare(run))
            if len(batch) >= self.client.page_size:
                yield batch
                batch = []
        if batch:
            yield batch
