"""Deck's clock, as several of its answers agree on it: what bounds the watermark.

No run listed so far can have been created after Deck's "now", so the watermark (the newest
`created_at` listed) never passes it, and a run dated later stays in the re-listed zone until
the clock catches up. That bound must not be movable by one answer: one Deck host whose clock is
2 h ahead (or a `Date` of 2036) would otherwise let one run it dated ahead carry the watermark
past every run created in the next two hours, which would never be listed. So the clock is the
median of the last `SAMPLES` `Date` headers, once at least `QUORUM` arrived (fewer: the lowest
one seen), bounded by this machine's clock plus
`settings.MAX_CLOCK_SKEW_S`; without any, this machine's clock plus
`settings.FALLBACK_CLOCK_SKEW_S`. Too low a clock only costs re-reads of the newest runs
(unchanged ones are not reloaded).

Pure: the caller passes this machine's time, so the rule is tested without waiting.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from . import settings

logger = logging.getLogger("deck")

SAMPLES = 15  # the recent answers whose `Date` the clock is the median of
QUORUM = 3  # answers that must agree before the clock is trusted to plan from
TRUNCATED = timedelta(seconds=1)  # an HTTP-date drops the fraction of its second


def parse_http_date(header: str | None) -> datetime | None:
    """An RFC 9110 HTTP-date (always GMT) -> aware datetime; None when absent or not one."""
    if not header:
        return None
    try:
        date = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo is not None else None


class DeckClock:
    """The `Date` headers of a sync's recent answers, and the clock they agree on. Shared by
    every worker thread of a sync; this machine's time is an argument so that the rule is tested
    without waiting.

    The clock is a date Deck sent (the median), never extrapolated with this machine's clock: a
    Deck whose clock stands still between answers (the simulator's) or a slow machine must not
    push it ahead of what Deck said. Whether one answer is skewed is judged by its offset from
    this machine's clock instead, so that a pause between requests (a long load into a remote
    warehouse) is not taken for a skewed host."""

    def __init__(self) -> None:
        self._dates: deque[datetime] = deque(maxlen=SAMPLES)
        self._offsets: deque[timedelta] = deque(maxlen=SAMPLES)
        self._lock = threading.Lock()
        self._warned = False

    def observe(self, header: str | None, local: datetime | None = None) -> None:
        """Remember one answer's `Date` header, received at `local` (this machine's clock);
        warn once when it disagrees with the others."""
        date = parse_http_date(header)
        if date is None:
            return
        offset = date - (local or datetime.now(timezone.utc))
        with self._lock:
            usual = _median(self._offsets)
            agreed = _median(self._dates)
            self._dates.append(date)
            self._offsets.append(offset)
            if usual is None or agreed is None or self._warned:
                return
            skew = (offset - usual).total_seconds()
            if abs(skew) <= settings.FALLBACK_CLOCK_SKEW_S:
                return
            self._warned = True
        logger.warning(
            "Deck answered with a Date header of %s, %s %s the clock its other answers agree on"
            " (%s): a host with a skewed clock. One answer does not move the clock this sync"
            " bounds the watermark by, so no run is skipped%s. (Said once per sync.)",
            date.isoformat(),
            _duration(abs(skew)),
            "ahead of" if skew > 0 else "behind",
            agreed.isoformat(),
            "; runs that host dates ahead stay in the re-listed zone until Deck's clock reaches"
            " them" if skew > 0 else "",
        )

    def agreed(self) -> datetime | None:
        """The date at least `QUORUM` answers agree on (None before that many arrived)."""
        with self._lock:
            return _median(self._dates)

    def now(self, local: datetime | None = None) -> datetime:
        """The latest moment at which Deck can have created a run listed so far."""
        local = local or datetime.now(timezone.utc)
        with self._lock:
            agreed = _median(self._dates)
            if agreed is None and self._dates:
                agreed = min(self._dates)  # too few to agree: the lowest is the safe one
        if agreed is None:
            return local + timedelta(seconds=settings.FALLBACK_CLOCK_SKEW_S)
        return min(agreed + TRUNCATED, local + timedelta(seconds=settings.MAX_CLOCK_SKEW_S))


def _median(values: deque[Any]) -> Any:
    """The lower median of at least `QUORUM` values (never a mean of two), else None."""
    if len(values) < QUORUM:
        return None
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _duration(seconds: float) -> str:
    """`7200` -> "2.0 h", `90` -> "1.5 min", for the warning."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"
