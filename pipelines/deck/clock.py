"""Deck's clock, as several of its answers agree on it: what bounds the watermark.

No run listed so far can have been created after Deck's "now", so the watermark (the newest
`created_at` listed) never passes it, and a run dated later stays in the re-listed zone until
the clock catches up. That bound must not be movable by one answer: one Deck host whose clock is
2 h ahead (or a `Date` of 2036) would otherwise let one run it dated ahead carry the watermark
past every run created in the next two hours, which would never be listed. So the clock is this
machine's plus the median offset of the last `SAMPLES` `Date` headers from it, once at least
`QUORUM` arrived (fewer: the lowest one seen), bounded by this machine's clock plus
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
    """The offsets of Deck's `Date` headers from this machine's clock, over a sync's recent
    answers, and the clock they agree on. Offsets rather than dates: after a pause between
    requests (a long load into a remote warehouse) the recent dates differ by the pause, their
    offsets do not. Shared by every worker thread of a sync; the times are arguments so that
    the rule is tested without waiting."""

    def __init__(self) -> None:
        self._offsets: deque[timedelta] = deque(maxlen=SAMPLES)
        self._lock = threading.Lock()
        self._warned = False

    def observe(self, header: str | None, local: datetime | None = None) -> None:
        """Remember one answer's `Date` header, received at `local` (this machine's clock);
        warn once when it disagrees with the others."""
        date = parse_http_date(header)
        if date is None:
            return
        local = local or datetime.now(timezone.utc)
        offset = date - local
        with self._lock:
            agreed = self._median()
            self._offsets.append(offset)
            if agreed is None or self._warned:
                return
            skew = (offset - agreed).total_seconds()
            if abs(skew) <= settings.FALLBACK_CLOCK_SKEW_S:
                return
            self._warned = True
        clock = (local + agreed).isoformat()
        logger.warning(
            "Deck answered with a Date header of %s, %s %s the clock its other answers agree on"
            " (%s): a host with a skewed clock. One answer does not move the clock this sync"
            " bounds the watermark by, so no run is skipped%s. (Said once per sync.)",
            date.isoformat(),
            _duration(abs(skew)),
            "ahead of" if skew > 0 else "behind",
            clock,
            "; runs that host dates ahead stay in the re-listed zone until Deck's clock reaches"
            " them" if skew > 0 else "",
        )

    def _median(self) -> timedelta | None:
        if len(self._offsets) < QUORUM:
            return None
        ordered = sorted(self._offsets)
        return ordered[(len(ordered) - 1) // 2]  # the lower median: never a mean of two

    def agreed(self, local: datetime | None = None) -> datetime | None:
        """The clock at least `QUORUM` answers agree on (None before that many arrived)."""
        with self._lock:
            offset = self._median()
        return None if offset is None else (local or datetime.now(timezone.utc)) + offset

    def now(self, local: datetime | None = None) -> datetime:
        """The latest moment at which Deck can have created a run listed so far."""
        local = local or datetime.now(timezone.utc)
        with self._lock:
            offset = self._median()
            if offset is None and self._offsets:
                offset = min(self._offsets)  # too few to agree: the lowest is the safe one
        if offset is None:
            return local + timedelta(seconds=settings.FALLBACK_CLOCK_SKEW_S)
        return min(
            local + offset + TRUNCATED, local + timedelta(seconds=settings.MAX_CLOCK_SKEW_S)
        )


def _duration(seconds: float) -> str:
    """`7200` -> "2.0 h", `90` -> "1.5 min", for the warning."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"
