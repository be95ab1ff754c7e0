"""What a reporter shows at one moment (`Snapshot`), and the text of it: the counts, what was
listed, the requests estimated, the rate and the ETA. Pure: the display only draws these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from deck.core.windows import Window


def format_instant(value: datetime | None, missing: str) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else missing


def describe_ranges(ranges: list[Window]) -> str:
    """`2025-12-12 04:00..2026-01-01 00:00`, oldest first (`start..` without a start, `..now`
    without an end); more than three ranges are named by their first and last."""

    def one(w: Window) -> str:
        return f"{format_instant(w.start, 'start')}..{format_instant(w.end, 'now')}"

    if len(ranges) <= 3:
        return ", ".join(one(w) for w in ranges)
    return f"{one(ranges[0])} ... {one(ranges[-1])} ({len(ranges)} ranges)"


def format_duration(seconds: float) -> str:
    """`0:01:05`, `12:00:00`, `2 days 3:04:05`."""
    total = max(0, int(round(seconds)))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{days} day{'s' if days != 1 else ''} {clock}" if days else clock


@dataclass(frozen=True)
class Snapshot:
    """What a reporter shows at one moment. Estimates are None while not known."""

    runs: int
    events: int
    requests: int
    retries: int
    throttled: int  # answers with HTTP 429
    loads: int
    elapsed_s: float
    runs_listed: int = 0  # records listed so far: the same unit as what is left
    events_listed: int = 0
    runs_left: float | None = None  # records estimated left to list
    events_left: float | None = None
    runs_at_least: bool = False  # the oldest runs are still being looked for
    events_at_least: bool = False
    requests_left: float | None = None
    rate: float | None = None  # requests per second, recently
    coverage: tuple[tuple[str, str], ...] = ()  # (listing, its ranges listed, oldest first)
    done: bool = False
    stopped: bool = False  # the sync failed or was interrupted: this is where it stopped
    with_events: bool = True

    @property
    def requests_total(self) -> int | None:
        if self.requests_left is None:
            return None
        return self.requests + math.ceil(self.requests_left)

    @property
    def fraction(self) -> float | None:
        total = self.requests_total
        if self.done:
            return 1.0
        if not total:
            return None
        return min(1.0, self.requests / total)

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the recent rate; None when the work left or the rate is unknown."""
        if self.done or (self.requests_left is not None and self.requests_left <= 0):
            return 0.0
        if self.requests_left is None or not self.rate or self.rate <= 0:
            return None
        return max(1.0, self.requests_left / self.rate)  # never 0:00:00 while work is left


def counted(loaded: int, listed: int, left: float | None, at_least: bool = False) -> str:
    """`1,200 (1,250 of ~2,468 listed)`: records loaded, then those listed out of the estimate
    of all the sync will list (the same unit on both sides of "of"); the loaded count alone when
    nothing is estimated or nothing is left."""
    if left is None or (left <= 0 and not at_least):
        return f"{loaded:,}"
    total = f"{'at least ' if at_least else ''}~{listed + math.ceil(left):,}"
    return f"{loaded:,} ({listed:,} of {total} listed)"


def requests_done(s: Snapshot) -> str:
    """Requests sent, out of the estimate while the sync runs ("1,204 of ~2,170")."""
    total = s.requests_total
    return f"{s.requests:,} of ~{total:,}" if total and not s.done else f"{s.requests:,}"


def describe(snapshot: Snapshot, *, loads: bool = True) -> str:
    """The body of a progress log line: cumulative over the sync, what was listed named oldest
    first. `loads`: include the count of loads committed (a `Load N committed` line has it)."""
    s = snapshot
    counts = f"runs {counted(s.runs, s.runs_listed, s.runs_left, s.runs_at_least)}"
    if s.with_events:
        counts += (
            f", events {counted(s.events, s.events_listed, s.events_left, s.events_at_least)}"
        )
    requests = requests_done(s)
    rate = f" at {s.rate:.1f}/s" if s.rate is not None else ""
    parts = [
        counts,
        f"requests {requests}{rate}, {s.retries:,} retries, {s.throttled:,} answered 429",
    ]
    if loads:
        parts.append(f"{s.loads} load{'s' if s.loads != 1 else ''} committed")
    if s.coverage:
        parts.append("listed " + ", ".join(f"{name} {ranges}" for name, ranges in s.coverage))
    if s.done:
        parts.append(f"done in {format_duration(s.elapsed_s)}")
    elif s.stopped:
        parts.append(f"stopped after {format_duration(s.elapsed_s)}")
    elif s.requests_left == 0:
        parts.append("everything listed; loading")
    elif s.eta_s is not None:
        parts.append(f"ETA {format_duration(s.eta_s)}")
    elif s.requests_left is None:
        parts.append("ETA not known yet (the oldest records are still being looked for)")
    elif s.rate is None:
        parts.append("ETA not known yet (measuring the rate)")
    else:
        parts.append("ETA not known yet (no request in the last minute)")
    return "; ".join(parts)
