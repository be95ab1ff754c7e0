"""The readings of Deck's contract that its documentation leaves open, chosen per test.

Deck prints timestamps with three fractional digits and filters on exclusive
``created_after``/``created_before`` bounds, but it does not say how finely it reads a bound, how
finely it stores an instant, or whether an edge is really exclusive (FACTS.md, Timestamps). A
connector must select the same runs under every plausible answer, so the simulator serves each
one: ``Contract`` names a reading, ``READINGS`` lists one per reading for parametrized tests.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

BOUND_PRECISIONS = ("us", "ms", "reject")
STORED = ("ms", "us", "ms_printed_s")
TIMESTAMP_FORMATS = ("z", "offset", "trim")
_FRACTION = re.compile(r"[.,](\d+)")


@dataclass(frozen=True)
class Contract:
    """How the simulated Deck reads bounds, keeps instants and prints them.

    Applies to ``GET /task-runs``, ``GET /events`` and (printing) ``GET /task-runs/{id}``; the
    defaults are the simulator's historical behaviour. The readings of ``READINGS``:

    - ``documented``: bounds read to the microsecond, instants kept and printed in ms, both
      bounds exclusive, ``.123Z``. What the reference says, taken literally.
    - ``bounds_ms``: bounds truncated to the millisecond (``.123999Z`` reads as ``.123``), as a
      JavaScript ``Date`` parses them: Deck's printed format is JavaScript's ``toISOString()``.
    - ``bounds_reject``: a bound with more than three fractional digits is a 400 validation error
      (``created_after: invalid date-time``): a strict schema for Deck's own three-digit format.
    - ``stored_us``: instants kept in microseconds (PostgreSQL ``timestamptz``) but printed
      truncated to ms, so a run printed ``.123`` may lie after the bound ``.123``. Each run and
      event has a hidden offset of 0..999 µs derived from its id (``hidden_us``).
    - ``stored_us_bounds_ms``: both of the above, a JavaScript API over PostgreSQL: the bound
      ``.123`` reads as ``.123000`` and runs at ``.123001``..``.123999`` lie after it.
    - ``printed_seconds``: instants kept in ms but printed without a fraction (``:05Z``), as some
      serializers do; a run printed ``:05Z`` may lie after ``:05.500Z``.
    - ``inclusive``: ``created_after`` means >= and ``created_before`` <= (a ``>=`` in the query,
      the common reading of "after" in date-range filters).
    - ``offset_format``: ``.123+00:00`` instead of ``.123Z`` (Python's ``isoformat()``).
    - ``trimmed_format``: ``:05Z`` on whole seconds, ``.123Z`` otherwise, as Go's RFC3339Nano and
      Python's ``isoformat()`` drop a zero fraction.

    ``stored="us"``: a run added with an explicit ``created_at`` keeps that instant's millisecond
    and takes its microseconds from its id like a seeded run (a finer ``created_at`` is truncated
    to ms); bounds compare against ``ms * 1000 + hidden_us(id)``, while keyset order and cursors
    stay on the printed (ms, id).
    """

    bound_precision: str = "us"
    """"us": bounds read exactly; "ms": truncated to the millisecond; "reject": 400 on finer."""
    stored: str = "ms"
    """"ms": kept and printed in ms; "us": kept in µs, printed in ms; "ms_printed_s": kept in ms,
    printed truncated to whole seconds."""
    inclusive_bounds: bool = False
    """False: both bounds exclusive (documented); True: after means >=, before means <=."""
    timestamp_format: str = "z"
    """"z": ``.123Z``; "offset": ``.123+00:00``; "trim": no fraction on whole seconds."""

    def __post_init__(self) -> None:
        for name, allowed in (
            ("bound_precision", BOUND_PRECISIONS),
            ("stored", STORED),
            ("timestamp_format", TIMESTAMP_FORMATS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}")
        if not isinstance(self.inclusive_bounds, bool):
            raise ValueError("inclusive_bounds must be a bool")

    @property
    def reprints(self) -> bool:
        """Whether stored timestamps (always ``.123Z``) must be re-printed when served."""
        return self.stored == "ms_printed_s" or self.timestamp_format != "z"


READINGS: dict[str, Contract] = {
    "documented": Contract(),
    "bounds_ms": Contract(bound_precision="ms"),
    "bounds_reject": Contract(bound_precision="reject"),
    "stored_us": Contract(stored="us"),
    "stored_us_bounds_ms": Contract(stored="us", bound_precision="ms"),
    "printed_seconds": Contract(stored="ms_printed_s"),
    "inclusive": Contract(inclusive_bounds=True),
    "offset_format": Contract(timestamp_format="offset"),
    "trimmed_format": Contract(timestamp_format="trim"),
}
"""One contract per plausible reading (see ``Contract``), by name."""


def as_contract(value: Contract | str) -> Contract:
    """A contract, or the name of one in ``READINGS``."""
    if isinstance(value, Contract):
        return value
    if isinstance(value, str) and value in READINGS:
        return READINGS[value]
    raise ValueError(f"contract must be a Contract or one of {', '.join(READINGS)}")


def hidden_us(ident: str | int) -> int:
    """The microseconds (0..999) below the printed millisecond of a run or event under
    ``stored="us"``: from a run's id (CRC-32, stable across processes) or an event's id number."""
    if isinstance(ident, int):
        return ident % 1000
    return zlib.crc32(ident.encode("utf-8", "surrogatepass")) % 1000


def too_fine(text: str) -> bool:
    """Whether an ISO 8601 bound has more than three fractional digits (``bounds_reject``)."""
    match = _FRACTION.search(text)
    return match is not None and len(match.group(1)) > 3
