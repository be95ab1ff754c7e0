"""Injected faults and hold gates.

Faults make the simulator misbehave the way real networks and gateways do (5xx, 429, dropped
or hung connections, truncated or trickled bodies, HTML error pages, lying pages), at a
deterministic request rather than at a moment in time.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .api import (
    DeckAPI,
    Response,
    error_response,
    has_more_lie,
    json_response,
    request_id,
    validation_error,
)
from .requestlog import RecordedRequest

FAULT_KINDS = frozenset(
    {
        "400",
        "401",
        "403",
        "404",
        "429",
        "500",
        "502",
        "503",
        "504",
        "drop",
        "slow",
        "hang",
        "truncate",
        "non_json",
        "bad_shape",
        "redirect",
        "trickle",
        "trickle_headers",
        "has_more_lie",
        "echo",
    }
)
NON_JSON_BODY = b"<html><body>502 Bad Gateway</body></html>"
HANG_STEP = 0.05
"""Seconds between checks of the stop event while a request hangs or is held."""


@dataclass
class Fault:
    kind: str
    remaining: int
    retry_after: str | None
    delay: float
    location: str | None
    path: str | None
    echo: str | None = None


class RequestHold:
    """A gate that leaves requests unanswered from a chosen request on, until ``release()``.

    Tests use it to stop a client at a deterministic point (the N-th request, the first request
    after a log line, ...) and kill or inspect it there, instead of guessing a moment in time.
    """

    def __init__(self, when: Callable[[RecordedRequest], bool] | None) -> None:
        self.when = when
        """Called with each request as it is received; the first True closes the gate."""
        self.closed = False
        """True once a request matched: it and every request received after it are held."""
        self.reached = threading.Event()
        """Set as soon as a request is being held."""
        self.released = threading.Event()

    def release(self) -> None:
        """Answer the held requests normally and hold no more."""
        self.released.set()


class FaultQueue:
    """Queued faults (consumed FIFO, one per matching request) and the current hold gate."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._hold: RequestHold | None = None

    def inject(
        self,
        kind: str,
        times: int,
        retry_after: str | None,
        delay: float,
        location: str | None,
        path: str | None,
        echo: str | None = None,
    ) -> None:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(Fault(kind, times, retry_after, delay, location, path, echo))

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(f.remaining for f in self._faults)

    def take(self, path: str) -> Fault | None:
        """The first queued fault for this path (consuming one of its answers), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.path is None or fault.path in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def hold(self, when: Callable[[RecordedRequest], bool] | None) -> RequestHold:
        gate = RequestHold(when)
        with self._lock:
            previous, self._hold = self._hold, gate
        if previous is not None:
            previous.release()
        return gate

    def wait_if_held(self, request: RecordedRequest, stopping: threading.Event) -> bool:
        """Block while the current gate holds ``request``; False if the simulator is stopping."""
        gate = self._hold
        if gate is None or gate.released.is_set():
            return True
        if not gate.closed:
            if gate.when is not None and not gate.when(request):
                return True
            gate.closed = True
        gate.reached.set()
        while not gate.released.wait(HANG_STEP):
            if stopping.is_set():
                return False
        return True


def fault_response(
    fault: Fault,
    api: DeckAPI,
    method: str,
    path: str,
    params: dict[str, list[str]],
    auth: str | None,
    own_url: str,
    sleep: Callable[[float], bool],
) -> Response | None:
    """The answer for an injected fault, or None for 'slow' (normal answer after the delay).

    ``own_url`` is the requested URL (the default redirect target); ``sleep`` is interruptible.
    With ``fault.echo`` the answer quotes that text back in every field Deck controls (see
    ``echoed``).
    """
    answer = _fault_answer(fault, api, method, path, params, auth, own_url, sleep)
    if fault.echo is None:
        return answer
    if answer is None:  # 'slow': the normal answer, late
        answer = api.handle(method, path, params, auth)
    return echoed(answer, fault.echo, retry_after=fault.retry_after is None)


def _fault_answer(
    fault: Fault,
    api: DeckAPI,
    method: str,
    path: str,
    params: dict[str, list[str]],
    auth: str | None,
    own_url: str,
    sleep: Callable[[float], bool],
) -> Response | None:
    kind = fault.kind
    if kind == "429":
        return api.rate_limited(fault.retry_after)
    if kind == "400":
        return validation_error({"created_after": ["The value is not a valid date."]})
    if kind == "401":
        challenge = [("WWW-Authenticate", "Bearer")]
        return error_response(401, "auth", "unauthorized", "Invalid API key provided.", challenge)
    if kind == "403":
        return error_response(403, "auth", "forbidden", "This key may not read task runs.")
    if kind == "echo":  # the normal answer; `echoed` does the rest
        return api.handle(method, path, params, auth)
    if kind == "404":  # an API version or plan without this endpoint
        return error_response(
            404, "request", "not_found", f"The requested path {path} was not found."
        )
    if kind in ("500", "502", "503", "504"):
        headers = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
        return error_response(int(kind), "api", "api_error", "An internal error occurred.", headers)
    if kind == "drop":
        return Response(0, mode="drop")
    if kind == "hang":
        return Response(0, mode="hang", hang_for=fault.delay)
    if kind == "slow":
        sleep(fault.delay)
        return None
    if kind == "truncate":
        normal = api.handle(method, path, params, auth)
        return Response(
            200, normal.body, normal.content_type, normal.headers, normal.request_id, "truncate"
        )
    if kind == "non_json":
        return Response(200, NON_JSON_BODY, "text/html")
    if kind == "bad_shape":
        rid = request_id()
        return json_response(200, {"items": [], "request_id": rid}, rid)
    if kind == "redirect":
        return Response(302, b"", None, [("Location", fault.location or own_url)])
    if kind in ("trickle", "trickle_headers"):
        normal = api.handle(method, path, params, auth)
        return dataclasses.replace(
            normal, mode=kind, trickle_every=fault.delay if fault.delay > 0 else 0.2
        )
    if kind == "has_more_lie":
        return has_more_lie()
    raise AssertionError(kind)


def echoed(response: Response, echo: str, *, retry_after: bool = True) -> Response:
    """``response`` quoting ``echo`` back in every field Deck controls, as a Deck that echoes the
    request (its Authorization header, say) in its answers would: each error message, the
    validation title and field messages, ``request_id`` and ``traceId`` (body and X-Request-Id),
    a body that is not JSON, and the header values Content-Type (as a parameter), Location (as a
    query), Retry-After on a 429 or 5xx (unless the fault set one: ``retry_after`` False) and
    X-Deck-Echo. A list page keeps its records: only its request_id echoes.

    Header values lose their line breaks (a header cannot carry them); bodies keep ``echo``
    as is (JSON-encoded inside JSON)."""
    flat = " ".join(echo.splitlines())
    body = response.body
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        errors = payload.get("errors")
        if isinstance(errors, list):
            for error in errors:
                if isinstance(error, dict):
                    error["message"] = f"{error.get('message') or ''} Request: {echo}".strip()
        elif isinstance(errors, dict):
            for field in errors:
                errors[field] = [*errors[field], f"Request: {echo}"]
        if "title" in payload:
            payload["title"] = f"{payload['title']} Request: {echo}"
        if "traceId" in payload:
            payload["traceId"] = f"00-{flat}-00"
        payload["request_id"] = f"req_{echo}"
        body = json.dumps(payload, separators=(",", ":")).encode()
    elif body:
        body = f"<html><body>{response.status}: {echo}</body></html>".encode()
    headers = []
    for name, value in response.headers:
        if name.lower() == "location":
            value = f"{value}?echo={flat}"
        headers.append((name, value))
    names = {name.lower() for name, _ in headers}
    if retry_after and (response.status == 429 or response.status >= 500):
        if "retry-after" not in names:
            headers.append(("Retry-After", flat))
    headers.append(("X-Deck-Echo", flat))
    content_type = response.content_type
    if content_type:
        content_type = f"{content_type}; echo={flat}"
    return dataclasses.replace(
        response, body=body, headers=headers, request_id=f"req_{flat}", content_type=content_type
    )
