"""What the listing tells whoever follows a sync's progress, and nothing of how it is shown.

A walk of windows (`deck.listing.walker`) reports each window's first page, each window listed
to its end, and what it has left; the bookkeeping that turns these into an estimate
(`deck.progress.estimate.SyncProgress`) implements these protocols, and `sync()` hands it to the
sync's `SyncStats`. The listing imports only this module, so the estimate and its display can
change without the listing knowing. A source run on its own (`pipeline.run(deck())`) has nobody
following: `NoProgress` drops every report.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from deck.core.windows import Window

# What a walk has left, read from another thread: the windows not started, and those in flight
# with the records fetched of each so far.
Outlook = Callable[[], tuple[list[Window], dict[Window, int]]]


class ListingObserver(Protocol):
    """Follows one listing (task runs or events) across a sync's loads; called from the walk's
    worker threads too."""

    def follow(self, outlook: Outlook, clock: Callable[[], datetime], page_size: int) -> None:
        """A load's walk begins: `outlook` is its work left, `clock` Deck's "now"."""

    def probed(self, window: Window, items: list[dict[str, Any]]) -> None:
        """The first page of `window`, when more pages follow."""

    def sized(self, window: Window, records: int) -> None:
        """`window` holds `records` (its first page held it whole); not yet loaded."""

    def listed(self, window: Window, records: int) -> None:
        """`window` was listed to its end, `records` on its pages."""

    def finish(self) -> None:
        """Every window of the plan is listed: nothing is left of this listing in the sync."""


class ProgressObserver(Protocol):
    """Follows a whole sync: one `ListingObserver` per listing, by name ("runs", "events")."""

    def listing(self, name: str) -> ListingObserver: ...


class _NoListing:
    def follow(self, outlook: Outlook, clock: Callable[[], datetime], page_size: int) -> None:
        pass

    def probed(self, window: Window, items: list[dict[str, Any]]) -> None:
        pass

    def sized(self, window: Window, records: int) -> None:
        pass

    def listed(self, window: Window, records: int) -> None:
        pass

    def finish(self) -> None:
        pass


class NoProgress:
    """Progress nobody follows: every report is dropped."""

    def listing(self, name: str) -> ListingObserver:
        return _NoListing()
