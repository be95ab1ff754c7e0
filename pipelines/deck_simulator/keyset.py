"""Keyset positions shared by the run index and the event log.

Both are lists sorted by (created_at ms, id) - the run index holds exactly those pairs, the event
log longer tuples that start with them - so one bisect routine finds the slice of a page for
either. The ``created_after`` / ``created_before`` bounds become a ``Window`` first: the
milliseconds a page may hold and, only when instants are kept in microseconds (a ``Contract``
reading), a check of the entries on the two edge milliseconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .contract import Contract, hidden_us

KEY = itemgetter(0, 1)
"""An entry's keyset position (created ms, id): what every bisect compares."""

Keep = Callable[[tuple[Any, ...]], bool]


@dataclass(frozen=True, slots=True)
class Window:
    """What the bounds select: entries created in [lo_ms, hi_ms), and among them those ``keep``
    accepts (None: all; set only for ``stored="us"``, whose edge milliseconds are split)."""

    lo_ms: int | None = None
    hi_ms: int | None = None
    keep: Keep | None = None


EVERYTHING = Window()


def bound_window(after_us: int | None, before_us: int | None, contract: Contract) -> Window:
    """The window of the bounds (epoch µs, as read) under ``contract``.

    Instants kept in ms are ``ms * 1000`` µs, so the window is exact. Kept in µs, an entry's
    instant is ``ms * 1000 + hidden_us(id)``: the edge milliseconds are in the window and ``keep``
    compares their entries' true instants."""
    inclusive = contract.inclusive_bounds
    if contract.stored != "us":
        lo = hi = None
        if after_us is not None:
            lo = -(-after_us // 1000) if inclusive else after_us // 1000 + 1
        if before_us is not None:
            hi = before_us // 1000 + 1 if inclusive else -(-before_us // 1000)
        return Window(lo, hi)
    lo = after_us // 1000 if after_us is not None else None
    hi = before_us // 1000 + 1 if before_us is not None else None
    if lo is None and hi is None:
        return EVERYTHING
    edges = {lo, None if hi is None else hi - 1} - {None}

    def keep(entry: tuple[Any, ...]) -> bool:
        ms = entry[0]
        if ms not in edges:
            return True
        us = ms * 1000 + hidden_us(entry[1])
        if after_us is not None and (us < after_us if inclusive else us <= after_us):
            return False
        return before_us is None or (us <= before_us if inclusive else us < before_us)

    return Window(lo, hi, keep)


def keyset_range(
    keys: Sequence[tuple[Any, ...]],
    window: Window,
    order: str,
    after_key: tuple[int, Any] | None,
    floor_ms: int | None = None,
) -> range:
    """Indices of ``keys`` a walk visits, in walk order ('asc' or 'desc').

    ``window`` bounds the created ms (its ``keep`` is the caller's to apply); ``after_key`` is
    the cursor's position (the page starts just past it); ``floor_ms`` the oldest instant served
    at all (the events' retention), inclusive."""
    lo = 0
    hi = len(keys)
    if window.lo_ms is not None:
        lo = bisect.bisect_left(keys, (window.lo_ms,), key=KEY)
    if floor_ms is not None:
        lo = max(lo, bisect.bisect_left(keys, (floor_ms,), key=KEY))
    if window.hi_ms is not None:
        hi = bisect.bisect_left(keys, (window.hi_ms,), key=KEY)
    if order == "asc":
        if after_key is None:
            return range(lo, hi)
        return range(max(lo, bisect.bisect_right(keys, after_key, key=KEY)), hi)
    end = hi if after_key is None else min(hi, bisect.bisect_left(keys, after_key, key=KEY))
    return range(end - 1, lo - 1, -1)
