"""What a sync needs to know about its destination, found out once per sync.

Several parts adapt to the destination: the file format (parquet only into DuckDB/MotherDuck),
Delta tables and `upsert` on `filesystem`, SQL repairs and counts only where there is SQL. Each
used to probe the pipeline on its own under a broad `except`; `DestinationTraits.of` asks once,
and the rest reads the answers.

dlt resolves the destination's configuration (every config provider, for every field) each time
it is asked for a client or for capabilities: `pipeline.sql_client()`, `destination_client()`
and `destination.capabilities()` each cost as much as the query they were made for. So a sync
makes one job client (`SyncDestination`) and every step of its own (traits, the DuckDB path,
the bookkeeping before and after the loads) uses that one; dlt's `pipeline.run` makes its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.destination.client import JobClientBase
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import WithSqlClient

from deck.core.shown import shown_path
from deck.core.tables import RUNS_TABLE

logger = logging.getLogger("deck")

# Parquet is several times faster than inserts into DuckDB. Elsewhere the destination's own
# preferred format is the safe choice: BigQuery refuses JSON columns from parquet, Postgres reads
# parquet only through an ADBC driver, and Delta tables are written as parquet anyway.
PARQUET_DESTINATIONS = ("dlt.destinations.duckdb", "dlt.destinations.motherduck")
FILESYSTEM_TYPE = "dlt.destinations.filesystem"


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
        return SyncDestination.of(pipeline).traits

    @classmethod
    def _of(cls, pipeline: dlt.Pipeline, job_client: JobClientBase | None) -> DestinationTraits:
        """From the sync's job client (None: dlt could not make one; its load will say why)."""
        destination = pipeline.destination
        if destination is None:  # dlt reports a missing destination itself when it loads
            return cls(name="(none)")
        caps = job_client.capabilities if job_client else destination.capabilities()
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
            has_sql=dtype != FILESYSTEM_TYPE and _has_sql(pipeline, job_client),
            location=_location(pipeline, job_client),
        )


@dataclass(frozen=True)
class SyncDestination:
    """The destination of one sync, its configuration resolved once (see the module's docstring).

    `job_client` is None without a destination or when dlt cannot make a client (unresolved
    credentials, say): `pipeline.run` then fails with dlt's own message. The client is bound to
    the pipeline's default schema at the start (an empty one on a first sync); the steps that use
    it name their tables themselves, so a schema that grows during the sync changes nothing.
    """

    traits: DestinationTraits
    job_client: JobClientBase | None = None

    @classmethod
    def of(cls, pipeline: dlt.Pipeline) -> SyncDestination:
        job_client = None
        if pipeline.destination is not None:
            try:
                job_client = pipeline.destination_client()
            except Exception as exc:  # dlt raises many types; its load reports the cause
                logger.debug("No client for %s: %s", pipeline.destination.destination_name, exc)
        return cls(DestinationTraits._of(pipeline, job_client), job_client)

    @property
    def sql_job_client(self) -> SqlJobClientBase | None:
        """The job client where the sync's SQL steps can run (None: no SQL, see `has_sql`)."""
        client = self.job_client
        if self.traits.has_sql and isinstance(client, SqlJobClientBase):
            return client
        return None


@contextmanager
def capabilities_resolved_once(pipeline: dlt.Pipeline) -> Iterator[None]:
    """While the sync runs, the configuration behind the destination's capabilities is resolved
    once.

    dlt's `Destination.capabilities()` resolves the destination's whole configuration (partially:
    providers, sections, secrets; ~15-30 ms here) on every call, and dlt asks ~8 times per load
    (each pipeline step, the loader's storage): a fifth of the CPU of a small load, paid again by
    every load of the sync. The destination does not change while the sync runs, so that partial
    resolution (the only one dlt makes with `accept_partial`, which dlt only reads) is kept; the
    capabilities are still worked out by dlt from it, with each caller's naming.
    Resolutions of a whole configuration (a client's) go to dlt. No dlt option does this.
    """
    destination = pipeline.destination
    if destination is None or "configuration" in vars(destination):
        yield
        return
    resolve = destination.configuration
    partial: list[Any] = []

    def configuration(initial_config: Any, accept_partial: bool = False) -> Any:
        if not accept_partial:
            return resolve(initial_config)
        if not partial:
            partial.append(resolve(initial_config, accept_partial=True))
        return partial[0]

    destination.configuration = configuration  # type: ignore[method-assign]
    try:
        yield
    finally:
        del destination.configuration


def _merge_strategy(caps: Any, table_format: str | None) -> str | None:
    strategies = list(caps.supported_merge_strategies or [])
    if caps.merge_strategies_selector:
        table: dict[str, Any] = {"name": RUNS_TABLE, "write_disposition": "merge"}
        if table_format:
            table["table_format"] = table_format
        strategies = list(caps.merge_strategies_selector(strategies, table_schema=table))
    if not strategies or "delete-insert" in strategies:
        return None
    return "upsert" if "upsert" in strategies else None


def _has_sql(pipeline: dlt.Pipeline, job_client: JobClientBase | None) -> bool:
    """Whether dlt has a SQL client for the destination (creating one opens no connection):
    what `pipeline.sql_client()` answers, without resolving the configuration again."""
    if job_client is None:
        return False
    if not isinstance(job_client, WithSqlClient):
        logger.debug("No SQL client for %s", pipeline.destination.destination_name)
        return False
    try:
        job_client.sql_client  # noqa: B018 (a property that makes the client)
    except Exception as exc:  # dlt raises several types for "no SQL here"
        logger.debug("No SQL client for %s: %s", pipeline.destination.destination_name, exc)
        return False
    return True


def _location(pipeline: dlt.Pipeline, job_client: JobClientBase | None) -> str:
    """Where the data lands, for the summary: the DuckDB file, the database or the bucket."""
    name = pipeline.destination.destination_name
    if job_client is None:  # unresolved credentials are reported by the sync itself
        return name
    credentials = getattr(job_client.config, "credentials", None)
    database = getattr(credentials, "database", None) or getattr(credentials, "bucket_url", None)
    if not database:
        return name
    return shown_path(str(database)) if name == "duckdb" else str(database)
