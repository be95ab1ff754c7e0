"""The retrying HTTP session under dlt's RESTClient: what is transient is retried, what is not
is explained in one paragraph, and every attempt has timeouts, a total deadline and a rate slot.

Why not dlt's default retrying session: Deck asks for exponential backoff from 1 s capped at 30 s,
its 429s usually carry no Retry-After, and a scheduled job must log every retry and end with a
message naming the last `request_id`. The retry loop below is that policy and nothing more.
Every attempt is counted in the sync's `RequestStats` (`deck.core.stats`), which also remembers
Deck's clock from each answer's `Date` header: the source bounds what "now" means on Deck's side
with it.
"""

import json
import logging
import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlparse

import requests
from requests import PreparedRequest, Response

from deck.api.deadline import Watchdog, WatchedAdapter
from deck.api.ratelimit import RateLimiter
from deck.core import settings
from deck.core.errors import (
    DeckAuthError,
    DeckPermanentError,
    DeckTransientError,
    DeckUnreachableError,
    describe_error_body,
    describe_request_exception,
    request_id_of,
    resolver_error,
)
from deck.core.options import check_option
from deck.core.redact import scrub, scrub_optional
from deck.core.stats import RequestStats

logger = logging.getLogger("deck")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRY_EXCEPTIONS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass
class RetryPolicy:
    """How long a sync keeps trying before it fails clearly."""

    max_attempts: int = settings.REQUEST_MAX_ATTEMPTS
    backoff_base_s: float = settings.BACKOFF_BASE_S
    backoff_cap_s: float = settings.BACKOFF_CAP_S
    # Retry-After is honoured up to this many seconds; "0" still waits `min_wait_s` (no hot loop).
    max_retry_after_s: float = 60.0
    min_wait_s: float = 0.25
    connect_timeout_s: float = settings.CONNECT_TIMEOUT_S
    read_timeout_s: float = settings.READ_TIMEOUT_S
    # Total time one attempt may take, headers and body included (None: a multiple of the read
    # timeout). The read timeout alone is per socket read, so a server trickling a byte every few
    # seconds would never trip it.
    request_deadline_s: float | None = None

    def __post_init__(self) -> None:
        """Each option checked by its spec (`options.OPTIONS`): finite and in range."""
        for name in (
            "max_attempts", "backoff_base_s", "backoff_cap_s", "connect_timeout_s",
            "read_timeout_s", "request_deadline_s",
        ):
            option = "request_max_attempts" if name == "max_attempts" else name
            setattr(self, name, check_option(option, getattr(self, name)))

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

    def retry_after(self, header: str | None) -> float | None:
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


class DeckSession(requests.Session):
    """A requests session that applies Deck's retry policy, timeouts, deadline and rate limit to
    every send.

    Redirects are never followed: the Authorization header must not travel to another host, and
    Deck's API does not redirect, so a 3xx means `base_url` is wrong.
    """

    def __init__(
        self,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.stats = stats or RequestStats()
        self.secret = ""  # scrubbed from every text this session logs (redact.scrub)
        self.trust_env = False  # no proxies or .netrc credentials picked up from the environment
        self.mount("http://", WatchedAdapter())
        self.mount("https://", WatchedAdapter())

    def send(self, request: PreparedRequest, **kwargs: Any) -> Response:  # type: ignore[override]
        kwargs["allow_redirects"] = False
        # Streamed so that the rate slot frees once the headers are in (Deck counted the request
        # before it answered); the body is still read inside the watched attempt.
        kwargs["stream"] = True
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = (self.policy.connect_timeout_s, self.policy.read_timeout_s)
        what = f"{request.method} {urlparse(request.url or '').path}"
        attempt = 0
        while True:
            attempt += 1
            reason, wait, response, rid, unresolved = "", None, None, None, None
            token = self.limiter.acquire() if self.limiter is not None else None
            self.stats.count(request=True)
            watchdog = Watchdog(self.policy.deadline_s)
            try:
                with watchdog:
                    answer = super().send(request, **kwargs)
                    if token is not None:
                        self.limiter.release(token)  # type: ignore[union-attr]
                        token = None
                    answer.content  # noqa: B018 -- reads the body, under the deadline
                    response = answer
            except Exception as exc:
                if not watchdog.fired and not isinstance(exc, RETRY_EXCEPTIONS):
                    raise
                unresolved = resolver_error(exc)
                detail = describe_request_exception(exc)
                reason = f"{type(exc).__name__}: {_short(scrub(detail, self.secret))}"
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
                self.stats.observe_date(response.headers.get("Date"), what)
                body = _parse_json(response)
                rid = scrub_optional(request_id_of(body, response.headers))
                if rid:
                    self.stats.last_request_id = rid
                if response.status_code in RETRY_STATUSES:
                    self.stats.count(throttled=response.status_code == 429)
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
            reason = scrub(reason, self.secret)  # Deck's message and headers may quote the key
            attempts = self.policy.max_attempts
            if unresolved is not None:  # a name that does not resolve is not worth minutes
                attempts = min(settings.UNRESOLVED_MAX_ATTEMPTS, attempts)
                if attempt >= attempts:
                    raise _unresolvable(request.url or "", what, attempt, unresolved)
            if attempt >= attempts:
                raise DeckTransientError(
                    f"Deck API kept failing for {what}: {attempt} attempts, the last one got"
                    f" {reason}. This is usually temporary (rate limit or an outage): run the"
                    " sync again later; nothing was lost, it resumes where the last successful"
                    " load stopped.",
                    request_id=self.stats.last_request_id,
                )
            if wait is None:
                wait = self.policy.backoff(attempt)
            if unresolved is not None:  # a resolver's hiccup passes in seconds, if at all
                wait = min(wait, settings.UNRESOLVED_RETRY_WAIT_S)
            self.stats.count(retry=True)
            logger.warning(
                "Deck API: %s got %s%s; retry %d of %d in %.2f s",
                what,
                reason,
                f" (request_id {rid})" if response is not None and rid else "",
                attempt,
                attempts - 1,
                wait,
            )
            time.sleep(wait)


_NOT_JSON = object()


def _unresolvable(url: str, what: str, attempts: int, resolver: str) -> DeckUnreachableError:
    """The paragraph for a host name that does not resolve: which host, what the resolver said,
    and the two usual causes."""
    return DeckUnreachableError(
        f"Cannot reach Deck: the host name {urlparse(url).hostname!r} in base_url does not"
        f" resolve (the resolver said: {resolver}; {what}, {attempts} attempts). Check base_url"
        f" (default {settings.DEFAULT_BASE_URL}) for a typo, and this machine's DNS and network."
        " Nothing was lost: the next sync resumes where the last successful load stopped."
    )


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


def _raise_for_permanent(response: Response, body: Any, rid: str | None, what: str) -> None:
    """Turn a non-retryable answer into one clear paragraph (scrubbed as the error is made:
    Deck's message and Location may quote the key)."""
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
