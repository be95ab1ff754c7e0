"""Repairs and counts on the loaded tables, each on the sync's own job client where it has one.

- `missing_tables`: a table an analyst dropped (dlt never creates it again by itself);
- `remove_copied_run_rows`: root rows a resumed load package inserted twice;
- `count_rows_of_loads`, `count_runs`: the rows the summary reports;
- `refresh_models_and_count_runs`: the SQL models and the count on one connection.

Only SQL destinations have any of these; elsewhere (`filesystem`) each is a no-op.
"""

import itertools
import json
import logging
from typing import Any

import dlt
from dlt.common.destination.client import JobClientBase
from dlt.common.schema import Schema
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import SqlClientBase

from deck.core.tables import RESOURCES, RUNS_TABLE, belongs
from deck.warehouse.destination import DestinationTraits, SyncDestination
from deck.warehouse.models import create_models, refresh_models, table_exists

logger = logging.getLogger("deck")


def _sql_client(pipeline: dlt.Pipeline, job_client: JobClientBase | None) -> SqlClientBase[Any]:
    """The SQL client of the sync's job client (`destination.SyncDestination`), else a new one
    from `pipeline` (which resolves the destination's configuration again)."""
    if isinstance(job_client, SqlJobClientBase):
        return job_client.sql_client
    return pipeline.sql_client()


def remove_copied_run_rows(
    pipeline: dlt.Pipeline,
    traits: DestinationTraits,
    load_ids: list[str],
    *,
    job_client: JobClientBase | None = None,
) -> int:
    """Delete exact copies of root rows that a resumed load package inserted twice.

    dlt 1.31 retries a staging copy job that a kill interrupted after it had written; in a merge
    with nested tables it deduplicates the nested rows but inserts every copy of the root row
    (same `_dlt_id`). The copies are identical, so one of each is kept. Only packages resumed
    after an interruption can have them, so only their rows are checked. `job_client`: the
    sync's own; None: one is made here.
    """
    removed = 0
    if not traits.has_sql:  # filesystem: nothing to repair this way
        return 0
    with _sql_client(pipeline, job_client) as client:
        for name, load_id in itertools.product(RESOURCES, load_ids):
            if not table_exists(client, name):
                continue
            table = client.make_qualified_table_name(name)
            temp = client.escape_column_name("deck_copied_rows")
            rows = client.execute_sql(
                f"SELECT count(*) - count(DISTINCT _dlt_id) FROM {table} WHERE _dlt_load_id = %s",
                load_id,
            )
            copies = int(rows[0][0]) if rows else 0
            if not copies:
                continue
            with client.begin_transaction():
                client.execute_sql(
                    f"CREATE TEMPORARY TABLE {temp} AS SELECT DISTINCT * FROM {table}"
                    f" WHERE _dlt_load_id = %s AND _dlt_id IN (SELECT _dlt_id FROM {table}"
                    " WHERE _dlt_load_id = %s GROUP BY _dlt_id HAVING count(*) > 1)",
                    load_id,
                    load_id,
                )
                client.execute_sql(
                    f"DELETE FROM {table} WHERE _dlt_load_id = %s"
                    f" AND _dlt_id IN (SELECT _dlt_id FROM {temp})",
                    load_id,
                )
                client.execute_sql(f"INSERT INTO {table} SELECT * FROM {temp}")
                client.execute_sql(f"DROP TABLE {temp}")
            logger.warning(
                "Removed %d copies of %s rows left by a load interrupted earlier (%s)",
                copies,
                name,
                load_id,
            )
            removed += copies
    return removed


def count_rows_of_loads(
    pipeline: dlt.Pipeline,
    traits: DestinationTraits,
    load_ids: list[str],
    *,
    job_client: JobClientBase | None = None,
) -> int:
    """How many `task_runs` rows the given load packages wrote (0 without a SQL client).

    Counted right after those packages loaded, so no later load has replaced their rows yet.
    """
    if not load_ids or not traits.has_sql:  # filesystem/Delta: the summary leaves these out
        return 0
    try:
        with _sql_client(pipeline, job_client) as client:
            table = client.make_qualified_table_name("task_runs")
            marks = ", ".join(["%s"] * len(load_ids))
            rows = client.execute_sql(
                f"SELECT count(*) FROM {table} WHERE _dlt_load_id IN ({marks})", *load_ids
            )
            return int(rows[0][0]) if rows else 0
    except Exception as exc:  # a count must never fail a sync that loaded fine
        logger.debug("Could not count the rows of loads %s: %s", load_ids, exc)
        return 0


def missing_tables(
    pipeline: dlt.Pipeline, traits: DestinationTraits, *, job_client: JobClientBase | None = None
) -> list[str]:
    """Tables of the source that dlt created in the warehouse but that are gone from it.

    An analyst's `DROP TABLE deck.task_runs` is invisible to dlt: the schema it stored in the
    warehouse still lists the table, so it never creates it again and every later merge fails.
    The tables are taken from that stored schema (not the local one, which may already know
    tables of a package not loaded yet). Only SQL destinations whose dataset exists are checked
    (a deleted dataset dlt handles itself). `job_client`: the sync's own; None: one is made here.
    """
    if not pipeline.default_schema_name or not traits.has_sql:
        return []
    job_client = pipeline.destination_client() if job_client is None else job_client
    if not isinstance(job_client, SqlJobClientBase):
        return []
    with job_client:
        if not job_client.sql_client.has_dataset():
            return []
        stored = job_client.get_stored_schema(pipeline.default_schema_name)
        if stored is None:
            return []
        schema = Schema.from_stored_schema(json.loads(stored.schema))
        expected = [
            name
            for name in schema.data_table_names(seen_data_only=True)
            if any(belongs(name, root) for root in RESOURCES)
        ]
        if not expected:
            return []
        present = {name for name, columns in job_client.get_storage_tables(expected) if columns}
    return [name for name in expected if name not in present]


def count_runs(
    pipeline: dlt.Pipeline, traits: DestinationTraits, *, job_client: JobClientBase | None = None
) -> int | None:
    """Rows in `task_runs` after the sync, for the summary. `job_client` as in `missing_tables`."""
    if not traits.has_sql:
        return None
    try:
        with _sql_client(pipeline, job_client) as client:
            return _count_runs(client)
    except DatabaseUndefinedRelation:  # nothing loaded yet (an empty range)
        return 0


def _count_runs(client: SqlClientBase[Any]) -> int:
    """`count_runs` on an open connection."""
    try:
        table = client.make_qualified_table_name(RUNS_TABLE)
        return int(client.execute_sql(f"SELECT count(*) FROM {table}")[0][0])
    except DatabaseUndefinedRelation:  # nothing loaded yet (an empty range)
        return 0


def refresh_models_and_count_runs(
    pipeline: dlt.Pipeline, destination: SyncDestination
) -> tuple[list[str], int | None]:
    """`refresh_models`, then `count_runs`, on one connection: one open of the warehouse (and one
    probe of its lock) after the loads instead of two."""
    job_client = destination.sql_job_client
    if job_client is None:  # no SQL there: refresh_models says it skips, and nothing is counted
        models = refresh_models(pipeline, job_client=destination.job_client)
        return models, count_runs(pipeline, destination.traits, job_client=destination.job_client)
    with job_client.sql_client as client:
        return create_models(client, pipeline.dataset_name), _count_runs(client)
