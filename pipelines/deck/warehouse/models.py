"""SQL models: views over the loaded tables that answer the analysts' usual questions.

Why views, refreshed after every load
-------------------------------------
Analysts kept re-deriving the same columns (the UTC day, whether a run is final, its first error,
percentiles of runtimes) from `task_runs` and `task_runs__errors`, each slightly differently.
The models in `models/` (one `.sql` file per model) define them once. They are views, so they are
always as current as the tables and cost nothing to refresh; `refresh_models` (re)creates them in
the pipeline's dataset through dlt's own SQL client after a successful load, so they live wherever
the data lives (DuckDB, PostgreSQL, ...) with no second connection to configure.

How a model file is picked and rendered
---------------------------------------
- `<model>.<dialect>.sql` when it exists, else `<model>.sql` (generic, ANSI SQL). `<dialect>` is
  the destination's sqlglot dialect (`duckdb` also for MotherDuck, `postgres`, `bigquery`,
  `snowflake`, `databricks`, ...), so adding a dialect is adding a file.
- A file holds one SELECT. `{{ task_runs }}`, `{{ task_runs__errors }}`, `{{ task_run_events }}`
  and `{{ task_run_event_gaps }}` become the tables' qualified, quoted names. `{{ final_statuses }}`
  becomes the SQL list of final statuses (`settings.FINAL_STATUSES`, the same set the connector
  uses), `{{ status_spellings }}` the `WHEN 'pending' THEN 'review_required' ...` arms of a
  `CASE status ... ELSE status END` that reads old spellings as today's
  (`settings.STATUS_SPELLINGS`), `{{ status_order }}` the `WHEN 'queued' THEN 0 ... ELSE 2` of a
  `CASE status ... END` that gives a (normalised) status its place in the lifecycle
  (`settings.STATUS_ORDER`, `settings.UNLISTED_STATUS_ORDER`) and `{{ stuck_after_s }}` the number
  `settings.STUCK_AFTER_S`.
- Every table but `task_runs` may be missing: `task_runs__errors` until a run fails, the event
  tables while events are off or before the first one is loaded. An empty relation of the same
  shape (`OPTIONAL_TABLES`) stands in for a missing one, so every model is created anyway and
  reads the real table after the next refresh.
- A file whose name starts with `_` is a fragment, not a model: `_<name>.sql` is a SELECT that
  models (and other fragments) use as the subquery `{{ <name> }}`. Fragments hold logic that
  several models share (the status intervals of the event models), so it is written once while
  each view still reads only the loaded tables.
- Models read only the loaded tables, never each other, so they can be replaced in any order.
"""

import logging
import math
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination.client import JobClientBase
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import SqlClientBase

from deck.core import settings
from deck.core.errors import DeckError
from deck.core.tables import ERRORS_TABLE, EVENT_GAPS_TABLE, EVENTS_TABLE, RUNS_TABLE

logger = logging.getLogger("deck")

MODELS_DIR = Path(__file__).with_name("models")
FRAGMENT_PREFIX = "_"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# Column types of the empty stand-ins for missing tables, per dialect ("" = any other dialect).
_COLUMN_TYPES: dict[str, dict[str, str]] = {
    "text": {"": "VARCHAR", "bigquery": "STRING", "databricks": "STRING"},
    "bigint": {"": "BIGINT", "bigquery": "INT64"},
    "timestamp": {
        "": "TIMESTAMP WITH TIME ZONE",
        "bigquery": "TIMESTAMP",
        "databricks": "TIMESTAMP",
        "snowflake": "TIMESTAMP_TZ",
    },
}
TableShape = tuple[tuple[str, str], ...]
ERROR_TABLE_SHAPE: TableShape = (
    ("_dlt_parent_id", "text"),
    ("_dlt_list_idx", "bigint"),
    ("type", "text"),
    ("code", "text"),
    ("message", "text"),
    ("field", "text"),
)
# One row per task-run event (GET /events); `status` is data.status as sent, the run_* and *_id
# columns are the run summary in `data`.
EVENT_TABLE_SHAPE: TableShape = (
    ("id", "text"),
    ("type", "text"),
    ("created_at", "timestamp"),
    ("task_run_id", "text"),
    ("status", "text"),
    ("run_created_at", "timestamp"),
    ("run_updated_at", "timestamp"),
    ("agent_id", "text"),
    ("source_id", "text"),
    ("task_id", "text"),
    ("credential_id", "text"),
    ("workflow_id", "text"),
    ("result", "text"),
    ("runtime_ms", "bigint"),
    ("_dlt_load_id", "text"),
    ("_dlt_id", "text"),
)
EVENT_GAPS_TABLE_SHAPE: TableShape = (
    ("gap_start", "timestamp"),
    ("gap_end", "timestamp"),
    ("detected_at", "timestamp"),
)
# Tables that may not exist yet, with the shape of their stand-in and why they may be missing.
OPTIONAL_TABLES: dict[str, tuple[TableShape, str]] = {
    ERRORS_TABLE: (ERROR_TABLE_SHAPE, "no run has failed yet: models see no errors"),
    EVENTS_TABLE: (
        EVENT_TABLE_SHAPE,
        "events are off or none loaded yet: the event models are empty",
    ),
    EVENT_GAPS_TABLE: (EVENT_GAPS_TABLE_SHAPE, "no events were lost to retention"),
}


class DeckModelError(DeckError):
    """A SQL model could not be created; the loaded data itself is fine."""


def model_names(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every model in `models_dir`: the file names up to their first dot, sorted (fragments,
    `_*.sql`, are not models)."""
    return sorted(
        {
            path.name.split(".", 1)[0]
            for path in models_dir.glob("*.sql")
            if not path.name.startswith(FRAGMENT_PREFIX)
        }
    )


def fragment_names(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every fragment in `models_dir` by its placeholder name (`_<name>.sql` -> `<name>`)."""
    return sorted(
        {
            path.name.split(".", 1)[0][len(FRAGMENT_PREFIX) :]
            for path in models_dir.glob(f"{FRAGMENT_PREFIX}*.sql")
        }
    )


def model_file(name: str, dialect: str | None, models_dir: Path = MODELS_DIR) -> Path:
    """`<name>.<dialect>.sql` when there is one, else the generic `<name>.sql`."""
    if dialect:
        specific = models_dir / f"{name}.{dialect}.sql"
        if specific.exists():
            return specific
    generic = models_dir / f"{name}.sql"
    if not generic.exists():
        raise DeckModelError(f"Model {name!r} has no generic file {generic}.")
    return generic


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def sql_literal_list(values: list[str]) -> str:
    return ", ".join(sql_literal(v) for v in sorted(values))


def sql_case_arms(mapping: Mapping[str, str]) -> str:
    """`WHEN 'old' THEN 'new' ...` for `CASE x {{ ... }} ELSE x END`; with no pairs, an arm that
    never matches, so the CASE stays valid SQL."""
    if not mapping:
        return "WHEN NULL THEN NULL"
    return " ".join(
        f"WHEN {sql_literal(old)} THEN {sql_literal(new)}" for old, new in sorted(mapping.items())
    )


def sql_rank_arms(ranks: Mapping[str, int], unlisted: int) -> str:
    """`WHEN 'status' THEN rank ... ELSE unlisted` for `CASE x {{ ... }} END`. Ranks must be
    integers (anything else is a configuration error); with none, an arm that never matches keeps
    the CASE valid SQL."""
    for rank in (*ranks.values(), unlisted):
        if isinstance(rank, bool) or not isinstance(rank, int):
            raise DeckModelError(f"Expected an integer status rank for a model, got {rank!r}")
    arms = " ".join(
        f"WHEN {sql_literal(status)} THEN {int(rank)}" for status, rank in sorted(ranks.items())
    )
    return f"{arms or 'WHEN NULL THEN NULL'} ELSE {int(unlisted)}"


def sql_number(value: float) -> str:
    """A finite number as a SQL literal; anything else is a configuration error."""
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise DeckModelError(f"Expected a finite, non-negative number for a model, got {value!r}")
    return str(int(number)) if number.is_integer() else repr(number)


def empty_relation(shape: TableShape, dialect: str | None) -> str:
    """A relation with these columns and no rows, standing in for a table not loaded yet."""
    columns = ", ".join(
        f"CAST(NULL AS {_COLUMN_TYPES[kind].get(dialect or '', _COLUMN_TYPES[kind][''])}) AS {name}"
        for name, kind in shape
    )
    return f"(SELECT {columns} WHERE 1 = 0)"


def render(sql: str, replacements: dict[str, str], source: str = "model") -> str:
    """Fill the `{{ name }}` placeholders of a model file; unknown names are an error."""

    def fill(match: "re.Match[str]") -> str:
        key = match.group(1)
        if key not in replacements:
            raise DeckModelError(
                f"{source}: unknown placeholder {{{{ {key} }}}}; known: {sorted(replacements)}"
            )
        return replacements[key]

    return _PLACEHOLDER.sub(fill, sql)


def placeholders(
    client: SqlClientBase[Any], dialect: str | None, missing_tables: Collection[str] = ()
) -> dict[str, str]:
    """What each `{{ name }}` of a model becomes on this destination (fragments aside)."""
    replacements = {RUNS_TABLE: client.make_qualified_table_name(RUNS_TABLE)}
    for table, (shape, _) in OPTIONAL_TABLES.items():
        replacements[table] = (
            empty_relation(shape, dialect)
            if table in missing_tables
            else client.make_qualified_table_name(table)
        )
    replacements["final_statuses"] = sql_literal_list(list(settings.FINAL_STATUSES))
    replacements["status_spellings"] = sql_case_arms(settings.STATUS_SPELLINGS)
    replacements["status_order"] = sql_rank_arms(
        settings.STATUS_ORDER, settings.UNLISTED_STATUS_ORDER
    )
    replacements["stuck_after_s"] = sql_number(settings.STUCK_AFTER_S)
    return replacements


def _render_file(
    stem: str,
    dialect: str | None,
    replacements: dict[str, str],
    models_dir: Path,
    fragments: list[str],
    using: tuple[str, ...],
) -> str:
    """Render one file, each fragment it names rendered in turn and put in as a subquery."""
    path = model_file(stem, dialect, models_dir)
    sql = path.read_text()
    filled = dict(replacements)
    for key in set(_PLACEHOLDER.findall(sql)) & set(fragments):
        if key in using:
            chain = " -> ".join((*using, key))
            raise DeckModelError(f"{path}: fragments use each other in a loop: {chain}")
        inner = _render_file(
            FRAGMENT_PREFIX + key, dialect, replacements, models_dir, fragments, (*using, key)
        )
        filled[key] = f"(\n{inner}\n)"
    return render(sql, filled, source=str(path)).strip().rstrip(";").strip()


def render_model(
    name: str,
    client: SqlClientBase[Any],
    dialect: str | None,
    *,
    missing_tables: Collection[str] = (),
    models_dir: Path = MODELS_DIR,
) -> str:
    """The SELECT of model `name` for this destination, with every placeholder filled; each
    table in `missing_tables` is replaced by an empty relation of its shape."""
    unknown = set(missing_tables) - set(OPTIONAL_TABLES)
    if unknown:
        raise DeckModelError(
            f"Only {sorted(OPTIONAL_TABLES)} may be missing, not {sorted(unknown)}"
        )
    replacements = placeholders(client, dialect, missing_tables)
    fragments = fragment_names(models_dir)
    clash = set(fragments) & set(replacements)
    if clash:
        raise DeckModelError(f"Fragments {sorted(clash)} in {models_dir} shadow a placeholder")
    return _render_file(name, dialect, replacements, models_dir, fragments, ())


def table_exists(client: SqlClientBase[Any], table: str) -> bool:
    try:
        client.execute_sql(f"SELECT 1 FROM {client.make_qualified_table_name(table)} WHERE 1 = 0")
        return True
    except DatabaseUndefinedRelation:
        return False


def absent_optional_tables(client: SqlClientBase[Any]) -> set[str]:
    """The optional tables not (yet) in the dataset; each is logged with why that is normal."""
    missing = set()
    for table, (_, reason) in OPTIONAL_TABLES.items():
        if not table_exists(client, table):
            logger.debug("No %s table yet (%s)", table, reason)
            missing.add(table)
    return missing


def _replace_view(
    client: SqlClientBase[Any], view: str, select: str, ddl_transactions: bool
) -> None:
    """CREATE OR REPLACE VIEW; where that cannot change the columns (PostgreSQL), drop and create
    in one transaction, so a failing model leaves the previous view in place."""
    try:
        client.execute_sql(f"CREATE OR REPLACE VIEW {view} AS\n{select}")
        return
    except Exception as first:
        if not ddl_transactions:
            raise
        logger.debug("CREATE OR REPLACE VIEW %s failed (%s); dropping it first", view, first)
    with client.begin_transaction():
        client.execute_sql(f"DROP VIEW IF EXISTS {view}")
        client.execute_sql(f"CREATE VIEW {view} AS\n{select}")


def drop_models(
    pipeline: dlt.Pipeline,
    models_dir: Path = MODELS_DIR,
    *,
    job_client: JobClientBase | None = None,
) -> list[str]:
    """Drop the model views; return the names of those dropped (or never created).

    Call it before anything that drops or replaces the loaded tables (a full refresh, `dlt
    pipeline ... drop`): PostgreSQL refuses to drop a table a view reads ("view task_run_facts
    depends on table task_runs__errors"). `refresh_models` creates them again after the load.
    `job_client`: the sync's own (`destination.SyncDestination`); None: one is made here.
    """
    job_client = pipeline.destination_client() if job_client is None else job_client
    if not isinstance(job_client, SqlJobClientBase):
        return []
    names = model_names(models_dir)
    with job_client.sql_client as client:
        if not client.has_dataset():
            return []
        for name in names:
            client.execute_sql(f"DROP VIEW IF EXISTS {client.make_qualified_table_name(name)}")
    logger.info("SQL models dropped from dataset %s: %s", pipeline.dataset_name, ", ".join(names))
    return names


def refresh_models(
    pipeline: dlt.Pipeline,
    models_dir: Path = MODELS_DIR,
    *,
    job_client: JobClientBase | None = None,
) -> list[str]:
    """Create or replace every SQL model as a view in `pipeline`'s dataset; return their names.

    Called after each successful load, so the views always match the loaded tables (a new column
    or a first `task_runs__errors` table is picked up at once). Returns [] without touching the
    destination when it has no SQL (filesystem) or `task_runs` was never loaded. Raises
    `DeckModelError` naming the model and file when one cannot be created. `job_client`: the
    sync's own (`destination.SyncDestination`); None: one is made here.
    """
    job_client = pipeline.destination_client() if job_client is None else job_client
    if not isinstance(job_client, SqlJobClientBase):
        logger.info(
            "SQL models skipped: destination %s has no SQL client of its own",
            pipeline.destination.destination_name,
        )
        return []
    with job_client.sql_client as client:
        return create_models(client, pipeline.dataset_name, models_dir)


def create_models(
    client: SqlClientBase[Any], dataset_name: str, models_dir: Path = MODELS_DIR
) -> list[str]:
    """`refresh_models` on a connection the caller opened (and will use for more)."""
    capabilities = client.capabilities
    dialect = capabilities.sqlglot_dialect
    names = model_names(models_dir)
    created: list[str] = []
    if not table_exists(client, RUNS_TABLE):
        logger.info("SQL models skipped: no %s table in dataset %s yet", RUNS_TABLE, dataset_name)
        return []
    missing = absent_optional_tables(client)
    for name in names:
        path = model_file(name, dialect, models_dir)
        select = render_model(name, client, dialect, missing_tables=missing, models_dir=models_dir)
        view = client.make_qualified_table_name(name)
        try:
            _replace_view(client, view, select, capabilities.supports_ddl_transactions)
        except Exception as exc:
            raise DeckModelError(
                f"SQL model {name} ({path.name}) could not be created in dataset"
                f" {dataset_name!r}: {exc}. The loaded data is unaffected."
            ) from exc
        logger.debug("SQL model %s created from %s", name, path.name)
        created.append(name)
    logger.info("SQL models refreshed in dataset %s: %s", dataset_name, ", ".join(created))
    return created
