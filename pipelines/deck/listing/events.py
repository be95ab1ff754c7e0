"""`task_run_events`: every status change of every run, from Deck's `GET /events`.

A run's row in `task_runs` holds its latest state only; its history -- how long it sat queued,
waited on a user, sat in review -- is in the events Deck emits at each status change::

    {"id": "evt_4b1d...", "object": "event", "type": "task_run.running",
     "data": {"id": "trun_9d1e...", "object": "task_run", "status": "running", "result": null,
              "agent_id": "agt_7c...", "source_id": "src_02...", "task_id": "task_1f...",
              "created_at": "2026-01-01T12:00:00.123Z", "updated_at": "2026-01-01T12:00:04.000Z"},
     "created_at": "2026-01-01T12:00:04.000Z"}

Events never change, so a load only lists new ones: the same windows, lookback, clock guards,
parallel walk and rate budget as `task_runs` (`windowed.WindowedLoad`), and no re-checks. Each
event becomes one row (`event_row`): the event's `id`, `type`, `created_at`, then the run
summary's fields, `data.id` as `task_run_id`, `data.status` as `status` (as sent: spellings are
normalised in the SQL models), `data.created_at`/`updated_at` as `run_created_at`/`run_updated_at`.

Deck keeps events 30 days. A first sync therefore starts 30 days back; a connector not run for
longer than that leaves a hole, which is said (a warning) and recorded (`task_run_event_gaps`).

`GET /events` has no filters but the type. A filtered sync loads the events of the runs it
selected, by the run's id (`data.id`; `SelectedRuns`): Deck's run summary need not carry the
fields the filters name, and `search` matches a task's name, which no summary carries. Events
are listed once `task_runs` is listed to its end in the sync, so every run created before the
sync began listing runs (less the lookback) is decided: selected if this sync handled it or the
warehouse has its row (a backfill's runs may have loaded in earlier syncs), passed over
otherwise. An event whose run may have been created after that is listed again by the next
sync (`Plan.reread`); a run precedes its events, so only events that recent wait.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt

from deck.api.client import DeckClient
from deck.core import record_values, records, settings
from deck.core.errors import DeckPermanentError
from deck.core.options import SourceOptions
from deck.core.state import ListingState, Plan
from deck.core.stats import SyncStats
from deck.core.tables import EVENT_GAPS_TABLE, EVENTS_REJECTED_TABLE
from deck.core.windows import format_timestamp
from deck.listing.intake import created_at_of, log_warnings
from deck.listing.listed import ListedWindow
from deck.listing.planning import retention_gap
from deck.listing.producer import WindowProducer
from deck.listing.quarantine import quarantine_row
from deck.listing.windowed import WindowedLoad

logger = logging.getLogger("deck")

RETENTION = timedelta(days=settings.EVENT_RETENTION_DAYS)

# The run summary's fields that would collide with the event's own, and their column names.
_RENAMED = {
    "id": "task_run_id",
    "created_at": "run_created_at",
    "updated_at": "run_updated_at",
}
_DROPPED = frozenset({"object", "type"})  # "task_run", and never the event's own type



def is_task_run_event(event: dict[str, Any]) -> bool:
    """False only for events Deck names as another kind (`workflow.…`): those are not ours. An
    event with a missing or odd `type` is kept (its type stored as sent), never dropped."""
    kind = event.get("type")
    return not isinstance(kind, str) or kind.startswith(settings.TASK_RUN_EVENT_PREFIX)


def run_id_of_event(event: dict[str, Any]) -> str | None:
    """The id of the run an event is about (`data.id`), None when it names none."""
    data = event.get("data")
    return records.run_id_of(data) if isinstance(data, dict) else None


def event_row(event: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """The row of an event that `records.check_record` accepted (it has an id and a created_at,
    and its values are already safe for any writer): the run summary's fields beside the event's.
    """
    row: dict[str, Any] = {
        "id": event["id"],
        "type": event.get("type"),
        "created_at": event["created_at"],
    }
    data = event.get("data")
    if isinstance(data, dict):
        for key, value in data.items():
            if key not in _DROPPED:
                row[_RENAMED.get(key, key)] = value
        row["task_run_id"] = records.run_id_of(data)
        for name in ("run_created_at", "run_updated_at"):
            value = row.get(name)
            if value is not None:
                parsed = record_values.parse_api_timestamp(value)
                if parsed is None:
                    shown = record_values.short_text(value)
                    warnings.append(
                        f"Event {row['id']}: data.{name[4:]}={shown} is not an ISO 8601 timestamp;"
                        " stored as NULL."
                    )
                row[name] = record_values.format_api_timestamp(parsed) if parsed else None
    elif data is not None:
        warnings.append(
            f"Event {row['id']}: its data is a JSON {type(data).__name__}, not a task run;"
            " stored in column data_json."
        )
        row["data_json"] = record_values.raw_json(data)
    for name in ("type", *record_values.TEXT_FIELDS):
        value = row.get(name)
        if value is not None and type(value) is not str:
            row[name] = record_values.json_text(value)
    return records.prepare(row, warnings)


def runs_listing_began(
    agreed_clock: datetime | None, elapsed: timedelta, watermark: datetime | None
) -> datetime | None:
    """A moment Deck's clock had surely reached when a sync's task_runs began listing, known
    once it has listed to its end: the date Deck's answers agree on then (`DeckClock.at_least`,
    which one host ahead cannot move, and a `Date` drops its fraction) less the time the listing
    took on this machine; without agreeing answers, the newest run listed (created before its
    listing). Never a high estimate: an event is passed over only below this, less the lookback.
    """
    if agreed_clock is not None:
        return agreed_clock - elapsed
    return watermark


@dataclass
class SelectedRuns:
    """The runs a filtered sync selected, asked run by run for the events listed.

    `handled`: the runs this sync's task_runs handled and the open runs it tracks (they may yet
    reach a selected state), and the quarantined ones it retries. `listed_to`: a moment Deck's
    clock had reached as this sync's task_runs began listing, which it then did to its end
    (`runs_listing_began`): a matching run created more than the lookback before that was
    listed, one created later may not be. `in_warehouse` tells which ids have a `task_runs` row
    (the runs of earlier syncs); it raises when it cannot.
    """

    handled: set[str]
    listed_to: datetime | None
    in_warehouse: Callable[[Collection[str]], set[str]]
    _loaded: set[str] = field(default_factory=set, init=False)  # what the warehouse answered
    _not_loaded: set[str] = field(default_factory=set, init=False)
    unreadable: str | None = field(default=None, init=False)  # why it could not be asked
    warned: bool = field(default=False, init=False)  # its one warning said

    def look_up(self, run_ids: Collection[str]) -> None:
        """Ask the warehouse once about the runs not yet placed."""
        unknown = {
            r for r in run_ids
            if r not in self.handled and r not in self._loaded and r not in self._not_loaded
        }
        if not unknown or self.unreadable is not None:
            return
        try:
            found = self.in_warehouse(unknown)
        except Exception as exc:  # a destination without SQL, a file held too long
            self.unreadable = f"{type(exc).__name__}: {exc}"
            return
        self._loaded |= found
        self._not_loaded |= unknown - found

    def verdict(self, run_id: str, event_at: datetime, lookback: timedelta) -> bool | None:
        """True: load the event; False: pass over it for good; None: list it again next sync
        (its run may have been created after task_runs listed, since a run precedes its
        events). Where the warehouse cannot be asked, a decided event is kept (True)."""
        if run_id in self.handled or run_id in self._loaded:
            return True
        if self.listed_to is None or event_at >= self.listed_to - lookback:
            return None
        return self.unreadable is not None or run_id not in self._not_loaded


class EventLoad(WindowedLoad[ListingState]):
    """Yields what one load of `task_run_events` writes: event rows, a gap row when retention
    cut the history, and rows for events that cannot be placed."""

    noun = "events"

    def __init__(
        self,
        client: DeckClient,
        options: SourceOptions,
        raw_state: dict[str, Any],
        stats: SyncStats,
        *,
        redact: list[str],
        producer: WindowProducer | None = None,
        selected: SelectedRuns | None = None,
    ) -> None:
        # With filters, the events of the runs the sync selected (see the module docstring);
        # without, every event.
        if options.filters.values and selected is None:
            raise ValueError("a filtered sync's events need the runs it selected")
        self.selected = selected if options.filters.values else None
        super().__init__(
            client,
            options,
            raw_state,
            ListingState.load(raw_state),
            stats,
            list_pages=client.list_events,
            params={},
            filters_fingerprint=options.filters.fingerprint(),
            producer=producer,
        )
        self.redact = [r for r in redact if r]
        self.seen: set[str] = set()  # event ids handled in this load
        self._gap_rows: list[dict[str, Any]] = []

    def items(self) -> Iterator[Any]:
        """As for any listing; a Deck without `GET /events` (404 after the key check passed:
        an API version or plan without it) costs the events, never the runs."""
        try:
            yield from super().items()
        except DeckPermanentError as exc:
            if exc.status != 404:
                raise
            logger.warning(
                "Deck has no GET /events for this key (HTTP 404%s), so task_run_events was not"
                " loaded; task_runs loaded normally. Set events = false in [sources.deck] (or"
                " pass --no-events) if this organization's API has no events.",
                f", request_id {exc.request_id}" if exc.request_id else "",
            )
            self.stats.events_unavailable = True
            # No plan is left behind: the sync would take it for unfinished work and run load
            # after load for a resource it no longer lists. The next sync tries events again.
            self.state.plan = None
            self.state.save(self.raw_state)

    def _before_planning(self) -> None:
        # a moment Deck's clock has reached: a Date left out as wrong must not open a gap
        clock = self.client.stats.clock.passed()
        gap = retention_gap(self.state, clock, RETENTION)
        if gap is None:
            return
        assert gap.start is not None and gap.end is not None
        self.stats.event_gaps += 1
        logger.warning(
            "Task-run events from %s to %s are missing: the last sync of events reached %s and"
            " Deck keeps events only %d days. The lifecycle of runs active in that interval is"
            " incomplete (task_run_lifecycle.history_complete is false for them); the interval"
            " is recorded in %s. Sync at least every few days to keep the history whole.",
            format_timestamp(gap.start),
            format_timestamp(gap.end),
            format_timestamp(gap.start),
            settings.EVENT_RETENTION_DAYS,
            EVENT_GAPS_TABLE,
        )
        self._gap_rows.append({
            "gap_start": format_timestamp(gap.start),
            "gap_end": format_timestamp(gap.end),
            "detected_at": format_timestamp(datetime.now(timezone.utc)),
        })

    def _load_window(self, listed: ListedWindow, plan: Plan) -> Iterator[Any]:
        yield from self._recorded_gap()
        self.stats.windows += 1
        clock = self.clock()
        lookback = self.options.lookback
        warnings: list[str] = []
        if self.selected is not None:  # one question to the warehouse per window
            self.selected.look_up({
                run_id for page in listed.pages for event in page.items
                if (run_id := run_id_of_event(event)) is not None
            })
        for page in listed.pages:
            rows = []
            for event in page.items:
                created_at = created_at_of(event)
                event_id = event["id"]
                if not listed.window.contains(created_at) or event_id in self.seen:
                    continue
                self.seen.add(event_id)
                known = event_id in plan.recent  # loaded before: a re-read of the lookback
                plan.see(event_id, created_at, "", clock, lookback)
                if known or not is_task_run_event(event):
                    continue
                if self.selected is not None and not self._of_a_selected_run(
                    event, created_at, plan
                ):
                    continue
                rows.append(event_row(event, warnings))
            log_warnings(warnings)
            warnings.clear()
            self.loaded += len(rows)
            self.stats.new_events += len(rows)
            if rows:
                yield rows
        yield from self._rejected_rows(listed)

    def _of_a_selected_run(self, event: dict[str, Any], created_at: datetime, plan: Plan) -> bool:
        """Whether the event's run is one the sync selected; one that cannot be placed yet is
        listed again by the next sync (`Plan.reread`)."""
        assert self.selected is not None
        run_id = run_id_of_event(event)
        if run_id is None:
            return False  # not a run's event: nothing to follow
        verdict = self.selected.verdict(run_id, created_at, self.options.lookback)
        if verdict is None:
            plan.reread(event["id"], created_at)
            return False
        if verdict and self.selected.unreadable and not self.selected.warned:
            self.selected.warned = True  # once per sync: the object lives as long
            logger.warning(
                "task_run_events could not ask the warehouse which runs earlier syncs loaded"
                " (%s), so this filtered sync keeps every event whose run it cannot place; it"
                " may hold events of runs outside the filters. Join task_run_events to"
                " task_runs (task_run_id = id) to keep only the selected runs.",
                self.selected.unreadable,
            )
        return verdict

    def _after_listing(self) -> Iterator[Any]:
        yield from self._recorded_gap()  # when no window was listed (nothing new)

    def _recorded_gap(self) -> Iterator[Any]:
        """The gap row found when the plan was made, written with the load's first rows."""
        if self._gap_rows:
            yield dlt.mark.with_table_name(self._gap_rows, EVENT_GAPS_TABLE)
            self._gap_rows = []

    def _rejected_rows(self, listed: ListedWindow) -> Iterator[Any]:
        """Events without a usable id or created_at: kept whole, never dropped. Events do not
        change, so they are not retried; the rows stay for someone to look at."""
        if not listed.rejected:
            return
        now = format_timestamp(datetime.now(timezone.utc))
        rows = []
        for rejection in listed.rejected:
            row = quarantine_row(rejection, now, now, self.redact)
            row["event_id"] = row.pop("run_id")
            rows.append(row)
            self.stats.quarantined += 1
            logger.warning(
                "Quarantined an event Deck returned%s: %s It is kept whole in %s; the events"
                " after it load normally.",
                f" (request_id {rejection.request_id})" if rejection.request_id else "",
                row["reason"],
                EVENTS_REJECTED_TABLE,
            )
        yield dlt.mark.with_table_name(rows, EVENTS_REJECTED_TABLE)
