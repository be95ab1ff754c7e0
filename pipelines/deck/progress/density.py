"""Where a listing's records lie in `created_at` time, as far as the sync has seen: the map behind
the progress estimate.

Deck's list carries no total, so the records a window not listed yet holds can only be judged
from what was seen near it. One density for the whole history misleads on any history that is
not uniform: a burst, a quiet month or a last week that holds most runs counted at the average
put a 20,000-run sync at ~55,000 and moved its total 6,204 -> 16,053 -> 5,408 between loads. So
the map keeps what each observation says about its own stretch of time:

- a window listed to its end: exactly how many records its span holds;
- a window's first page (a probe): the density of the stretch it covers, and, at its far end,
  that the window holds nothing beyond it (Deck returned its newest, or oldest, record first);
  past its near end, weakly, the same density for two of its spans (`EXTEND_PAGES`);

and a stretch no observation covers takes the density seen around it, weighed by time (`_gap`).
Later observations replace earlier ones where they overlap; a probe never replaces a listed
count. Pure: time is always an argument.

It judges; it cannot know. A history made of bursts has, between the pages seen, stretches whose
records no page hints at: on such histories the total can be off by half until they are listed
(see the table in docs/operations.md, "Watching a long sync").
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from deck.core.windows import Window, after, is_plausible, page_direction

# A first page's density is carried on for this many of its own spans beyond it, into the window
# it came from (weaker than any page seen there). Deck lists a window from one end, so the page
# is the best guess for what lies just past it, where the cutter will have cut. Measured on the
# synthetic histories of tests/test_progress_units.py, 5 seeds, 1,000-5,000 runs per load, the
# estimate after each load / true total: 0 spans (time-weighted neighbours only) gave a last
# week of 0.62-1.30, 2 spans 0.77-1.18; uniform 0.93-1.03 -> 0.96-1.08, a long gap 0.82-1.17 ->
# 0.90-1.24; 4 and more overshoot a long gap and bursts.
EXTEND_PAGES = 2


@dataclass(frozen=True)
class Stretch:
    """A stretch of time `[start, end)` with a known density (records per second)."""

    start: datetime
    end: datetime
    density: float
    exact: bool  # counted by listing it whole, not judged from one page
    extended: bool = False  # a page's density carried on beyond the page (weakest)

    @property
    def strength(self) -> int:
        return 2 if self.exact else 0 if self.extended else 1

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class DensityMap:
    """Stretches of time with a density, disjoint and oldest first."""

    def __init__(self) -> None:
        self.stretches: list[Stretch] = []

    def listed(self, window: Window, records: int, now: datetime) -> None:
        """A window listed to its end, with `records` on its pages (an open end stops at `now`,
        Deck's clock). A window open towards the past spans from a record the map does not
        know: it adds nothing."""
        if window.start is None:
            return
        end = now if window.end is None or window.end > now else window.end
        seconds = (end - window.start).total_seconds()
        if seconds > 0:
            self._paint(Stretch(window.start, end, records / seconds, exact=True))

    def probed(self, window: Window, stamps: list[datetime], now: datetime) -> None:
        """The first page of `window` (`stamps`: its records' `created_at`, in page order), when
        Deck said more pages follow. Timestamps Deck's clock rules out are left out."""
        stamps = [s for s in stamps if is_plausible(s, now)]
        density = page_density(stamps, now)
        if density is None:
            return
        low, high = min(stamps), max(stamps)
        direction = page_direction(stamps)
        reach = (high - low) * EXTEND_PAGES
        if direction == "newest_first":  # nothing of the window lies after its newest record
            top = now if window.end is None or window.end > now else window.end
            self._paint(Stretch(after(high), top, 0.0, exact=False))
            below = low - reach if window.start is None else max(window.start, low - reach)
            self._paint(Stretch(below, low, density, exact=False, extended=True))
        elif direction == "oldest_first" and window.start is not None:
            self._paint(Stretch(window.start, low, 0.0, exact=False))
            above = high + reach if window.end is None else min(window.end, high + reach)
            self._paint(Stretch(high, min(above, now), density, exact=False, extended=True))
        self._paint(Stretch(low, high, density, exact=False))

    def records_in(self, window: Window, now: datetime) -> float | None:
        """Records judged to lie in `window`; None when it has no start (its size is not known
        until its oldest record is found) or nothing was observed yet."""
        if window.start is None or not self.stretches:
            return None
        end = now if window.end is None or window.end > now else window.end
        total, cursor = 0.0, window.start
        for stretch in self.stretches:
            if stretch.end <= cursor:
                continue
            if stretch.start >= end:
                break
            if stretch.start > cursor:
                total += self._gap(cursor, stretch.start)
            lo, hi = max(stretch.start, cursor), min(stretch.end, end)
            total += stretch.density * (hi - lo).total_seconds()
            cursor = hi
        if cursor < end:
            total += self._gap(cursor, end)
        return total

    def _gap(self, start: datetime, end: datetime) -> float:
        """Records judged to lie in `[start, end)`, which no stretch covers: at the density seen
        around it, within as much time again on each side (twice as far, and so on, until
        something was seen). Weighed by time, so that a short dense stretch next to a long gap
        (a burst listed whole, a first page) does not speak for all of it; local, so that a
        history whose runs crowd into its last week is not judged by its quiet months."""
        reach = end - start
        while True:
            records = seen = 0.0
            for stretch in self.stretches:
                lo, hi = max(stretch.start, start - reach), min(stretch.end, end + reach)
                if lo < hi:
                    part = (hi - lo).total_seconds()
                    records += stretch.density * part
                    seen += part
            if seen > 0:
                return records / seen * (end - start).total_seconds()
            reach *= 2

    def _paint(self, new: Stretch) -> None:
        """Lay `new` over the map: it replaces what it overlaps, except that a judged stretch
        does not replace a counted one (it fills only around it)."""
        if new.start >= new.end:
            return
        kept: list[Stretch] = []
        pieces = [new]
        for old in self.stretches:
            if old.end <= new.start or old.start >= new.end:
                kept.append(old)
            elif old.strength > new.strength:
                kept.append(old)
                pieces = [part for piece in pieces for part in _minus(piece, old)]
            else:
                kept.extend(_minus(old, new))
        self.stretches = sorted([*kept, *pieces], key=lambda s: s.start)


def _minus(stretch: Stretch, other: Stretch) -> list[Stretch]:
    """The parts of `stretch` outside `other`."""
    parts = [
        replace(stretch, end=min(stretch.end, other.start)),
        replace(stretch, start=max(stretch.start, other.end)),
    ]
    return [part for part in parts if part.start < part.end]


def page_density(stamps: list[datetime], now: datetime) -> float | None:
    """Records per second over the stretch a page covers; None when it covers no time."""
    stamps = [s for s in stamps if is_plausible(s, now)]
    if len(set(stamps)) < 2:
        return None
    return len(stamps) / (max(stamps) - min(stamps)).total_seconds()
