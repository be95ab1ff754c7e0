"""What happens to each run Deck returns: checked, compared with what the warehouse holds, prepared.

A listed run is loaded when the warehouse does not hold this version of it yet. Versions are told
apart by a fingerprint of their content (`state.fingerprint`), not by `updated_at`: Deck has been
seen to change a run (status, errors) while keeping its `updated_at`. Fingerprints are computed
only where they are needed (open runs, runs in the lookback zone, runs already remembered), so a
backfill of final runs pays nothing for them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from deck.api.client import Page
from deck.core import records, settings
from deck.core.filters import Filters
from deck.core.state import UNKNOWN_FINGERPRINT, OpenRun, Plan, TaskRunState, fingerprint
from deck.core.stats import SyncStats
from deck.core.windows import Window, parse_timestamp

logger = logging.getLogger("deck")


def is_final(status: Any) -> bool:
    return status in settings.FINAL_STATUSES


def log_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        logger.warning("%s", warning)


def checked_page(page: Page, checks: list[records.Checked]) -> Page:
    """The page with only its loadable runs (fixed up); the rest is kept in `checks`."""
    checked = records.check_page(page.items)
    for rejection in checked.rejected:
        rejection.request_id = page.request_id
    log_warnings(checked.warnings)
    checks.append(checked)
    return Page(items=checked.runs, has_more=page.has_more, request_id=page.request_id)


def created_at_of(run: dict[str, Any]) -> datetime:
    """The created_at of a run that `records.check_page` accepted (so it parses)."""
    return parse_timestamp(run["created_at"])


def prepare(run: dict[str, Any]) -> dict[str, Any]:
    """The run as it is loaded (see `records.prepare`), its warnings logged."""
    warnings: list[str] = []
    records.prepare(run, warnings)
    log_warnings(warnings)
    return run


class RunTracker:
    """Which version of each run this load handled, and whether a run must be (re)loaded.

    `seen` maps run id -> fingerprint of the version handled in this load; open runs and their
    fingerprints live in `state.open_runs`, recent runs in the plan's `recent` zone.
    `open_seen` collects the ids of runs seen open in any load of the sync (`SyncScope.open_seen`),
    `selected` (None: not needed) the ids of every run handled (`SyncScope.selected_runs`).
    """

    def __init__(
        self,
        state: TaskRunState,
        filters: Filters,
        stats: SyncStats,
        lookback: Any,
        open_seen: set[str] | None = None,
        selected: set[str] | None = None,
    ) -> None:
        self.state = state
        self.filters = filters
        self.stats = stats
        self.lookback = lookback
        self.seen: dict[str, str] = {}
        self.open_seen = open_seen if open_seen is not None else set()
        self.selected = selected

    def accept(
        self, runs: list[dict[str, Any]], window: Window, plan: Plan, clock: datetime
    ) -> list[dict[str, Any]]:
        """The window's runs to load: new ones and changed ones, prepared; the plan's newest
        `created_at` and recent zone move along."""
        accepted: list[dict[str, Any]] = []
        open_runs = self.state.open_runs
        for run in runs:
            created_at = created_at_of(run)
            if not window.contains(created_at):
                continue
            run_id = run["id"]
            # The previous sync's zone too: `plan.see` drops it from the plan's own zone as soon
            # as a newer run is listed, and a backfill lists newest first, before the lookback.
            known = plan.recent.get(run_id) or self.state.recent.get(run_id)
            tracked = open_runs.get(run_id)
            needs_digest = (
                known is not None
                or tracked is not None
                or not is_final(run.get("status"))
                or plan.in_zone(created_at, self.lookback)
            )
            digest = fingerprint(run) if needs_digest else UNKNOWN_FINGERPRINT
            if digest and self.seen.get(run_id) == digest:
                continue  # this version was handled earlier in this load
            plan.see(run_id, created_at, digest, clock, self.lookback)
            was_loaded = known is not None or (tracked is not None and tracked.loaded)
            before = known.fingerprint if known else tracked.fingerprint if tracked else None
            selected = self.filters.matches(run)  # always, without state filters
            self.track(
                run_id, run.get("status"), created_at, digest, loaded=selected or was_loaded
            )
            if not (selected or was_loaded):
                # an open run listed only to be tracked (`Filters.listing_params`), or one
                # that ended in another state: not loaded, so not remembered as loaded
                plan.recent.pop(run_id, None)
                continue
            if was_loaded and digest and before == digest:
                continue  # a re-read (lookback, watermark) of a version already loaded
            if was_loaded:
                self.stats.updated_runs += 1
            else:
                self.stats.new_runs += 1
            accepted.append(run)
        return [prepare(r) for r in accepted]

    def track(
        self, run_id: str, status: Any, created_at: datetime, digest: str, loaded: bool
    ) -> None:
        """Remember which version of the run this load handled, and whether it is still open.

        `loaded` says whether the run has a row in the warehouse: with status/outcome filters, an
        open run may be tracked only to load it once it finishes in a selected state.
        """
        self.seen[run_id] = digest
        if self.selected is not None and (loaded or not is_final(status)):
            self.selected.add(run_id)  # its events follow: loaded, or open in scope
        open_runs = self.state.open_runs
        if is_final(status):
            open_runs.pop(run_id, None)
            return
        self.open_seen.add(run_id)
        previous = open_runs.get(run_id)
        open_runs[run_id] = OpenRun(
            created_at, digest, loaded or (previous is not None and previous.loaded)
        )

    def changed_and_selected(self, run: dict[str, Any], created_at: datetime) -> bool:
        """Track a re-checked run's new version; True when it must be (re)loaded.

        Compared by content: a run that turned `failed` while Deck kept its `updated_at` is a
        change like any other.
        """
        digest = fingerprint(run)
        if self.seen.get(run["id"]) == digest:
            return False
        previous = self.state.open_runs.get(run["id"])
        was_loaded = previous is not None and previous.loaded
        selected = self.filters.matches(run)
        self.track(run["id"], run.get("status"), created_at, digest, loaded=selected)
        if previous is not None and previous.fingerprint == digest:
            return False
        if not (selected or was_loaded):
            return False
        if was_loaded:
            self.stats.updated_runs += 1
        else:
            self.stats.new_runs += 1
        return True
