"""Errors a user can see, each phrased as: what happened, the request id, what to do.

The CLI prints `str(error)` as-is (no traceback unless --debug), so every message must stand alone
and must never contain the API key: each error's text (and request_id) goes through the scrubber
(redact.scrub) as the error is made, whatever part of it Deck sent.
"""

import copy
import socket
from collections.abc import Iterator
from typing import Any

from deck.core.redact import scrub, scrub_optional


class DeckError(Exception):
    """Base of every error this connector raises on purpose; its text never holds the key."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*(scrub(arg) if isinstance(arg, str) else arg for arg in args))


class DeckConfigError(DeckError):
    """A configuration value is unusable; raised before the first request is sent."""


class DeckOptionError(DeckConfigError):
    """An option of `[sources.deck]` is unusable (`options.OptionSpec`), or a key there is no
    option: the name, the value as given (`shown`, "" for an unknown key) and what it accepts,
    in one line. `where` (an environment variable, a line of .dlt/config.toml) is added when
    known; the CLI looks it up otherwise (`configured.locate_setting`)."""

    def __init__(
        self, option: str, shown: str, problem: str, *, value: Any = None,
        where: str | None = None,
    ) -> None:
        self.option = option
        self.shown = shown
        self.problem = problem
        self.value = value
        self.where = where
        super().__init__(self.describe(where))

    def describe(self, where: str | None) -> str:
        """The one line, saying where the value was set when `where` is known."""
        located = f" in {where}" if where else ""
        return f"{self.option}{self.shown}{located} {self.problem}"


class DeckAPIError(DeckError):
    """The API answered in a way the sync cannot continue from."""

    def __init__(
        self, message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        self.status = status
        self.request_id = request_id = scrub_optional(request_id)
        if request_id:
            message = f"{message} (request_id {request_id})"
        super().__init__(message)


class DeckAuthError(DeckAPIError):
    """401: the key is wrong, revoked or from another organization."""


class DeckPermanentError(DeckAPIError):
    """A 4xx (or redirect) that retrying cannot fix."""


class DeckTransientError(DeckAPIError):
    """Retries were exhausted on 429s, 5xx, timeouts or broken bodies."""


class DeckResponseError(DeckAPIError):
    """A 200 whose body breaks the documented contract (shape, pagination, required fields)."""


class DeckUnreachableError(DeckError):
    """Deck's host name does not resolve: base_url names no host, or this machine has no DNS.

    Not a transient fault like a 503: waiting minutes for a name that does not exist only delays
    the message, so it is retried briefly (a resolver's hiccup) and then explained.
    """


def scrubbed_exception(exc: BaseException, secret: str = "") -> BaseException | None:
    """A copy of `exc` whose text no longer carries the key; None when it carried none.

    Our own errors keep their type (callers branch on it) and have their request_id scrubbed
    too; anything else becomes a DeckError naming the original type, since its constructor may
    not accept a plain message.
    """
    text = str(exc)
    texts = [text, repr(exc.args)]
    if all(scrub(t, secret) == t for t in texts):
        return None
    text = scrub(text, secret)
    if isinstance(exc, DeckError):
        clean = copy.copy(exc)
        clean.args = (text,)
        if isinstance(getattr(clean, "request_id", None), str):
            clean.request_id = scrub(clean.request_id, secret)  # type: ignore[attr-defined]
    else:
        clean = DeckError(f"{type(exc).__name__}: {text}")
    clean.__cause__ = clean.__context__ = None
    clean.__traceback__ = None
    return clean


def causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and what it wraps: requests -> urllib3's MaxRetryError -> its reason -> the socket
    error, dlt's PipelineStepFailed -> the step's exception (through args, `reason`,
    `exception`, `__cause__` and `__context__`)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [getattr(current, "reason", None), current.__cause__, current.__context__]
        linked.append(getattr(current, "exception", None))
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        stack.extend(item for item in linked if isinstance(item, BaseException))


def resolver_error(exc: BaseException) -> str | None:
    """The resolver's message when `exc` is a host name that did not resolve, else None."""
    for cause in causes(exc):
        if isinstance(cause, socket.gaierror):
            return str(cause)
        if type(cause).__name__ == "NameResolutionError":  # urllib3 2.x, without the gaierror
            text = str(cause)
            return text[text.find("(", text.find("Failed to resolve")) + 1 :].rstrip(")") or text
    return None


def describe_request_exception(exc: BaseException) -> str:
    """What went wrong with a request that got no answer, without urllib3's wrapping (`Max
    retries exceeded with url ... (Caused by ...)` hid the cause and was cut off)."""
    resolver = resolver_error(exc)
    if resolver is not None:
        return f"the host name does not resolve ({resolver})"
    chain = list(causes(exc))
    if any(type(c).__name__ in _CONNECT_ERRORS for c in chain):
        for cause in chain:
            if isinstance(cause, OSError) and type(cause).__module__ in ("builtins", "socket"):
                return f"could not connect ({type(cause).__name__}: {cause})"
    return str(exc)


_CONNECT_ERRORS = ("NewConnectionError", "ConnectTimeoutError")


def describe_error_body(body: Any) -> str:
    """Render Deck's two error shapes as one line.

    Standard shape::

        {"errors": [{"type": "auth", "code": "unauthorized", "message": "Invalid API key provided.",
                     "field": null}], "request_id": "req_8f2c"}

    Validation shape (400, RFC 9110 problem)::

        {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
         "title": "One or more validation errors occurred.", "status": 400,
         "errors": {"limit": ["The field limit must be between 1 and 100."]}, "traceId": "..."}
    """
    if not isinstance(body, dict):
        return ""
    errors = body.get("errors")
    parts: list[str] = []
    if isinstance(errors, list):
        for error in errors:
            if isinstance(error, dict):
                text = str(error.get("message") or error.get("code") or "")
                if error.get("field"):
                    text = f"{error['field']}: {text}"
                if error.get("code") and error.get("message"):
                    text = f"{text} [{error.get('type')}/{error['code']}]"
                parts.append(text)
    elif isinstance(errors, dict):
        fields: dict[str, Any] = errors
        for field, messages in fields.items():
            if isinstance(messages, list):
                messages = "; ".join(str(m) for m in messages)
            parts.append(f"{field}: {messages}")
        if body.get("title") and not parts:
            parts.append(str(body["title"]))
    return "; ".join(p for p in parts if p)


def request_id_of(body: Any, headers: Any | None = None) -> str | None:
    """Deck puts `request_id` in error and list bodies (validation bodies carry `traceId`)."""
    if isinstance(body, dict):
        for key in ("request_id", "traceId"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    if headers is not None:
        value = headers.get("X-Request-Id")
        if value:
            return str(value)
    return None
