"""Half-open `created_at` windows, and how a range of history is cut into them.

Deck's `created_after` and `created_before` are both exclusive and its timestamps can repeat, so
adjacent exclusive windows would drop every run created exactly on a boundary. A `Window` is
therefore half-open, `[start, end)`: it asks Deck for a superset and keeps only the runs whose
printed `created_at` lies inside it. Consecutive windows then partition the runs with no gap and no
overlap, whatever the API's sort order.

The precision rule. Deck prints three fractional digits and its reference says only "ISO 8601", so
a bound may be read to the microsecond, truncated to the millisecond (as a JavaScript `Date`
reads it) or refused when finer; and a run printed `.123` may be `.123456` inside Deck (one printed
to the second may carry milliseconds). So every bound sent has at most millisecond precision and
is rounded *outward*: `created_after = floor_ms(start) - 1 ms`, `created_before = ceil_ms(end)`.
Every edge this code makes from runs it saw lies on a whole step of the precision those runs were
printed at (`grain`), so that "printed before the edge" and "created before the edge inside
Deck" select the same runs: a cut's edge is the next instant at that precision after the runs it
defers, never inward.

A backfill of unknown size is cut by density (`planning.split_window`): the split costs one
request and keeps every window to a bounded number of pages, which is what lets a sync fetch
windows in parallel and commit its progress window by window.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

ONE_MS = timedelta(milliseconds=1)
ONE_S = timedelta(seconds=1)
ONE_US = timedelta(microseconds=1)  # the last instant before an end, for inclusive ranges
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Requests never carry a timestamp outside these bounds: Deck refuses year 277 with HTTP 400, and a
# bound outside them selects nothing a missing bound would not (windows filter `created_at`
# themselves, so leaving such a bound out of the request only widens what is read).
EARLIEST_PLAUSIBLE = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_PLAUSIBLE = datetime(2100, 1, 1, tzinfo=timezone.utc)


def parse_timestamp(value: Any) -> datetime:
    """ISO 8601 from the API or the user (`Z` or offset, any fraction) -> aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if len(text) == 10:  # a bare date means its midnight UTC
            text += "T00:00:00"
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def format_timestamp(dt: datetime) -> str:
    """The form kept in state and logs: UTC, microseconds, `Z` (never sent to Deck)."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_bound(dt: datetime) -> str:
    """The form sent to Deck: UTC, milliseconds, `Z`. Callers round first (`floor`/`ceil`):
    this only drops digits that are zero."""
    assert dt.microsecond % 1000 == 0, f"a bound finer than a millisecond: {dt!r}"
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def floor(dt: datetime, step: timedelta) -> datetime:
    """`dt` rounded down to a whole multiple of `step` since the epoch (exact integer math)."""
    return dt - (dt - EPOCH) % step


def ceil(dt: datetime, step: timedelta) -> datetime:
    """`dt` rounded up to a whole multiple of `step` since the epoch."""
    rest = (dt - EPOCH) % step
    return dt + (step - rest) if rest else dt


def grain(stamp: datetime) -> timedelta:
    """The precision `stamp` may have been printed at, judged outward: a whole second may be a
    run printed to the second (a `Z` with no fraction), a whole millisecond one printed as Deck
    documents; anything finer is exact to the microsecond (edges are still whole ms, `ceil`)."""
    us = stamp.microsecond
    if us == 0:
        return ONE_S
    if us % 1000 == 0:
        return ONE_MS
    return ONE_US


def coarsest_grain(stamps: list[datetime]) -> timedelta:
    """The coarsest precision among `stamps` (1 ms when there are none): edges cut between
    them lie on whole steps of it."""
    return max((grain(stamp) for stamp in stamps), default=ONE_MS)


def lookback_start(newest: datetime, lookback: timedelta) -> datetime:
    """Where the zone re-listed below the newest run starts: `lookback` below it, on a whole
    second (outward, whatever precision Deck prints at). The plan's window and the runs it
    remembers (`state.Plan.see`) use this one edge."""
    return floor(newest - lookback, ONE_S)


def after(stamp: datetime) -> datetime:
    """The first instant, on a whole millisecond, that no run printed as `stamp` can precede
    inside Deck: the edge that puts every run sharing `stamp` on its lower side."""
    return ceil(stamp + grain(stamp), ONE_MS)


@dataclass(frozen=True)
class Window:
    """Runs with `start <= created_at < end`; None means unbounded on that side."""

    start: datetime | None
    end: datetime | None

    def params(self) -> dict[str, str]:
        """The request's bounds: a superset of the window at any precision Deck may read them
        (whole milliseconds, rounded outward; see the module docstring), and none outside
        EARLIEST/LATEST_PLAUSIBLE."""
        params: dict[str, str] = {}
        if self.start is not None and self.start >= EARLIEST_PLAUSIBLE + ONE_MS:
            params["created_after"] = format_bound(floor(self.start, ONE_MS) - ONE_MS)
        if self.end is not None and EARLIEST_PLAUSIBLE <= self.end <= LATEST_PLAUSIBLE:
            params["created_before"] = format_bound(ceil(self.end, ONE_MS))
        return params

    def contains(self, created_at: datetime) -> bool:
        return (self.start is None or created_at >= self.start) and (
            self.end is None or created_at < self.end
        )

    def split(self, parts: int, step: timedelta = ONE_MS) -> list["Window"]:
        """Cut a bounded window into `parts` about equal time slices whose inner edges lie on
        whole multiples of `step` (the precision Deck printed its runs at; fewer parts when the
        window is too short for that many)."""
        assert self.start is not None and self.end is not None, "only bounded windows are split"
        span = (self.end - self.start) / parts
        inner = {floor(self.start + span * i, step) for i in range(1, parts)}
        edges = [self.start, *sorted(e for e in inner if self.start < e < self.end), self.end]
        return [Window(lo, hi) for lo, hi in zip(edges, edges[1:], strict=False)]

    def sort_key(self) -> tuple[datetime, datetime]:
        return (self.start or datetime.min.replace(tzinfo=timezone.utc),
                self.end or datetime.max.replace(tzinfo=timezone.utc))

    def to_state(self) -> list[str | None]:
        return [
            format_timestamp(self.start) if self.start else None,
            format_timestamp(self.end) if self.end else None,
        ]

    @classmethod
    def from_state(cls, value: list[str | None]) -> "Window":
        start, end = value
        return cls(
            parse_timestamp(start) if start else None, parse_timestamp(end) if end else None
        )

    @property
    def span(self) -> timedelta | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    def __str__(self) -> str:
        lo = format_timestamp(self.start) if self.start else "-inf"
        hi = format_timestamp(self.end) if self.end else "+inf"
        return f"[{lo}, {hi})"


def page_stamps(runs: list[dict[str, Any]]) -> list[datetime]:
    """The parseable `created_at` of a page's runs, in page order."""
    stamps = []
    for run in runs:
        try:
            stamps.append(parse_timestamp(run["created_at"]))
        except (KeyError, TypeError, ValueError):
            continue
    return stamps


def is_plausible(stamp: datetime, clock: datetime) -> bool:
    """Whether Deck could have created a run at `stamp` by `clock` (its own "now")."""
    return EARLIEST_PLAUSIBLE <= stamp <= clock


def estimate_pages(window: Window, stamps: list[datetime], count: int, page_size: int) -> float:
    """Pages a window holds, judged from its first page: `count` runs whose timestamps
    (`stamps`) cover part of the window's span at either end."""
    if count < page_size:
        return 1.0
    if window.span is None:
        return float("inf")
    if not stamps:
        return 1.0
    covered = (max(stamps) - min(stamps)).total_seconds()
    total = window.span.total_seconds()
    if covered <= 0:
        return float("inf")
    return max(1.0, total / covered)


def page_direction(stamps: list[datetime]) -> str | None:
    """"newest_first" or "oldest_first" when a page's timestamps are monotonic, else None."""
    if all(a >= b for a, b in zip(stamps, stamps[1:], strict=False)):
        return "newest_first"
    if all(a <= b for a, b in zip(stamps, stamps[1:], strict=False)):
        return "oldest_first"
    return None
