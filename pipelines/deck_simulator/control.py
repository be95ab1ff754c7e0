"""What tests do to the simulator's requests: see them, fault them, hold them; and the server
thread's entry point that applies all of that before the API answers.

A mixin of `DeckSimulator` (which owns the request log, the fault queue, the API and the server):
the facade keeps the data side (runs, events, clock, settings), this the request side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .api import DeckAPI, Response, error_response
from .faults import FaultQueue, RequestHold, fault_response
from .requestlog import RecordedRequest, RequestLog
from .server import Serving

logger = logging.getLogger("deck.simulator")


class RequestControls:
    """The request side of `DeckSimulator`."""

    _log: RequestLog
    _faults: FaultQueue
    _api: DeckAPI
    _http: Serving
    _date_skew: tuple[float, frozenset[int] | None] | None
    port: int

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request received, in order of receipt."""
        return self._log.requests

    def skew_dates(self, seconds: float | None, requests: set[int] | None = None) -> None:
        """Answer with a ``Date`` header ``seconds`` off the simulated clock, as a host of Deck
        whose clock is skewed would: on the requests numbered ``requests`` (1-based, in order of
        receipt as ``requests`` lists them, counted again after clear_requests()), or on every
        answer if None. ``skew_dates(0)`` or ``skew_dates(None)`` clears it. A ``date_header``
        set verbatim wins over the skew; ``omit_date`` drops the header altogether."""
        if not seconds:
            self._date_skew = None
        else:
            self._date_skew = (float(seconds), None if requests is None else frozenset(requests))

    def clear_requests(self) -> None:
        """Forget recorded requests (in-flight ones are not re-added)."""
        self._log.clear()

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        retry_after: str | None = None,
        delay: float = 0.0,
        location: str | None = None,
        path: str | None = None,
        echo: str | None = None,
    ) -> None:
        """Queue a fault for the next ``times`` requests (whose path contains ``path``, if given).

        Faults are consumed FIFO, one per matching request, before normal handling and auth.
        Kinds: 400 (a validation error), 401, 403, 404 (an endpoint this API version lacks), 429,
        500, 502, 503, 504, drop, slow, hang, truncate, non_json, bad_shape, redirect, trickle,
        trickle_headers, has_more_lie, echo (the normal answer, for ``echo`` below).
        ``retry_after`` is sent verbatim as Retry-After (429 and 5xx); ``delay`` is the sleep of
        slow/hang (hang with delay <= 0 waits until stop()); ``location`` is the redirect target
        (default: the requested URL itself, so a client that follows it gets the normal answer).
        ``trickle`` sends the normal answer's headers at once and then its body one byte every
        ``delay`` seconds (default 0.2); ``trickle_headers`` trickles from the status line on.
        ``has_more_lie`` answers an empty page with ``has_more: true`` and a fresh cursor.
        ``echo`` makes the answer quote that text back in every field Deck controls (error
        messages, request_id, traceId, a non-JSON body, Content-Type, Location, Retry-After,
        X-Deck-Echo; see ``faults.echoed``): a Deck that echoes the request, key included.
        """
        self._faults.inject(kind, times, retry_after, delay, location, path, echo)

    def clear_faults(self) -> None:
        """Drop every queued fault (to let a test's next sync run clean)."""
        self._faults.clear()

    def pending_faults(self) -> int:
        """How many fault answers are still queued (so tests can check they were all consumed)."""
        return self._faults.pending()

    def hold(self, when: Callable[[RecordedRequest], bool] | None = None) -> RequestHold:
        """Hold requests, unanswered, from the first one for which ``when(request)`` is True
        (every request if ``when`` is None) until ``release()`` on the returned gate, or stop().

        ``when`` runs on the server thread as each request arrives, before faults and auth, so
        it sees the world as it was when the client sent that request. A new ``hold`` releases
        the previous gate.
        """
        return self._faults.hold(when)

    def answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        auth: str | None,
        raw_path: str,
        received: float,
    ) -> Response | None:
        """The server thread's entry point: log the request, wait at a hold gate, answer it
        (injected fault first, else the API). None if the simulator stopped while holding."""
        request = RecordedRequest(method, path, params, 0, auth, received)
        slot = self._log.start(request)
        if not self._faults.wait_if_held(request, self._http.stopping):
            return None
        try:
            response = None
            fault = self._faults.take(path)
            if fault is not None:
                own_url = f"http://{self._http.host}:{self.port}{raw_path}"  # redirect's default
                response = fault_response(
                    fault, self._api, method, path, params, auth, own_url, self._http.sleep
                )
            if response is None:
                response = self._api.handle(method, path, params, auth)
        except Exception:  # pragma: no cover - a bug in the simulator must still answer
            logger.exception("deck simulator failed to handle %s %s", method, raw_path)
            response = error_response(500, "api", "api_error", "An internal error occurred.")
        self._log.finish(slot, response.status, response.request_id)
        skew = self._date_skew
        if skew is not None and (skew[1] is None or slot[1] + 1 in skew[1]):
            response.date_skew = skew[0]
        return response
