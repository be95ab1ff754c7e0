"""HTTP client for Deck's v2 API: dlt's RESTClient with a cursor paginator that refuses to loop,
a session that retries what is transient and explains what is not, and a rate limiter shared by
every worker of a sync.

Why not dlt's default retrying session: Deck asks for exponential backoff from 1 s capped at 30 s,
its 429s usually carry no Retry-After, and a scheduled job must log every retry and end with a
message naming the last `request_id`. The retry loop below is that policy and nothing more.
"""

import json
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Deque, Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import urlparse

import requests
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import PreparedRequest, Response

from . import settings
from .errors import (
    DeckAPIError,
    DeckAuthError,
    DeckConfigError,
    DeckPermanentError,
    DeckResponseError,
    DeckTransientError,
    describe_error_body,
    request_id_of,
)

logger = logging.getLogger("deck")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass
class RetryPolicy:
    """How long a sync keeps trying before it fails clearly."""

    max_attempts: int = 8
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 30.0
    # Retry-After is honoured up to this many seconds; "0" still waits `min_wait_s` (no hot loop).
    max_retry_after_s: float = 60.0
    min_wait_s: float = 0.25
    connect_timeout_s: float = settings.CONNECT_TIMEOUT_S
    read_timeout_s: float = settings.READ_TIMEOUT_S

    def backoff(self, attempt: int) -> float:
        """Exponential from `backoff_base_s`, doubling, capped, plus up to 25% jitter."""
        delay = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return min(self.backoff_cap_s, delay + random.uniform(0, delay * 0.25))

    def retry_after(self, header: Optional[str]) -> Optional[float]:
        """Parse Retry-After as delta-seconds or an HTTP date; None when absent or unparseable."""
        if header is None or not header.strip():
            return None
        header = header.strip()
        if header.isdigit():
            seconds = float(header)
        else:
            try:
                seconds = parsedate_to_datetime(header).timestamp() - time.time()
            except (TypeError, ValueError, IndexError):
                return None
        return min(self.max_retry_after_s, max(self.min_wait_s, seconds))


class RateLimiter:
    """A sliding-window limiter (`max_requests` per `period_s`) shared by all threads of a sync.

    Deck counts 200 requests per 10 s per organization; staying under it on the client side costs
    nothing, while every 429 costs a backoff. A small margin covers the gap between when we send
    and when Deck counts.
    """

    def __init__(self, max_requests: int, period_s: float, margin_s: float = 0.05) -> None:
        if max_requests < 1 or period_s <= 0:
            raise DeckConfigError(
                "rate limit: max_requests must be at least 1 and period_s above 0"
                f" (got {max_requests} per {period_s} s)"
            )
        self.max_requests = max_requests
        self.period_s = period_s + margin_s
        self._sent: Deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                while self._sent and now - self._sent[0] >= self.period_s:
                    self._sent.popleft()
                if len(self._sent) < self.max_requests:
                    self._sent.append(now)
                    return
                wait = self.period_s - (now - self._sent[0])
            time.sleep(max(wait, 0.001))


@dataclass
class RequestStats:
    """What the sync cost, for the CLI summary and the benchmarks."""

    requests: int = 0
    retries: int = 0
    pages: int = 0
    last_request_id: Optional[str] = None
    server_date: Optional[datetime] = None  # the newest `Date` header Deck sent
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def observe_date(self, header: Optional[str]) -> None:
        """Remember Deck's clock from a response's `Date` header (RFC 9110 HTTP-date)."""
        if not header:
            return
        try:
            date = parsedate_to_datetime(header)
        except (TypeError, ValueError, IndexError):
            return
        if date.tzinfo is None:
            return  # not an HTTP-date (those are always GMT)
        with self._lock:
            if self.server_date is None or date > self.server_date:
                self.server_date = date

    def deck_now(self) -> datetime:
        """The latest moment at which Deck can have created a run listed so far.

        Deck's own `Date` header (plus the second it truncates), bounded by this machine's clock
        plus `MAX_CLOCK_SKEW_S`; without one, this machine's clock plus `FALLBACK_CLOCK_SKEW_S`.
        """
        local = datetime.now(timezone.utc)
        if self.server_date is None:
            return local + timedelta(seconds=settings.FALLBACK_CLOCK_SKEW_S)
        bound = local + timedelta(seconds=settings.MAX_CLOCK_SKEW_S)
        return min(self.server_date + timedelta(seconds=1), bound)

    def count(self, *, request: bool = False, retry: bool = False, page: bool = False) -> None:
        with self._lock:
            self.requests += request
            self.retries += retry
            self.pages += page


class DeckSession(requests.Session):
    """A requests session that applies Deck's retry policy, timeouts and rate limit to every send.

    Redirects are never followed: the Authorization header must not travel to another host, and
    Deck's API does not redirect, so a 3xx means `base_url` is wrong.
    """

    def __init__(
        self,
        policy: Optional[RetryPolicy] = None,
        limiter: Optional[RateLimiter] = None,
        stats: Optional[RequestStats] = None,
    ) -> None:
        super().__init__()
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.stats = stats or RequestStats()
        self.trust_env = False  # no proxies or .netrc credentials picked up from the environment

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.policy.connect_timeout_s, self.policy.read_timeout_s)
        what = f"{request.method} {urlparse(request.url or '').path}"
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                self.limiter.acquire()
            self.stats.count(request=True)
            reason, wait, response, rid = "", None, None, None
            try:
                response = super().send(request, **kwargs)
            except RETRY_EXCEPTIONS as exc:
                reason = f"{type(exc).__name__}: {_short(exc)}"
            if response is not None:
                self.stats.observe_date(response.headers.get("Date"))
                body = _parse_json(response)
                rid = request_id_of(body, response.headers)
                if rid:
                    self.stats.last_request_id = rid
                if response.status_code in RETRY_STATUSES:
                    reason = f"HTTP {response.status_code}"
                    detail = describe_error_body(body)
                    if detail:
                        reason += f" ({detail})"
                    wait = self.policy.retry_after(response.headers.get("Retry-After"))
                elif response.status_code == 200 and body is _NOT_JSON:
                    ctype = response.headers.get("Content-Type", "?")
                    reason = f"a 200 whose body is not JSON (Content-Type {ctype})"
                else:
                    _raise_for_permanent(response, body, rid, what)
                    response.json = _constant(body)  # type: ignore[method-assign]
                    return response
            if attempt >= self.policy.max_attempts:
                raise DeckTransientError(
                    f"Deck API kept failing for {what}: {attempt} attempts, the last one got"
                    f" {reason}. This is usually temporary (rate limit or an outage): run the"
                    " sync again later; nothing was lost, it resumes where the last successful"
                    " load stopped.",
                    request_id=self.stats.last_request_id,
                )
            if wait is None:
                wait = self.policy.backoff(attempt)
            self.stats.count(retry=True)
            logger.warning(
                "Deck API: %s got %s%s; retry %d of %d in %.2f s",
                what,
                reason,
                f" (request_id {rid})" if response is not None and rid else "",
                attempt,
                self.policy.max_attempts - 1,
                wait,
            )
            time.sleep(wait)


_NOT_JSON = object()


def _constant(body: Any) -> Any:
    """`response.json()` returning the body parsed once (the client reads it several times)."""
    return lambda **_: body


def _parse_json(response: Response) -> Any:
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _raise_for_permanent(response: Response, body: Any, rid: Optional[str], what: str) -> None:
    """Turn a non-retryable answer into one clear paragraph."""
    status = response.status_code
    if status < 300:
        return
    detail = describe_error_body(body) if body is not _NOT_JSON else ""
    detail = f" Deck said: {detail}." if detail else ""
    if status == 401:
        raise DeckAuthError(
            f"The API key was rejected (HTTP 401 for {what}).{detail} Check SOURCES__DECK__API_KEY"
            " or api_key under [sources.deck] in .dlt/secrets.toml: it must be a live secret key"
            " (sk_live_...) of the organization whose runs you sync.",
            status=status,
            request_id=rid,
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "?")
        raise DeckPermanentError(
            f"Deck answered {what} with a redirect (HTTP {status} to {location}); redirects are"
            " not followed so the API key never leaves base_url's host. Set base_url to the API's"
            f" real address (default {settings.DEFAULT_BASE_URL}).",
            status=status,
            request_id=rid,
        )
    advice = {
        400: "The request was invalid: check the filters and dates you passed.",
        403: "The key is valid but not allowed to read task runs: check its permissions in Deck.",
        404: "Nothing at that address: most likely base_url is wrong"
        f" (default {settings.DEFAULT_BASE_URL}).",
        409: "Deck reports a conflict with the current state; retry later or contact Deck support"
        " with the request_id.",
        422: "Deck could not process a value in the request: check the filters and dates.",
    }.get(status, "This is not a transient error; contact Deck support with the request_id.")
    raise DeckPermanentError(
        f"Deck API refused {what} with HTTP {status}.{detail} {advice}",
        status=status,
        request_id=rid,
    )


class DeckCursorPaginator(JSONResponseCursorPaginator):
    """Follows `next_cursor` while `has_more` is true, and refuses to loop forever.

    Deck answers a page like::

        {"data": [{"id": "trun_9d1e...", "object": "task_run", "status": "completed", ...}],
         "has_more": true, "next_cursor": "eyJrIjpb...", "request_id": "req_5a7c..."}

    dlt's paginator stops quietly when the cursor is missing; here `has_more: true` without a
    cursor, or a cursor seen before, is an error, since either would lose or repeat data.
    """

    def __init__(self) -> None:
        super().__init__(cursor_path="next_cursor", cursor_param="cursor", has_more_path="has_more")
        self._seen: Set[str] = set()

    def update_state(self, response: Response, data: Optional[List[Any]] = None) -> None:
        body = response.json()
        rid = request_id_of(body, response.headers)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("data"), list)
            or not isinstance(body.get("has_more"), bool)
        ):
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise DeckResponseError(
                "Deck returned a page that is not the documented shape (expected an object"
                f" with a `data` list and a boolean `has_more`, got {keys}). Nothing from this"
                " sync was saved; run it again, and report the request_id to Deck if it repeats.",
                request_id=rid,
            )
        cursor = body.get("next_cursor")
        if body["has_more"] and not cursor:
            raise DeckResponseError(
                "Deck said has_more=true but gave no next_cursor, so the next page cannot be"
                " requested. Nothing from this sync was saved; run it again, and report the"
                " request_id to Deck if it repeats.",
                request_id=rid,
            )
        if body["has_more"] and cursor in self._seen:
            raise DeckResponseError(
                "Deck returned a next_cursor it had already returned in this listing; following it"
                " would loop forever. Nothing from this sync was saved; run it again, and report"
                " the request_id to Deck if it repeats.",
                request_id=rid,
            )
        if cursor:
            self._seen.add(cursor)
        super().update_state(response, data)


@dataclass
class Page:
    runs: List[Dict[str, Any]]
    has_more: bool
    request_id: Optional[str]


def validate_base_url(base_url: str) -> str:
    """https only; plain http is allowed for loopback hosts (the simulator, a local proxy)."""
    parsed = urlparse(base_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise DeckConfigError(
            f"base_url {base_url!r} is not a URL: set [sources.deck] base_url (or"
            f" SOURCES__DECK__BASE_URL) to an address like {settings.DEFAULT_BASE_URL}."
        )
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_HOSTS:
        raise DeckConfigError(
            f"base_url {base_url!r} uses plain http: the API key would travel unencrypted."
            " Use https (plain http is accepted only for loopback hosts such as 127.0.0.1)."
        )
    return base_url.rstrip("/")


class DeckClient:
    """The calls the connector makes: list task runs page by page, get one run, check the key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = settings.PAGE_SIZE,
        policy: Optional[RetryPolicy] = None,
        limiter: Optional[RateLimiter] = None,
        stats: Optional[RequestStats] = None,
    ) -> None:
        if not api_key or not str(api_key).strip():
            raise DeckConfigError(
                "api_key is empty: set SOURCES__DECK__API_KEY or api_key under [sources.deck] in"
                " .dlt/secrets.toml (see .dlt/secrets.toml.example)."
            )
        if not 1 <= page_size <= 100:
            raise DeckConfigError(f"page_size must be between 1 and 100 (got {page_size}).")
        self.base_url = validate_base_url(base_url)
        self.page_size = page_size
        self.session = DeckSession(policy, limiter, stats)
        self.stats = self.session.stats
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=BearerTokenAuth(token=str(api_key).strip()),
            session=self.session,
            data_selector="data",
        )

    def check_credentials(self) -> None:
        """`GET /test`: one cheap call that fails fast on a wrong key or base_url."""
        self._rest.get(settings.TEST_PATH, hooks={"response": []})

    def list_task_runs(self, params: Dict[str, Any]) -> Iterator[Page]:
        """Every page of `GET /task-runs` for these filters, in the API's (undocumented) order."""
        query = {"limit": self.page_size, **{k: v for k, v in params.items() if v is not None}}
        for page in self._rest.paginate(
            settings.TASK_RUNS_PATH,
            params=query,
            paginator=DeckCursorPaginator(),
            hooks={"response": []},
        ):
            self.stats.count(page=True)
            body = page.response.json()
            yield Page(runs=list(page), has_more=body["has_more"], request_id=request_id_of(body))

    def get_task_run(self, run_id: str) -> Optional[Dict[str, Any]]:
        """`GET /task-runs/{id}`; None when Deck no longer knows the run (404)."""
        try:
            response = self._rest.get(f"{settings.TASK_RUNS_PATH}/{run_id}", hooks={"response": []})
        except DeckPermanentError as exc:
            if exc.status == 404:
                return None
            raise
        body = response.json()
        if not isinstance(body, dict) or body.get("id") != run_id:
            raise DeckResponseError(
                f"Deck answered GET /task-runs/{run_id} with something that is not that run.",
                request_id=request_id_of(body, response.headers),
            )
        return body

    def close(self) -> None:
        self.session.close()


def split_filters(values: Optional[Any]) -> Optional[Tuple[str, ...]]:
    """Accept a list, a tuple or a comma-separated string for the API's array filters."""
    if values is None or values == "" or values == []:
        return None
    if isinstance(values, str):
        values = values.split(",")
    return tuple(str(v).strip() for v in values if str(v).strip())


__all__ = [
    "DeckAPIError",
    "DeckClient",
    "DeckCursorPaginator",
    "DeckSession",
    "Page",
    "RateLimiter",
    "RequestStats",
    "RetryPolicy",
    "split_filters",
    "validate_base_url",
]
