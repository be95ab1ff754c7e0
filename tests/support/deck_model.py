"""An in-memory model of Deck's `GET /task-runs`, and a pure driver of the connector's listing.

Deck's reference leaves open how `created_after`/`created_before` are read and how precisely
`created_at` is kept (/work/shared/deck-api/FACTS.md, "Timestamps"). `Contract` names one reading
of each open point; `DeckModel` lists a sorted set of runs under that reading, by keyset cursor,
as `Page`s that `WindowWalker` takes. The driver (`run_sync`) plays the loads of a sync the way
`windowed.WindowedLoad.items` does (plan, walk within `max_runs_per_load`, the windows left become
the next load's plan, the top re-listed once, `finish_plan`), committing the state as JSON text
between loads, so that a kill between loads is a resume from committed state. No HTTP, no DuckDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from deck.api.client import Page
from deck.core.filters import Filters
from deck.core.options import listing_cut
from deck.core.state import TaskRunState
from deck.core.stats import SyncStats
from deck.core.windows import Window, parse_timestamp
from deck.listing.intake import RunTracker
from deck.listing.planning import finish_plan, initial_plan, top_window
from deck.listing.walker import WindowWalker
from deck.progress.estimate import ListingProgress

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
US = timedelta(microseconds=1)
MS_US = 1_000  # microseconds in a millisecond

BoundReading = Literal["us", "ms", "reject"]
Stored = Literal["ms", "us_printed_ms", "ms_printed_s"]
Order = Literal["newest_first", "oldest_first"]


def to_us(dt: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch."""
    return (dt - EPOCH) // US


def from_us(instant: int) -> datetime:
    return EPOCH + instant * US


@dataclass(frozen=True)
class Contract:
    """One reading of what Deck's documentation leaves open.

    bounds: "us" reads a bound exactly (to the microsecond); "ms" as a JavaScript `Date` does
    (digits past the third dropped, not rounded); "reject" refuses (HTTP 400) a bound written
    with more than three fractional digits. stored: "ms" keeps and prints milliseconds;
    "us_printed_ms" keeps microseconds but prints milliseconds (truncated); "ms_printed_s" keeps
    milliseconds but prints whole seconds. inclusive: whether both bounds admit their own instant.
    """

    bounds: BoundReading = "us"
    stored: Stored = "ms"
    inclusive: bool = False
    order: Order = "newest_first"
    page_size: int = 20


@dataclass(frozen=True)
class Run:
    id: str
    instant: int  # µs since the epoch: the instant Deck filters and sorts by
    printed: str  # `created_at` as Deck writes it


class BoundRefused(Exception):
    """Deck answered 400: a `created_after`/`created_before` it does not accept."""


_BOUND = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def read_bound(text: str, reading: BoundReading) -> int:
    """A bound as Deck reads it, in µs since the epoch. "ms" is `new Date(text)` in a JavaScript
    engine: the first three fractional digits, the rest dropped."""
    match = _BOUND.match(text)
    if match is None:
        raise BoundRefused(f"not an ISO 8601 timestamp: {text!r}")
    *fields, fraction, zone = match.groups()
    fraction = fraction or ""
    if reading == "reject" and len(fraction) > 3:
        raise BoundRefused(f"a bound finer than a millisecond: {text!r}")
    offset = timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    whole = datetime(*(int(f) for f in fields), tzinfo=timezone.utc) - offset
    if reading == "us":
        sub = int(fraction[:6].ljust(6, "0"))
    else:
        sub = int(fraction[:3].ljust(3, "0")) * MS_US
    return to_us(whole) + sub


def print_instant(instant: int, stored: Stored) -> str:
    dt = from_us(instant)
    if stored == "ms_printed_s":
        return dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // MS_US:03d}Z"


class DeckModel:
    """Deck's list of runs under one `Contract`; `list_pages` is `DeckClient.list_task_runs`."""

    def __init__(self, contract: Contract, instants: Iterable[int] = ()) -> None:
        self.contract = contract
        self.runs: list[Run] = []
        self.requests = 0
        self.add(instants)

    def add(self, instants: Iterable[int]) -> list[Run]:
        """New runs created at these true instants (µs); stored and printed per the contract."""
        added = []
        for instant in instants:
            if self.contract.stored != "us_printed_ms":
                instant -= instant % MS_US
            added.append(Run(f"trun_{len(self.runs):05d}", instant,
                             print_instant(instant, self.contract.stored)))
            self.runs.append(added[-1])
        return added

    def _key(self, run: Run) -> tuple[int, int]:
        """The keyset order: (instant, creation sequence), both descending for newest first."""
        seq = int(run.id.removeprefix("trun_"))
        if self.contract.order == "newest_first":
            return (-run.instant, -seq)
        return (run.instant, seq)

    def _selected(self, params: dict[str, Any]) -> list[Run]:
        reading, inclusive = self.contract.bounds, self.contract.inclusive
        after = params.get("created_after")
        before = params.get("created_before")
        lo = read_bound(after, reading) if after is not None else None
        hi = read_bound(before, reading) if before is not None else None
        return sorted(
            (
                run for run in self.runs
                if (lo is None or run.instant > lo or inclusive and run.instant == lo)
                and (hi is None or run.instant < hi or inclusive and run.instant == hi)
            ),
            key=self._key,
        )

    def list_pages(self, params: dict[str, Any]) -> Iterator[Page]:
        """Every page for these bounds, by keyset cursor: each page is one request."""
        selected = self._selected(params)  # runs are not added while one listing pages
        position = 0  # the keyset cursor: everything before it in `selected` was returned
        while True:
            self.requests += 1
            size = int(params.get("limit", self.contract.page_size))
            page = selected[position: position + size]
            position += len(page)
            yield Page(
                items=[_item(run) for run in page],
                has_more=position < len(selected),
                request_id=f"req_{self.requests}",
            )
            if position >= len(selected):
                return


def _item(run: Run) -> dict[str, Any]:
    """A fresh record per answer: the connector fixes records up in place."""
    return {"id": run.id, "object": "task_run", "status": "completed", "result": "success",
            "created_at": run.printed, "updated_at": run.printed}


# ---- the driver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    """The options of `WindowedLoad` the listing depends on (`SourceOptions` without I/O)."""

    page_size: int
    pages_per_window: int
    max_runs_per_load: int
    lookback: timedelta
    start: datetime | None = None
    end: datetime | None = None


@dataclass
class SyncResult:
    loads: int = 0
    finished: bool = False
    loaded: list[str] = field(default_factory=list)  # ids, once per time a load accepted them
    refused: BoundRefused | None = None
    stuck: bool = False  # a load committed the state it started from and loaded nothing
    not_relisted: int = 0


@dataclass
class Load:
    committed: str  # the state the load commits, as JSON text
    loaded: list[str]  # ids of the runs it loads (new or changed)
    more_to_load: bool  # windows left for the next load
    not_relisted: int  # records a cut deferred that never came back (where the code counts)


def run_load(deck: DeckModel, committed: str, clock: datetime, options: LoadOptions,
             relisted: set[str] | None = None, progress: ListingProgress | None = None) -> Load:
    """One load, as `WindowedLoad.items` (with `TaskRunLoad`'s intake) plays it; the same
    driver follows the code before and after `Plan.account` existed. `relisted`: the sync's
    listings whose top window was re-listed (`SyncStats.top_relisted`)."""
    relisted = set() if relisted is None else relisted
    state = TaskRunState.load(json.loads(committed))
    tracker = RunTracker(state, Filters({}), SyncStats(), options.lookback)
    walker = WindowWalker(
        deck.list_pages, {}, page_size=options.page_size, workers=1,
        pages_per_window=options.pages_per_window,
        listing_cut=listing_cut(
            options.pages_per_window, options.max_runs_per_load, options.page_size
        ),
        clock=lambda: clock,
        progress=progress,
    )
    loaded: list[str] = []
    listed_top = False
    more_to_load = False

    def walk(windows: list[Window]) -> None:  # WindowedLoad._walk
        nonlocal listed_top, more_to_load
        for listed in walker.walk(windows, limit=options.max_runs_per_load - len(loaded)):
            listed_top |= listed.window.end == options.end
            if hasattr(plan, "account"):  # the records a cut deferred must come back
                plan.account(
                    listed.window,
                    [page.items for page in listed.pages],
                    [rejection.run_id for rejection in listed.rejected],
                    listed.deferred,
                )
            for page in listed.pages:
                runs = tracker.accept(page.items, listed.window, plan, clock)
                loaded.extend(run["id"] for run in runs)
        plan.windows = walker.pending
        more_to_load = bool(plan.windows)

    if state.plan is None:
        state.plan = initial_plan(state, options.start, options.end, options.lookback, clock)
    plan = state.plan
    walk(plan.windows)
    not_relisted = 0
    if not more_to_load:
        # Once per sync (`SyncStats.top_relisted`).
        if not listed_top and "runs" not in relisted and plan.max_seen is not None:
            relisted.add("runs")
            walk([top_window(plan.max_seen, options.end, options.lookback)])
        if not more_to_load:
            not_relisted = len(getattr(plan, "deferred", {}))  # `_report_missing`
            if not_relisted:
                plan.deferred.clear()
            finish_plan(state, plan)
    raw: dict[str, Any] = {}
    state.save(raw)
    return Load(json.dumps(raw), loaded, more_to_load, not_relisted)


def run_sync(deck: DeckModel, committed: str, clock: datetime, options: LoadOptions,
             max_loads: int) -> tuple[str, SyncResult]:
    """Loads until none is left (`finished`), `max_loads` were committed (a kill, or a sync
    that would not end) or a load changed nothing (`stuck`: the runner ends such a sync early,
    and the next resumes the same plan). A bound Deck refuses ends the sync (`refused`)."""
    result = SyncResult()
    relisted: set[str] = set()
    while result.loads < max_loads:
        try:
            relisted_before = set(relisted)  # `SyncStats.top_relisted`: the runner's backstop
            load = run_load(deck, committed, clock, options, relisted)
        except BoundRefused as exc:
            result.refused = exc
            return committed, result
        result.loads += 1
        result.loaded.extend(load.loaded)
        result.not_relisted += load.not_relisted
        unchanged = (
            load.committed == committed and not load.loaded and relisted == relisted_before
        )
        committed = load.committed
        if not load.more_to_load:
            result.finished = True
            break
        if unchanged:
            result.stuck = True  # the same load again and again, for ever (deterministic)
            break
    return committed, result


def still_planned(committed: str, options: LoadOptions) -> list[Window]:
    """What the committed state will still list: the plan's windows and, as `items` re-lists
    it, the top window; with no plan, the next sync's top window."""
    state = TaskRunState.load(json.loads(committed))
    if state.plan is not None:
        windows = list(state.plan.windows)
        if state.plan.max_seen is not None:
            windows.append(top_window(state.plan.max_seen, options.end, options.lookback))
        return windows
    if state.watermark is None:
        return [Window(options.start, options.end)]
    return [top_window(state.watermark, options.end, options.lookback)]


def printed_instant(run: Run) -> datetime:
    """`created_at` as the connector reads it."""
    return parse_timestamp(run.printed)
