"""The task-run event tables, made by hand in a pipeline's dataset, and SQL reads of any dataset.

`create_event_tables` creates `task_run_events` and `task_run_event_gaps` with the columns and
types the connector's dlt resource loads them with (issue 11), so the event models can be tested
on DuckDB and PostgreSQL with hand-built histories before (and independently of) the connector.
Values are written as SQL literals through the pipeline's own SQL client: one code path for
every destination, whatever its driver's parameter style.
"""

from datetime import datetime
from typing import Any

import dlt

# (column, type, nullable) as dlt creates them; the same SQL types exist in DuckDB and PostgreSQL.
EVENT_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("id", "VARCHAR", False),
    ("type", "VARCHAR", True),
    ("created_at", "TIMESTAMP WITH TIME ZONE", True),
    ("task_run_id", "VARCHAR", True),
    ("status", "VARCHAR", True),
    ("run_created_at", "TIMESTAMP WITH TIME ZONE", True),
    ("run_updated_at", "TIMESTAMP WITH TIME ZONE", True),
    ("agent_id", "VARCHAR", True),
    ("source_id", "VARCHAR", True),
    ("task_id", "VARCHAR", True),
    ("credential_id", "VARCHAR", True),
    ("workflow_id", "VARCHAR", True),
    ("result", "VARCHAR", True),
    ("runtime_ms", "BIGINT", True),
    ("_dlt_load_id", "VARCHAR", False),
    ("_dlt_id", "VARCHAR", False),
)
GAP_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("gap_start", "TIMESTAMP WITH TIME ZONE", True),
    ("gap_end", "TIMESTAMP WITH TIME ZONE", True),
    ("detected_at", "TIMESTAMP WITH TIME ZONE", True),
)
EVENTS_TABLE = "task_run_events"
GAPS_TABLE = "task_run_event_gaps"


def sql_value(value: Any) -> str:
    """A Python value as a SQL literal that DuckDB and PostgreSQL read alike."""
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the columns are TIMESTAMPTZ")
        return f"CAST('{value.isoformat()}' AS TIMESTAMP WITH TIME ZONE)"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _create(pipeline: dlt.Pipeline, table: str, columns: tuple[tuple[str, str, bool], ...]):
    body = ", ".join(
        f"{name} {kind}{'' if nullable else ' NOT NULL'}" for name, kind, nullable in columns
    )
    with pipeline.sql_client() as client:
        client.execute_sql(f"CREATE TABLE {client.make_qualified_table_name(table)} ({body})")


def create_event_tables(pipeline: dlt.Pipeline) -> None:
    """Both event tables, empty, in the pipeline's dataset (which must exist: sync first)."""
    _create(pipeline, EVENTS_TABLE, EVENT_COLUMNS)
    _create(pipeline, GAPS_TABLE, GAP_COLUMNS)


def insert_rows(pipeline: dlt.Pipeline, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows (missing columns are NULL; dlt's own columns are filled in for the events)."""
    if not rows:
        return
    names = [c[0] for c in (EVENT_COLUMNS if table == EVENTS_TABLE else GAP_COLUMNS)]
    values = []
    for number, row in enumerate(rows):
        unknown = set(row) - set(names)
        assert not unknown, f"{table} has no columns {sorted(unknown)}"
        full = {"_dlt_load_id": "1700000000.0", "_dlt_id": f"dlt_{number}", **row}
        values.append("(" + ", ".join(sql_value(full.get(n)) for n in names) + ")")
    with pipeline.sql_client() as client:
        client.execute_sql(
            f"INSERT INTO {client.make_qualified_table_name(table)} ({', '.join(names)})"
            f" VALUES {', '.join(values)}"
        )


def query(pipeline: dlt.Pipeline, sql: str) -> list[dict[str, Any]]:
    """Rows of a query through the pipeline's SQL client, as dicts."""
    with pipeline.sql_client() as client:
        with client.execute_query(sql) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_view(pipeline: dlt.Pipeline, name: str) -> list[dict[str, Any]]:
    """Every row of a table or view of the pipeline's dataset."""
    with pipeline.sql_client() as client:
        relation = client.make_qualified_table_name(name)
    return query(pipeline, f"SELECT * FROM {relation}")
