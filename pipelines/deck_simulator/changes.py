"""How the store's history changes: the seeded history, runs added, the clock advanced (and the
lifecycle steps it reaches), runs updated, records and events served verbatim.

A mixin of `store.RunStore`, which owns the runs, their keyset index, the clock and the lock:
every method here takes that lock.
"""

from __future__ import annotations

import bisect
import gc
import threading
from typing import Any

from .data import RunGenerator
from .events import EventLog
from .times import MS_PER_DAY, coerce_time, dt_to_ms, fmt_ms, jsonable, parse_iso
from .transitions import Transitions


class RunChanges:
    """The changing side of `RunStore`."""

    gen: RunGenerator
    events: EventLog
    lock: threading.RLock
    now_ms: int
    records: dict[str, Any]
    keys: list[tuple[int, str]]
    transitions: Transitions
    _raw: set[str]

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
