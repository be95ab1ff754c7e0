"""The event log behind ``GET /events``: one event per status change of a run.

Deck keeps events 30 days and the benchmarks seed up to 500k runs (about 3.5 events each), so
an event is stored as a 6-tuple ``(created ms, id number, run id, status, result, runtime_ms)``
whose strings and values are shared with the run, and the served ``data`` (the run summary) is
built from the run's current static fields only when a page is served. The id is kept as its
96-bit number (``evt_`` + 24 hex digits when served: the same order, half the memory of the
string). The list is kept in keyset order (created ms, id), like the runs' index, so a page is
a bisect and a slice. Raw events (``add_raw_event``) sit in the same list as ``(created ms, id
number, None, None, None, None)`` with their JSON value kept aside.

Spellings (FACTS.md: older pages say ``pending`` and ``cancelling``) are drawn per event from a
generator of its own, so the runs a seed yields stay exactly what they were before events.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from .keyset import EVERYTHING, Window, keyset_range
from .times import MS_PER_DAY, fmt_ms

EVENT_TYPES = frozenset(
    "task_run." + s
    for s in (
        "queued",
        "running",
        "pending",
        "completed",
        "failed",
        "canceling",
        "canceled",
        "interaction_required",
    )
)
"""The documented task-run event types (FACTS.md); review is ``task_run.pending``."""
TYPE_SPELLINGS = {
    "task_run.canceling": frozenset({"task_run.canceling", "task_run.cancelling"}),
    "task_run.cancelling": frozenset({"task_run.canceling", "task_run.cancelling"}),
}
"""Filter values that match more than their own spelling (both cancel spellings are served)."""
FILTER_TYPES = EVENT_TYPES | {"task_run.cancelling"}
"""What the ``type[]`` filter accepts: the documented types and the older cancel spelling."""
LEGACY_EVENT_FRACTION = 0.30
"""Share of review / canceling events served with the older status spelling."""
_LEGACY_SPELLING = {"review_required": "pending", "canceling": "cancelling"}
_TYPE_OF_STATUS = {"review_required": "task_run.pending"}
_STATUSES_OF_TYPE = {
    "task_run.pending": frozenset({"review_required", "pending"}),
    "task_run.canceling": frozenset({"canceling", "cancelling"}),
    "task_run.cancelling": frozenset({"canceling", "cancelling"}),
}
Entry = tuple[int, int, Any, Any, Any, Any]
_HEX = frozenset("0123456789abcdef")


def event_id(number: int) -> str:
    """The served id of an id number: ``evt_`` + 24 hex digits, ordered as the numbers are."""
    return f"evt_{number:024x}"


def id_number(event_id: str) -> int | None:
    """The id number of a served id (a cursor's position or a raw-event handle), or None."""
    digits = event_id.removeprefix("evt_")
    if len(event_id) != 28 or len(digits) != 24 or not set(digits) <= _HEX:
        return None
    return int(digits, 16)


def event_type(status: Any) -> str:
    """``task_run.<status>``, except review (any spelling) which Deck types ``task_run.pending``.

    A status outside the documented set (a test's hostile run) gives ``task_run.<that>``."""
    if isinstance(status, str):
        return _TYPE_OF_STATUS.get(status) or "task_run." + status
    return "task_run." + str(status)


def statuses_for_types(types: frozenset[str]) -> frozenset[str]:
    """Served ``data.status`` values whose events have one of these (filter) types."""
    out: set[str] = set()
    for t in types:
        out |= _STATUSES_OF_TYPE.get(t, {t.removeprefix("task_run.")})
    return frozenset(out)


class EventLog:
    """Every event emitted, in keyset order, plus the retention window that limits serving."""

    def __init__(self, seed: int, retention_days: float) -> None:
        self.rng = random.Random(f"deck-simulator-events:{seed}")
        self.retention_days = retention_days
        self.entries: list[Entry] = []
        """(created ms, id, run id, status, result, runtime_ms), sorted lazily by (ms, id)."""
        self.raw: dict[int, Any] = {}
        """Raw event's id number -> the JSON value served verbatim."""
        self.keep_from: int | None = None
        self.summary_omits: frozenset[str] = frozenset()
        """Run fields left out of the served summary (``DeckSimulator.event_summary_omits``)."""
        """While seeding: events before this instant are drawn but not stored (never served)."""
        self._sorted = True

    def cutoff(self, now_ms: int) -> int:
        """The oldest instant still served: events created before it have expired."""
        return now_ms - round(self.retention_days * MS_PER_DAY)

    def emit(self, t: int, run_id: str, status: Any, result: Any, runtime: Any) -> None:
        """Record the status change of ``run_id`` at ``t`` (epoch ms).

        Draws exactly the same numbers whether or not the event is stored, so what a seed
        yields does not depend on the retention setting."""
        rng = self.rng
        bits = rng.getrandbits(96)
        if (status == "review_required" or status == "canceling") and (
            rng.random() < LEGACY_EVENT_FRACTION
        ):
            status = _LEGACY_SPELLING[status]
        if self.keep_from is not None and t < self.keep_from:
            return
        entries = self.entries
        if self._sorted and entries:
            last = entries[-1]
            if t < last[0] or (t == last[0] and bits < last[1]):
                self._sorted = False
        entries.append((t, bits, run_id, status, result, runtime))

    def add_raw(self, record: Any, t: int) -> str:
        """Serve ``record`` verbatim at keyset position ``t``; returns its handle (the id its
        position has in cursors)."""
        number = self.rng.getrandbits(96)
        self.raw[number] = record
        self.entries.append((t, number, None, None, None, None))
        self._sorted = False
        return event_id(number)

    def replace_raw(self, handle: str, record: Any) -> None:
        number = id_number(handle)
        if number is None or number not in self.raw:
            raise KeyError(handle)
        self.raw[number] = record

    def index(self) -> list[Entry]:
        """The entries in keyset order (appends out of order are merged here, once).

        A plain tuple sort: ids are unique, so comparisons never go past (ms, id); timsort
        merges a sorted list and a short unsorted tail in about linear time."""
        if not self._sorted:
            self.entries.sort()
            self._sorted = True
        return self.entries

    def served(self, now_ms: int) -> list[Entry]:
        """Entries within retention, in keyset order (raw ones included)."""
        entries = self.index()
        return entries[keyset_range(entries, EVERYTHING, "asc", None, self.cutoff(now_ms)).start :]

    def select(
        self,
        now_ms: int,
        window: Window,
        order: str,
        after_key: tuple[int, Any] | None,
        limit: int,
        match: Callable[[Entry], bool] | None,
    ) -> tuple[list[Entry], bool]:
        """One keyset page of entries within retention, and whether more match after it."""
        entries = self.index()
        indices = keyset_range(entries, window, order, after_key, self.cutoff(now_ms))
        keep = window.keep
        if keep is not None:
            match = keep if match is None else _both(keep, match)
        if match is None:
            chosen = indices[: limit + 1]
            return [entries[i] for i in chosen[:limit]], len(chosen) > limit
        page: list[Entry] = []
        for i in indices:
            entry = entries[i]
            if match(entry):
                if len(page) == limit:
                    return page, True
                page.append(entry)
        return page, False

    def render(self, entry: Entry, runs: dict[str, Any]) -> Any:
        """The event as served; the run summary comes from the run's fields as served now::

            {"id": "evt_5c0f…", "object": "event", "type": "task_run.completed",
             "data": {"id": "trun_9a1e…", "object": "task_run", "status": "completed",
                      "result": "success", "task_id": "task_…", "credential_id": "cred_…",
                      "agent_id": "agt_…", "source_id": "src_…", "workflow_id": "wflo_…",
                      "runtime_ms": 48211, "created_at": "2025-12-30T08:00:00.000Z",
                      "updated_at": "2025-12-30T08:00:51.119Z"},
             "created_at": "2025-12-30T08:00:51.119Z"}

        ``workflow_id`` only when the run has the field (newer API versions); ``updated_at`` is
        the event's own time."""
        t, eid, run_id, status, result, runtime = entry
        if run_id is None:
            return self.raw[eid]
        run = runs[run_id]
        at = fmt_ms(t)
        data: dict[str, Any] = {
            "id": run.get("id"),
            "object": run.get("object"),
            "status": status,
            "result": result,
            "task_id": run.get("task_id"),
            "credential_id": run.get("credential_id"),
            "agent_id": run.get("agent_id"),
            "source_id": run.get("source_id"),
        }
        if "workflow_id" in run:
            data["workflow_id"] = run["workflow_id"]
        data["runtime_ms"] = runtime
        data["created_at"] = run.get("created_at")
        data["updated_at"] = at
        for name in self.summary_omits:
            data.pop(name, None)
        return {
            "id": event_id(eid),
            "object": "event",
            "type": event_type(status),
            "data": data,
            "created_at": at,
        }

    def matcher(self, types: frozenset[str]) -> Callable[[Entry], bool] | None:
        """A predicate on entries for the ``type[]`` filter, or None when every event matches.

        Both cancel spellings match either filter value; a raw event matches by its own
        ``type`` field (a non-object raw event matches no type)."""
        if not types:
            return None
        statuses = statuses_for_types(types)
        wanted_types = frozenset().union(*(TYPE_SPELLINGS.get(t, {t}) for t in types))
        raw = self.raw

        def match(entry: Entry) -> bool:
            if entry[2] is None:
                record = raw[entry[1]]
                kind = record.get("type") if isinstance(record, dict) else None
                return isinstance(kind, str) and kind in wanted_types
            status = entry[3]
            return isinstance(status, str) and status in statuses

        return match


def _both(
    first: Callable[[Entry], bool], second: Callable[[Entry], bool]
) -> Callable[[Entry], bool]:
    return lambda entry: first(entry) and second(entry)
