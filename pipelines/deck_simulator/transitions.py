"""The runs' scheduled lifecycle steps, applied as the simulated clock reaches them.

A run is born with a list of timed steps (``data.RunGenerator``): the ones already due are applied
at once (``settle``), the rest wait in a heap that ``run_due`` pops as the clock advances. Each
applied step that changes a run's status emits its event (``events.EventLog``). Fields a test set
on a run (``add_runs(**fields)``) are sticky: later steps leave them alone. Not thread-safe on its
own: the store calls it under its lock.
"""

from __future__ import annotations

import heapq
from typing import Any

from .data import Steps
from .events import EventLog
from .times import fmt_ms


class Plan:
    """The remaining lifecycle steps of one run; its identity marks heap entries as current."""

    __slots__ = ("index", "steps")

    def __init__(self, steps: Steps, index: int) -> None:
        self.steps = steps
        self.index = index


class Transitions:
    """Every run's pending steps, by time, and the fields of each run that steps must not touch."""

    def __init__(self, events: EventLog) -> None:
        self.events = events
        self._plans: dict[str, Plan] = {}
        self._heap: list[tuple[int, int, str, Plan]] = []
        self._seq = 0
        self._sticky: dict[str, set[str]] = {}

    def stick(self, rid: str, fields: set[str]) -> None:
        """Later steps of run ``rid`` leave these fields as they are."""
        self._sticky[rid] = fields

    def cancel(self, rid: str) -> None:
        """Drop the run's remaining steps (a test set its status by hand)."""
        self._plans.pop(rid, None)

    def settle(
        self,
        rid: str,
        obj: dict[str, Any],
        steps: Steps,
        until: int,
        apply_until_index: int | None = None,
    ) -> None:
        """Apply the steps due by ``until`` (or exactly the first ``apply_until_index``);
        schedule the rest. Called as the run is created (born ``queued``, whatever its object
        says already)."""
        status: Any = "queued"
        last_t = None
        index, n = 0, len(steps)
        while index < n:
            t, updates = steps[index]
            if apply_until_index is not None:
                if index >= apply_until_index:
                    break
            elif t > until:
                break
            status = self._apply(rid, obj, t, updates, status, stamp=False)
            last_t = t
            index += 1
        if last_t is not None and not self._is_sticky(rid, "updated_at"):
            obj["updated_at"] = fmt_ms(last_t)
        if index < n:
            self._schedule(rid, Plan(steps, index))
        else:
            self._plans.pop(rid, None)

    def run_due(self, now: int, records: dict[str, Any]) -> None:
        """Apply every scheduled step whose time is <= ``now``, in time order."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            t, _, rid, plan = heapq.heappop(heap)
            if self._plans.get(rid) is not plan:
                continue  # cancelled
            obj = records[rid]
            self._apply(rid, obj, t, plan.steps[plan.index][1], obj.get("status"), stamp=True)
            plan.index += 1
            if plan.index < len(plan.steps):
                self._schedule(rid, plan)
            else:
                del self._plans[rid]

    def _apply(
        self, rid: str, obj: dict[str, Any], t: int, updates: dict[str, Any], before: Any,
        *, stamp: bool,
    ) -> Any:
        """One step on the run's object (sticky fields kept); its event if the status changed.
        Returns the status after the step."""
        sticky = self._sticky.get(rid)
        if sticky:
            for k, v in updates.items():
                if k not in sticky:
                    obj[k] = v
        else:
            obj.update(updates)
        if stamp and not (sticky and "updated_at" in sticky):
            obj["updated_at"] = fmt_ms(t)
        status = obj.get("status")
        if status != before:
            self.events.emit(t, rid, status, obj.get("result"), obj.get("runtime_ms"))
        return status

    def _is_sticky(self, rid: str, field: str) -> bool:
        sticky = self._sticky.get(rid)
        return bool(sticky) and field in sticky

    def _schedule(self, rid: str, plan: Plan) -> None:
        self._plans[rid] = plan
        self._seq += 1
        heapq.heappush(self._heap, (plan.steps[plan.index][0], self._seq, rid, plan))
