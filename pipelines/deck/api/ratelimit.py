"""Client-side rate limiting: Deck's request budget is per organization, so one limiter is
shared by every worker thread of a sync, and keeping under it beats paying a backoff per 429.
"""

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator

from deck.core.errors import DeckConfigError


class RateLimiter:
    """A sliding-window limiter (`max_requests` per `period_s`) shared by all threads of a sync.

    Deck counts 200 requests per 10 s per organization, on receipt; staying under it on the client
    side costs nothing, while every 429 costs a backoff. We cannot know when Deck counted a
    request, only that it was before its answer's headers arrived. So a request holds its slot from
    before it is sent until `period_s` after those headers (or its failure; `DeckSession.send`
    releases it before reading the body): any `period_s` window of Deck's
    then sees at most `max_requests`, however late a starved process sends or a slow network
    delivers. Use `with limiter.slot():` or `token = acquire()` ... `release(token)`.
    """

    def __init__(self, max_requests: int, period_s: float, margin_s: float = 0.05) -> None:
        if max_requests < 1 or period_s <= 0:
            raise DeckConfigError(
                "rate limit: max_requests must be at least 1 and period_s above 0"
                f" (got {max_requests} per {period_s} s)"
            )
        self.max_requests = max_requests
        self.period_s = period_s + margin_s  # the margin only absorbs clock granularity
        self._in_flight: set[int] = set()
        self._finished: deque[float] = deque()  # when each recent request's answer arrived
        self._next_token = 0
        self._changed = threading.Condition()

    def acquire(self) -> int:
        """Wait for a free slot and take it; returns the token to `release` once answered."""
        with self._changed:
            while True:
                now = time.monotonic()
                while self._finished and now - self._finished[0] >= self.period_s:
                    self._finished.popleft()
                if len(self._in_flight) + len(self._finished) < self.max_requests:
                    self._next_token += 1
                    self._in_flight.add(self._next_token)
                    return self._next_token
                wait = self.period_s - (now - self._finished[0]) if self._finished else None
                self._changed.wait(None if wait is None else max(wait, 0.001))

    def release(self, token: int) -> None:
        """The request's answer (or failure) is in: its slot frees `period_s` from now."""
        with self._changed:
            if token in self._in_flight:
                self._in_flight.discard(token)
                self._finished.append(time.monotonic())
                self._changed.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one slot around a request (released however the request ends)."""
        token = self.acquire()
        try:
            yield
        finally:
            self.release(token)
