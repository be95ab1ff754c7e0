"""Records Deck returned that cannot be placed: kept whole in `task_runs_rejected`, retried.

A record without a usable `id` or `created_at` cannot be merged or put in a window, but it must
not stop the runs after it either. It goes to the quarantine table (one row per distinct record,
merged on a hash of its raw JSON) and state remembers the narrow `created_at` range that must hold
it (between its neighbours on its page). The next sync lists that range again: once the record
comes back loadable it is loaded like any new run and its row is deleted (dlt's `hard_delete`),
so the table always holds what is broken now.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import dlt

from deck.api.client import DeckClient
from deck.core import records
from deck.core.filters import Filters
from deck.core.records import Rejection
from deck.core.redact import scrub, scrub_optional
from deck.core.state import TaskRunState
from deck.core.stats import SyncStats
from deck.core.tables import REJECTED_TABLE
from deck.core.windows import ONE_US, Window, after, format_timestamp, parse_timestamp
from deck.listing.intake import RunTracker, checked_page, created_at_of, prepare
from deck.listing.walker import locate

logger = logging.getLogger("deck")

# Quarantined records retried at later syncs; beyond this the oldest stop being retried.
MAX_REJECTED_TRACKED = 100


def quarantine_row(
    rejection: Rejection, first_seen: str, now: str, redact: list[str]
) -> dict[str, Any]:
    """The row of a rejected record: kept whole, with the API key (should a server echo it)
    never written to the warehouse (`redact.scrub`, which also knows `redact`)."""
    return {
        "key": rejection.key,
        "run_id": rejection.run_id,
        "reason": scrub(rejection.reason, *redact),
        "raw_json": scrub(rejection.raw, *redact),
        "request_id": scrub_optional(rejection.request_id),
        "first_seen_at": first_seen,
        "last_seen_at": now,
    }


class Quarantine:
    """The quarantine of one load: rows for rejected records, and their retry at the next sync.

    `state.rejected` maps a row key to {first_seen, range, known, run_id}: `range` is the
    created_at range [after, before] re-listed at the next sync (None for a run fetched by id,
    which is fetched again as an open run), `known` the ids listed in that range before.
    """

    def __init__(
        self,
        client: DeckClient,
        filters: Filters,
        state: TaskRunState,
        stats: SyncStats,
        tracker: RunTracker,
        redact: list[str],
    ) -> None:
        self.client = client
        self.filters = filters
        self.state = state
        self.stats = stats
        self.tracker = tracker
        self.redact = [r for r in redact if r]  # never written into the quarantine table
        self.rejected_now: set[str] = set()  # keys of records rejected in this load

    def rows(self, rejections: list[Rejection], by_id: bool = False) -> Iterator[Any]:
        """Rows for `task_runs_rejected`, and the state to retry each record at the next sync."""
        if not rejections:
            return
        now = format_timestamp(datetime.now(timezone.utc))
        entries = self.state.rejected
        rows = []
        for rejection in rejections:
            entry = entries.get(rejection.key)
            if entry is None:
                entry = entries[rejection.key] = {
                    "first_seen": now,
                    "range": None
                    if by_id
                    else [
                        format_timestamp(rejection.after) if rejection.after else None,
                        format_timestamp(rejection.before) if rejection.before else None,
                    ],
                    "known": rejection.known,
                    "run_id": rejection.run_id,
                }
            row = quarantine_row(rejection, entry["first_seen"], now, self.redact)
            if rejection.key not in self.rejected_now:
                self.rejected_now.add(rejection.key)
                self.stats.quarantined += 1
                logger.warning(
                    "Quarantined a task run Deck returned%s: %s It is kept whole in %s and"
                    " retried at the next sync; the runs after it load normally.",
                    f" (request_id {rejection.request_id})" if rejection.request_id else "",
                    row["reason"],
                    REJECTED_TABLE,
                )
            rows.append(row)
        self._bound(entries)
        yield dlt.mark.with_table_name(rows, REJECTED_TABLE)

    def _bound(self, entries: dict[str, dict[str, Any]]) -> None:
        if len(entries) <= MAX_REJECTED_TRACKED:
            return
        oldest = sorted(entries, key=lambda k: entries[k]["first_seen"])
        dropped = oldest[: len(entries) - MAX_REJECTED_TRACKED]
        for key in dropped:
            del entries[key]
        logger.warning(
            "More than %d task runs are in %s: the %d seen first are no longer retried (their rows"
            " stay until Deck returns them again).",
            MAX_REJECTED_TRACKED,
            REJECTED_TABLE,
            len(dropped),
        )

    def retry(self) -> Iterator[Any]:
        """Re-list the range of every record quarantined by an earlier sync.

        A record that comes back loadable is loaded like any new run (it is the run in its range
        that is not one of the `known` ones listed there before) and its quarantine row is
        deleted; one still broken stays. A run fetched by id is retried as an open run instead.
        """
        entries = self.state.rejected
        groups: dict[tuple[str | None, str | None], list[str]] = {}
        resolved: list[str] = []
        for key, entry in entries.items():
            if key in self.rejected_now or entry.get("range") is None:
                continue  # rejected again in this load / see resolve_fetched_by_id
            groups.setdefault(tuple(entry["range"]), []).append(key)
        for (lower, upper), keys in groups.items():
            # [lower, upper] are its neighbours' printed created_at: the range ends after every
            # run that may share the upper one's printed instant (`windows.after`).
            window = Window(
                parse_timestamp(lower) if lower else None,
                after(parse_timestamp(upper)) if upper else None,
            )
            # the range itself, inclusive: a run found for a record without an id lies in it
            inside = Window(window.start, parse_timestamp(upper) + ONE_US if upper else None)
            known = {run_id for key in keys for run_id in entries[key]["known"]}
            # A record that had an id is looked for by it; one without, as the run in its range
            # that was not listed there before.
            wanted = {entries[key]["run_id"] for key in keys} - {None}
            anonymous = any(entries[key]["run_id"] is None for key in keys)
            found: set[str] = set()
            checks: list[records.Checked] = []
            for page in self.client.list_task_runs({**self.filters.params(), **window.params()}):
                page = checked_page(page, checks)
                batch: list[dict[str, Any]] = []
                for run in page.items:
                    # A run with a wanted id is a candidate wherever Deck lists it; one for a record
                    # without an id must lie in the record's range (the request reaches further).
                    run_id = run["id"]
                    if run_id in known or not (
                        run_id in wanted or anonymous and inside.contains(created_at_of(run))
                    ):
                        continue
                    found.add(run_id)
                    if run_id in self.tracker.seen:
                        continue  # loaded by this load already (the lookback, say)
                    if self.tracker.changed_and_selected(run, created_at_of(run)):
                        batch.append(prepare(run))
                if batch:
                    yield batch
            yield from self.rows(locate(window, checks))
            # Only what came back leaves the quarantine; the rest is retried at the next sync.
            resolved += [
                key
                for key in keys
                if key not in self.rejected_now
                and (
                    entries[key]["run_id"] in found
                    or (entries[key]["run_id"] is None and found - wanted)
                )
            ]
        yield from self._resolve(resolved)

    def resolve_fetched_by_id(self) -> Iterator[Any]:
        """A run quarantined when fetched by id stays an open run and is fetched again; it leaves
        the quarantine once this sync saw it loadable, or when it is no longer an open run."""
        open_runs = self.state.open_runs
        yield from self._resolve(
            [
                key
                for key, entry in self.state.rejected.items()
                if entry.get("range") is None
                and key not in self.rejected_now
                and (
                    entry.get("run_id") in self.tracker.seen
                    or entry.get("run_id") not in open_runs
                )
            ]
        )

    def _resolve(self, keys: list[str]) -> Iterator[Any]:
        """Delete the quarantine rows of records that came back loadable (or, fetched by id,
        are gone)."""
        if not keys:
            return
        for key in keys:
            self.state.rejected.pop(key, None)
        logger.info(
            "%d quarantined task run(s) came back loadable or gone; removed from %s",
            len(keys),
            REJECTED_TABLE,
        )
        yield dlt.mark.with_table_name(
            [{"key": key, "resolved": True} for key in keys], REJECTED_TABLE
        )
