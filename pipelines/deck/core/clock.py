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

Nor may a clock that is wrong as a whole cost a re-list: a `Date` outside the years 2000-2100,
or well behind a watermark an earlier sync committed when Deck's answers agreed its clock had
passed it (`vouch`: a clock does not go back), is not a reading of Deck's clock. Such answers
are left out, said once per sync with what was seen; with none left, the clock is this
machine's plus `settings.FALLBACK_CLOCK_SKEW_S`, as without the header. A `Date` of 1999 on
every answer would otherwise hold the watermark still (every run "in the future") and a stale
`Date` on one answer would make the saved watermark look like one an earlier version followed
into the future (`planning.forget_future_watermark`), and every sync would list all of history
again.

This machine's clock is never trusted over Deck's answers: a watermark committed while it
bounded the watermark (no `Date` could be read) vouches for nothing, since a fast clock here
may have let it follow a run into Deck's future; Deck's answers then decide whether it lies
there. Whether a watermark is vouched for (`at_least`) or lies in Deck's future (`at_most`) is
told from two answers already (both must say so), the median of three or more.

Pure: the caller passes this machine's time, so the rule is tested without waiting.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from deck.core import settings
from deck.core.windows import EARLIEST_PLAUSIBLE, LATEST_PLAUSIBLE

logger = logging.getLogger("deck")

SAMPLES = 15  # the recent answers whose `Date` the clock is the median of
QUORUM = 3  # answers that must agree before the clock is trusted to plan from
TRUNCATED = timedelta(seconds=1)  # an HTTP-date drops the fraction of its second
# How far behind a watermark an earlier sync committed a `Date` may lie and still be read as
# Deck's clock: servers whose clocks differ by a few seconds, a watermark rounded to the second.
BEHIND_WATERMARK = timedelta(seconds=settings.FALLBACK_CLOCK_SKEW_S)


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
    warehouse) is not taken for a skewed host. A `Date` that cannot be Deck's clock (outside
    2000-2100, or behind a watermark it vouched for) is left out (`_reading`)."""

    def __init__(self) -> None:
        self._dates: deque[datetime] = deque(maxlen=SAMPLES)
        self._offsets: deque[timedelta] = deque(maxlen=SAMPLES)
        self._sources: deque[str | None] = deque(maxlen=SAMPLES)  # the request of each answer
        self._lock = threading.Lock()
        self._warned = False
        self._floor: datetime | None = None  # Deck's clock had passed it (`vouch`)
        self._left_out = 0  # answers whose Date was not taken for Deck's clock
        self._warned_wrong = False

    def vouch(self, instant: datetime | None, local: datetime | None = None) -> None:
        """Deck's clock had passed `instant`: a watermark an earlier sync committed when Deck's
        answers agreed its clock had passed it (`ListingState.watermark_vouched`; the caller
        vouches for no other). Dates well behind it are not Deck's clock (those
        already seen are dropped too). Only Deck's own quorum vouches: a watermark bounded by
        this machine's clock (no `Date` could be read) may lie in Deck's future when this
        machine's clock is fast, and would then leave out every correct `Date`."""
        if instant is None:
            return
        local = local or datetime.now(timezone.utc)
        with self._lock:
            if self._floor is not None and instant <= self._floor:
                return
            self._floor = instant
            answers = list(zip(self._dates, self._offsets, self._sources, strict=True))
            dropped = [(date, source) for date, _, source in answers if not self._reading(date)]
            for answered in (self._dates, self._offsets, self._sources):
                answered.clear()
            for date, offset, source in answers:
                if self._reading(date):
                    self._dates.append(date)
                    self._offsets.append(offset)
                    self._sources.append(source)
        for date, source in dropped:
            self._left_out_answer(date, local, source)

    def _reading(self, date: datetime) -> bool:
        """Whether a `Date` can be a reading of Deck's clock (under the lock)."""
        if not EARLIEST_PLAUSIBLE <= date <= LATEST_PLAUSIBLE:
            return False
        return self._floor is None or date + TRUNCATED + BEHIND_WATERMARK >= self._floor

    def observe(
        self, header: str | None, local: datetime | None = None, source: str | None = None
    ) -> None:
        """Remember one answer's `Date` header, received at `local` (this machine's clock) in
        answer to `source` (e.g. "GET /v2/test"); warn once when it disagrees with the others,
        and once when it cannot be Deck's clock at all."""
        date = parse_http_date(header)
        if date is None:
            return
        local = local or datetime.now(timezone.utc)
        offset = date - local
        with self._lock:
            if not self._reading(date):
                reading = False
            else:
                reading = True
                usual = _median(self._offsets)
                agreed = _median(self._dates)
                self._dates.append(date)
                self._offsets.append(offset)
                self._sources.append(source)
                if usual is None or agreed is None or self._warned:
                    return
                skew = (offset - usual).total_seconds()
                if abs(skew) <= settings.FALLBACK_CLOCK_SKEW_S:
                    return
                self._warned = True
        if not reading:
            self._left_out_answer(date, local, source)
            return
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

    def _left_out_answer(self, date: datetime, local: datetime, source: str | None) -> None:
        """Count an answer whose `Date` is not taken for Deck's clock; the first one of a sync
        is said, with what was seen."""
        with self._lock:
            self._left_out += 1
            if self._warned_wrong:
                return
            self._warned_wrong = True
            floor = self._floor
        if not EARLIEST_PLAUSIBLE <= date <= LATEST_PLAUSIBLE:
            why = "outside the years 2000-2100"
        else:
            assert floor is not None
            why = (
                f"{_duration((floor - date).total_seconds())} behind the newest record an"
                f" earlier sync listed ({floor.isoformat()})"
            )
        apart = (date - local).total_seconds()
        logger.warning(
            "Deck answered%s with a Date header of %s, %s, and %s %s this machine's clock: the"
            " header is wrong (a host's clock, or a stale cache in front of Deck), so it is not"
            " taken for Deck's clock and nothing is listed again. With no other answer to go by,"
            " this machine's clock + %s bounds the watermark, as without a Date header."
            " (Said once per sync.)",
            f" {source}" if source else "",
            date.isoformat(),
            why,
            _duration(abs(apart)),
            "ahead of" if apart > 0 else "behind",
            _duration(settings.FALLBACK_CLOCK_SKEW_S),
        )

    def agreed(self) -> datetime | None:
        """The date at least `QUORUM` answers agree on (None before that many arrived)."""
        with self._lock:
            return _median(self._dates)

    def at_least(self) -> datetime | None:
        """A date Deck's clock has reached, as its answers agree: the median of `QUORUM` or
        more; of two, the earlier (both say so); None with fewer. Whether the watermark is
        vouched for (`planning.vouch_for_watermark`): one answer ahead does not vouch."""
        with self._lock:
            return _agreed_by(self._dates, min)

    def at_most(self) -> datetime | None:
        """A date Deck's clock had not passed when it last answered, as its answers agree: the
        median of `QUORUM` or more; of two, the later (neither says more); None with fewer.
        Whether the watermark lies in Deck's future (`planning.forget_future_watermark`): one
        stale answer does not make it look so, and a sync of two requests can still tell."""
        with self._lock:
            return _agreed_by(self._dates, max)

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

    def passed(self, local: datetime | None = None) -> datetime:
        """A moment Deck's clock has reached (what Deck no longer keeps is judged from it):
        `now`, but the watermark vouched for when every `Date` was left out, since this
        machine's clock may be far from Deck's. (Right `Date`s are never left out for a
        watermark this machine's clock bounded: only Deck's answers vouch. With no `Date` that
        can be Deck's clock at all, a gap longer than Deck keeps events cannot be told.)"""
        with self._lock:
            fallback = None if self._dates or not self._left_out else self._floor
        return fallback if fallback is not None else self.now(local)


def _agreed_by(dates: deque[datetime], of_two: Any) -> datetime | None:
    """The median of `QUORUM` or more dates, `of_two` (min or max) of two, else None."""
    if len(dates) == 2:
        return of_two(dates)
    return _median(dates)


def _median(values: deque[Any]) -> Any:
    """The lower median of at least `QUORUM` values (never a mean of two), else None."""
    if len(values) < QUORUM:
        return None
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def _duration(seconds: float) -> str:
    """`7200` -> "2.0 h", `90` -> "1.5 min", `3 * 86400` -> "3.0 days", for the warnings."""
    if seconds >= 365.25 * 86400:
        return f"{seconds / (365.25 * 86400):.1f} years"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"
