"""Destination-agnostic warehouses for the tests: DuckDB, a real PostgreSQL, Delta tables.

`DestinationWarehouse` has the same reading interface as the DuckDB-only `support.Warehouse`
(`runs()`, `errors()`, `tables()`, `columns()`), so `support.assert_matches_ground_truth`
checks every destination with the very same assertions. SQL destinations are read through
`pipeline.sql_client()`; Delta tables through the `deltalake` reader (DuckDB's delta extension
would need a download), opened by dlt's own filesystem client so that remote buckets work too.

The PostgreSQL server itself is `support.postgres.PostgresServer`.
"""

import contextlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
from deck.runtime.runner import SyncResult
from deck_simulator import DeckSimulator

from support import make_pipeline, rows_by_id, sync_from
from support.postgres import PostgresServer

DATASET = "deck"
DESTINATIONS = ("duckdb", "postgres", "delta")

# Each destination's own name for the types the connector promises, and a common spelling.
NATIVE_TYPES = {
    "duckdb": {"bigint": "BIGINT", "timestamptz": "TIMESTAMP WITH TIME ZONE"},
    "postgres": {"bigint": "bigint", "timestamptz": "timestamp with time zone"},
    "delta": {"bigint": "long", "timestamptz": "timestamp"},  # Delta's `timestamp` is UTC-adjusted
}
_CANONICAL = {
    "bigint": "bigint",
    "long": "bigint",
    "int64": "bigint",
    "timestamp with time zone": "timestamptz",
    "timestamptz": "timestamptz",
    "timestamp": "timestamptz",  # Delta; its zone-less type is `timestamp_ntz`
    "timestamp_ntz": "timestamp",
    "timestamp without time zone": "timestamp",
    "varchar": "text",
    "character varying": "text",
    "text": "text",
    "string": "text",
    "double": "double",
    "double precision": "double",
    "boolean": "bool",
    "json": "json",
    "jsonb": "json",
}


def canonical_type(native: str) -> str:
    return _CANONICAL.get(native.lower(), native.lower())


# ------------------------------------------------------------------------------------------------
# warehouses
# ------------------------------------------------------------------------------------------------


@dataclass
class DestinationWarehouse:
    """A pipeline into one destination, plus destination-agnostic ways to read what landed."""

    kind: str
    destination: Any
    pipelines_dir: Path
    simulator: DeckSimulator
    pipeline_name: str = "deck_task_runs_test"

    def pipeline(self) -> dlt.Pipeline:
        return make_pipeline(self.pipeline_name, self.pipelines_dir, self.destination)

    def sync(self, **options: Any) -> SyncResult:
        return sync_from(self.simulator, self.pipeline(), **options)

    # ---- reading -------------------------------------------------------------------------------

    @property
    def is_delta(self) -> bool:
        return self.kind == "delta"

    def _sql(self, sql: str) -> list[dict[str, Any]]:
        with self.pipeline().sql_client() as client:
            with client.execute_query(sql) as cursor:
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    @contextlib.contextmanager
    def _delta_client(self) -> Iterator[Any]:
        pipeline = self.pipeline()
        if not pipeline.default_schema_name:
            yield None
            return
        with pipeline.destination_client() as client:
            yield client

    def _delta_table(self, client: Any, table: str) -> Any:
        from dlt.common.destination.exceptions import DestinationUndefinedEntity

        if client is None or table not in client.schema.tables:
            return None
        try:
            return client.load_open_table("delta", table)
        except DestinationUndefinedEntity:
            return None

    def tables(self) -> list[str]:
        if self.is_delta:
            with self._delta_client() as client:
                if client is None:
                    return []
                names = [t["name"] for t in client.schema.data_tables()]
                return sorted(n for n in names if self._delta_table(client, n) is not None)
        rows = self._sql(
            "SELECT table_name FROM information_schema.tables"
            f" WHERE table_schema = '{DATASET}' AND table_type = 'BASE TABLE'"
        )  # not the SQL models' views
        return sorted(r["table_name"] for r in rows if not r["table_name"].startswith("_dlt"))

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> the destination's own type name."""
        if self.is_delta:
            with self._delta_client() as client:
                delta = self._delta_table(client, table)
                assert delta is not None, f"no Delta table {table}"
                return {f.name: _delta_type_name(f.type) for f in delta.schema().fields}
        rows = self._sql(
            "SELECT column_name, data_type FROM information_schema.columns"
            f" WHERE table_schema = '{DATASET}' AND table_name = '{table}'"
        )
        return {r["column_name"]: r["data_type"] for r in rows}

    def rows(self, table: str) -> list[dict[str, Any]]:
        if self.is_delta:
            with self._delta_client() as client:
                delta = self._delta_table(client, table)
                return [] if delta is None else delta.to_pyarrow_table().to_pylist()
        if table not in self.tables():
            return []
        with self.pipeline().sql_client() as client:
            qualified = client.make_qualified_table_name(table)
        return self._sql(f"SELECT * FROM {qualified}")

    def view_rows(self, view: str) -> list[dict[str, Any]]:
        """Every row of a SQL model (a view: `rows` reads tables only)."""
        with self.pipeline().sql_client() as client:
            qualified = client.make_qualified_table_name(view)
        return self._sql(f"SELECT * FROM {qualified}")

    def runs(self) -> dict[str, dict[str, Any]]:
        return rows_by_id(self.rows("task_runs"))

    def events(self) -> dict[str, dict[str, Any]]:
        return rows_by_id(self.rows("task_run_events"))

    def child_rows(self, table: str) -> dict[str, list[dict[str, Any]]]:
        """Rows of a table nested directly in task_runs, by run id, in list order."""
        run_ids = {row["_dlt_id"]: run_id for run_id, row in self.runs().items()}
        out: dict[str, list[dict[str, Any]]] = defaultdict(list)
        orphans = []
        for row in sorted(self.rows(table), key=lambda r: r["_dlt_list_idx"]):
            parent = run_ids.get(row["_dlt_parent_id"])
            if parent is None:
                orphans.append(row)
                continue
            out[parent].append(row)
        assert not orphans, f"{len(orphans)} rows of {table} belong to no run, e.g. {orphans[:1]}"
        return dict(out)

    def errors(self) -> dict[str, list[tuple]]:
        return {
            run_id: [(r["type"], r["code"], r["message"], r.get("field")) for r in rows]
            for run_id, rows in self.child_rows("task_runs__errors").items()
        }

    def count(self) -> tuple[int, int]:
        """(rows, distinct ids) of task_runs."""
        ids = [row["id"] for row in self.rows("task_runs")]
        return len(ids), len(set(ids))


def _delta_type_name(delta_type: Any) -> str:
    name = getattr(delta_type, "type", None)
    return str(name if isinstance(name, str) else delta_type)


def make_warehouse(
    kind: str,
    tmp_path: Path,
    simulator: DeckSimulator,
    postgres: PostgresServer | None = None,
) -> DestinationWarehouse:
    if kind == "duckdb":
        destination: Any = dlt.destinations.duckdb(str(tmp_path / "warehouse.duckdb"))
    elif kind == "postgres":
        assert postgres is not None
        destination = dlt.destinations.postgres(
            postgres.database_url(postgres.create_database())
        )
    elif kind == "delta":
        destination = dlt.destinations.filesystem((tmp_path / "lake").as_uri())
    else:
        raise ValueError(kind)
    return DestinationWarehouse(kind, destination, tmp_path / "dlt", simulator)

