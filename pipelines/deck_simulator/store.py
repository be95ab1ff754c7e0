"""The runs, their keyset index and the simulated clock.

Runs are kept by id plus a sorted index of (created_at ms, id), which is exactly Deck's keyset
order, so a page is a bisect and a slice. Their scheduled lifecycle steps are
``transitions.Transitions``; ``advance`` applies the ones the clock reached. Every method is
thread-safe (one re-entrant lock) because the HTTP server reads while a test mutates.
Objects hold their timestamps as ``fmt_ms`` prints them; a ``Contract`` that prints otherwise
gets re-printed copies (``_served``), so the default serves the live objects at no cost.
"""

from __future__ import annotations

import bisect
import gc
import json
import threading
from collections.abc import Callable
from typing import Any

from .contract import Contract
from .data import RunGenerator
from .events import Entry, EventLog
from .keyset import Window, keyset_range
from .times import (
    MS_PER_DAY,
    Reprint,
    coerce_time,
    dt_to_ms,
    fmt_ms,
    jsonable,
    parse_iso,
    reprint_event,
    reprint_run,
    reprinter,
)
from .transitions import Transitions


class RunStore:
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

    # ---------------------------------------------------------------- changing

    def seed_history(self, n: int, history_days: float) -> None:
        """The initial history: n runs spread over the days before the clock."""
        span = max(0, round(history_days * MS_PER_DAY))
        times = self.gen.spread_times(n, self.now_ms - span, self.now_ms)
        self._bulk_create(times)

    def add_runs(
        self,
        n: int,
        created_at: Any,
        status: str | None,
        ids: list[str] | None,
        fields: dict[str, Any],
    ) -> list[str]:
        """See DeckSimulator.add_runs."""
        if n < 0:
            raise ValueError("n must be >= 0")
        for bad in ("id", "created_at"):
            if bad in fields:
                raise ValueError(f"{bad} cannot be set through **fields")
        if ids is not None and (len(ids) != n or len(set(ids)) != n):
            raise ValueError("ids must hold n distinct ids")
        extra = {k: jsonable(v) for k, v in fields.items()}
        created: list[str] = []
        with self.lock:
            if ids is not None and any(i in self.records for i in ids):
                raise ValueError("a run with one of these ids exists already")
            c = self.now_ms if created_at is None else coerce_time(created_at)
            for i in range(n):
                run_id = ids[i] if ids is not None else None
                created.append(self._create_run(c, status=status, extra=extra, run_id=run_id))
        return created

    def advance(self, seconds: float, new_runs: int) -> None:
        """See DeckSimulator.advance."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self.lock:
            start = self.now_ms
            end = start + round(seconds * 1000)
            if new_runs:
                for c in self.gen.spread_times(new_runs, start + 1 if end > start else start, end):
                    self._create_run(c, schedule_only=True)
            self.now_ms = end
            self.transitions.run_due(end, self.records)

    def update_run(self, run_id: str, fields: dict[str, Any]) -> None:
        """See DeckSimulator.update_run."""
        if "id" in fields:
            raise ValueError("id cannot be changed")
        with self.lock:
            obj = self.records[run_id]
            if "created_at" in fields:
                new_c = coerce_time(fields.pop("created_at"))
                old_key = (self._created_ms(obj), run_id)
                del self.keys[bisect.bisect_left(self.keys, old_key)]
                bisect.insort(self.keys, (new_c, run_id))
                obj["created_at"] = fmt_ms(new_c)
            if "status" in fields:
                self.transitions.cancel(run_id)
            before = obj.get("status")
            for key, value in fields.items():
                obj[key] = jsonable(value)
            if "updated_at" not in fields:
                obj["updated_at"] = fmt_ms(self.now_ms)
            if obj.get("status") != before:
                self.events.emit(
                    self.now_ms, run_id, obj.get("status"), obj.get("result"), obj.get("runtime_ms")
                )

    def add_raw_record(self, record: Any, created_at: Any) -> str:
        """See DeckSimulator.add_raw_record."""
        with self.lock:
            c = coerce_time(created_at)
            handle = f"raw_{len(self._raw):04d}_{self.gen.rng.getrandbits(32):08x}"
            self._raw.add(handle)
            self.records[handle] = record
            bisect.insort(self.keys, (c, handle))
        return handle

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

    def add_raw_event(self, record: Any, created_at: Any) -> str:
        with self.lock:
            return self.events.add_raw(record, coerce_time(created_at))

    def replace_raw_event(self, handle: str, record: Any) -> None:
        with self.lock:
            self.events.replace_raw(handle, record)

    def serve_fields(self, run_id: str, fields: dict[str, Any]) -> None:
        with self.lock:
            self.records[run_id].update(fields)

    def replace_raw_record(self, handle: str, record: Any) -> None:
        with self.lock:
            if handle not in self._raw:
                raise KeyError(handle)
            self.records[handle] = record

    # ---------------------------------------------------------------- creating

    @staticmethod
    def _created_ms(obj: dict[str, Any]) -> int:
        parsed = parse_iso(obj["created_at"])
        assert parsed is not None
        return dt_to_ms(parsed)

    def _bulk_create(self, times: list[int]) -> None:
        """Build every run, then sort the index once (fast for 500k runs)."""
        now = self.now_ms
        keys = self.keys
        emit = self.events.emit
        settle = self.transitions.settle
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small dicts, no cycles: the collector would only slow this down
        # events already past retention are never served: skip storing them (500k runs)
        self.events.keep_from = self.events.cutoff(now)
        try:
            for c in times:
                rid = self.gen.new_run_id(self.records)
                obj, steps = self.gen.generate(rid, c, None, self.now_ms)
                self.records[rid] = obj
                keys.append((c, rid))
                emit(c, rid, "queued", None, None)
                settle(rid, obj, steps, now)
            keys.sort()
            self.events.index()  # sort now, not during the first request
        finally:
            self.events.keep_from = None
            if gc_was_enabled:
                gc.enable()

    def _create_run(
        self,
        c: int,
        *,
        status: str | None = None,
        extra: dict[str, Any] | None = None,
        schedule_only: bool = False,
        run_id: str | None = None,
    ) -> str:
        rid = run_id if run_id is not None else self.gen.new_run_id(self.records)
        obj, steps = self.gen.generate(rid, c, status, self.now_ms)
        if extra:
            obj.update(extra)
            self.transitions.stick(rid, set(extra))
        self.records[rid] = obj
        bisect.insort(self.keys, (c, rid))
        self.events.emit(c, rid, "queued", obj.get("result"), obj.get("runtime_ms"))
        if status is not None or schedule_only:
            # steps[0] holds the (forced) first state; the rest are scheduled after the clock
            self.transitions.settle(rid, obj, steps, c, apply_until_index=1)
        else:
            self.transitions.settle(rid, obj, steps, self.now_ms)
        return rid
