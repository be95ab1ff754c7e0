"""One load of each resource of the `deck` source, under the sync's scope (`SyncScope`).

What a load of a resource needs besides its listing: the sync's client and key check, the
windows listed ahead between loads, and, in a filtered sync, the order between the two
resources (events follow the runs the sync selected, so they wait until `task_runs` is listed
to its end: `deck.listing.events.SelectedRuns`). Kept apart from `source.deck`, whose body is
dlt configuration: the options and the resources' hints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import dlt

from deck.api.client import DeckClient
from deck.core.options import SourceOptions
from deck.core.tables import EVENTS_TABLE, RUNS_TABLE
from deck.listing.events import EventLoad, SelectedRuns, runs_listing_began
from deck.listing.task_runs import TaskRunLoad
from deck.resources.loaded_runs import current_pipeline_lookup
from deck.resources.scope import SyncScope

logger = logging.getLogger("deck")


class SourceLoads:
    """Yields one load of a resource (`items(name)`); `standalone`: the source runs outside
    `deck.sync` (`pipeline.run(deck())`), and its client is closed after its last resource."""

    def __init__(
        self,
        scope: SyncScope,
        client: DeckClient,
        options: SourceOptions,
        *,
        redact: list[str],
        events: bool,
        standalone: bool,
    ) -> None:
        self.scope, self.client, self.options = scope, client, options
        self.redact, self.standalone = redact, standalone
        # Events of a filtered sync are those of the runs it selected, by id (`SelectedRuns`).
        self.by_runs = events and bool(options.filters.values)
        selected = scope.selected_runs if self.by_runs else None
        self.loads = {
            # the sync's open runs are re-checked once, not by each of its loads (open_runs.py)
            RUNS_TABLE: partial(TaskRunLoad, open_seen=scope.open_seen, selected=selected),
            EVENTS_TABLE: lambda *args, **kwargs: EventLoad(
                *args, selected=scope.events_follow, **kwargs
            ),
        }
        self.unfinished = set(self.loads) if events else {RUNS_TABLE}

    def items(self, name: str) -> Iterator[Any]:
        """One load of resource `name`, under the sync's client (closed after the last resource
        when the source runs on its own)."""
        scope, client, options = self.scope, self.client, self.options
        try:
            if name in scope.finished:
                return  # listed to the end earlier in this sync
            if name == EVENTS_TABLE and self.by_runs:
                yield from self._after_the_runs()
                if RUNS_TABLE not in scope.finished:
                    # its runs are not all listed yet (a backfill's next load lists on): the
                    # events are listed by the load that lists the last of them
                    logger.debug("task_run_events waits for task_runs to be listed to its end")
                    return
                say_what_events_follow(options, scope)
            if not scope.credentials_checked:
                client.check_credentials()
                scope.credentials_checked = True
            if name == RUNS_TABLE and scope.runs_listing_began is None:
                scope.runs_listing_began = time.monotonic()
            # Listing ahead pays only when another load of the same sync follows (`sync()`).
            producer = (
                None
                if self.standalone
                else scope.producer_for(name, options.workers, options.records_ahead())
            )
            load = self.loads[name](
                client, options, dlt.current.resource_state(), scope.stats, redact=self.redact,
                producer=producer,
            )
            yield from load.items()
            if not load.more_to_load:
                scope.finished.add(name)
                if name == RUNS_TABLE and self.by_runs:
                    state = load.state
                    elapsed = time.monotonic() - (scope.runs_listing_began or time.monotonic())
                    scope.events_follow = SelectedRuns(
                        # the runs handled, the open ones tracked, the quarantined ones retried
                        handled=scope.selected_runs | set(state.open_runs) | {
                            r["run_id"] for r in state.rejected.values()
                            if isinstance(r, dict) and isinstance(r.get("run_id"), str)
                        },
                        listed_to=runs_listing_began(
                            client.stats.clock.at_least(), timedelta(seconds=elapsed),
                            state.watermark,
                        ),
                        in_warehouse=scope.loaded_runs or current_pipeline_lookup(),
                    )
        finally:
            self.unfinished.discard(name)
            if self.standalone and not self.unfinished:
                scope.close()

    def _after_the_runs(self) -> Iterator[None]:
        """In a filtered sync, wait (yielding None: dlt takes task_runs' items meanwhile) until
        task_runs of this load has ended, so that every run it handles is known."""
        try:
            extracting = dlt.current.source().selected_resources
        except Exception:  # not extracted by dlt (a resource iterated on its own)
            extracting = {}
        while RUNS_TABLE in extracting and RUNS_TABLE in self.unfinished:
            yield None


def say_what_events_follow(options: SourceOptions, scope: SyncScope) -> None:
    """Once per sync, when status/outcome filters are set: which events those let in."""
    if not options.filters.selects_by_state or "events_by_state" in scope.said:
        return
    scope.said.add("events_by_state")
    logger.warning(
        "task_run_events follows the runs this sync selects, by id; status and outcome select"
        " runs by their current state, so it also holds the events of the open runs in scope"
        " that the sync tracks (they may yet reach a selected state), and a run that ends in"
        " another state keeps the events loaded while it was open. Join task_run_events to"
        " task_runs (task_run_id = id) to keep only the runs in the selected states."
    )
