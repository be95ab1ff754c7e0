"""Reference (oracle) for the event-based SQL models, in plain Python.

Written independently of the SQL in pipelines/deck/warehouse/models/ and of deck.core.settings, from
the rules the models document, so that a test can compare the warehouse's views with what these
functions compute from the same events (for instance the simulator's own event log):

    intervals = lifecycle_of(events)            # ~ task_run_status_history (Interval.as_row())
    runs = lifecycles(events)                   # ~ task_run_lifecycle, by task_run_id
    days = daily_waits(events, now=...)         # ~ daily_task_run_waits, by (day, agent, source)

`events` are task_run_events rows (dicts with the table's columns: id, type, created_at,
task_run_id, status, run_created_at, agent_id, source_id, task_id, ...) or events as `GET /events`
returns them (`{id, type, data: {...}, created_at}`); times may be datetimes or ISO-8601 strings.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

FINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
# FACTS.md: older pages spell `cancelling`, and `pending` where newer ones say `review_required`.
LEGACY_SPELLINGS = {"pending": "review_required", "cancelling": "canceling"}
TYPE_PREFIX = "task_run."
# Within one created_at a run's events follow the lifecycle (Deck sends e.g. queued and running of
# a run created running in one millisecond, with random ids); a status not listed sits between
# running and canceling. Only then do ids decide.
LIFECYCLE_RANK = {
    "queued": 0, "running": 1, "interaction_required": 2, "review_required": 2,
    "canceling": 3, "completed": 4, "failed": 4, "canceled": 4,
}
UNLISTED_RANK = 2
STUCK_AFTER_S = 3600.0


@dataclass(frozen=True)
class Interval:
    """One status interval of one run (a row of task_run_status_history)."""

    task_run_id: str
    interval_index: int
    event_id: str
    status: str
    entered_at: datetime
    left_at: datetime | None
    agent_id: str | None
    source_id: str | None
    task_id: str | None
    run_created_at: datetime | None

    @property
    def seconds_in_status(self) -> float | None:
        return None if self.left_at is None else seconds(self.entered_at, self.left_at)

    @property
    def is_current(self) -> bool:
        return self.left_at is None

    def as_row(self) -> dict[str, Any]:
        """The interval as task_run_status_history returns it (same column names)."""
        return {
            "task_run_id": self.task_run_id, "agent_id": self.agent_id,
            "source_id": self.source_id, "task_id": self.task_id, "status": self.status,
            "entered_at": self.entered_at, "left_at": self.left_at,
            "seconds_in_status": self.seconds_in_status, "is_current": self.is_current,
            "interval_index": self.interval_index, "event_id": self.event_id,
        }


@dataclass(frozen=True)
class RunLifecycle:
    """One run's lifecycle (a row of task_run_lifecycle, plus current_since and interactions)."""

    task_run_id: str
    agent_id: str | None
    source_id: str | None
    task_id: str | None
    run_created_at: datetime | None
    current_status: str
    current_since: datetime
    is_final: bool
    queued_seconds: float | None
    running_seconds: float
    interaction_seconds: float
    review_seconds: float
    canceling_seconds: float
    interactions: int
    total_seconds: float | None
    transitions: int
    history_complete: bool


@dataclass(frozen=True)
class DailyWaits:
    """One (day, agent_id, source_id) row of daily_task_run_waits."""

    runs: int
    p50_queue_seconds: float | None
    p95_queue_seconds: float | None
    p50_interaction_seconds: float | None
    p95_interaction_seconds: float | None
    stuck_runs: int


def as_time(value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime or an ISO-8601 string (`Z` accepted)."""
    if value is None or isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def event_row(event: Mapping[str, Any]) -> dict[str, Any]:
    """A `GET /events` event as its task_run_events row: data.id -> task_run_id, data.status as
    sent -> status, data.created_at -> run_created_at, the run's ids as they are."""
    if "data" not in event:
        return dict(event)
    data = event.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    return {
        "id": event.get("id"),
        "type": event.get("type"),
        "created_at": event.get("created_at"),
        "task_run_id": data.get("id"),
        "status": data.get("status"),
        "run_created_at": data.get("created_at"),
        "run_updated_at": data.get("updated_at"),
        "agent_id": data.get("agent_id"),
        "source_id": data.get("source_id"),
        "task_id": data.get("task_id"),
        "credential_id": data.get("credential_id"),
        "workflow_id": data.get("workflow_id"),
        "result": data.get("result"),
        "runtime_ms": data.get("runtime_ms"),
    }


def event_status(row: Mapping[str, Any]) -> str | None:
    """data.status when sent (non-empty), else the type's suffix; old spellings read as new."""
    status = row.get("status") or None
    if status is None:
        kind = row.get("type") or ""
        status = kind[len(TYPE_PREFIX) :] if kind.startswith(TYPE_PREFIX) else None
        status = status or None
    return LEGACY_SPELLINGS.get(status, status) if status is not None else None


def status_rank(status: str) -> int:
    """A normalised status's place in the lifecycle, which orders events sharing a timestamp."""
    return LIFECYCLE_RANK.get(status, UNLISTED_RANK)


def _usable(events: Iterable[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events by run, each with its status and parsed times, in (created_at, lifecycle rank of
    the normalised status, id) order; events without a run id, a time or a status are dropped."""
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for raw in events:
        row = event_row(raw)
        status = event_status(row)
        created = as_time(row.get("created_at"))
        if row.get("task_run_id") is None or created is None or status is None:
            continue
        by_run[row["task_run_id"]].append(
            {**row, "status": status, "created_at": created,
             "run_created_at": as_time(row.get("run_created_at"))}
        )
    for run_events in by_run.values():
        # Python compares str by code point, which is the byte order of UTF-8 (COLLATE "C").
        run_events.sort(key=lambda e: (e["created_at"], status_rank(e["status"]), e["id"]))
    return by_run


def _latest(run_events: list[dict[str, Any]], column: str) -> Any:
    """The latest non-None value of a column among a run's (sorted) events."""
    return next((e[column] for e in reversed(run_events) if e[column] is not None), None)


def lifecycle_of(events: Iterable[Mapping[str, Any]]) -> list[Interval]:
    """Every run's status intervals, ordered by (task_run_id, interval_index)."""
    out: list[Interval] = []
    for run_id, run_events in sorted(_usable(events).items()):
        attrs = {c: _latest(run_events, c) for c in
                 ("agent_id", "source_id", "task_id", "run_created_at")}
        starts = [e for i, e in enumerate(run_events)
                  if i == 0 or e["status"] != run_events[i - 1]["status"]]
        for index, start in enumerate(starts):
            left = starts[index + 1]["created_at"] if index + 1 < len(starts) else None
            out.append(Interval(run_id, index, start["id"], start["status"],
                                start["created_at"], left, **attrs))
    return out


def summarise(intervals: list[Interval]) -> RunLifecycle:
    """One run's lifecycle from its intervals (in interval_index order)."""
    first, last = intervals[0], intervals[-1]
    created = first.run_created_at

    def closed(status: str) -> list[float]:
        return [i.seconds_in_status for i in intervals
                if i.status == status and not i.is_current]  # type: ignore[misc]

    running = [i.entered_at for i in intervals if i.status == "running"]
    is_final = last.status in FINAL_STATUSES
    return RunLifecycle(
        task_run_id=first.task_run_id,
        agent_id=first.agent_id,
        source_id=first.source_id,
        task_id=first.task_id,
        run_created_at=created,
        current_status=last.status,
        current_since=last.entered_at,
        is_final=is_final,
        queued_seconds=seconds(created, running[0]) if running and created else None,
        running_seconds=sum(closed("running")),
        interaction_seconds=sum(closed("interaction_required")),
        review_seconds=sum(closed("review_required")),
        canceling_seconds=sum(closed("canceling")),
        interactions=len(closed("interaction_required")),
        total_seconds=seconds(created, last.entered_at) if is_final and created else None,
        transitions=len(intervals) - 1,
        history_complete=any(i.status == "queued" for i in intervals),
    )


def lifecycles(events: Iterable[Mapping[str, Any]]) -> dict[str, RunLifecycle]:
    """Every run's lifecycle, by task_run_id."""
    by_run: dict[str, list[Interval]] = defaultdict(list)
    for interval in lifecycle_of(events):
        by_run[interval.task_run_id].append(interval)
    return {run_id: summarise(intervals) for run_id, intervals in by_run.items()}


def percentile_cont(values: list[float], p: float) -> float | None:
    """SQL's percentile_cont: linear interpolation between the closest ranks, p*(n-1)."""
    if not values:
        return None
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def utc_day(moment: datetime | None) -> date | None:
    return None if moment is None else moment.astimezone(timezone.utc).date()


def daily_waits(
    events: Iterable[Mapping[str, Any]],
    now: datetime,
    stuck_after_s: float = STUCK_AFTER_S,
) -> dict[tuple[date | None, str | None, str | None], DailyWaits]:
    """daily_task_run_waits as of `now`, by (UTC day of run_created_at, agent_id, source_id)."""
    groups: dict[tuple[Any, ...], list[RunLifecycle]] = defaultdict(list)
    for run in lifecycles(events).values():
        groups[(utc_day(run.run_created_at), run.agent_id, run.source_id)].append(run)
    out = {}
    for key, runs in groups.items():
        queued = [r.queued_seconds for r in runs if r.queued_seconds is not None]
        waited = [r.interaction_seconds for r in runs if r.interactions > 0]
        out[key] = DailyWaits(
            runs=len(runs),
            p50_queue_seconds=percentile_cont(queued, 0.5),
            p95_queue_seconds=percentile_cont(queued, 0.95),
            p50_interaction_seconds=percentile_cont(waited, 0.5),
            p95_interaction_seconds=percentile_cont(waited, 0.95),
            stuck_runs=sum(
                not r.is_final and seconds(r.current_since, now) > stuck_after_s for r in runs
            ),
        )
    return out


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-3)
    return a == b


def assert_lifecycle_models_match(
    rows: Callable[[str], list[dict[str, Any]]],
    events: Iterable[Mapping[str, Any]],
    now: datetime,
) -> None:
    """The three lifecycle views (read with `rows(view)`) equal the oracle over these events
    (the simulator's event log): every interval, every run's lifecycle, every daily group."""
    events = list(events)
    history = {(r["task_run_id"], r["interval_index"]): r for r in rows("task_run_status_history")}
    expected = {(i.task_run_id, i.interval_index): i.as_row() for i in lifecycle_of(events)}
    assert history.keys() == expected.keys(), (
        f"{len(history.keys() - expected.keys())} extra, "
        f"{len(expected.keys() - history.keys())} missing intervals"
    )
    wrong = [
        (key, name, history[key][name], want[name])
        for key, want in expected.items()
        for name in want
        if not _close(history[key][name], want[name])
    ]
    assert not wrong, f"{len(wrong)} history values differ, e.g. {wrong[:3]}"

    runs = {r["task_run_id"]: r for r in rows("task_run_lifecycle")}
    want_runs = lifecycles(events)
    assert runs.keys() == want_runs.keys()
    wrong = [
        (run_id, name, runs[run_id][name], value)
        for run_id, run in want_runs.items()
        for name, value in vars(run).items()
        if name in runs[run_id] and not _close(runs[run_id][name], value)
    ]
    assert not wrong, f"{len(wrong)} lifecycle values differ, e.g. {wrong[:3]}"

    daily = {(r["day"], r["agent_id"], r["source_id"]): r for r in rows("daily_task_run_waits")}
    want_daily = daily_waits(events, now)
    assert daily.keys() == want_daily.keys()
    wrong = [
        (key, name, daily[key][name], value)
        for key, group in want_daily.items()
        for name, value in vars(group).items()
        if not _close(daily[key][name], value)
    ]
    assert not wrong, f"{len(wrong)} daily values differ, e.g. {wrong[:3]}"
