"""Values any writer of dlt's accepts, every digit and character kept; timestamps in one form.
Pure functions over one value or one record, without knowing what the record is for.

Every value of a Deck answer is valid JSON, yet two kinds used to stop every later sync:

- **Wide integers** (outside signed 64-bit, e.g. 20+ digit account numbers) cannot be written by
  dlt's JSON/Parquet writers. They become their decimal text, every digit kept, under the key
  `<key>__v_text`: the text variant column dlt itself would create beside a BIGINT column
  (`runtime_ms__v_text`, `output__account_number__v_text`); the BIGINT column is NULL there.
- **Lone surrogates** (`"\\ud83d"`, in values or keys) are not encodable as UTF-8. Each one is
  replaced by U+FFFD (the replacement character); the rest of the string is kept.

Non-finite floats (`NaN`, `Infinity`, `1e400`: not valid JSON, but Python's parser accepts them)
are stored as NULL, which is what dlt does with them anyway.

Cost: the deep walk runs only for pages that orjson (the C encoder dlt itself uses) cannot encode,
and there only for the offending runs; a clean page costs one `orjson.dumps` plus a few dict
lookups per run (about 6 us per run in all, measured on 10,000 simulator runs: some 3-4% of a
sync's CPU).
"""

import json
import math
import re
from datetime import datetime, timezone
from typing import Any

import orjson

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
REPLACEMENT = "\ufffd"
WIDE_SUFFIX = "__v_text"
_SURROGATES = re.compile("[\ud800-\udfff]")
# Known fields that the warehouse types as text; any other JSON type is stored as its JSON text.
TEXT_FIELDS = (
    "object",
    "status",
    "result",
    "task_id",
    "credential_id",
    "session_id",
    "agent_id",
    "source_id",
    "workflow_id",
)


def fix_string(text: str) -> str:
    """Replace each lone surrogate by U+FFFD; other characters are kept as they are."""
    return _SURROGATES.sub(REPLACEMENT, text)


def sanitize(value: Any) -> Any:
    """A copy of `value` that any UTF-8 / 64-bit writer accepts, every digit and character kept.

    Lone surrogates (in strings and keys) become U+FFFD, non-finite floats None. A wide integer
    becomes its decimal text under the key `<key>__v_text` (a list item: `{"value__v_text":
    text}`). That is the name dlt gives a text variant of a column, and it must be a separate
    key: dlt would turn digits stored under `<key>` back into an int when `<key>` is already a
    BIGINT column (e.g. from shorter account numbers), and fail.
    """
    kind = type(value)
    if kind is str:
        return fix_string(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is str:
                k = fix_string(k)
            if type(v) is int and not INT64_MIN <= v <= INT64_MAX:
                out[f"{k}{WIDE_SUFFIX}"] = str(v)
            else:
                out[k] = sanitize(v)
        return out
    if kind is list:
        return [
            {f"value{WIDE_SUFFIX}": str(v)}
            if type(v) is int and not INT64_MIN <= v <= INT64_MAX
            else sanitize(v)
            for v in value
        ]
    if kind is float:
        return value if math.isfinite(value) else None
    return value


def sanitize_run(record: dict[str, Any]) -> dict[str, Any]:
    """`sanitize` for a run object, except that its text fields keep their names (their wide
    integers become JSON text like any other non-string value there)."""
    run = sanitize(record)
    for name in ("id", *TEXT_FIELDS):
        value = record.get(name)
        if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
            run.pop(f"{name}{WIDE_SUFFIX}", None)
            run[name] = str(value)
    return run


def is_clean(value: Any) -> bool:
    """True when dlt's writers accept `value` as is (no wide int, no lone surrogate).

    orjson raises on lone surrogates and, held to 53-bit integers, on every integer that might
    not fit dlt's signed 64 bits (plain orjson takes unsigned 64-bit ones, which dlt's
    normalize then fails on: "Python int too large to convert to C long"). It is fast enough
    to ask about a whole page at once; the rare page it flags is checked field by field.
    """
    try:
        orjson.dumps(value, option=orjson.OPT_STRICT_INTEGER)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return True


def raw_json(record: Any) -> str:
    """The record as compact JSON text, exactly its values (lone surrogates stay escaped)."""
    return json.dumps(record, ensure_ascii=True, separators=(",", ":"))


def parse_api_timestamp(value: Any) -> datetime | None:
    """ISO 8601 in any form Python reads (space or T, `Z`/`z`/`+0000`/`+00:00`, basic format,
    comma fraction, any number of fraction digits) -> aware UTC datetime; None otherwise.

    A timestamp without an offset is taken as UTC.
    """
    if type(value) is not str:
        return None
    if is_deck_form(value):  # the fast path of every run
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # e.g. month 13
            return None
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit():
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    if len(text) == 10:
        text += "T00:00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def is_deck_form(value: str) -> bool:
    """`2026-01-01T12:00:00.123Z` / `2026-01-01T12:00:00Z`: cheaper than a regex per field."""
    n = len(value)
    return (
        20 <= n <= 27
        and value[-1] == "Z"
        and value[10] == "T"
        and value[4] == "-"
        and (n == 20 or value[19] == ".")
    )


def format_api_timestamp(dt: datetime) -> str:
    """The one form odd timestamps are rewritten to: UTC, microseconds, `Z`."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def coerce_runtime_ms(value: Any) -> int | str | None:
    """`runtime_ms` arrives as 48211 or "48211"; the warehouse column is BIGINT.

    A value outside 64 bits is returned as its decimal text (`prepare` stores it in
    `runtime_ms__v_text`);
    a fractional value is truncated; anything else that is not a number is None (the caller
    warns).
    """
    if value is None:
        return None
    kind = type(value)
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if kind is float:
        return _int_or_text(int(value)) if math.isfinite(value) else None
    if kind is not str:
        return None
    text = value.strip()
    try:
        return _int_or_text(int(text))
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return _int_or_text(int(number)) if math.isfinite(number) else None


def _int_or_text(number: int) -> int | str:
    return number if INT64_MIN <= number <= INT64_MAX else str(number)


def json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def drop_nulls(value: Any) -> Any:
    """Remove null members of objects: a warehouse reads a missing key and a null alike."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def short_text(value: Any, limit: int = 60) -> str:
    text = repr(fix_string(value) if isinstance(value, str) else value)
    return text if len(text) <= limit else text[:limit] + "..."
