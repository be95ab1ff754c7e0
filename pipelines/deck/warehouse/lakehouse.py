"""Keeping one row per run on destinations without `delete-insert`: Delta tables on `filesystem`.

The source merges with the `delete-insert` strategy: the SQL destinations (DuckDB, Postgres,
BigQuery, Snowflake, Databricks, MotherDuck...) delete a run's root and nested rows and insert
its latest version. dlt's `filesystem` destination merges only Delta (or Iceberg) tables and only
with `upsert`, which

- matches root rows on the primary key (`id`) and nested rows on their `_dlt_id` (a hash of the
  parent row and the list position), so a run's row is replaced in place, but
- never deletes a nested row the new version no longer has: a run that had two `errors` and now
  has one keeps the second, stale one (dlt's SQL `upsert` deletes such orphans; its Delta merge
  does not, as of dlt 1.31).

So on `filesystem` the runner, before each load, switches `task_runs` to Delta + `upsert` and makes
dlt copy the run row's `_dlt_load_id` into every nested row (`prepare_for_destination`), and after
each load deletes the nested rows whose `_dlt_load_id` is not their run's current one
(`prune_orphaned_nested_rows`): those belong to an older version of the run. The check compares
whole tables, so it also heals what an interrupted sync left behind.
"""

import logging
from typing import Any

import dlt
from dlt.common.normalizers.json.relational import DataItemNormalizer
from dlt.common.schema.utils import get_root_table, is_nested_table
from dlt.extract import DltSource

from deck.core.tables import RUNS_TABLE, SIDE_TABLES
from deck.warehouse.destination import DestinationTraits

logger = logging.getLogger("deck")

LOAD_ID = "_dlt_load_id"
ROW_ID = "_dlt_id"
ROOT_ID = "_dlt_root_id"
DELETE_CHUNK = 500


def prepare_for_destination(source: DltSource, traits: DestinationTraits) -> DltSource:
    """Adapt the `deck` source to the destination; a no-op on SQL destinations.

    Idempotent, so calling it on every `pipeline.run` of a sync is fine.
    """
    table_format, strategy = traits.table_format, traits.merge_strategy
    for name, resource in source.resources.items():
        if table_format:
            resource.apply_hints(table_format=table_format)
        if strategy:
            resource.apply_hints(write_disposition={"disposition": "merge", "strategy": strategy})
        if not (table_format or strategy):
            continue
        # Side tables (hints variants of the resource, see source.add_table_variant) need the
        # same table format and merge strategy.
        for table in SIDE_TABLES.get(name, ()):
            resource.apply_hints(
                table_name=table,
                table_format=table_format or None,
                write_disposition=(
                    {"disposition": "merge", "strategy": strategy} if strategy else None
                ),
                create_table_variant=True,
            )
    if table_format == "delta":
        # Nested rows get the load id of their run's row, so stale ones can be told apart.
        DataItemNormalizer.update_normalizer_config(
            source.schema, {"propagation": {"tables": {RUNS_TABLE: {LOAD_ID: LOAD_ID}}}}
        )
    return source


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def prune_orphaned_nested_rows(pipeline: dlt.Pipeline, traits: DestinationTraits) -> int:
    """Delete nested Delta rows left from older versions of their runs; returns how many.

    A nested row is current when its `_dlt_load_id` equals that of its run's row (dlt writes a
    run and all its nested rows in one load, and `prepare_for_destination` copies the id). Rows
    without a `_dlt_load_id` (written before it was copied) are kept.
    """
    if traits.table_format != "delta" or not pipeline.default_schema_name:
        return 0
    import pyarrow.compute as pc
    from dlt.common.destination.exceptions import DestinationUndefinedEntity

    schema = pipeline.default_schema
    nested = [
        name
        for name, table in schema.tables.items()
        if is_nested_table(table) and get_root_table(schema.tables, name)["name"] == RUNS_TABLE
    ]
    if not nested:
        return 0
    deleted = 0
    with pipeline.destination_client() as client:

        def open_table(name: str) -> Any:
            try:
                return client.load_open_table("delta", name)  # type: ignore[attr-defined]
            except DestinationUndefinedEntity:
                return None

        root = open_table(RUNS_TABLE)
        if root is None:
            return 0
        runs = root.to_pyarrow_table(columns=[ROW_ID, LOAD_ID]).rename_columns(
            [ROOT_ID, "_run_load_id"]
        )
        for name in nested:
            table = open_table(name)
            if table is None:
                continue
            if LOAD_ID not in {field.name for field in table.schema().fields}:
                continue
            rows = table.to_pyarrow_table(columns=[ROW_ID, ROOT_ID, LOAD_ID])
            rows = rows.filter(pc.is_valid(rows[LOAD_ID]))
            if rows.num_rows == 0:
                continue
            joined = rows.join(runs, ROOT_ID, join_type="left outer")
            stale_mask = pc.or_kleene(
                pc.is_null(joined["_run_load_id"]),
                pc.not_equal(joined[LOAD_ID], joined["_run_load_id"]),
            )
            stale: list[str] = sorted(
                set(joined.filter(pc.fill_null(stale_mask, True))[ROW_ID].to_pylist())
            )
            for start in range(0, len(stale), DELETE_CHUNK):
                chunk = stale[start : start + DELETE_CHUNK]
                table.delete(f"{ROW_ID} IN ({', '.join(_sql_literal(v) for v in chunk)})")
            if stale:
                logger.info("Deleted %d stale rows of %s (older run versions)", len(stale), name)
            deleted += len(stale)
            del rows, joined
        del runs
    return deleted
