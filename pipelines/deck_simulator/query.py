"""The list endpoint's query: validation, filters and cursors (pure functions, no I/O).

A cursor is base64url JSON, e.g. ``{"v":1,"k":[1767225600000,"trun_..."],"o":"desc",
"f":"3f2a..."}``: the keyset position, the order it was issued in, and a hash of the filters it
is bound to (not of ``limit``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .contract import too_fine
from .data import DOCUMENTED_STATUSES, LEGACY_STATUS_ALIASES, OUTCOMES
from .events import FILTER_TYPES, id_number
from .times import dt_to_us, parse_iso

_INT_PATTERN_CHARS = frozenset("0123456789")

Matcher = Callable[[dict[str, Any]], bool]


class ValidationError(Exception):
    """Invalid query parameters, as ``{field: [messages]}`` (Deck's 400 body)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class ListQuery:
    limit: int
    order: str
    """'asc' or 'desc'."""
    after_key: tuple[int, str] | None
    filters: dict[str, Any]
    fhash: str
    match: Matcher | None
    """A predicate for the non-date filters, or None when every run in the date range matches."""


def encode_cursor(key: tuple[int, str], order: str, fhash: str) -> str:
    raw = json.dumps(
        {"v": 1, "k": [key[0], key[1]], "o": order, "f": fhash}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[tuple[int, str], str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        key = data["k"]
        order = data["o"]
        fhash = data["f"]
        if (
            data.get("v") != 1
            or not isinstance(key, list)
            or len(key) != 2
            or type(key[0]) is not int
            or not isinstance(key[1], str)
            or order not in ("asc", "desc")
            or not isinstance(fhash, str)
        ):
            return None
        return (key[0], key[1]), order, fhash
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        return None


def _values(params: dict[str, list[str]], name: str) -> list[str]:
    """Non-blank values of a (possibly repeated) query parameter; blank values count as absent."""
    return [v for v in params.get(name, []) if v != ""]


def parse_list_query(
    params: dict[str, list[str]],
    default_order: str,
    task_names: dict[str, str],
    bound_precision: str = "us",
) -> ListQuery:
    """Validate the list query (``parse_qs`` output); raises ValidationError.

    ``bound_precision`` is the contract's reading of the bounds (see ``parse_bounds``)."""
    errors: dict[str, list[str]] = {}
    fail = _failer(errors)
    limit = parse_limit(params, fail)
    statuses = _values(params, "status")
    for s in statuses:
        if s not in DOCUMENTED_STATUSES:
            fail("status", f"The value '{s}' is not valid for status.")
    outcomes = _values(params, "outcome")
    for o in outcomes:
        if o not in OUTCOMES:
            fail("outcome", f"The value '{o}' is not valid for outcome.")
    bounds = parse_bounds(params, fail, bound_precision)

    def single(name: str) -> str | None:
        vals = _values(params, name)
        return vals[0] if vals else None

    search = single("search")
    filters: dict[str, Any] = {
        "status": sorted(set(statuses)),
        "source_id": sorted(set(_values(params, "source_id"))),
        "outcome": sorted(set(outcomes)),
        "agent_id": single("agent_id"),
        "credential_id": single("credential_id"),
        "task_id": single("task_id"),
        "workflow_id": single("workflow_id"),
        "created_after": bounds["created_after"],
        "created_before": bounds["created_before"],
        "search": search.lower() if search is not None else None,
    }
    fhash = filters_hash(filters)
    order, after_key = parse_cursor(params, default_order, fhash, fail)
    if errors:
        raise ValidationError(errors)
    return ListQuery(limit, order, after_key, filters, fhash, matcher(filters, task_names))


Fail = Callable[[str, str], None]


def _failer(errors: dict[str, list[str]]) -> Fail:
    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    return fail


def parse_limit(params: dict[str, list[str]], fail: Fail) -> int:
    """``limit``: an integer 1..100, default 20 (shared by every list endpoint)."""
    limit = 20
    if "limit" in params:
        raw = params["limit"][0]
        body = raw.removeprefix("-")
        if not body or not set(body) <= _INT_PATTERN_CHARS or (len(body) > 1 and body[0] == "0"):
            fail("limit", f"The value '{raw}' is not valid for limit.")
        else:
            limit = int(raw)
            if not 1 <= limit <= 100:
                fail("limit", "The field limit must be between 1 and 100.")
    return limit


def parse_bounds(
    params: dict[str, list[str]], fail: Fail, precision: str = "us"
) -> dict[str, int | None]:
    """``created_after``/``created_before`` as epoch microseconds (None when absent).

    ``precision`` (``Contract.bound_precision``): "us" reads them exactly, "ms" truncates them
    to the millisecond (a JavaScript ``Date``), "reject" fails more than three fractional
    digits."""
    bounds: dict[str, int | None] = {}
    for name in ("created_after", "created_before"):
        vals = _values(params, name)
        bounds[name] = None
        if vals:
            parsed = parse_iso(vals[0])
            if parsed is None:
                fail(name, f"The value '{vals[0]}' is not valid for {name}.")
            elif precision == "reject" and too_fine(vals[0]):
                fail(name, f"{name}: invalid date-time (at most 3 fractional digits)")
            else:
                us = dt_to_us(parsed)
                bounds[name] = us - us % 1000 if precision == "ms" else us
    return bounds


def filters_hash(filters: dict[str, Any]) -> str:
    """What a cursor is bound to: a walk cannot switch filters (or endpoints) midway."""
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def parse_cursor(
    params: dict[str, list[str]], default_order: str, fhash: str, fail: Fail
) -> tuple[str, tuple[int, str] | None]:
    """(order, keyset position after which the page starts); a cursor keeps its own order."""
    order = "desc" if default_order == "newest_first" else "asc"
    cursors = _values(params, "cursor")
    if cursors:
        decoded = decode_cursor(cursors[0])
        if decoded is None:
            fail("cursor", "The cursor is invalid.")
        elif decoded[2] != fhash:
            fail("cursor", "The cursor does not match the filters of this request.")
        else:
            return decoded[1], decoded[0]
    return order, None


@dataclass(frozen=True)
class EventQuery:
    """A validated ``GET /events`` query (same limit, bounds and cursors as the runs' list)."""

    limit: int
    order: str
    after_key: tuple[int, int] | None
    """(created ms, id number) of the cursor's position."""
    created_after_us: int | None
    created_before_us: int | None
    types: frozenset[str]
    """The ``type[]`` filter (empty: every type)."""
    fhash: str


def parse_event_query(
    params: dict[str, list[str]], default_order: str, bound_precision: str = "us"
) -> EventQuery:
    """Validate the events query (``parse_qs`` output); raises ValidationError.

    ``type[]`` may repeat and is also accepted as ``type``; values outside the documented
    types (plus the older spelling ``task_run.cancelling``) are a validation error."""
    errors: dict[str, list[str]] = {}
    fail = _failer(errors)
    limit = parse_limit(params, fail)
    types = _values(params, "type[]") + _values(params, "type")
    for t in types:
        if t not in FILTER_TYPES:
            fail("type", f"The value '{t}' is not valid for type.")
    bounds = parse_bounds(params, fail, bound_precision)
    filters = {
        "endpoint": "events",  # a runs cursor is not valid here, nor the reverse
        "type": sorted(set(types)),
        "created_after": bounds["created_after"],
        "created_before": bounds["created_before"],
    }
    fhash = filters_hash(filters)
    order, position = parse_cursor(params, default_order, fhash, fail)
    after_key = None
    if position is not None:
        number = id_number(position[1])
        if number is None:
            fail("cursor", "The cursor is invalid.")
        else:
            after_key = (position[0], number)
    if errors:
        raise ValidationError(errors)
    return EventQuery(
        limit,
        order,
        after_key,
        bounds["created_after"],
        bounds["created_before"],
        frozenset(types),
        fhash,
    )


def matcher(filters: dict[str, Any], task_names: dict[str, str]) -> Matcher | None:
    """A predicate for the non-date filters, or None when every run in the date range matches.

    ``task_names`` maps task_id -> lower-cased task name, for ``search``."""
    checks: list[Matcher] = []
    if filters["status"]:
        wanted = set(filters["status"])
        wanted |= {alias for alias, canon in LEGACY_STATUS_ALIASES.items() if canon in wanted}
        checks.append(lambda o: _text(o.get("status")) in wanted)
    if filters["source_id"]:
        sources = set(filters["source_id"])
        checks.append(lambda o: _text(o.get("source_id")) in sources)
    if filters["outcome"]:
        outcomes = set(filters["outcome"])
        checks.append(lambda o: _text(o.get("result")) in outcomes)
    for name in ("agent_id", "credential_id", "task_id", "workflow_id"):
        value = filters[name]
        if value is not None:
            checks.append(lambda o, name=name, value=value: o.get(name) == value)
    if filters["search"] is not None:
        needle = filters["search"]

        def searched(o: dict[str, Any]) -> bool:
            task_id = str(o.get("task_id") or "")
            return (
                needle in task_names.get(task_id, "")
                or needle in task_id.lower()
                or needle in str(o.get("id", "")).lower()
            )

        checks.append(searched)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda o: all(check(o) for check in checks)


def _text(value: Any) -> str | None:
    """A filter compares strings only: a hostile record's `status: {}` matches nothing."""
    return value if isinstance(value, str) else None
