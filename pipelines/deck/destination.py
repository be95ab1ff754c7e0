"""What a sync needs to know about its destination, found out once per sync.

Several parts adapt to the destination: the file format (parquet only into DuckDB/MotherDuck),
Delta tables and `upsert` on `filesystem`, SQL repairs and counts only where there is SQL. Each
used to probe the pipeline on its own under a broad `except`; `DestinationTraits.of` asks once,
and the rest reads the answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import dlt

from .local_files import shown_path

logger = logging.getLogger("deck")

# Parquet is several times faster than inserts into DuckDB. Elsewhere the destination's own
# preferred format is the safe choice: BigQuery refuses JSON columns from parquet, Postgres reads
# parquet only through an ADBC driver, and Delta tables are written as parquet anyway.
PARQUET_DESTINATIONS = ("dlt.destinations.duckdb", "dlt.destinations.motherduck")
FILESYSTEM_TYPE = "dlt.destinations.filesystem"
RESOURCE = "task_runs"


@dataclass(frozen=True)
class DestinationTraits:
    """`loader_file_format` None: the destination's preferred one. `table_format` "delta" on
    `filesystem` (plain files cannot merge). `merge_strategy` None keeps the source's
    `delete-insert`. `has_sql`: repairs and counts can run SQL there."""

    name: str
    loader_file_format: str | None = None
    table_format: str | None = None
    merge_strategy: str | None = None
    has_sql: bool = False
    location: str = ""

    @classmethod
    def of(cls, pipeline: dlt.Pipeline) -> DestinationTraits:
        destination = pipeline.destination
        if destination is None:  # dlt reports a missing destination itself when it loads
            return cls(name="(none)")
        caps = destination.capabilities()
        dtype = destination.destination_type
        table_format = "delta" if dtype == FILESYSTEM_TYPE else None
        file_format = None
        if dtype in PARQUET_DESTINATIONS and "parquet" in caps.supported_loader_file_formats:
            file_format = "parquet"
        return cls(
            name=destination.destination_name,
            loader_file_format=file_format,
            table_format=table_format,
            merge_strategy=_merge_strategy(caps, table_format),
            # dlt 1.31 offers SQL over `filesystem` too (through DuckDB and its delta extension,
            # which it would download): the repairs and counts are for warehouses only.
            has_sql=dtype != FILESYSTEM_TYPE and _has_sql(pipeline),
            location=_location(pipeline),
        )


def _merge_strategy(caps: Any, table_format: str | None) -> str | None:
    strategies = list(caps.supported_merge_strategies or [])
    if caps.merge_strategies_selector:
        table: dict[str, Any] = {"name": RESOURCE, "write_disposition": "merge"}
        if table_format:
            table["table_format"] = table_format
        strategies = list(caps.merge_strategies_selector(strategies, table_schema=table))
    if not strategies or "delete-insert" in strategies:
        return None
    return "upsert" if "upsert" in strategies else None


def _has_sql(pipeline: dlt.Pipeline) -> bool:
    """Whether dlt has a SQL client for the destination (creating one opens no connection)."""
    try:
        pipeline.sql_client()
    except Exception as exc:  # dlt raises several types for "no SQL here"
        logger.debug("No SQL client for %s: %s", pipeline.destination.destination_name, exc)
        return False
    return True


def _location(pipeline: dlt.Pipeline) -> str:
    """Where the data lands, for the summary: the DuckDB file, the database or the bucket."""
    name = pipeline.destination.destination_name
    try:
        credentials = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
    except Exception as exc:  # unresolved credentials are reported by the sync itself
        logger.debug("No location for %s: %s", name, exc)
        return name
    database = getattr(credentials, "database", None) or getattr(credentials, "bucket_url", None)
    if not database:
        return name
    return shown_path(str(database)) if name == "duckdb" else str(database)
