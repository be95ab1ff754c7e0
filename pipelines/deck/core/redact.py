"""Keeping the API key out of every text a user or a log can see: the one scrubber.

A key reaches texts in surprising forms: requests' "Invalid header value b'Bearer ...'", `repr`
escapes, pieces cut at control characters, and whatever Deck quotes back of a request in its
answers (error messages, `request_id`, `traceId`, header values), URL-encoded (`%2B`),
JSON-escaped (`\\/`, `\\u002B`), broken across lines, or cut short after "Bearer ". Such texts
end up on stderr, in logs, in exceptions and dlt's trace, in the warehouse (the quarantine's
`request_id`). So the key is checked before it is ever put in a header
(`deck.api.client.check_api_key`), remembered (`remember_secret`, done by that check, and earlier
by the CLI and `deck()`, before any option is checked: an option's refusal echoes its value,
which may be the key pasted into the wrong option), and every text that leaves the client goes
through `scrub`:

- every DeckError scrubs its text and request_id as it is made (errors.py);
- the client scrubs what it keeps of Deck's answers (request ids) and the texts of its warnings
  (session.py, client.py); any other exception leaving the client is replaced by a scrubbed
  copy (`errors.scrubbed_exception`), before dlt records it in its trace;
- every log record of the "deck" and "dlt" loggers is scrubbed (`ScrubbingFilter`), message,
  arguments and traceback alike;
- the quarantine's rows (deck.listing.quarantine) and the CLI's paragraphs and summary
  (deck.runtime.failures, deck.runtime.summary).
"""

import logging
import re
import threading
from functools import lru_cache

SECRET_MASK = "[api_key hidden]"
_SPLIT_SECRET = re.compile(r"[\x00-\x20\x7f]+")
# A key's well-known prefix: Deck's keys read sk_live_<secret> (sk_test_ for test keys). The
# secret part alone is the key too (a text may quote it without its prefix), once it is long
# enough not to be an ordinary word (the demo's sk_test_deck_simulator is not: its module is
# named deck_simulator).
_KEY_PREFIX = re.compile(r"^[A-Za-z]{2,}_(?:live|test)_")
_MIN_SECRET_PART = 16
# Inside an echoed key: spaces or line breaks, raw or JSON-escaped (a body wrapped in lines).
_BREAK = r"(?:[ \t\r\n]|\\[rnt])*"
# One character of a bearer token: not a space, quote or delimiter; a backslash only as part of
# an escape that is not a quote's or a line break's.
_TOKEN_CHAR = r"(?:[^\s\"'<>,;&)\]}\\]|\\(?![\"'\\rnt]))"
# Any bearer credential, whole or cut short ("Bearer sk_live_7f3a" of a truncated echo), with
# the space after "Bearer" raw, URL-encoded, JSON-escaped or a line break; not a challenge's
# parameter (`WWW-Authenticate: Bearer realm="..."`), and not a word: the token must look like
# a credential, with a key's prefix (sk_) or at least `_MIN_SECRET_PART` characters long
# ("Bearer of news" stays as it is).
_BEARER = re.compile(
    r"(?i:(bearer)((?:[ \t\r\n]|%20|\+|\\u0020|\\[rnt])+))"
    r"(?!" + re.escape(SECRET_MASK) + r"|[A-Za-z_-]+=\\*\")"
    rf"(?=(?i:sk_)|{_TOKEN_CHAR}{{{_MIN_SECRET_PART}}})"
    rf"({_TOKEN_CHAR}+)"
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def remember_secret(secret: str) -> None:
    """From now on `scrub` hides `secret` in every text, and the "deck" and "dlt" loggers'
    records go through it (a process uses one key or a few: they are kept for its lifetime)."""
    if not secret:
        return
    with _secrets_lock:
        _secrets.add(secret)
    install_log_filter()


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


def _char_pattern(char: str) -> str:
    """One character of a key as it may be written: itself, URL-encoded (`%2B`, also twice:
    `%252B`), JSON-escaped (`\\u002B`, `\\/`, at any depth of escaping)."""
    code = ord(char)
    forms = [re.escape(char), f"%(?:25)*(?i:{code:02x})", rf"\\+(?i:u{code:04x})"]
    if char in "\"'\\/":
        forms.append(r"\\+" + re.escape(char))
    return "(?:" + "|".join(forms) + ")"


def _spelled(text: str) -> str:
    return _BREAK.join(_char_pattern(c) for c in text)


@lru_cache(maxsize=32)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    """The key in any of the forms above, its prefix optional, and its control-character
    fragments (see `secret_fragments`)."""
    prefix = _KEY_PREFIX.match(secret)
    body = secret[prefix.end() :] if prefix else secret
    if prefix and len(body) >= _MIN_SECRET_PART:
        whole = f"(?:{_spelled(prefix.group())}{_BREAK})?{_spelled(body)}"
    else:
        whole = _spelled(secret)
    fragments = [re.escape(f) for f in secret_fragments(secret) if f != secret]
    return re.compile("|".join([whole, *fragments]))


def scrub(text: str, *secrets: str) -> str:
    """`text` with every form of the remembered key (and of `secrets`) replaced by a mask, and
    every bearer credential it quotes, whole or cut short."""
    if not text:
        return text
    with _secrets_lock:
        known = _secrets.union(s for s in secrets if s)
    for secret in sorted(known, key=len, reverse=True):
        text = _secret_pattern(secret).sub(SECRET_MASK, text)
    return _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{SECRET_MASK}", text)


def scrub_optional(text: str | None) -> str | None:
    """`scrub` for a value that may be missing (a request_id Deck did not send)."""
    return scrub(text) if text else text


class ScrubbingFilter(logging.Filter):
    """Scrubs each record's message (arguments merged in), traceback and stack text.

    The traceback is formatted here, scrubbed into `exc_text`, and `exc_info` dropped: a
    formatter that formats `exc_info` itself (dlt's JSON formatter, `RUNTIME__LOG_FORMAT=JSON`)
    would otherwise print it unscrubbed. Filters that look at the exception must run before this
    one (`cli.configure_logging` puts `local_faults.QuietStorageFaults` first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: leave it to logging
            return True
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


_FILTER = ScrubbingFilter()
# dlt's logger is named after its `runtime.log_name` setting, "dlt" unless changed
SCRUBBED_LOGGERS = ("deck", "dlt")


def install_log_filter(*handlers: logging.Handler) -> None:
    """Scrub the records of the "deck" and "dlt" loggers (and whatever passes `handlers`)."""
    for target in [*(logging.getLogger(name) for name in SCRUBBED_LOGGERS), *handlers]:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
