"""Column hints of every table the source writes (`deck.core.tables` names them).

dlt infers a column's type from the first values it sees; these hints fix the types that
inference would get wrong or leave open (a text field that arrives as a number, a timestamp
that arrives null, `runtime_ms` as text) and mark what merging needs (`nullable`, `dedup_sort`,
`hard_delete`).
"""

from dlt.common.schema.typing import TColumnSchema

from deck.core import record_values

TASK_RUN_COLUMNS: dict[str, TColumnSchema] = {
    "id": {"data_type": "text", "nullable": False},
    # the fields records.py coerces to text (one list for both)
    **{name: {"data_type": "text"} for name in record_values.TEXT_FIELDS},
    "runtime_ms": {"data_type": "bigint"},
    "created_at": {"data_type": "timestamp", "nullable": False},
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},
    "canceled_at": {"data_type": "timestamp"},
}

ERROR_COLUMNS: dict[str, TColumnSchema] = {
    name: {"name": name, "data_type": "text"} for name in ("type", "code", "message", "field")
}

# `task_runs_rejected`: records that could not be placed (`deck.listing.quarantine`).
REJECTED_COLUMNS: dict[str, TColumnSchema] = {
    "key": {"data_type": "text", "nullable": False},
    "run_id": {"data_type": "text"},
    "reason": {"data_type": "text"},
    "raw_json": {"data_type": "text"},
    "request_id": {"data_type": "text"},
    "first_seen_at": {"data_type": "timestamp"},
    "last_seen_at": {"data_type": "timestamp"},
    # Never set on a stored row: a row with resolved=true deletes the quarantined one.
    "resolved": {"data_type": "bool", "hard_delete": True},
}

# `task_run_events`: the event's own fields, then its run summary's (`deck.listing.events`).
EVENT_COLUMNS: dict[str, TColumnSchema] = {
    "id": {"data_type": "text", "nullable": False},
    "type": {"data_type": "text"},
    "created_at": {"data_type": "timestamp", "nullable": False},
    "task_run_id": {"data_type": "text"},
    **{name: {"data_type": "text"} for name in record_values.TEXT_FIELDS if name != "object"},
    "run_created_at": {"data_type": "timestamp"},
    "run_updated_at": {"data_type": "timestamp"},
    "runtime_ms": {"data_type": "bigint"},
}
GAP_COLUMNS: dict[str, TColumnSchema] = {
    "gap_start": {"data_type": "timestamp", "nullable": False},
    "gap_end": {"data_type": "timestamp"},
    "detected_at": {"data_type": "timestamp"},
}
EVENTS_REJECTED_COLUMNS: dict[str, TColumnSchema] = {
    ("event_id" if name == "run_id" else name): hint
    for name, hint in REJECTED_COLUMNS.items()
    if name != "resolved"
}
