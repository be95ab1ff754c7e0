"""A window listed to its last page, as the walker hands it to the load (`ListedWindow`), and
what one fetch of a window gives back (`_Fetched`: that listing, or the parts to list instead).
"""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from deck.api.client import Page
from deck.core.records import Checked, Rejection
from deck.core.windows import Window


@dataclass
class ListedWindow:
    """A window listed to its last page: its loadable pages and the records it had to reject.

    A window listed ahead waits for the next load with its pages `packed` (pickled and
    compressed: ~0.1 KB per run instead of ~1.9 KB as parsed dicts), so the up to one load's
    worth of windows held while dlt loads (`SourceOptions.records_ahead`; where a sync's memory
    peaks) costs a few MiB at the default 50,000 runs rather than ~95 MiB.
    """

    window: Window
    pages: list[Page] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    packed_pages: bytes | None = None  # `pages`, pickled and compressed (`pages` is empty)
    packed_records: int = 0
    # Records listed here that a cut left to the rest of the window (id -> created_at): the
    # listing of the rest must bring each of them again (`Plan.account`).
    deferred: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        if self.packed_pages is not None:
            return self.packed_records
        return sum(len(page.items) for page in self.pages)

    def packed(self) -> ListedWindow:
        """This listing with its pages pickled and compressed. Pickle, not JSON: it gives back
        exactly the values the checks passed (integers beyond 64 bits, NaN, lone surrogates);
        the bytes never leave this process. zlib at level 1 takes 449 bytes of pickle per run
        to ~120 for ~7 us of CPU per run, packing and unpacking."""
        if self.packed_pages is not None:
            return self
        pages = [(page.items, page.has_more, page.request_id) for page in self.pages]
        pickled = pickle.dumps(pages, protocol=pickle.HIGHEST_PROTOCOL)
        return ListedWindow(
            self.window,
            rejected=self.rejected,
            packed_pages=zlib.compress(pickled, level=1),
            packed_records=self.records,
            deferred=self.deferred,
        )

    def unpacked(self) -> ListedWindow:
        """This listing with its pages parsed (itself when they are)."""
        if self.packed_pages is None:
            return self
        pages = [
            Page(items, more, request_id)
            for items, more, request_id in pickle.loads(zlib.decompress(self.packed_pages))
        ]
        return ListedWindow(self.window, pages, self.rejected, deferred=self.deferred)


@dataclass
class Opened:
    """A window's first page, fetched (and checked) when the window it is part of was cut, and
    its listing to go on with from the second page when the window's turn comes.

    `continued`: the rest of a listing cut where it reached a load's worth (`first` holds the
    records of its pages that fall in the rest, `pages` the same cursor going on), listed to its
    end, never cut by density nor probed: its first page is no sample of it."""

    pages: Iterator[Page]
    first: Page
    checks: list[Checked]
    continued: bool = False


@dataclass
class _Fetched:
    parts: list[Window] = field(default_factory=list)
    listed: ListedWindow | None = None
    # The first pages of `parts`, fetched as the window was cut: the listing of each goes on from
    # there, and the estimate learns every part's density at once (`probes`: parts with more
    # pages; `sized`: parts their first page held whole, with its record count).
    opened: dict[Window, Opened] = field(default_factory=dict)
    probes: list[tuple[Window, list[dict[str, Any]]]] = field(default_factory=list)
    sized: list[tuple[Window, int]] = field(default_factory=list)
    # The first page of a window that held more (the window as listed, its records): how dense
    # that stretch is, reported to the progress estimate by the load that takes the window, so
    # that the estimate never depends on which listings the workers reached first.
    probe: tuple[Window, list[dict[str, Any]]] | None = None
