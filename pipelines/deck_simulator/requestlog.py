"""The log of every HTTP request received, so tests can assert what the connector sent."""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the simulator received, so tests can assert what the connector sent."""

    method: str
    path: str
    """Path without the query string."""
    params: dict[str, list[str]]
    """Query parameters as ``parse_qs(..., keep_blank_values=True)`` returns them."""
    status: int
    """Status answered, or 0 if the connection was dropped (or is still pending) unanswered."""
    authorization: str | None
    """The raw Authorization header, or None."""
    at: float
    """``time.monotonic()`` when the request was received."""
    request_id: str | None = None
    """The request_id answered (body and X-Request-Id), once answered."""


class RequestLog:
    """Requests in order of receipt; each is logged on arrival and completed once answered."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._generation = 0  # bumped by clear(), so in-flight requests are not re-added

    def start(self, request: RecordedRequest) -> tuple[int, int]:
        """Log an arriving request; returns the slot to complete."""
        with self._lock:
            self.requests.append(request)
            return self._generation, len(self.requests) - 1

    def finish(self, slot: tuple[int, int], status: int, request_id: str | None = None) -> None:
        generation, index = slot
        with self._lock:
            if generation == self._generation and index < len(self.requests):
                self.requests[index] = dataclasses.replace(
                    self.requests[index], status=status, request_id=request_id
                )

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._generation += 1
