"""The simulator's per-organization rate limit: a sliding window over accepted requests.

Its own module: the API (which asks it) and the faults (which answer as the API does) both need
it, and neither should import the other for it.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateWindow:
    """A sliding window over accepted requests: (count, seconds), or None for no limit."""

    def __init__(self, limit: tuple[int, float] | None) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._window: deque[float] = deque()

    def check(self) -> float | None:
        """None if the request is accepted (and counted), else seconds until a slot frees."""
        limit = self.limit
        if not limit:
            return None
        count, window = limit
        now = time.monotonic()
        with self._lock:
            w = self._window
            while w and w[0] <= now - window:
                w.popleft()
            if len(w) >= count:
                return max(0.0, w[0] + window - now) if w else window
            w.append(now)
        return None
