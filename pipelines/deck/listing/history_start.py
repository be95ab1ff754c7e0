"""Where a resource's history starts, found once with `limit=1` requests (no I/O here).

A plan with no `start_date` has a window open towards the past. Listed as it is, its first pages
can only be probes (the density of the newest end says nothing about where history begins), a
load cannot take windows in time order before the oldest is known, and the progress estimate
can only say "at least". So the start is found first, by asking whether any record was created
before an instant (`created_before=t`, `limit=1`):

- an empty answer proves that no record lies before `t` under every reading of the bound
  (exclusive as documented, or inclusive; `t` is a whole second, so no reading of its precision
  moves it): `t` is a valid start;
- a record in the answer proves only that history reaches that far, or to `t` itself.

The search gallops back from the oldest record the opening answer showed (1 hour, 2, 4, ...:
a year in ~13 requests) to an instant with nothing before it, then halves the gap between that
instant and the oldest one with records until the gap is below 1/64 of the history found (a
window of that start lists at most ~2% empty time; the second is the finest step). An
oldest-first answer names the oldest record itself, which one request confirms. Where no empty
answer comes before `EARLIEST_PLAUSIBLE` (a record dated 1970), the window stays open.

    search = StartSearch.from_opening(stamps_of_the_first_page, has_more=True)
    while (t := search.next_probe()) is not None:
        search.answer(t, any_record_before_t)
    search.start  # None: keep the window open
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from deck.api.client import Page
from deck.core.windows import (
    EARLIEST_PLAUSIBLE,
    ONE_S,
    ceil,
    floor,
    format_bound,
    format_timestamp,
    page_stamps,
)

logger = logging.getLogger("deck")

FIRST_STEP = timedelta(hours=1)
PRECISION_SHARE = 64  # the gap left is below 1/64 of the history found
MAX_PROBES = 64  # a bound no honest answer reaches (a year takes ~25)


@dataclass
class StartSearch:
    """The state of one search: `lo` has nothing before it, records lie before `hi`."""

    newest: datetime  # the newest instant the opening answer showed
    hi: datetime  # records exist before this (or at it)
    lo: datetime | None = None  # nothing before this; None until an empty answer
    step: timedelta = FIRST_STEP
    probes: int = 0
    gave_up: bool = False

    @classmethod
    def from_opening(cls, stamps: list[datetime], has_more: bool) -> StartSearch | None:
        """The search after the window's first page (`stamps` in the order Deck gave them);
        None when there is nothing to search (the page held every record of the window, or
        none that could be read)."""
        if not stamps or not has_more:
            return None
        newest, oldest = max(stamps), min(stamps)
        search = cls(newest=newest, hi=ceil(oldest + ONE_S, ONE_S))
        if len(stamps) > 1 and stamps[0] < stamps[-1]:
            search.step = search.hi - floor(oldest, ONE_S)  # oldest first: confirm its second
        return search

    def next_probe(self) -> datetime | None:
        """The instant to ask about next (`created_before`), None when the search is over."""
        if self.gave_up or self.probes >= MAX_PROBES:
            self.gave_up = self.lo is None
            return None
        if self.lo is None:
            probe = floor(self.hi - self.step, ONE_S)
            if probe < EARLIEST_PLAUSIBLE:
                self.gave_up = True
                return None
            return probe
        gap = self.hi - self.lo
        if gap <= max(ONE_S, (self.newest - self.lo) / PRECISION_SHARE):
            return None
        middle = floor(self.lo + gap / 2, ONE_S)
        return middle if self.lo < middle < self.hi else None

    def answer(self, probe: datetime, any_before: bool) -> None:
        """What Deck answered for `created_before=probe`."""
        self.probes += 1
        if any_before:
            self.hi = min(self.hi, probe)
            if self.lo is None:
                self.step *= 2
        else:
            self.lo = probe if self.lo is None else max(self.lo, probe)

    @property
    def start(self) -> datetime | None:
        """A start with no record before it, None when none was proven."""
        return None if self.gave_up else self.lo


def find_start(
    list_pages: Callable[[dict[str, Any]], Iterator[Page]],
    params: dict[str, Any],
    opening: Page,
    noun: str,
) -> datetime | None:
    """The start of the history `params` select (a window open towards the past: its filters
    and end bound), asked of Deck after the window's first page (`opening`); None when it
    cannot be proven (the window stays open) or the first page held the whole window."""
    search = StartSearch.from_opening(page_stamps(opening.items), opening.has_more)
    if search is None:
        return None
    while (probe := search.next_probe()) is not None:
        answer = _first_page(
            list_pages, {**params, "created_before": format_bound(probe), "limit": 1}
        )
        search.answer(probe, bool(answer.items))
    if search.start is None:
        logger.info("Where the %s' history starts could not be proven: listed from the start", noun)
    else:
        logger.info(
            "The %s' history starts at or after %s (found in %d requests)",
            noun, format_timestamp(search.start), search.probes,
        )
    return search.start


def _first_page(list_pages: Callable[[dict[str, Any]], Iterator[Page]], params: dict) -> Page:
    pages = list_pages(params)
    try:
        return next(pages)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
