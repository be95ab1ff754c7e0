"""HTTP client for Deck's v2 API: dlt's RESTClient with a cursor paginator that refuses to loop,
a session that retries what is transient and explains what is not, and a rate limiter shared by
every worker of a sync.

Why not dlt's default retrying session: Deck asks for exponential backoff from 1 s capped at 30 s,
its 429s usually carry no Retry-After, and a scheduled job must log every retry and end with a
message naming the last `request_id`. The retry loop below is that policy and nothing more.
"""

import contextlib
import copy
import ipaddress
import json
import logging
import random
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Deque, Dict, Iterator, List, Optional, Set, Tuple, TypeVar
from urllib.parse import quote, urlparse, urlsplit

import requests
import urllib3
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth
from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import LocationParseError

from . import settings
from .errors import (
    DeckAPIError,
    DeckAuthError,
    DeckConfigError,
    DeckError,
    DeckPermanentError,
    DeckResponseError,
    DeckTransientError,
    describe_error_body,
    request_id_of,
)

logger = logging.getLogger("deck")
_T = TypeVar("_T")

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
    # Total time one attempt may take, headers and body included (None: a multiple of the read
    # timeout). The read timeout alone is per socket read, so a server trickling a byte every few
    # seconds would never trip it.
    request_deadline_s: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "read_timeout_s", "request_deadline_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise DeckConfigError(f"{name} must be above 0 seconds (got {value}).")

    @property
    def deadline_s(self) -> float:
        """The total deadline of one attempt; follows read_timeout_s unless set on its own."""
        if self.request_deadline_s is not None:
            return self.request_deadline_s
        return settings.REQUEST_DEADLINE_FACTOR * self.read_timeout_s

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

    Deck counts 200 requests per 10 s per organization, on receipt; staying under it on the client
    side costs nothing, while every 429 costs a backoff. We cannot know when Deck counted a
    request, only that it was before its response arrived. So a request holds its slot from before
    it is sent until `period_s` after its response (or failure): any `period_s` window of Deck's
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
        self._finished: Deque[float] = deque()  # when each recent request's answer arrived
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
        token = self.acquire()
        try:
            yield
        finally:
            self.release(token)


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


_ACTIVE = threading.local()  # the watchdog of the request this thread is sending, if any


class _Watchdog:
    """Shuts down a request's socket when its total deadline passes.

    urllib3's read timeout restarts at every byte, so it cannot end a response trickled byte by
    byte; a socket shut down from this timer thread makes the blocked read return at once, in the
    status line, the headers or the body alike, and the request fails as a dropped connection.
    """

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.fired = False
        self._sock: Optional[socket.socket] = None
        self._done = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(deadline_s, self._fire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watchdog":
        _ACTIVE.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done = True
        self._timer.cancel()
        _ACTIVE.watchdog = None

    def attach(self, sock: Optional[socket.socket]) -> None:
        with self._lock:
            self._sock = sock
            if self.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass


class _WatchedHTTPConnection(urllib3.connection.HTTPConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        watchdog = getattr(_ACTIVE, "watchdog", None)
        if watchdog is not None:
            watchdog.attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def getresponse(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        watchdog = getattr(_ACTIVE, "watchdog", None)
        if watchdog is not None:
            watchdog.attach(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections let the deadline watchdog reach their socket."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }


SECRET_MASK = "[api_key hidden]"
_SPLIT_SECRET = re.compile(r"[\x00-\x20\x7f]+")


def secret_fragments(secret: str) -> list[str]:
    """Every form in which (part of) a secret can show up in an exception text, longest first.

    A key with a CR/LF in it reaches messages as is, as `repr` escapes (`b'Bearer sk..\\r\\n..'`)
    or cut at the control characters, so each of those forms (of 4 characters or more) counts.
    """
    if not secret:
        return []
    forms = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
    for form in list(forms):
        forms.update(re.split(r"\\x[0-9a-f]{2}|\\u[0-9a-f]{4}|\\[rnt\\]", form))
    forms.update(_SPLIT_SECRET.split(secret))
    return sorted((f for f in forms if len(f) >= 4), key=len, reverse=True)


def scrub(text: str, secret: str) -> str:
    """`text` with every fragment of `secret` replaced by a mask (see `secret_fragments`)."""
    for fragment in secret_fragments(secret):
        text = text.replace(fragment, SECRET_MASK)
    return text


class DeckSession(requests.Session):
    """A requests session that applies Deck's retry policy, timeouts, deadline and rate limit to
    every send.

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
        self.secret = ""  # scrubbed from every text this session logs
        self.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        self.mount("http://", _WatchedAdapter())
        self.mount("https://", _WatchedAdapter())

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        kwargs["stream"] = False  # the body is read inside the watched attempt
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.policy.connect_timeout_s, self.policy.read_timeout_s)
        what = f"{request.method} {urlparse(request.url or '').path}"
        attempt = 0
        while True:
            attempt += 1
            reason, wait, response, rid = "", None, None, None
            token = self.limiter.acquire() if self.limiter is not None else None
            self.stats.count(request=True)
            watchdog = _Watchdog(self.policy.deadline_s)
            try:
                with watchdog:
                    response = super().send(request, **kwargs)
            except Exception as exc:
                if not watchdog.fired and not isinstance(exc, RETRY_EXCEPTIONS):
                    raise
                reason = f"{type(exc).__name__}: {_short(scrub(str(exc), self.secret))}"
            finally:
                if token is not None:
                    self.limiter.release(token)  # type: ignore[union-attr]
            if watchdog.fired:
                # Cut mid-answer: http.client may even return the headers read so far as a
                # complete (empty) response, so whatever arrived is discarded.
                response = None
                reason = (
                    f"no complete answer within the {watchdog.deadline_s:g} s request deadline"
                    " (request_deadline_s)"
                )
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


def _short(text: str) -> str:
    """Cut after scrubbing: a key cut in half would no longer match the scrubber."""
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
    cursor, or a cursor seen before, is an error, since either would lose or repeat data. So are
    `max_empty_pages` empty pages in a row with `has_more: true` (fresh cursors that never reach
    a run): such a walk makes no progress and would spend the rate limit forever.
    """

    def __init__(self, max_empty_pages: int = settings.MAX_EMPTY_PAGES) -> None:
        super().__init__(cursor_path="next_cursor", cursor_param="cursor", has_more_path="has_more")
        self._seen: Set[str] = set()
        self.max_empty_pages = max_empty_pages
        self._empty_in_a_row = 0

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
        empty = body["has_more"] and not body["data"]
        self._empty_in_a_row = self._empty_in_a_row + 1 if empty else 0
        if self._empty_in_a_row >= self.max_empty_pages:
            raise DeckResponseError(
                f"Deck broke its contract: {self._empty_in_a_row} pages in a row came back empty"
                " while saying has_more=true, each with a new next_cursor, so the listing makes no"
                " progress and following it could go on forever (spending the organization's"
                " rate limit). Nothing from this sync was saved; run it again, and report the"
                " request_id to Deck if it repeats.",
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


def mask_url(url: str) -> str:
    """`url` as it may be shown in a message: a password (`user:password@`) replaced by ***.

    Over-masks rather than under-masks: everything between the first ':' after the scheme and the
    last '@' is hidden, whichever parser would call it a password.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    head, at, tail = rest.rpartition("@")
    if at:
        user, colon, _password = head.partition(":")
        rest = f"{user}{':***' if colon else ''}@{tail}"
    text = f"{scheme}{sep}{rest}"
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_base_url(base_url: str) -> str:
    """https only; plain http is allowed for loopback hosts (the simulator, a local proxy).

    The host checked must be the host the HTTP stack connects to. Python's `urlparse` and
    urllib3 disagree on URLs like `http://evil.example\\@127.0.0.1/v2` (urllib3 connects to
    evil.example), so the URL is parsed with urllib3 and requests exactly as a request would be,
    and anything parsers can read differently (backslashes, user-info, whitespace, control
    characters) is refused before any request is sent.
    """
    text = str(base_url or "").strip()
    shown = f"'{mask_url(text)}'"
    fix = (
        " Set [sources.deck] base_url (or SOURCES__DECK__BASE_URL) to an address like"
        f" {settings.DEFAULT_BASE_URL}."
    )

    def refuse(why: str) -> DeckConfigError:
        return DeckConfigError(f"base_url {shown} {why}.{fix}")

    if "\\" in text:
        raise refuse(
            "contains a backslash: HTTP libraries disagree on which host such a URL names, so the"
            " API key could be sent to another host than the one you see"
        )
    if any(c.isspace() or not c.isprintable() for c in text):
        raise refuse("contains whitespace or a control character")
    try:
        parsed = urllib3.util.parse_url(text)
        prepared = PreparedRequest()
        prepared.prepare_url(text, None)
        sent = urllib3.util.parse_url(prepared.url or "")
        split = urlsplit(text)
        split_host = split.hostname or ""
        split.port  # noqa: B018 - raises ValueError on a bad port
    except (LocationParseError, requests.exceptions.RequestException, ValueError):
        raise refuse("is not a URL") from None
    if (parsed.scheme or "").lower() not in ("http", "https") or not parsed.host:
        raise refuse("is not an http(s) URL")
    if parsed.auth is not None or "@" in text:
        raise refuse(
            "contains a user name or password (user:password@): Deck authenticates with the API"
            " key alone; remove it"
        )
    if parsed.query is not None or parsed.fragment is not None:
        raise refuse("has a query (?...) or fragment (#...): base_url is the API's address only")
    hosts = {h.strip("[]").lower() for h in (parsed.host, sent.host or "", split_host)}
    if len(hosts) != 1:
        raise refuse("names its host ambiguously (parsers read different hosts)")
    if parsed.scheme == "http" and not _is_loopback(parsed.host):
        raise DeckConfigError(
            f"base_url {shown} uses plain http: the API key would travel unencrypted."
            " Use https (plain http is accepted only for loopback hosts such as 127.0.0.1)."
        )
    return text.rstrip("/")


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
        key = check_api_key(api_key)
        if not 1 <= page_size <= 100:
            raise DeckConfigError(f"page_size must be between 1 and 100 (got {page_size}).")
        self.base_url = validate_base_url(base_url)
        self.page_size = page_size
        self.session = DeckSession(policy, limiter, stats)
        self.session.secret = key
        self.stats = self.session.stats
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=BearerTokenAuth(token=key),
            session=self.session,
            data_selector="data",
        )

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Run `call`; an exception whose text carries the API key leaves without it.

        The replacement is raised outside the `except` block so that it carries no
        `__context__` (and no traceback frames) referring to the original.
        """
        try:
            return call()
        except Exception as exc:
            clean = scrubbed_exception(exc, self.session.secret)
            if clean is None:
                raise
        raise clean

    def check_credentials(self) -> None:
        """`GET /test`: one cheap call that fails fast on a wrong key or base_url."""
        self._guard(lambda: self._rest.get(settings.TEST_PATH, hooks={"response": []}))

    def list_task_runs(self, params: Dict[str, Any]) -> Iterator[Page]:
        """Every page of `GET /task-runs` for these filters, in the API's (undocumented) order."""
        pages = self._list_task_runs(params)
        while True:
            page = self._guard(lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _list_task_runs(self, params: Dict[str, Any]) -> Iterator[Page]:
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
        return self._guard(lambda: self._get_task_run(run_id))

    def _get_task_run(self, run_id: str) -> Optional[Dict[str, Any]]:
        path = f"{settings.TASK_RUNS_PATH}/{path_segment(run_id)}"
        try:
            response = self._rest.get(path, hooks={"response": []})
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


def path_segment(value: str) -> str:
    """`value` percent-encoded as one URL path segment.

    Run ids come from the API; inserted raw, `a/b` or `../test` would address another resource
    and `?`/`#` would cut the path. A segment of only dots would be resolved away by urllib3, so
    its dots are encoded too (`..` then reaches the server as a literal segment, not as "up").
    """
    if value and set(value) <= {"."}:
        return value.replace(".", "%2E")
    return quote(value, safe="")


def check_api_key(api_key: Any) -> str:
    """The key as it will be sent; refuse what cannot be an HTTP header value, without echoing it.

    A CR/LF inside the key would otherwise end up in requests' "Invalid header value
    b'Bearer sk_live_...'" message, on stderr and in dlt's trace.
    """
    key = str(api_key or "").strip()
    if not key:
        raise DeckConfigError(
            "api_key is empty: set SOURCES__DECK__API_KEY or api_key under [sources.deck] in"
            " .dlt/secrets.toml (see .dlt/secrets.toml.example)."
        )
    if any(not 0x21 <= ord(c) <= 0x7E for c in key):
        raise DeckConfigError(
            "api_key contains a line break, a space, a control or a non-ASCII character, so it"
            " cannot be sent in an HTTP header (the key is not shown here). Copy the key again"
            " into SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml;"
            " it looks like sk_live_ followed by letters and digits."
        )
    return key


def scrubbed_exception(exc: BaseException, secret: str) -> Optional[BaseException]:
    """A copy of `exc` whose text no longer carries `secret`; None when it carried none.

    Our own errors keep their type (callers branch on it); anything else becomes a DeckError
    naming the original type, since its constructor may not accept a plain message.
    """
    texts = [str(exc), repr(exc.args)]
    if not secret or not any(f in t for f in secret_fragments(secret) for t in texts):
        return None
    text = scrub(str(exc), secret)
    if isinstance(exc, DeckError):
        clean = copy.copy(exc)
        clean.args = (text,)
    else:
        clean = DeckError(f"{type(exc).__name__}: {text}")
    clean.__cause__ = clean.__context__ = None
    clean.__traceback__ = None
    return clean


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
    "check_api_key",
    "mask_url",
    "path_segment",
    "scrub",
    "split_filters",
    "validate_base_url",
]
