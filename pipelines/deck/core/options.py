"""The source's options, declared once: every option's range, the checks, what a listing needs.

Deck's list filters are declared in `filters.py`. `OPTIONS` declares every other option once:
its default and the range it accepts, beside each other; `OptionSpec.check` is the one check of
a value (finite, of its type, in range), and a refused value fails with one line naming the
option, the value and that range (`errors.DeckOptionError`). `SourceOptions` is the options a
listing needs, after their checks: they run before any request, so a typo fails in a second
rather than after an hour of backfill. Pure: no I/O.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from deck.core import settings
from deck.core.errors import DeckConfigError, DeckOptionError
from deck.core.filters import FILTER_NAMES, Filters
from deck.core.shown import shown_value
from deck.core.windows import EARLIEST_PLAUSIBLE, LATEST_PLAUSIBLE, parse_timestamp

# The kinds of option, by what their values are.
SECONDS = "seconds"  # a finite number of seconds
COUNT = "count"  # a whole number
DATE = "date"  # an ISO 8601 date or timestamp (UTC unless it has an offset)
FLAG = "flag"  # true or false

DAY_S = 86_400


@dataclass(frozen=True)
class OptionSpec:
    """One option of `[sources.deck]` other than Deck's filters, the key and `base_url`: its
    default beside the range it accepts. `low`/`high` bound a number (`above_low`: `low` itself
    is refused) or a date (as `datetime`); `default_text` says what None means."""

    name: str
    kind: str
    default: Any
    low: Any = None
    high: Any = None
    above_low: bool = False
    default_text: str | None = None
    why: str = ""  # appended to the refusal: what an out-of-range value would do

    @property
    def accepted(self) -> str:
        """What the option accepts and its default, as the refusal says it."""
        if self.kind == FLAG:
            what = "true or false"
        elif self.kind == DATE:
            what = (
                "an ISO 8601 date or timestamp (e.g. 2026-01-31 or 2026-01-31T08:00:00Z) from"
                f" {self.low:%Y-%m-%d} to {self.high:%Y-%m-%d}"
            )
        else:
            noun = "a number of seconds" if self.kind == SECONDS else "a whole number"
            if self.above_low:
                what = f"{noun} above {_number(self.low)}, up to {_number(self.high)}"
            else:
                what = f"{noun} from {_number(self.low)} to {_number(self.high)}"
        default = self.default_text or _number(self.default)
        return f"{what} (default {default})"

    def refuse(self, value: Any) -> DeckOptionError:
        """The error for an unusable value of this option."""
        why = f"; {self.why}" if self.why else ""
        return DeckOptionError(
            self.name, f" = {shown_value(value)}", f"is not valid: use {self.accepted}{why}.",
            value=value,
        )

    def check(self, value: Any) -> Any:
        """The value to use: None (where None means the default), a float, an int, a bool or
        an aware datetime; a value out of range or of another type raises `refuse`."""
        if value is None or (self.kind == DATE and value == ""):
            if self.default is None:
                return None
            raise self.refuse(value)
        if self.kind == FLAG:
            if isinstance(value, bool):
                return value
            raise self.refuse(value)
        if self.kind == DATE:
            moment = parse_date_option(value) if isinstance(value, (str, date)) else None
            if moment is None or not self.low <= moment <= self.high:
                raise self.refuse(value)
            return moment
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.refuse(value)
        number = float(value)
        if not math.isfinite(number):
            raise self.refuse(value)
        if self.kind == COUNT:
            if number != int(number):
                raise self.refuse(value)
            number = int(number)
        too_low = number <= self.low if self.above_low else number < self.low
        if too_low or number > self.high:
            raise self.refuse(value)
        return number


def _number(value: Any) -> str:
    """`600.0` -> "600", `0.25` -> "0.25", `50000` -> "50000" (never 5e+04), `True` -> "true"
    (as in .dlt/config.toml)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec("start_date", DATE, None, EARLIEST_PLAUSIBLE, LATEST_PLAUSIBLE,
               default_text="all history"),
    OptionSpec("end_date", DATE, None, EARLIEST_PLAUSIBLE, LATEST_PLAUSIBLE,
               default_text="up to now"),
    OptionSpec("max_table_nesting", COUNT, settings.DEFAULT_MAX_TABLE_NESTING, 1, 100,
               why="below 1 each run's `errors` would be stored as JSON in task_runs instead of"
               " the task_runs__errors table, and the SQL models would report no errors"),
    OptionSpec("page_size", COUNT, settings.PAGE_SIZE, 1, 100),  # Deck's own limits
    OptionSpec("max_runs_per_load", COUNT, settings.MAX_RUNS_PER_LOAD, 1, 10_000_000),
    OptionSpec("pages_per_window", COUNT, settings.PAGES_PER_WINDOW, 1, 10_000),
    OptionSpec("max_workers", COUNT, settings.MAX_WORKERS, 1, 64),
    OptionSpec("rate_limit_requests", COUNT, settings.RATE_LIMIT_REQUESTS, 0, 100_000,
               why="0 turns the client-side limit off"),
    OptionSpec("rate_limit_period_s", SECONDS, settings.RATE_LIMIT_PERIOD_S, 0, 3600,
               above_low=True),
    OptionSpec("request_max_attempts", COUNT, settings.REQUEST_MAX_ATTEMPTS, 1, 100),
    OptionSpec("backoff_base_s", SECONDS, settings.BACKOFF_BASE_S, 0, 3600, above_low=True),
    OptionSpec("backoff_cap_s", SECONDS, settings.BACKOFF_CAP_S, 0, 3600, above_low=True),
    OptionSpec("connect_timeout_s", SECONDS, settings.CONNECT_TIMEOUT_S, 0, 3600,
               above_low=True),
    OptionSpec("read_timeout_s", SECONDS, settings.READ_TIMEOUT_S, 0, 3600, above_low=True),
    OptionSpec("request_deadline_s", SECONDS, None, 0, 2 * 3600, above_low=True,
               default_text="twice read_timeout_s"),
    OptionSpec("lookback_s", SECONDS, settings.LOOKBACK_S, 0, 30 * DAY_S),
    OptionSpec("events", FLAG, True),
    OptionSpec("lock_wait_s", SECONDS, settings.LOCK_WAIT_S, 0, DAY_S,
               why="0 fails at once when another process has the DuckDB file open"),
)
OPTION_SPECS: Mapping[str, OptionSpec] = {spec.name: spec for spec in OPTIONS}
# Read elsewhere than `OPTIONS`: the key (`.dlt/secrets.toml`), `base_url` (`urls.py`).
CHECKED_ELSEWHERE = ("api_key", "base_url")


def check_option(name: str, value: Any) -> Any:
    """`OPTION_SPECS[name].check(value)`."""
    return OPTION_SPECS[name].check(value)


def parse_date_option(value: Any) -> datetime | None:
    """start_date / end_date: ISO 8601 date or timestamp (UTC when no offset is given); None
    when it is not one."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = value.isoformat()  # TOML's local date
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return None


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
        lookback_s: Any,
        max_runs_per_load: Any,
        pages_per_window: Any,
        max_workers: Any,
        max_table_nesting: Any,
    ) -> SourceOptions:
        """Each option checked by its spec (`OPTIONS`), then the dates against each other."""
        start = check_option("start_date", start_date)
        end = check_option("end_date", end_date)
        if start and end and start >= end:
            raise DeckConfigError(
                f"start_date {start_date} is not before end_date {end_date}: swap them or widen"
                " the range."
            )
        return cls(
            start=start,
            end=end,
            filters=Filters.from_options(filters),
            lookback=timedelta(seconds=check_option("lookback_s", lookback_s)),
            max_runs_per_load=check_option("max_runs_per_load", max_runs_per_load),
            pages_per_window=check_option("pages_per_window", pages_per_window),
            workers=check_option("max_workers", max_workers),
            max_table_nesting=check_option("max_table_nesting", max_table_nesting),
        )

    def records_ahead(self) -> int:
        """How many records a sync's producer holds listed ahead of the loads that take them
        (`deck.listing.producer.WindowProducer`): two loads' worth (`max_runs_per_load`), so
        that listing does not stop while dlt works (~12-15 s per 50,000 runs, in which Deck's
        budget lists ~30,000) nor while a load waits for its oldest window. Held packed,
        ~0.12 KB per run (~12 MiB at the default). Counted in records, not windows: windows
        differ in size. Measured: 60,000 runs over three loads at 150 ms and 200 / 10 s took
        41.3 s holding one load's worth of windows, 35.5 s holding two (the budget's floor is
        30 s)."""
        return 2 * self.max_runs_per_load

    def listing_cut(self, page_size: int) -> int:
        """Records after which a window's listing is cut (`listing_cut`)."""
        return listing_cut(self.pages_per_window, self.max_runs_per_load, page_size)


def listing_cut(pages_per_window: int, max_runs_per_load: int, page_size: int) -> int:
    """Records after which a window's listing is cut where it got to and handed to the load
    (`walker.WindowWalker`), its rest listed on from the same cursor: twice `pages_per_window`
    pages' worth (a window denser than its first page showed), and low enough that the part
    cut holds no more than a load (it is cut at the first page boundary past this). Loads take
    listings whole until they hold `max_runs_per_load`, so a load holds less than twice that.
    Windows themselves are cut to `pages_per_window` whatever the load size: each costs its
    last page, mostly part-empty, and a cut listing costs no request."""
    return max(1, min(2 * pages_per_window * page_size, max_runs_per_load - page_size + 1))


def parse_lock_wait_s(value: Any) -> float:
    """lock_wait_s: seconds a sync waits for a DuckDB file another process has open (0: fail at
    once). Infinity or NaN would make a scheduled sync hang behind a forgotten session."""
    return float(check_option("lock_wait_s", value))


def known_options() -> tuple[str, ...]:
    """Every name `[sources.deck]` may set."""
    return (*CHECKED_ELSEWHERE, *FILTER_NAMES, *OPTION_SPECS)


def unknown_option(
    name: str, where: str | None = None, known: Iterable[str] | None = None
) -> DeckOptionError:
    """The error for a name under `[sources.deck]` that is no option (a typo would otherwise
    be ignored and the option keep its default): it names the closest valid one."""
    names = list(known_options() if known is None else known)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]}?" if close else f"the options are {', '.join(names)}."
    return DeckOptionError(name, "", f"is not an option of [sources.deck]: {hint}", where=where)
