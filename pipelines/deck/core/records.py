"""What one task-run record from Deck must look like before it may reach dlt, and what to do when
it does not. Pure functions: no I/O, no logging of record content beyond id and field names.

Deck answers a list page like::

    {"data": [
        {"id": "trun_9d1e...", "object": "task_run", "status": "completed", "result": "success",
         "task_id": "task_1f...", "agent_id": "agt_7c...", "source_id": "src_02...",
         "credential_id": null, "session_id": "sess_9a...", "workflow_id": null,
         "runtime_ms": "48211", "output": {"account_number": 12345678901234567890123},
         "errors": null, "interaction": null, "input": {"name": "caf\\ud83d"},
         "created_at": "2026-01-01T12:00:00.123Z", "updated_at": "2026-01-01T12:01:00.456Z"},
        {"object": "task_run", "status": {}, "created_at": "yesterday", ...}],
     "has_more": true, "next_cursor": "eyJrIjpb...", "request_id": "req_5a7c..."}

Every value there is valid JSON, yet three kinds used to stop every later sync: wide integers and
lone surrogates, which no writer of dlt's accepts (made safe by `record_values`, every digit and
character kept), and

- **Wrong-typed known fields**: text fields (`status`, `result`, ids...) that are not strings
  become the JSON text of the value (`{}` -> `"{}"`); a `runtime_ms` that is not a number becomes
  NULL; timestamps in an odd but parseable ISO 8601 form are rewritten as
  `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC); an unparseable `updated_at`/`canceled_at` becomes NULL.

Only a record that cannot be placed at all -- not an object, no usable `id`, or no parseable
`created_at` -- is rejected; the caller quarantines it (`Rejection`) and goes on with the rest.
"""
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deck.core.record_values import (
    TEXT_FIELDS,
    WIDE_SUFFIX,
    coerce_runtime_ms,
    drop_nulls,
    fix_string,
    format_api_timestamp,
    is_clean,
    is_deck_form,
    json_text,
    parse_api_timestamp,
    raw_json,
    sanitize_run,
    short_text,
)

# Timestamps besides created_at: unparseable -> NULL (the run still loads).
OPTIONAL_TIMESTAMPS = ("updated_at", "canceled_at")
# Arbitrary-JSON fields that are null on most runs: a null says nothing dlt could type a column
# from, so it is left out instead of producing an "untyped column" warning on every load.
NULLABLE_JSON_FIELDS = ("output", "interaction", "errors", "input", "storage")



@dataclass
class Rejection:
    """A record that cannot be placed: kept whole for the quarantine table, never dropped."""

    raw: str  # the record as received, re-serialized as compact JSON (lone surrogates escaped)
    reason: str  # one sentence for the quarantine table and the log
    key: str  # sha256 of `raw`: the same record seen again is the same quarantine row
    run_id: str | None = None  # the record's id when it has a usable one
    request_id: str | None = None  # of the page it came in
    # The created_at range [after, before] that must hold it (None: unbounded), and the ids of
    # the loadable runs listed in that range: a run found there later that is not one of them is
    # the record, fixed.
    after: datetime | None = None
    before: datetime | None = None
    known: list[str] = field(default_factory=list)


@dataclass
class Checked:
    """A page's records after checking: the runs to load (in page order) and the rejected ones.

    `created` holds, for every record of the page in order, its `created_at` or None when it
    was rejected: the neighbours of a rejected record bound where it sits in time.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    created: list[datetime | None] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ---- records ---------------------------------------------------------------------------------


def run_id_of(record: Any) -> str | None:
    """The record's usable id: a non-empty string, or an integer as its decimal text."""
    if not isinstance(record, dict):
        return None
    value = record.get("id")
    if type(value) is str and value.strip():
        return fix_string(value)
    if type(value) is int:
        return str(value)
    return None


def reject(record: Any, reason: str) -> Rejection:
    raw = raw_json(record)
    return Rejection(
        raw=raw,
        reason=reason,
        key=hashlib.sha256(raw.encode()).hexdigest(),
        run_id=run_id_of(record),
    )


def check_record(
    record: Any, warnings: list[str], clean: bool | None = None
) -> tuple[dict[str, Any], datetime] | Rejection:
    """One record -> (the run to load, its created_at) or the reason it cannot be placed.

    The run is fixed in place (wide ints, surrogates, known fields' types, odd timestamps) when
    it is already clean JSON (`clean`: known for the whole page, None to ask), else replaced by
    a sanitized copy. One line per field set to NULL is appended to `warnings`. The common case
    (Deck's own forms, clean JSON) is kept to a few dict lookups: it runs for every run synced.
    """
    if type(record) is not dict:
        return reject(record, f"The record is a JSON {type(record).__name__}, not an object.")
    get = record.get
    run_id = get("id")
    if type(run_id) is not str or not run_id or run_id.isspace():
        run_id = run_id_of(record)
        if run_id is None:
            if get("id") is None:
                return reject(record, "The record has no id, so it cannot be merged.")
            return reject(
                record,
                f"The record's id {short_text(record['id'])} is not a non-empty string, so it"
                " cannot be merged.",
            )
    created = get("created_at")
    created_at = parse_api_timestamp(created)
    if created_at is None:
        return reject(
            record,
            f"Run {run_id} has created_at={short_text(created)}, which is not an ISO 8601"
            " timestamp, so it cannot be placed in time.",
        )
    if clean is None:
        clean = is_clean(record)
    if clean:
        run = record
    else:
        run = sanitize_run(record)
        run_id = fix_string(run_id)
    run["id"] = run_id
    get = run.get
    if not is_deck_form(created):
        run["created_at"] = format_api_timestamp(created_at)
    for name in OPTIONAL_TIMESTAMPS:
        value = get(name)
        if value is None or type(value) is str and is_deck_form(value):
            continue  # dlt parses these itself; one that does not lands in <name>__v_text
        parsed = parse_api_timestamp(value)
        if parsed is None:
            warnings.append(
                f"Run {run_id}: {name}={short_text(value)} is not an ISO 8601 timestamp; stored as"
                " NULL."
            )
            run[name] = None
        else:
            run[name] = format_api_timestamp(parsed)
    for name in TEXT_FIELDS:
        value = get(name)
        if value is not None and type(value) is not str:
            run[name] = json_text(value)
    return run, created_at


def check_page(records: list[Any]) -> Checked:
    """Check every record of a page; a bad one never stops the ones after it."""
    out = Checked()
    clean = True if is_clean(records) else None  # one C call for a whole clean page
    for record in records:
        result = check_record(record, out.warnings, clean)
        if isinstance(result, Rejection):
            out.rejected.append(result)
            out.created.append(None)
        else:
            out.runs.append(result[0])
            out.created.append(result[1])
    return out


def prepare(run: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """Last touches before dlt: `runtime_ms` as a number, empty JSON fields left out."""
    if "runtime_ms" in run:
        value = run["runtime_ms"]
        coerced = coerce_runtime_ms(value)
        if coerced is None and value is not None:
            warnings.append(
                f"Run {run.get('id')}: runtime_ms={short_text(value)} is not a number; stored as"
                " NULL."
            )
        if type(coerced) is str:  # wide: its digits go to the text variant (see sanitize)
            run[f"runtime_ms{WIDE_SUFFIX}"] = coerced
            coerced = None
        run["runtime_ms"] = coerced
    for name in NULLABLE_JSON_FIELDS:
        if name not in run:
            continue
        if run[name] is None:
            del run[name]
        elif name != "errors":
            run[name] = drop_nulls(run[name])
    return run


def bounds(
    created: list[datetime | None], lo: datetime | None, hi: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """For each rejected position (None) of a listing, the created_at range that must hold it.

    A listing sorted by created_at (either way) puts a record between its neighbours, so the
    range is [older neighbour, newer neighbour] (the listing's own bounds `lo`/`hi` at its ends).
    When the listing is not sorted, only the listing's bounds are known.
    """
    known = [c for c in created if c is not None]
    ascending = all(a <= b for a, b in zip(known, known[1:], strict=False))
    descending = all(a >= b for a, b in zip(known, known[1:], strict=False))
    out: list[tuple[datetime | None, datetime | None]] = []
    for i, value in enumerate(created):
        if value is not None:
            continue
        if not (ascending or descending):
            out.append((lo, hi))
            continue
        before = next((c for c in reversed(created[:i]) if c is not None), None)
        after = next((c for c in created[i + 1:] if c is not None), None)
        if ascending:
            older, newer = before, after
        else:
            older, newer = after, before
        out.append((older if older is not None else lo, newer if newer is not None else hi))
    return out


def locate(
    checks: list[Checked], lo: datetime | None, hi: datetime | None, max_known: int = 1000
) -> list[Rejection]:
    """The rejections of one listing (its pages in order), each with its range and known ids.

    `lo`/`hi` are the listing's own inclusive bounds (None: unbounded).
    """
    created = [c for check in checks for c in check.created]
    runs = [run for check in checks for run in check.runs]
    stamps = [c for c in created if c is not None]
    rejections = [r for check in checks for r in check.rejected]
    for rejection, (after, before) in zip(rejections, bounds(created, lo, hi), strict=True):
        rejection.after, rejection.before = after, before
        rejection.known = [
            run["id"]
            for run, c in zip(runs, stamps, strict=True)
            if (after is None or c >= after) and (before is None or c <= before)
        ][:max_known]
    return rejections
