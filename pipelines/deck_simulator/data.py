"""Seeded generation of runs and their lifecycle plans.

A run is born ``queued`` with a list of timed steps (queued -> running -> a final or waiting
status); the store applies the steps as the simulated clock reaches them. The categories and
their weights mimic what Deck's users see: mostly completions, some failures, cancellations,
interactions, reviews and a few runs that stay open for months.
"""

from __future__ import annotations

import random
from collections.abc import Container
from typing import Any

from .payloads import Dice, Payloads
from .times import MS_PER_DAY, fmt_ms

FINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
OPEN_STATUSES = ("queued", "running", "canceling", "interaction_required", "review_required")
"""The documented open statuses (older docs also spell ``cancelling`` and ``pending``)."""
DOCUMENTED_STATUSES = frozenset(OPEN_STATUSES) | FINAL_STATUSES
LEGACY_STATUS_ALIASES = {"cancelling": "canceling", "pending": "review_required"}
"""Older spellings (FACTS.md) -> the documented status they stand for."""
OUTCOMES = frozenset({"success", "failure", "unknown"})

TASK_NAMES = (
    "Download invoices",
    "Fetch bank statements",
    "Sync payroll report",
    "Export utility bills",
    "Retrieve tax documents",
    "Update billing address",
    "Pull insurance claims",
    "Download pay stubs",
    "Check account balance",
    "Submit meter reading",
)
_FORCED_CATEGORY = {
    "completed": "completed",
    "failed": "failed",
    "canceling": "cancel",
    "cancelling": "cancel",
    "canceled": "cancel",
    "interaction_required": "interaction",
    "review_required": "review",
    "pending": "review",
}

Steps = list[tuple[int, dict[str, Any]]]
"""A run's lifecycle: [(epoch ms, field updates)], in time order."""


class RunGenerator(Dice):
    """Run objects and their lifecycle steps, all drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        super().__init__(random.Random(seed))
        self.payloads = Payloads(self.rng)
        self.agents: tuple[str, ...] = tuple(self.new_id("agt_") for _ in range(5))
        self.sources: tuple[str, ...] = tuple(self.new_id("src_") for _ in range(6))
        self.credentials: tuple[str, ...] = tuple(self.new_id("cred_") for _ in range(8))
        self.tasks: dict[str, str] = {self.new_id("task_"): name for name in TASK_NAMES}
        """task_id -> task name (what ``search`` matches besides ids)."""
        self.workflows: tuple[str, ...] = tuple(self.new_id("wflo_") for _ in range(3))
        self.task_ids = tuple(self.tasks)
        self.task_search = {tid: name.lower() for tid, name in self.tasks.items()}

    def new_run_id(self, taken: Container[str]) -> str:
        while True:
            rid = self.new_id("trun_")
            if rid not in taken:
                return rid

    def spread_times(self, n: int, lo: int, hi: int) -> list[int]:
        """n creation instants in [lo, hi]; ~5% come in batches of 2-8 sharing one instant."""
        rng = self.rng
        out: list[int] = []
        while len(out) < n:
            c = self.ri(lo, hi) if hi > lo else hi
            if rng.random() < 0.0105:
                size = min(self.ri(2, 8), n - len(out))
            else:
                size = 1
            out.extend([c] * size)
        out.sort()
        return out

    def generate(
        self, rid: str, c: int, forced: str | None, now_ms: int
    ) -> tuple[dict[str, Any], Steps]:
        """A new run object (queued at c) and its lifecycle steps [(time_ms, field updates)].

        With ``forced`` the first step is the forced state at c and later steps are shifted to
        start after max(c, now_ms), so the run is in the forced status right now.
        """
        rng = self.rng
        r = rng.random
        legacy = r() < 0.01
        newer = r() < 0.30
        str_runtime = r() < 0.30
        task_id = self.task_ids[self.rr(len(self.task_ids))]
        agent_id = self.agents[self.rr(5)]
        source_id = self.sources[self.rr(6)] if r() < 0.9 else None
        credential_id = self.credentials[self.rr(8)] if r() < 0.85 else None
        session_id = f"sess_{rng.getrandbits(96):024x}" if r() < 0.85 else None
        created = fmt_ms(c)
        obj: dict[str, Any] = {
            "id": rid,
            "object": "task_run",
            "status": "queued",
            "result": None,
            "task_id": task_id,
            "credential_id": credential_id,
            "session_id": session_id,
            "agent_id": agent_id,
            "source_id": source_id,
            "runtime_ms": None,
            "output": None,
            "errors": None,
            "interaction": None,
            "created_at": created,
            "updated_at": created,
        }
        if newer:
            obj["workflow_id"] = self.workflows[self.rr(3)] if r() < 0.6 else None
            obj["input"] = self.payloads.task_input()
            obj["storage"] = []
            obj["canceled_at"] = None

        if forced is not None:
            if forced in ("pending", "cancelling"):
                legacy = True
            elif forced in ("review_required", "canceling"):
                legacy = False  # the forced spelling wins over the 1% legacy draw
            category = _FORCED_CATEGORY.get(forced)
            if category is None and forced not in ("queued", "running"):
                obj["status"] = forced
                return obj, [(c, {"status": forced})]
        else:
            category = None
        if category is None:
            category = self._category()
        steps = self._steps(c, category, legacy, newer, str_runtime)
        if forced is None:
            return obj, steps
        k = next(i for i, (_, u) in enumerate(steps) if u.get("status") == forced)
        merged: dict[str, Any] = {}
        for _, updates in steps[: k + 1]:
            merged.update(updates)
        base = max(c, now_ms)
        t_k = steps[k][0]
        shifted = [(c, merged)] + [(base + (t - t_k), u) for t, u in steps[k + 1 :]]
        return obj, shifted

    def _category(self) -> str:
        u = self.rng.random()
        if u < 0.70:
            return "completed"
        if u < 0.82:
            return "failed"
        if u < 0.85:
            return "cancel"
        if u < 0.91:
            return "interaction"
        if u < 0.97:
            return "review"
        return "long"

    def _steps(self, c: int, category: str, legacy: bool, newer: bool, str_runtime: bool) -> Steps:
        rng = self.rng
        randint = self.ri
        p = self.payloads
        canceling = "cancelling" if legacy else "canceling"
        review = "pending" if legacy else "review_required"

        def rt(ms: int) -> int | str:
            return str(ms) if str_runtime else ms

        steps: Steps = [(c, {"status": "queued"})]
        t1 = c + randint(1000, 30_000)
        steps.append((t1, {"status": "running"}))
        if category == "completed":
            t2 = t1 + self._duration()
            steps.append((t2, p.completion(rt(t2 - t1), newer)))
        elif category == "failed":
            code = p.failure_code()
            t2 = t1 + (1_800_000 if code == "timeout" else self._duration())
            steps.append((t2, p.failure(rt(t2 - t1), code)))
        elif category == "cancel":
            t2 = t1 + randint(2000, 300_000)
            t3 = t2 + randint(1000, 20_000)
            steps.append((t2, {"status": canceling}))
            done: dict[str, Any] = {
                "status": "canceled",
                "result": None if rng.random() < 0.6 else "failure",
                "runtime_ms": rt(t3 - t1),
            }
            if newer:
                done["canceled_at"] = fmt_ms(t3)
            steps.append((t3, done))
        elif category == "interaction":
            t2 = t1 + randint(3000, 60_000)
            steps.append((t2, {"status": "interaction_required", "interaction": p.interaction()}))
            t3 = t2 + randint(60_000, 1_800_000)
            if rng.random() < 0.6:
                steps.append((t3, {"status": "running", "interaction": None}))
                t4 = t3 + self._duration()
                steps.append((t4, p.completion(rt(t4 - t1), newer)))
            else:
                steps.append((t3, p.failure(rt(t3 - t1), "interaction_timeout")))
        elif category == "review":
            t2 = t1 + self._duration()
            steps.append((t2, {"status": review}))
            t3 = t2 + randint(MS_PER_DAY, 21 * MS_PER_DAY)
            steps.append((t3, p.completion(rt(t2 - t1), newer)))
        else:  # long: stays open for weeks to months
            u = rng.random()
            t2 = t1 + randint(5000, 120_000)
            if u < 0.25:
                steps.append((t2, {"status": review}))
            elif u < 0.40:
                steps.append(
                    (t2, {"status": "interaction_required", "interaction": p.interaction()})
                )
            t_end = t1 + randint(30 * MS_PER_DAY, 120 * MS_PER_DAY)
            steps.append((t_end, p.completion(rt(t_end - t1), newer)))
        return steps

    def _duration(self) -> int:
        """Execution time in ms: mostly tens of seconds, a tail of minutes, capped below 30 min."""
        ms = int(self.rng.lognormvariate(10.7, 0.9))
        return max(800, min(ms, 1_790_000))
