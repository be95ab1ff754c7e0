"""Keeping the API key out of every text a user or a log can see.

A key reaches exception texts in surprising forms (requests' "Invalid header value b'Bearer ...'",
`repr` escapes, pieces cut at control characters), and such texts end up on stderr, in logs and
in dlt's trace. So the key is checked before it is ever put in a header, and any text or
exception that may carry it is scrubbed of every form it can take.
"""

import copy
import re
from typing import Any

from .errors import DeckConfigError, DeckError

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


def scrubbed_exception(exc: BaseException, secret: str) -> BaseException | None:
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
