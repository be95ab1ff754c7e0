"""One load of a resource listed by `created_at` windows: `task_runs` and `task_run_events`.

Why not `dlt.sources.incremental`: windows are listed in parallel and out of order, a plan of
windows spans several loads (a backfill commits every `max_runs_per_load` records), and a
lookback re-reads the newest records, so the cursor is more than one high-water mark. The state
this needs is typed in `state.py`; the decisions over it are pure functions in `planning.py`.
What differs between the two resources -- which records are loaded, and what happens after the
windows (open runs, quarantine retries) -- is left to subclasses.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Generic, TypeVar

from deck.api.client import DeckClient, Page
from deck.core.options import SourceOptions
from deck.core.state import ListingState, Plan
from deck.core.stats import SyncStats
from deck.core.windows import Window
from deck.listing.listed import ListedWindow
from deck.listing.planning import finish_plan, forget_future_watermark, initial_plan, top_window
from deck.listing.producer import WindowProducer
from deck.listing.walker import WindowWalker

logger = logging.getLogger("deck")

StateT = TypeVar("StateT", bound=ListingState)


class WindowedLoad(Generic[StateT]):
    """Yields what one load writes and keeps dlt's resource state.

    `more_to_load` is True after the load stopped at `max_runs_per_load` with windows left: their
    plan stays in state, and the next load (of the same sync, or the next sync after a kill)
    resumes it.
    """

    noun = "records"  # for log lines

    def __init__(
        self,
        client: DeckClient,
        options: SourceOptions,
        raw_state: dict[str, Any],
        state: StateT,
        stats: SyncStats,
        *,
        list_pages: Callable[[dict[str, Any]], Iterator[Page]],
        params: dict[str, Any],
        filters_fingerprint: str,
        producer: WindowProducer | None = None,
    ) -> None:
        self.client = client
        self.options = options
        self.raw_state = raw_state
        self.stats = stats
        self.state = state
        # Deck's answers agreed its clock had passed the watermark an earlier sync committed
        # (planning.vouch_for_watermark): a Date far behind it is a wrong clock, not Deck's
        # (clock.DeckClock.vouch). Never one this machine's clock bounded: it may be fast.
        if state.watermark_vouched:
            client.stats.clock.vouch(state.watermark)
        if state.filters not in (None, filters_fingerprint):
            logger.warning(
                "The filters of %s changed since the last sync (%s -> %s): listing from"
                " start_date again; rows already loaded stay.",
                self.noun,
                state.filters,
                filters_fingerprint,
            )
            self.state = self._state_for_new_filters()
        self.state.filters = filters_fingerprint
        self.listing = stats.progress.listing(self.noun)
        self.walker = WindowWalker(
            list_pages,
            params,
            page_size=client.page_size,
            workers=options.workers,
            pages_per_window=options.pages_per_window,
            listing_cut=options.listing_cut(client.page_size),
            # Deck's clock itself, not the bound `self.clock`: the sync's progress keeps the
            # walker's clock until the next load, and through a bound method it kept this whole
            # load (its state of open runs, the runs it handled) alive while dlt loaded it.
            clock=client.stats.deck_now,
            progress=self.listing,
            producer=producer,
            noun=self.noun,
        )
        self.loaded = 0
        self.more_to_load = False
        self._listed_top = False  # whether this load listed the plan's newest window

    def _state_for_new_filters(self) -> StateT:
        """The state to start over from when the filters changed."""
        return type(self.state)()

    def clock(self) -> datetime:
        """Deck's "now": no record listed so far can have been created later than this."""
        return self.client.stats.deck_now()

    def items(self) -> Iterator[Any]:
        """Batches to load: the planned windows, then whatever the resource does after them."""
        try:
            plan = self._plan()
            yield from self._walk(plan)
            if self.more_to_load:
                return
            top = self._top_to_relist(plan)
            if top is not None:
                self.stats.top_relisted.add(self.noun)
                plan.windows = [top]
                yield from self._walk(plan)
                if self.more_to_load:
                    return
            self._report_missing(plan)
            clock = self.client.stats.clock
            finish_plan(self.state, plan, clock.at_least())
            # the next sync lists all history again if an old watermark lies in Deck's future
            forget_future_watermark(self.state, clock.at_most(), self.options.lookback)
            self.listing.finish()
            yield from self._after_listing()
        finally:
            self.state.save(self.raw_state)

    def _plan(self) -> Plan:
        """The windows this range still needs, resumed from state after a committed load."""
        if self.state.plan is None:
            options = self.options
            deck_clock = self.client.stats.clock.at_most()  # None until answers agree
            self._before_planning()
            self.state.plan = initial_plan(
                self.state, options.start, options.end, options.lookback, deck_clock
            )
        return self.state.plan

    def _before_planning(self) -> None:
        """A last look at the state before a new plan is made from it."""

    def _top_to_relist(self, plan: Plan) -> Window | None:
        """The newest window to list once more when the plan is done, None when not needed.

        When the newest window was listed by an earlier load of this plan, records created
        since then lie above everything listed, so the top is listed once more. Once per sync:
        a lookback holding more than a load would otherwise be re-listed by every load, for
        ever; what arrives after this is the next sync's."""
        if self._listed_top or self.noun in self.stats.top_relisted or plan.max_seen is None:
            return None
        return top_window(plan.max_seen, self.options.end, self.options.lookback)

    def _walk(self, plan: Plan) -> Iterator[Any]:
        """List the plan's windows, loading each as soon as it is listed; stop at the budget:
        the load takes whole windows until they hold `max_runs_per_load` records (walker.py)."""
        if not any(window.end == self.options.end for window in plan.windows):
            # The top was listed by an earlier load, and every window left lies below it: the
            # top to list once more is known now, and listed as the plan's last listings start
            # (not after dlt took in the last windows: ~2 s at 20,000 runs).
            if (top := self._top_to_relist(plan)) is not None:
                self.walker.list_after(top)
        walk = self.walker.walk(plan.windows, limit=self.options.max_runs_per_load - self.loaded)
        for listed in walk:
            self._listed_top |= listed.window.end == self.options.end
            plan.account(
                listed.window,
                [page.items for page in listed.pages],
                [rejection.run_id for rejection in listed.rejected],
                listed.deferred,
            )
            yield from self._load_window(listed, plan)
        plan.windows = self.walker.pending
        if plan.windows:
            logger.info(
                "Committing after %d %s; %d windows left for the next load",
                self.loaded,
                self.noun,
                len(plan.windows),
            )
            self.more_to_load = True

    def _report_missing(self, plan: Plan) -> None:
        """Every window is listed: the records a cut left to the rest of its window must have
        come back with it. Any that did not is a run Deck listed once and then no longer under
        the same bounds (a reading of them this code does not know, or a run deleted or moved):
        said loudly, and counted in the summary, never silently."""
        if not plan.deferred:
            return
        if self._selects_by_state():
            # a run can leave the selected states between the cut and the rest: not a loss
            logger.info(
                "%d %s left to a cut did not come back with the rest of their window; the"
                " status/outcome filters can account for that.", len(plan.deferred), self.noun,
            )
            plan.deferred.clear()
            return
        self.stats.not_relisted += len(plan.deferred)
        sample = ", ".join(f"{rid} ({at})" for rid, at in list(plan.deferred.items())[:5])
        logger.warning(
            "%d %s that Deck listed before a cut did not come back when the rest of their window"
            " was listed (%s%s), so they were not loaded. Deck no longer returns them for the"
            " bounds asked: if they were not deleted in Deck, please report this with the log"
            " above; a full refresh (--full-refresh) lists all history again.",
            len(plan.deferred),
            self.noun,
            sample,
            ", ..." if len(plan.deferred) > 5 else "",
        )
        plan.deferred.clear()

    def _selects_by_state(self) -> bool:
        """Whether the listing asks Deck for records in some states only (they can leave it)."""
        return False

    def _load_window(self, listed: ListedWindow, plan: Plan) -> Iterator[Any]:
        """What one listed window loads (its records that are new or changed)."""
        raise NotImplementedError

    def _after_listing(self) -> Iterator[Any]:
        """What the load does once every window of the plan is listed."""
        return iter(())
