"""Keyset positions shared by the run index and the event log.

Both are lists sorted by (created_at ms, id) - the run index holds exactly those pairs, the event
log longer tuples that start with them - so one bisect routine finds the slice of a page for
either, with Deck's exclusive ``created_after`` / ``created_before`` bounds.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from operator import itemgetter
from typing import Any

KEY = itemgetter(0, 1)
"""An entry's keyset position (created ms, id): what every bisect compares."""


def keyset_range(
    keys: Sequence[tuple[Any, ...]],
    created_after_us: int | None,
    created_before_us: int | None,
    order: str,
    after_key: tuple[int, Any] | None,
    floor_ms: int | None = None,
) -> range:
    """Indices of ``keys`` a walk visits, in walk order ('asc' or 'desc').

    Bounds are exclusive at millisecond precision (entries are ms): ``created_after`` keeps
    entries strictly after it, ``created_before`` strictly before it. ``after_key`` is the
    cursor's position (the page starts just past it); ``floor_ms`` the oldest instant served
    at all (the events' retention), inclusive."""
    lo = 0
    hi = len(keys)
    if created_after_us is not None:
        lo = bisect.bisect_left(keys, (created_after_us // 1000 + 1,), key=KEY)
    if floor_ms is not None:
        lo = max(lo, bisect.bisect_left(keys, (floor_ms,), key=KEY))
    if created_before_us is not None:
        hi = bisect.bisect_left(keys, (-(-created_before_us // 1000),), key=KEY)
    if order == "asc":
        if after_key is None:
            return range(lo, hi)
        return range(max(lo, bisect.bisect_right(keys, after_key, key=KEY)), hi)
    end = hi if after_key is None else min(hi, bisect.bisect_left(keys, after_key, key=KEY))
    return range(end - 1, lo - 1, -1)
