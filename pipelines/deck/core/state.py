"""What `task_runs` remembers between syncs, typed, and the one place that reads and writes it.

dlt keeps a resource's state as a JSON-like dict that is committed with each load. This module
turns that dict into dataclasses and back, so the rest of the code never indexes positional lists
or compares sentinel strings. Old layouts (before `version` 2: open runs as
`[created_at, updated_at, loaded]`, boundary runs as `{id: updated_at}`, `"-inf"`) are read and
upgraded; their runs get an unknown fingerprint, so each is reloaded once and then compared by
content.

Layout (version 2)::

    {"version": 2, "filters": "[('agent_id', 'agt_1')]",
     "watermark": "2026-11-01T10:00:00.123000Z",   # newest created_at listed, <= Deck's clock
     "watermark_vouched": true,                     # Deck's agreed clock had passed it
     "covered_from": null,                          # lower bound listed; null = all history
     "recent": {"trun_1": {"created_at": "...", "fingerprint": "9f2c..."}},   # lookback zone
     "open_runs": {"trun_2": {"created_at": "...", "fingerprint": "...", "loaded": true}},
     "plan": {...}}                                 # only while a backfill spans loads
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar

from deck.core.windows import Window, format_timestamp, lookback_start, parse_timestamp

STATE_VERSION = 2
UNKNOWN_FINGERPRINT = ""
T = TypeVar("T")
# What reading a value of another layout raises (a string where a dict was, a missing key...)
_UNREADABLE = (KeyError, TypeError, ValueError, AttributeError, IndexError)
_TIMESTAMPS = ("watermark", "covered_from")


class SavedStateError(ValueError):
    """A value of the saved state that this code cannot read: the state was damaged (edited
    by hand, a disk fault) or written by something else. `field` names it in the state."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field} {problem}")


def _read(field: str, value: Any, read: Callable[[Any], T]) -> T:
    """`read(value)`, or SavedStateError naming `field` when the value is not readable."""
    try:
        return read(value)
    except SavedStateError:
        raise
    except _UNREADABLE as exc:
        if field in _TIMESTAMPS:
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise SavedStateError(field, f"= {shown} is not an ISO 8601 timestamp") from exc
        raise SavedStateError(
            field, f"is not in the layout this connector saves ({type(exc).__name__}: {exc})"
        ) from exc


def fingerprint(run: dict[str, Any]) -> str:
    """A short digest of a run's whole content, as Deck sent it.

    Change detection by content rather than by `updated_at`: Deck has been seen to change a run
    (status, errors) while keeping its `updated_at`. Any field counts, new fields included.
    """
    text = json.dumps(run, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.blake2b(text.encode("ascii"), digest_size=8).hexdigest()


@dataclass
class SeenRun:
    """A version of a run that the warehouse holds (or that was handled in this sync)."""

    created_at: datetime
    fingerprint: str

    def to_state(self) -> dict[str, Any]:
        return {"created_at": format_timestamp(self.created_at), "fingerprint": self.fingerprint}

    @classmethod
    def from_state(cls, value: Any) -> SeenRun:
        return cls(parse_timestamp(value["created_at"]), str(value.get("fingerprint", "")))


@dataclass
class OpenRun:
    """A run last seen in a non-final status. `loaded` is False when filters on status/outcome
    track it only to load it once it finishes in a selected state."""

    created_at: datetime
    fingerprint: str
    loaded: bool

    def to_state(self) -> dict[str, Any]:
        return {
            "created_at": format_timestamp(self.created_at),
            "fingerprint": self.fingerprint,
            "loaded": self.loaded,
        }

    @classmethod
    def from_state(cls, value: Any) -> OpenRun:
        if isinstance(value, list):  # version 1: [created_at, updated_at, loaded]
            return cls(parse_timestamp(value[0]), UNKNOWN_FINGERPRINT, bool(value[2]))
        return cls(
            parse_timestamp(value["created_at"]), str(value["fingerprint"]), bool(value["loaded"])
        )


@dataclass
class Plan:
    """The windows a range still needs, kept from the first load of a sync to its last.

    `windows` are not yet listed (ascending, cut further as they are listed). `max_seen` is the
    newest `created_at` listed so far that Deck's clock allows; `recent` the runs listed within
    the lookback below it. `extends_coverage` says the plan lists older history, and
    `new_covered_from` is then the lower bound to record (None: all history). `deferred` holds
    the records a cut left to a window still to list (id -> created_at), until they come back.
    `reread_from` is the oldest record listed but neither loaded nor passed over for good (an
    event of a run the filtered sync cannot place yet): the next sync lists from it at the
    latest (`ListingState.reread_from`, `planning.initial_plan`).
    """

    windows: list[Window]
    extends_coverage: bool = False
    new_covered_from: datetime | None = None
    max_seen: datetime | None = None
    recent: dict[str, SeenRun] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)
    reread_from: datetime | None = None

    def to_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "windows": [w.to_state() for w in self.windows],
            "extends_coverage": self.extends_coverage,
            "new_covered_from": _fmt(self.new_covered_from),
            "max_seen": _fmt(self.max_seen),
            "recent": {rid: seen.to_state() for rid, seen in self.recent.items()},
        }
        if self.deferred:
            state["deferred"] = dict(self.deferred)
        if self.reread_from is not None:
            state["reread_from"] = _fmt(self.reread_from)
        return state

    @classmethod
    def from_state(cls, value: dict[str, Any]) -> Plan:
        if "extends_coverage" not in value:  # version 1
            covered = value.get("covered_from")
            return cls(
                windows=[Window.from_state(w) for w in value["windows"]],
                extends_coverage=covered is not None,
                new_covered_from=None if covered in (None, "-inf") else parse_timestamp(covered),
                max_seen=_parse(value.get("max_seen")),
                recent={
                    rid: SeenRun(parse_timestamp(value["max_seen"]), UNKNOWN_FINGERPRINT)
                    for rid in value.get("boundary", {})
                },
            )
        return cls(
            windows=[Window.from_state(w) for w in value["windows"]],
            extends_coverage=bool(value["extends_coverage"]),
            new_covered_from=_parse(value.get("new_covered_from")),
            max_seen=_parse(value.get("max_seen")),
            recent={rid: SeenRun.from_state(v) for rid, v in value.get("recent", {}).items()},
            deferred=dict(value.get("deferred") or {}),
            reread_from=_parse(value.get("reread_from")),
        )

    def account(
        self,
        window: Window,
        pages: list[list[dict[str, Any]]],
        rejected_ids: list[str | None],
        deferred: dict[str, str],
    ) -> None:
        """A listed window (its checked pages, the ids of the records it had to reject): the
        deferred records it brought back are accounted for, and those its own cut left to the
        rest are now awaited."""
        if self.deferred:
            for page in pages:
                for record in page:
                    if record["id"] in self.deferred and window.contains(
                        parse_timestamp(record["created_at"])
                    ):
                        del self.deferred[record["id"]]
            for run_id in rejected_ids:  # came back, but broken: quarantined, not lost
                self.deferred.pop(run_id or "", None)
        self.deferred.update(deferred)

    def see(self, run_id: str, created_at: datetime, digest: str, clock: datetime,
            lookback: timedelta) -> None:
        """Record a listed run: it may move `max_seen` (never past `clock`) and the recent zone."""
        if created_at <= clock and (self.max_seen is None or created_at > self.max_seen):
            self.max_seen = created_at
            floor = lookback_start(created_at, lookback)
            self.recent = {k: v for k, v in self.recent.items() if v.created_at >= floor}
        if self.max_seen is None or created_at >= lookback_start(self.max_seen, lookback):
            self.recent[run_id] = SeenRun(created_at, digest)

    def reread(self, record_id: str, created_at: datetime) -> None:
        """A listed record to list again next sync: not remembered as handled, and the next
        sync's listing starts at or before it."""
        self.recent.pop(record_id, None)
        if self.reread_from is None or created_at < self.reread_from:
            self.reread_from = created_at

    def in_zone(self, created_at: datetime, lookback: timedelta) -> bool:
        """Whether a run at `created_at` would be remembered by `see` (worth a fingerprint)."""
        return self.max_seen is None or created_at >= lookback_start(self.max_seen, lookback)


@dataclass
class ListingState:
    """What any listing by `created_at` keeps between loads: how far it got, what it re-reads
    (the lookback zone) and the plan of a backfill in progress. `task_run_events` keeps exactly
    this; `task_runs` adds its open runs and quarantine (`TaskRunState`)."""

    filters: str | None = None
    watermark: datetime | None = None
    covered_from: datetime | None = None
    recent: dict[str, SeenRun] = field(default_factory=dict)
    plan: Plan | None = None
    # Whether Deck's `Date` headers agreed its clock had passed the watermark when it was
    # committed (`planning.vouch_for_watermark`); False for one bounded by this machine's clock
    # (no Date could be read) and for one saved before this was kept. Only such a watermark
    # tells which `Date` cannot be Deck's clock (`clock.DeckClock.vouch`).
    watermark_vouched: bool = False
    # The oldest record the last plan listed but left undecided (`Plan.reread`): the next
    # sync's top window starts at or before it, whatever the lookback is then.
    reread_from: datetime | None = None

    @classmethod
    def load(cls, raw: dict[str, Any]) -> Self:
        """The state saved in dlt's resource state dict; SavedStateError names the first value
        that cannot be read."""
        if not isinstance(raw, dict):
            raise SavedStateError("the resource state", f"is a {type(raw).__name__}, not a dict")
        watermark = _read("watermark", raw.get("watermark"), _parse)
        covered = raw.get("covered_from")
        if raw.get("version", 1) < 2:
            recent = _read("boundary", raw.get("boundary", {}), lambda boundary: {
                rid: SeenRun(watermark, UNKNOWN_FINGERPRINT)
                for rid in boundary
                if watermark is not None
            })
        else:
            recent = _read("recent", raw.get("recent", {}), lambda items: {
                rid: SeenRun.from_state(v) for rid, v in items.items()
            })
        state = cls(
            filters=raw.get("filters"),
            watermark=watermark,
            watermark_vouched=watermark is not None and raw.get("watermark_vouched") is True,
            covered_from=_read("covered_from", covered, _parse_bound),
            recent=recent,
            plan=_read("plan", raw.get("plan"), lambda p: Plan.from_state(p) if p else None),
            reread_from=_read("reread_from", raw.get("reread_from"), _parse),
        )
        state._load_more(raw)
        return state

    def _load_more(self, raw: dict[str, Any]) -> None:
        """What a subclass keeps besides the listing."""

    def save(self, raw: dict[str, Any]) -> None:
        """Write into dlt's resource state dict in place (dlt commits it with the load)."""
        raw.clear()
        raw.update({
            "version": STATE_VERSION,
            "filters": self.filters,
            "watermark": _fmt(self.watermark),
            "watermark_vouched": self.watermark is not None and self.watermark_vouched,
            "covered_from": _fmt(self.covered_from),
            "recent": {rid: seen.to_state() for rid, seen in self.recent.items()},
        })
        if self.reread_from is not None:
            raw["reread_from"] = _fmt(self.reread_from)
        self._save_more(raw)
        if self.plan is not None:
            raw["plan"] = self.plan.to_state()

    def _save_more(self, raw: dict[str, Any]) -> None:
        """What a subclass keeps besides the listing."""


@dataclass
class TaskRunState(ListingState):
    """Everything `task_runs` keeps between loads; see the module docstring for the layout."""

    open_runs: dict[str, OpenRun] = field(default_factory=dict)
    # Quarantined records to retry, by quarantine key: {first_seen, range, known, run_id}
    # (see quarantine.Quarantine).
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _load_more(self, raw: dict[str, Any]) -> None:
        self.open_runs = _read("open_runs", raw.get("open_runs", {}), lambda items: {
            rid: OpenRun.from_state(v) for rid, v in items.items()
        })
        self.rejected = _read("rejected", raw.get("rejected"), lambda r: dict(r or {}))

    def _save_more(self, raw: dict[str, Any]) -> None:
        raw["open_runs"] = {rid: run.to_state() for rid, run in self.open_runs.items()}
        if self.rejected:
            raw["rejected"] = self.rejected


def _fmt(value: datetime | None) -> str | None:
    return format_timestamp(value) if value is not None else None


def _parse(value: Any) -> datetime | None:
    return parse_timestamp(value) if value else None


def _parse_bound(value: Any) -> datetime | None:
    """A lower bound: None (or version 1's "-inf") for all history."""
    return None if value in (None, "-inf") else parse_timestamp(value)
