"""Time helpers: the simulator keeps every instant as integer milliseconds since the epoch.

Integers keep the keyset index exact and cheap to sort; these helpers convert at the edges
(what tests pass in, what the API renders).
"""

from __future__ import annotations

import time
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
