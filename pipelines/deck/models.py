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
- A file holds one SELECT. `{{ task_runs }}` and `{{ task_runs__errors }}` become the tables'
  qualified, quoted names; `{{ final_statuses }}` becomes the SQL list of final statuses
  (`settings.FINAL_STATUSES`, the same set the connector uses). When no run has ever failed,
  `task_runs__errors` does not exist yet: an empty relation of the same shape stands in for it, so
  every model is created anyway (and reads the real table after the next refresh).
- Models read only the loaded tables, never each other, so they can be replaced in any order.
"""

import logging
import re
from pathlib import Path
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import SqlClientBase

from . import settings
from .errors import DeckError

logger = logging.getLogger("deck")

MODELS_DIR = Path(__file__).with_name("models")
MAIN_TABLE = "task_runs"
ERRORS_TABLE = "task_runs__errors"
_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")

# Column types of the empty stand-in for a missing `task_runs__errors`, per dialect.
_TEXT_TYPE = {"bigquery": "STRING", "databricks": "STRING"}
_BIGINT_TYPE = {"bigquery": "INT64"}
ERROR_TABLE_SHAPE = (
    ("_dlt_parent_id", "text"),
    ("_dlt_list_idx", "bigint"),
    ("type", "text"),
    ("code", "text"),
    ("message", "text"),
    ("field", "text"),
)


class DeckModelError(DeckError):
    """A SQL model could not be created; the loaded data itself is fine."""


def model_names(models_dir: Path = MODELS_DIR) -> list[str]:
    """Every model in `models_dir`: the file names up to their first dot, sorted."""
    return sorted({path.name.split(".", 1)[0] for path in models_dir.glob("*.sql")})


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


def sql_literal_list(values: list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def empty_errors_relation(dialect: str | None) -> str:
    """A relation with `task_runs__errors`' columns and no rows, for datasets without it."""
    text = _TEXT_TYPE.get(dialect or "", "VARCHAR")
    bigint = _BIGINT_TYPE.get(dialect or "", "BIGINT")
    columns = ", ".join(
        f"CAST(NULL AS {text if kind == 'text' else bigint}) AS {name}"
        for name, kind in ERROR_TABLE_SHAPE
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


def render_model(
    name: str,
    client: SqlClientBase[Any],
    dialect: str | None,
    *,
    has_errors_table: bool,
    models_dir: Path = MODELS_DIR,
) -> str:
    """The SELECT of model `name` for this destination, with every placeholder filled."""
    path = model_file(name, dialect, models_dir)
    replacements = {
        MAIN_TABLE: client.make_qualified_table_name(MAIN_TABLE),
        ERRORS_TABLE: (
            client.make_qualified_table_name(ERRORS_TABLE)
            if has_errors_table
            else empty_errors_relation(dialect)
        ),
        "final_statuses": sql_literal_list(list(settings.FINAL_STATUSES)),
    }
    return render(path.read_text(), replacements, source=str(path)).strip().rstrip(";")


def table_exists(client: SqlClientBase[Any], table: str) -> bool:
    try:
        client.execute_sql(f"SELECT 1 FROM {client.make_qualified_table_name(table)} WHERE 1 = 0")
        return True
    except DatabaseUndefinedRelation:
        return False


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


def drop_models(pipeline: dlt.Pipeline, models_dir: Path = MODELS_DIR) -> list[str]:
    """Drop the model views; return the names of those dropped (or never created).

    Call it before anything that drops or replaces the loaded tables (a full refresh, `dlt
    pipeline ... drop`): PostgreSQL refuses to drop a table a view reads ("view task_run_facts
    depends on table task_runs__errors"). `refresh_models` creates them again after the load.
    """
    if not isinstance(pipeline.destination_client(), SqlJobClientBase):
        return []
    names = model_names(models_dir)
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return []
        for name in names:
            client.execute_sql(f"DROP VIEW IF EXISTS {client.make_qualified_table_name(name)}")
    logger.info("SQL models dropped from dataset %s: %s", pipeline.dataset_name, ", ".join(names))
    return names


def refresh_models(pipeline: dlt.Pipeline, models_dir: Path = MODELS_DIR) -> list[str]:
    """Create or replace every SQL model as a view in `pipeline`'s dataset; return their names.

    Called after each successful load, so the views always match the loaded tables (a new column
    or a first `task_runs__errors` table is picked up at once). Returns [] without touching the
    destination when it has no SQL (filesystem) or `task_runs` was never loaded. Raises
    `DeckModelError` naming the model and file when one cannot be created.
    """
    job_client = pipeline.destination_client()
    if not isinstance(job_client, SqlJobClientBase):
        logger.info(
            "SQL models skipped: destination %s has no SQL client of its own",
            pipeline.destination.destination_name,
        )
        return []
    capabilities = pipeline.destination.capabilities()
    dialect = capabilities.sqlglot_dialect
    names = model_names(models_dir)
    created: list[str] = []
    with pipeline.sql_client() as client:
        if not table_exists(client, MAIN_TABLE):
            logger.info(
                "SQL models skipped: no %s table in dataset %s yet",
                MAIN_TABLE,
                pipeline.dataset_name,
            )
            return []
        has_errors = table_exists(client, ERRORS_TABLE)
        if not has_errors:
            logger.info("No %s table yet (no run has failed): models see no errors", ERRORS_TABLE)
        for name in names:
            path = model_file(name, dialect, models_dir)
            select = render_model(
                name, client, dialect, has_errors_table=has_errors, models_dir=models_dir
            )
            view = client.make_qualified_table_name(name)
            try:
                _replace_view(client, view, select, capabilities.supports_ddl_transactions)
            except Exception as exc:
                raise DeckModelError(
                    f"SQL model {name} ({path.name}) could not be created in dataset"
                    f" {pipeline.dataset_name!r}: {exc}. The loaded data is unaffected."
                ) from exc
            logger.debug("SQL model %s created from %s", name, path.name)
            created.append(name)
    logger.info(
        "SQL models refreshed in dataset %s: %s", pipeline.dataset_name, ", ".join(created)
    )
    return created
