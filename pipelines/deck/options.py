"""The source's options, declared once: Deck's filters, and the checks every option gets.

`FILTERS` is the one list of Deck's list filters: the CLI builds its flags from it, `Filters`
reads and applies them, and `deck()` lists them as parameters because that is how dlt injects
`[sources.deck]` configuration (a unit test keeps the three in step, and `.dlt/config.toml`
documents the same names). `SourceOptions` is every option after its checks: they run before
any request, so a typo fails in a second rather than after an hour of backfill. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import settings
from .errors import DeckConfigError
from .windows import parse_timestamp


@dataclass(frozen=True)
class FilterSpec:
    """One of Deck's list filters. `many`: an array filter (repeat or comma-separate);
    `selects_state`: it selects runs by their current state (status/outcome) rather than deciding
    which runs exist for the pipeline."""

    name: str
    many: bool = False
    selects_state: bool = False
    choices: tuple[str, ...] = ()
    help: str | None = None


FILTERS: tuple[FilterSpec, ...] = (
    FilterSpec("status", many=True, selects_state=True, choices=settings.ALL_STATUSES,
               help="e.g. completed, failed"),
    FilterSpec("outcome", many=True, selects_state=True, choices=settings.OUTCOMES,
               help="success, failure or unknown"),
    FilterSpec("source_id", many=True),
    FilterSpec("agent_id"),
    FilterSpec("credential_id"),
    FilterSpec("task_id"),
    FilterSpec("workflow_id"),
    FilterSpec("search", help="free text over task name, task id and run id"),
)
FILTER_NAMES = tuple(spec.name for spec in FILTERS)

# The field of a run each state filter is compared with (Deck's `outcome` filter maps to `result`).
_STATE_FIELDS = {"status": "status", "outcome": "result"}
# Filters naming what a run belongs to, which a run summary carries as fields of the same name.
_OWNER_FILTERS = frozenset(
    spec.name for spec in FILTERS if not spec.selects_state and spec.name != "search"
)


def split_filters(values: Any) -> tuple[str, ...] | None:
    """Accept a list, a tuple or a comma-separated string for the API's array filters."""
    if values is None or values == "" or values == []:
        return None
    if isinstance(values, str):
        values = values.split(",")
    return tuple(str(v).strip() for v in values if str(v).strip()) or None


@dataclass(frozen=True)
class Filters:
    """The filters a pipeline uses, by name: a tuple for array filters, a string otherwise."""

    values: Mapping[str, tuple[str, ...] | str]

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Filters:
        values: dict[str, tuple[str, ...] | str] = {}
        for spec in FILTERS:
            raw = options.get(spec.name)
            value = split_filters(raw) if spec.many else (str(raw) if raw else None)
            if not value:
                continue
            for item in value if spec.many else ():
                if spec.choices and item not in spec.choices:
                    raise DeckConfigError(
                        f"{spec.name} {item!r} is not one of Deck's values:"
                        f" {', '.join(spec.choices)}."
                    )
            values[spec.name] = value
        return cls(values)

    def _params(self, *, state: bool) -> dict[str, Any]:
        return {
            spec.name: list(value) if spec.many else value
            for spec in FILTERS
            if spec.selects_state == state and (value := self.values.get(spec.name))
        }

    def scope_params(self) -> dict[str, Any]:
        """Filters that decide which runs exist for this pipeline (not their current state)."""
        return self._params(state=False)

    def params(self) -> dict[str, Any]:
        return {**self.scope_params(), **self._params(state=True)}

    @property
    def selects_by_state(self) -> bool:
        return any(name in self.values for name in _STATE_FIELDS)

    def matches(self, run: Mapping[str, Any]) -> bool:
        """Whether a run is in the selected states (always, without state filters)."""
        return all(
            run.get(field) in self.values[name]
            for name, field in _STATE_FIELDS.items()
            if name in self.values
        )

    def fingerprint(self) -> str:
        """Kept in state: a change of filters starts the listing over."""
        return repr(sorted(self.values.items()))

    @property
    def for_events(self) -> Filters:
        """The filters events follow: those naming what a run belongs to (agent, source...),
        applied to the run summary each event carries (`owns`). `GET /events` cannot filter by
        them, and status/outcome/search describe a run's current state or its task's name, not
        its history."""
        return Filters({
            name: value for name, value in self.values.items() if name in _OWNER_FILTERS
        })

    def owns(self, run: Mapping[str, Any]) -> bool:
        """Whether a run (summary) belongs to the selection by its agent, source, task... ids."""
        for name, value in self.values.items():
            if name in _OWNER_FILTERS and run.get(name) not in (
                value if isinstance(value, tuple) else (value,)
            ):
                return False
        return True


def parse_date_option(name: str, value: Any) -> datetime | None:
    """start_date / end_date: ISO 8601 date or timestamp (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError):
        raise DeckConfigError(
            f"{name} {value!r} is not a date: use ISO 8601, e.g. 2026-01-31 or"
            " 2026-01-31T08:00:00Z."
        ) from None


@dataclass(frozen=True)
class SourceOptions:
    """What `task_runs` needs to know about its range and pace, checked."""

    start: datetime | None
    end: datetime | None
    filters: Filters
    lookback: timedelta
    max_runs_per_load: int
    pages_per_window: int
    workers: int
    max_table_nesting: int

    @classmethod
    def parse(
        cls,
        *,
        start_date: Any,
        end_date: Any,
        filters: Mapping[str, Any],
        lookback_s: float,
        max_runs_per_load: int,
        pages_per_window: int,
        max_workers: int,
        max_table_nesting: int,
    ) -> SourceOptions:
        start = parse_date_option("start_date", start_date)
        end = parse_date_option("end_date", end_date)
        if start and end and start >= end:
            raise DeckConfigError(
                f"start_date {start_date} is not before end_date {end_date}: swap them or widen"
                " the range."
            )
        if lookback_s < 0:
            raise DeckConfigError(
                f"lookback_s must be 0 or more seconds (got {lookback_s}): it is how late a run"
                " may become visible and still be found."
            )
        if max_runs_per_load < 1 or pages_per_window < 1 or max_workers < 1:
            raise DeckConfigError(
                "max_runs_per_load, pages_per_window and max_workers must be at least 1."
            )
        if max_table_nesting < 1:
            raise DeckConfigError(
                f"max_table_nesting = {max_table_nesting} would store each run's `errors` as JSON"
                " in task_runs instead of the task_runs__errors table, and the SQL models would"
                " then report no errors at all. Use 1 or more (default"
                f" {settings.DEFAULT_MAX_TABLE_NESTING}); deeper JSON is kept as JSON anyway."
            )
        return cls(
            start=start,
            end=end,
            filters=Filters.from_options(filters),
            lookback=timedelta(seconds=lookback_s),
            max_runs_per_load=max_runs_per_load,
            pages_per_window=pages_per_window,
            workers=max_workers,
            max_table_nesting=max_table_nesting,
        )

    def windows_ahead(self, page_size: int) -> int:
        """How many listed windows a sync holds for its next load while dlt loads this one
        (`walker.ListingAhead`): as many as that load can take (`max_runs_per_load`), so that
        listing does not stop while dlt works (~12-15 s per 50,000 runs, in which Deck's budget
        lists ~30,000); at least `workers`. Held packed, one load's worth is ~0.12 KB per run
        (~6 MiB at the default)."""
        per_window = self.window_pages(page_size) * page_size
        return max(self.workers, self.max_runs_per_load // per_window)

    def window_pages(self, page_size: int) -> int:
        """Pages a window is cut to (`window_pages`)."""
        return window_pages(self.pages_per_window, self.max_runs_per_load, page_size)


def window_pages(pages_per_window: int, max_runs_per_load: int, page_size: int) -> int:
    """Pages a window is cut to: `pages_per_window`, but never more than fit in one load.

    A window is listed to its last page before a load takes it, and one bigger than a load was
    listed ahead in vain and listed again cut to the budget (at 500 runs per load, 290 requests
    for 80 pages). Windows come out of the density cut up to 1.5x the target
    (`planning.split_window`), hence the margin."""
    fitting = int(max_runs_per_load / (1.5 * page_size))
    return max(1, min(pages_per_window, fitting))


def filter_flag(spec: FilterSpec) -> str:
    """`source_id` -> `--source-id`."""
    return "--" + spec.name.replace("_", "-")


def flatten_cli_values(values: Sequence[str] | None) -> list[str] | None:
    """`--status a,b --status c` -> ["a", "b", "c"]."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def parse_lock_wait_s(value: Any) -> float:
    """lock_wait_s: seconds a sync waits for a DuckDB file another process has open (0: fail at
    once). Infinity or NaN would make a scheduled sync hang behind a forgotten session."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise DeckConfigError(
            f"lock_wait_s {value!r} is not a number of seconds: use 0 or more (default"
            f" {settings.LOCK_WAIT_S:g}), in [sources.deck] of .dlt/config.toml or"
            " SOURCES__DECK__LOCK_WAIT_S."
        )
    return seconds
