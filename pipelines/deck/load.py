"""One load of `task_runs`: list the planned windows, retry quarantined records, re-check open runs.

Why not `dlt.sources.incremental`: windows are listed in parallel and out of order, a plan of
windows spans several loads (a backfill commits every `max_runs_per_load` runs), and runs change
after they are created (open runs are re-checked by id, and a lookback re-reads the newest runs),
so the cursor is more than one high-water mark. The state this needs is typed in `state.py`; the
decisions over it are pure functions in `planning.py`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .client import DeckClient
from .intake import RunTracker
from .open_runs import OpenRunRecheck
from .options import SourceOptions
from .planning import finish_plan, initial_plan, top_window
from .quarantine import Quarantine
from .state import Plan, TaskRunState
from .stats import SyncStats
from .walker import ListedWindow, WindowWalker

logger = logging.getLogger("deck")

PROGRESS_EVERY_S = 5.0


class TaskRunLoad:
    """Yields what one load writes (run batches, quarantine rows) and keeps dlt's resource state.

    `more_to_load` is True after the load stopped at `max_runs_per_load` with windows left: their
    plan stays in state, and the next load (of the same sync, or the next sync after a kill)
    resumes it.
    """

    def __init__(
        self,
        client: DeckClient,
        options: SourceOptions,
        raw_state: dict[str, Any],
        stats: SyncStats,
        *,
        redact: list[str],
    ) -> None:
        self.client = client
        self.options = options
        self.raw_state = raw_state
        self.stats = stats
        self.state = TaskRunState.load(raw_state)
        fingerprint = options.filters.fingerprint()
        if self.state.filters not in (None, fingerprint):
            logger.warning(
                "The filters changed since the last sync (%s -> %s): listing from start_date"
                " again; rows already loaded stay.",
                self.state.filters,
                fingerprint,
            )
            # Quarantined records are retried whatever the filters: their rows must not linger.
            self.state = TaskRunState(rejected=self.state.rejected)
        self.state.filters = fingerprint
        self.tracker = RunTracker(self.state, options.filters, stats, options.lookback)
        self.quarantine = Quarantine(
            client, options.filters, self.state, stats, self.tracker, redact
        )
        self.walker = WindowWalker(
            client,
            options.filters,
            workers=options.workers,
            pages_per_window=options.pages_per_window,
            clock=self.clock,
        )
        self.loaded_runs = 0
        self.more_to_load = False
        self._listed_top = False  # whether this load listed the plan's newest window
        self._last_progress = time.monotonic()

    def clock(self) -> datetime:
        """Deck's "now": no run listed so far can have been created later than this."""
        return self.client.stats.deck_now()

    def items(self) -> Iterator[Any]:
        """Batches of runs to load (and quarantine rows): the planned windows, then open runs."""
        try:
            plan = self._plan()
            yield from self._walk(plan)
            if self.more_to_load:
                return
            if not self._listed_top and plan.max_seen is not None:
                # The newest window was listed by an earlier load of this plan: runs created
                # since then lie above everything listed, so list the top once more.
                plan.windows = [top_window(plan.max_seen, self.options.end, self.options.lookback)]
                yield from self._walk(plan)
                if self.more_to_load:
                    return
            finish_plan(self.state, plan)
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
        finally:
            self.state.save(self.raw_state)

    def _plan(self) -> Plan:
        """The windows this range still needs, resumed from state after a committed load."""
        if self.state.plan is None:
            options = self.options
            deck_clock = self.clock() if self.client.stats.server_date is not None else None
            self.state.plan = initial_plan(
                self.state, options.start, options.end, options.lookback, deck_clock
            )
        return self.state.plan

    def _walk(self, plan: Plan) -> Iterator[Any]:
        """List the plan's windows, loading each as soon as it is listed; stop at the budget."""
        per_window = self.walker.runs_per_window

        def has_room(in_flight: int) -> bool:
            return self.loaded_runs + in_flight * per_window < self.options.max_runs_per_load

        for listed in self.walker.walk(plan.windows, has_room):
            yield from self._load_window(listed, plan)
        plan.windows = self.walker.pending
        if plan.windows:
            logger.info(
                "Committing after %d runs; %d windows left for the next load",
                self.loaded_runs,
                len(plan.windows),
            )
            self.more_to_load = True

    def _load_window(self, listed: ListedWindow, plan: Plan) -> Iterator[Any]:
        self.stats.windows += 1
        self._listed_top |= listed.window.end == self.options.end
        clock = self.clock()
        for page in listed.pages:
            runs = self.tracker.accept(page.runs, listed.window, plan, clock)
            self.loaded_runs += len(runs)
            if runs:
                yield runs
            self._progress(listed)
        yield from self.quarantine.rows(listed.rejected)

    def _progress(self, listed: ListedWindow) -> None:
        """A line every few seconds, so a long backfill shows it is moving."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        logger.info(
            "... %d pages, %d runs so far (%d requests); listing %s",
            self.stats.requests.pages,
            self.loaded_runs,
            self.stats.requests.requests,
            listed.window,
        )
