"""Time helpers: the simulator keeps every instant as integer milliseconds since the epoch.

Integers keep the keyset index exact and cheap to sort; these helpers convert at the edges
(what tests pass in, what the API renders). Runs hold their timestamps already printed as
``fmt_ms`` does; a ``Contract`` that prints otherwise re-prints them as they are served.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS_PER_DAY = 86_400_000


def fmt_ms(ms: int) -> str:
    """Render epoch milliseconds the way Deck does: ``2026-01-01T12:00:00.123Z``."""
    secs, frac = divmod(ms, 1000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:03d}Z"
    )


def to_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so callers cannot accidentally shift the clock."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def dt_to_us(dt: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    delta = to_utc(dt) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def dt_to_ms(dt: datetime) -> int:
    return dt_to_us(dt) // 1000


def ms_to_dt(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def parse_iso(value: str) -> datetime | None:
    """ISO 8601 with ``Z`` or an offset, with or without fractional seconds; None if invalid."""
    text = value.strip()
    if not text or not text[0].isdigit():
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        return to_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def coerce_time(value: datetime | str) -> int:
    """A datetime or ISO string given by a test -> epoch milliseconds."""
    if isinstance(value, datetime):
        return dt_to_ms(value)
    parsed = parse_iso(str(value))
    if parsed is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    return dt_to_ms(parsed)


def jsonable(value: Any) -> Any:
    """Datetimes given by tests become API timestamps, so objects stay JSON-serializable."""
    if isinstance(value, datetime):
        return fmt_ms(dt_to_ms(value))
    return value


Reprint = Callable[[str], str]
RUN_TIMESTAMPS = ("created_at", "updated_at", "canceled_at")
"""The timestamps a run object carries (an event's ``data`` carries the first two)."""


def reprinter(seconds_only: bool, timestamp_format: str) -> Reprint | None:
    """How a ``fmt_ms`` timestamp is printed instead (None: as it is, the default).

    ``seconds_only`` drops the fraction (``ms_printed_s``); ``timestamp_format`` is "z"
    (``.123Z``), "offset" (``.123+00:00``) or "trim" (no fraction on a whole second). Only
    strings exactly in ``fmt_ms`` form change: a hostile value a test serves stays as given."""
    zone = "+00:00" if timestamp_format == "offset" else "Z"
    trim = timestamp_format == "trim"
    if not seconds_only and zone == "Z" and not trim:
        return None

    def reprint(text: str) -> str:
        if len(text) != 24 or text[19] != "." or text[23] != "Z" or text[10] != "T":
            return text
        frac = text[20:23]
        if seconds_only or (trim and frac == "000"):
            return text[:19] + zone
        return f"{text[:19]}.{frac}{zone}"

    return reprint


def reprint_run(obj: Any, reprint: Reprint) -> Any:
    """A shallow copy of a run object with its timestamps re-printed (a non-object as is)."""
    if not isinstance(obj, dict):
        return obj
    out = dict(obj)
    for name in RUN_TIMESTAMPS:
        value = out.get(name)
        if isinstance(value, str):
            out[name] = reprint(value)
    return out


def reprint_event(event: dict[str, Any], reprint: Reprint) -> dict[str, Any]:
    """A rendered (fresh) event with its timestamps re-printed in place, its ``data`` too."""
    event["created_at"] = reprint(event["created_at"])
    event["data"] = reprint_run(event["data"], reprint)
    return event
