"""URLs the client builds or is given, read the way the HTTP stack will read them.

base_url decides where the API key is sent, so it is validated as urllib3 and requests parse it
(not as it looks) before any request; run ids from the API are encoded as one path segment so that
none can address another resource; and a URL shown in a message never shows a password.
"""

import ipaddress
from urllib.parse import quote, urlsplit

import requests
import urllib3
from requests import PreparedRequest
from urllib3.exceptions import LocationParseError

from deck.core import settings
from deck.core.errors import DeckConfigError


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


def path_segment(value: str) -> str:
    """`value` percent-encoded as one URL path segment.

    Run ids come from the API; inserted raw, `a/b` or `../test` would address another resource
    and `?`/`#` would cut the path. A segment of only dots would be resolved away by urllib3, so
    its dots are encoded too (`..` then reaches the server as a literal segment, not as "up").
    """
    if value and set(value) <= {"."}:
        return value.replace(".", "%2E")
    return quote(value, safe="")
