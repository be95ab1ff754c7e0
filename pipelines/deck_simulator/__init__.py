"""A local stand-in of Deck's v2 API (task runs), served over real HTTP on loopback.

Deck has no sandbox for v2 (every call is live), so the connector's tests, demo and
benchmarks run against this simulator instead. It speaks HTTP as Deck's v2 API reference
describes (auth, errors, validation, keyset pagination, rate limit) and adds what tests need
on top: a simulated clock that moves runs through their lifecycle, ground-truth access to every
run, a request log and injectable faults.

Layers: ``data``/``payloads`` (seeded runs and lifecycle plans), ``store``/``changes`` (runs,
keyset index, clock), ``events`` (the event log of ``GET /events``), ``keyset``/``query``/``api``
(HTTP-free semantics), ``contract`` (the readings of what Deck's documentation leaves open),
``faults`` (faults, holds, rate limit), ``server`` (HTTP), ``cli`` (``python -m deck_simulator``);
``DeckSimulator`` ties them together (its ``settings`` and request ``control`` are mixins).
It is not part of the connector: ``deck`` imports it only for ``--demo``.
"""

from .api import DEMO_API_KEY
from .contract import READINGS, Contract
from .data import (
    DOCUMENTED_STATUSES,
    FINAL_STATUSES,
    LEGACY_STATUS_ALIASES,
    OPEN_STATUSES,
    OUTCOMES,
)
from .events import EVENT_TYPES
from .faults import FAULT_KINDS, RequestHold
from .requestlog import RecordedRequest
from .simulator import DeckSimulator

__all__ = [
    "DEMO_API_KEY",
    "READINGS",
    "DOCUMENTED_STATUSES",
    "EVENT_TYPES",
    "FAULT_KINDS",
    "FINAL_STATUSES",
    "LEGACY_STATUS_ALIASES",
    "OPEN_STATUSES",
    "OUTCOMES",
    "Contract",
    "DeckSimulator",
    "RecordedRequest",
    "RequestHold",
]
