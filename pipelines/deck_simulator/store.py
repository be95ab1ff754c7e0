"""The runs, their keyset index and the simulated clock.

Runs are kept by id plus a sorted index of (created_at ms, id), which is exactly Deck's keyset
order, so a page is a bisect and a slice. Their scheduled lifecycle steps are
``transitions.Transitions``; ``advance`` applies the ones the clock reached. Every method is
thread-safe (one re-entrant lock) because the HTTP server reads while a test mutates.
Objects hold their timestamps as ``fmt_ms`` prints them; a ``Contract`` that prints otherwise
gets re-printed copies (``_served``), so the default serves the live objects at no cost. What
tests and the clock change (runs added, updated, advanced; raw records) is ``changes.RunChanges``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from .changes import RunChanges
from .contract import Contract
from .data import RunGenerator
from .events import Entry, EventLog
from .keyset import Window, keyset_range
from .times import (
    Reprint,
    reprint_event,
    reprint_run,
    reprinter,
)
from .transitions import Transitions


class RunStore(RunChanges):
    """Ground truth: every run as the API serves it now, and the clock that moves them."""

    def __init__(self, generator: RunGenerator, now_ms: int, events: EventLog) -> None:
        self.gen = generator
        self.events = events
        """One event per status change of a run (``GET /events``); guarded by ``lock`` too."""
        self.lock = threading.RLock()  # runs, index, transitions, clock
        self.now_ms = now_ms
        self.records: dict[str, Any] = {}
        """id (or raw-record handle) -> the object served (a dict, or anything for raw ones)."""
        self.keys: list[tuple[int, str]] = []
        """Sorted (created_at ms, id): Deck's keyset order."""
        self.transitions = Transitions(events)
        self._raw: set[str] = set()  # handles of records served as given (add_raw_record)
        self.contract = Contract()
        """The reading of Deck's contract served (bounds, stored precision, printing)."""
        self.reprint: Reprint | None = None
        """How stored timestamps are printed under ``contract`` (None: as stored)."""

    # ---------------------------------------------------------------- reading

    def set_contract(self, contract: Contract) -> None:
        """Serve under ``contract`` from the next request on."""
        with self.lock:
            self.contract = contract
            self.reprint = reprinter(contract.stored == "ms_printed_s", contract.timestamp_format)

    def runs(self) -> list[dict[str, Any]]:
        """Deep copies of every run as served (raw records excluded), sorted by (created_at, id)."""
        with self.lock:
            rids = [rid for _, rid in self.keys if rid not in self._raw]
            return json.loads(json.dumps(self._served(rids)))

    def run(self, run_id: str) -> dict[str, Any]:
        with self.lock:
            self.records[run_id]  # KeyError if unknown
            return json.loads(json.dumps(self._served([run_id])[0]))

    def dump(self, run_id: str) -> bytes | None:
        """The JSON the API serves for one record, or None if unknown."""
        with self.lock:
            if run_id not in self.records:
                return None
            return json.dumps(self._served([run_id])[0], separators=(",", ":")).encode()

    def select(
        self,
        window: Window,
        order: str,
        after_key: tuple[int, str] | None,
        limit: int,
        match: Callable[[dict[str, Any]], bool] | None,
    ) -> tuple[list[Any], bool, tuple[int, str] | None]:
        """One keyset page: (records as served, has_more, key of the last record). Hold
        ``lock`` while serializing the records: they may be the live objects."""
        with self.lock:
            keys = self.keys
            runs = self.records
            indices = keyset_range(keys, window, order, after_key)
            rids: list[str] = []
            more = False
            last_key: tuple[int, str] | None = None
            keep = window.keep
            if match is None and keep is None:
                chosen = indices[: limit + 1]  # O(page): slice the range
                more = len(chosen) > limit
                rids = [keys[i][1] for i in chosen[:limit]]
                if rids:
                    last_key = keys[chosen[len(rids) - 1]]
            else:
                for i in indices:
                    key = keys[i]
                    if keep is not None and not keep(key):
                        continue
                    obj = runs[key[1]]
                    if match is None or (isinstance(obj, dict) and match(obj)):
                        if len(rids) == limit:
                            more = True
                            break
                        rids.append(key[1])
                        last_key = key
            return self._served(rids), more, last_key

    def _served(self, rids: list[str]) -> list[Any]:
        """The records as served: the live objects, or copies re-printed under the contract
        (raw records always as given)."""
        runs = self.records
        reprint = self.reprint
        if reprint is None:
            return [runs[r] for r in rids]
        raw = self._raw
        return [runs[r] if r in raw else reprint_run(runs[r], reprint) for r in rids]

    def render_events(self, entries: list[Entry]) -> list[Any]:
        """Events as served under the contract (fresh objects; raw ones as given)."""
        render = self.events.render
        runs = self.records
        events = [render(e, runs) for e in entries]
        reprint = self.reprint
        if reprint is None:
            return events
        return [
            ev if e[2] is None else reprint_event(ev, reprint)
            for e, ev in zip(entries, events, strict=True)
        ]

    def rendered_events(self, served_only: bool) -> list[dict[str, Any]]:
        """Deep copies of the events (within retention if ``served_only``), raw ones excluded."""
        with self.lock:
            log = self.events
            entries = log.served(self.now_ms) if served_only else log.index()
            return json.loads(
                json.dumps(self.render_events([e for e in entries if e[2] is not None]))
            )
