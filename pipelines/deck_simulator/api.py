"""Deck's v2 API semantics without sockets: auth, rate limit, routing, listing, errors.

Endpoints: ``/test``, ``/task-runs``, ``/task-runs/{id}`` and ``/events``.

``DeckAPI.handle`` maps (method, path, query params, Authorization header) to a ``Response``;
the HTTP server only writes it. Error envelopes look like Deck's::

    {"errors": [{"type": "auth", "code": "unauthorized", "message": "Invalid API key provided.",
                 "field": null}], "request_id": "req_..."}

and validation errors like ASP.NET's problem details (``type``, ``title``, ``status``,
``errors: {field: [messages]}``, ``traceId``) plus ``request_id``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .events import event_id
from .keyset import bound_window
from .query import ValidationError, encode_cursor, parse_event_query, parse_list_query
from .store import RunStore

if TYPE_CHECKING:
    from .ratewindow import RateWindow

DEMO_API_KEY = "sk_test_deck_simulator"
_VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
_VALIDATION_TITLE = "One or more validation errors occurred."


@dataclasses.dataclass
class Response:
    """An answer, and how the server should deliver it (normally, or misbehaving)."""

    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    request_id: str | None = None
    mode: str = "normal"  # normal | drop | hang | truncate | trickle | trickle_headers
    hang_for: float = 0.0
    trickle_every: float = 0.0
    """Seconds between the bytes of a trickled answer."""
    date_skew: float = 0.0
    """Seconds the ``Date`` header is off the simulated clock (``skew_dates``)."""


def request_id() -> str:
    """A fresh request id; from os.urandom so it never disturbs the seeded data generator."""
    return "req_" + os.urandom(12).hex()


def json_response(
    status: int, payload: Any, rid: str, headers: list[tuple[str, str]] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, "application/json", headers or [], rid)


def error_response(
    status: int,
    etype: str,
    code: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    rid = request_id()
    payload = {
        "errors": [{"type": etype, "code": code, "message": message, "field": None}],
        "request_id": rid,
    }
    return json_response(status, payload, rid, headers)


def validation_error(errors: dict[str, list[str]]) -> Response:
    rid = request_id()
    payload = {
        "type": _VALIDATION_TYPE,
        "title": _VALIDATION_TITLE,
        "status": 400,
        "errors": errors,
        "traceId": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00",
        "request_id": rid,
    }
    return json_response(400, payload, rid)


def has_more_lie() -> Response:
    """An empty page that claims more, with a fresh cursor (a contract breach seen in the wild)."""
    rid = request_id()
    cursor = encode_cursor((0, "trun_" + os.urandom(12).hex()), "desc", "lie")
    payload = {"data": [], "has_more": True, "next_cursor": cursor, "request_id": rid}
    return json_response(200, payload, rid)


class DeckAPI:
    """The endpoints ``GET /v2/test``, ``GET /v2/task-runs``, ``GET /v2/task-runs/{id}`` and
    ``GET /v2/events``.

    Order of checks: auth (401), then rate limit (429), then routing (404, 405). Every endpoint
    draws on the one rate window: Deck's limit is per organisation, not per endpoint.
    """

    def __init__(
        self,
        store: RunStore,
        task_names: dict[str, str],
        api_key: str,
        order: str,
        rate: RateWindow,
    ) -> None:
        self.store = store
        self.task_names = task_names
        """task_id -> lower-cased task name, for ``search``."""
        self.api_key = api_key
        self.order = order
        """'newest_first' or 'oldest_first' for walks without a cursor."""
        self.rate = rate
        self.rate_limit_retry_after = False
        self.rate_limited_count = 0
        self._count_lock = threading.Lock()

    def handle(
        self, method: str, path: str, params: dict[str, list[str]], auth: str | None
    ) -> Response:
        """Normal handling: auth, rate limit, routing."""
        if not self.authorized(auth):
            return error_response(
                401,
                "auth",
                "unauthorized",
                "Invalid API key provided.",
                [("WWW-Authenticate", "Bearer")],
            )
        wait = self.rate.check()
        if wait is not None:
            retry = str(max(1, math.ceil(wait))) if self.rate_limit_retry_after else None
            return self.rate_limited(retry)
        route = path.rstrip("/") if path != "/" else path
        if route == "/v2/test":
            kind = "test"
        elif route == "/v2/task-runs":
            kind = "list"
        elif route.startswith("/v2/task-runs/") and route.count("/") == 3:
            kind = "get"
        elif route == "/v2/events":
            kind = "events"
        else:
            return error_response(
                404, "request", "not_found", f"The requested path {path} was not found."
            )
        if method not in ("GET", "HEAD"):
            return error_response(
                405,
                "request",
                "method_not_allowed",
                f"Method {method} is not allowed on {path}.",
                [("Allow", "GET")],
            )
        if kind == "test":
            return json_response(200, {"status": "ready", "environment": "live"}, request_id())
        if kind == "get":
            run_id = unquote(route.rsplit("/", 1)[1])  # ids are percent-encoded path segments
            body = self.store.dump(run_id)
            if body is None:
                return error_response(
                    404, "request", "resource_not_found", f"Task run {run_id} not found."
                )
            return Response(200, body, "application/json", [], request_id())
        if kind == "events":
            return self.list_events(params)
        return self.list(params)

    def authorized(self, auth: str | None) -> bool:
        if not auth:
            return False
        scheme, _, token = auth.strip().partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    def rate_limited(self, retry_after: str | None) -> Response:
        """A 429 (counted in ``rate_limited_count``); Deck documents no Retry-After."""
        headers = [("Retry-After", retry_after)] if retry_after is not None else []
        with self._count_lock:
            self.rate_limited_count += 1
        return error_response(
            429, "rate_limit", "rate_limit_exceeded", "Rate limit exceeded. Retry later.", headers
        )

    def list(self, params: dict[str, list[str]]) -> Response:
        """One page of ``GET /v2/task-runs``, keyset-paginated on (created_at, id)."""
        store = self.store
        contract = store.contract
        try:
            q = parse_list_query(params, self.order, self.task_names, contract.bound_precision)
        except ValidationError as exc:
            return validation_error(exc.errors)
        rid = request_id()
        window = bound_window(q.filters["created_after"], q.filters["created_before"], contract)
        with store.lock:  # the page holds live objects: serialize before anything changes them
            page, more, last_key = store.select(window, q.order, q.after_key, q.limit, q.match)
            next_cursor = None
            if more and last_key is not None:
                next_cursor = encode_cursor(last_key, q.order, q.fhash)
            payload = {
                "data": page,
                "has_more": more,
                "next_cursor": next_cursor,
                "request_id": rid,
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
        return Response(200, body, "application/json", [], rid)

    def list_events(self, params: dict[str, list[str]]) -> Response:
        """One page of ``GET /v2/events``: the same keyset walk, cursors and bounds as the
        runs' list, over the events still within retention."""
        store = self.store
        contract = store.contract
        try:
            q = parse_event_query(params, self.order, contract.bound_precision)
        except ValidationError as exc:
            return validation_error(exc.errors)
        rid = request_id()
        window = bound_window(q.created_after_us, q.created_before_us, contract)
        with store.lock:  # events are rendered from the live runs: serialize under the lock
            log = store.events
            page, more = log.select(
                store.now_ms, window, q.order, q.after_key, q.limit, log.matcher(q.types)
            )
            next_cursor = None
            if more and page:
                last = page[-1]
                next_cursor = encode_cursor((last[0], event_id(last[1])), q.order, q.fhash)
            payload = {
                "data": store.render_events(page),
                "has_more": more,
                "next_cursor": next_cursor,
                "request_id": rid,
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
        return Response(200, body, "application/json", [], rid)
