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
window of that start lists at most ~2% empty time; the second is the finest step). It asks
`at_once` instants together, the sync's workers (nothing else can be listed in time order
before the start is known): the next doublings at once, then the gap cut in `at_once + 1`, so a
year takes ~6 round trips instead of ~20 in a row (~3 s at Deck's 150 ms). An
oldest-first answer names the oldest record itself, which one request confirms. Where no empty
answer comes before `EARLIEST_PLAUSIBLE` (a record dated 1970), the window stays open.

    search = StartSearch.from_opening(stamps_of_the_first_page, has_more=True)
    while probes := search.next_probes(at_once=5):  # asked together
        search.answer([(t, any_record_before(t)) for t in probes])
    search.start  # None: keep the window open
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    confirming: bool = False  # oldest first: one request confirms the oldest record's second

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
            search.confirming = True
        return search

    def next_probes(self, at_once: int = 1) -> list[datetime]:
        """The instants to ask about next (`created_before`), up to `at_once` asked together
        (galloping: the next `at_once` doublings; halving: the gap cut in `at_once + 1`);
        [] when the search is over."""
        if self.gave_up or self.probes >= MAX_PROBES:
            self.gave_up = self.lo is None
            return []
        if self.lo is None:
            probes, step = [], self.step
            for _ in range(1 if self.confirming and not self.probes else at_once):
                probe = floor(self.hi - step, ONE_S)
                if probe < EARLIEST_PLAUSIBLE:
                    break
                probes.append(probe)
                step *= 2
            self.gave_up = not probes
            return probes
        gap = self.hi - self.lo
        if gap <= max(ONE_S, (self.newest - self.lo) / PRECISION_SHARE):
            return []
        points = {floor(self.lo + gap * (i + 1) / (at_once + 1), ONE_S) for i in range(at_once)}
        return sorted(p for p in points if self.lo < p < self.hi)

    def answer(self, answers: list[tuple[datetime, bool]]) -> None:
        """What Deck answered for each `created_before=probe` of a round: whether any record
        lies before it. An empty answer counts only below every instant with records (runs
        deleted meanwhile cannot make the start later than a record seen)."""
        self.probes += len(answers)
        for probe, any_before in answers:
            if any_before:
                self.hi = min(self.hi, probe)
        for probe, any_before in answers:
            if not any_before and probe < self.hi:
                self.lo = probe if self.lo is None else max(self.lo, probe)
        if self.lo is not None and self.lo >= self.hi:
            self.lo = None  # contradicted by a record seen since: gallop on from `hi`
        if self.lo is None:
            self.step *= 2 ** len(answers)

    @property
    def start(self) -> datetime | None:
        """A start with no record before it, None when none was proven."""
        return None if self.gave_up else self.lo


def find_start(
    list_pages: Callable[[dict[str, Any]], Iterator[Page]],
    params: dict[str, Any],
    opening: Page,
    noun: str,
    at_once: int = 1,
) -> datetime | None:
    """The start of the history `params` select (a window open towards the past: its filters
    and end bound), asked of Deck after the window's first page (`opening`), `at_once` requests
    at a time (the sync's workers, idle until the plan is bounded); None when it cannot be
    proven (the window stays open) or the first page held the whole window."""
    search = StartSearch.from_opening(page_stamps(opening.items), opening.has_more)
    if search is None:
        return None

    def any_before(probe: datetime) -> bool:
        page = _first_page(
            list_pages, {**params, "created_before": format_bound(probe), "limit": 1}
        )
        return bool(page.items)

    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="deck-start") as pool:
        while probes := search.next_probes(at_once):
            search.answer(list(zip(probes, pool.map(any_before, probes), strict=True)))
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
