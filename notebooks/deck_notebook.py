"""What every analyst notebook in this folder starts with: query the warehouse, draw, save.

Kept beside the notebooks (not copied into each, and not in the connector package, which must not
depend on pandas or matplotlib) so the notebooks hold only their analysis. Needs the `notebooks`
extra. Each query opens the DuckDB file read-only and closes it again, so a notebook left open
never holds the file between cells (a scheduled sync needs it to write).

Environment: `DECK_DUCKDB_PATH` (default: the demo warehouse `deck_task_runs_demo.duckdb` in the
repository root), `DECK_DATASET` (default `deck`), `DECK_FIGURES_DIR` (also save figures as PNG).
"""

import os
import tempfile
from pathlib import Path
from typing import Any, List, Optional

import duckdb
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

MODELS = (
    "task_run_facts",
    "task_run_errors",
    "daily_task_run_stats",
    "open_task_runs",
    "task_run_status_history",
    "task_run_lifecycle",
    "daily_task_run_waits",
)


def repository_root() -> Path:
    cwd = Path.cwd()
    return next((p for p in [cwd, *cwd.parents] if (p / "pyproject.toml").exists()), cwd)


def warehouse_path() -> Path:
    return Path(
        os.environ.get("DECK_DUCKDB_PATH", repository_root() / "deck_task_runs_demo.duckdb")
    )


def dataset() -> str:
    return os.environ.get("DECK_DATASET", "deck")


def figures_dir() -> Optional[Path]:
    value = os.environ.get("DECK_FIGURES_DIR")
    return Path(value) if value else None


# Warehouses whose models were found (or created) by this kernel: checked once, not per query.
_models_checked: set[tuple[Path, str]] = set()


def _missing_models(path: Path, schema: str) -> List[str]:
    with duckdb.connect(str(path), read_only=True) as con:
        rows = con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]
        ).fetchall()
    return sorted(set(MODELS) - {r[0] for r in rows})


def connect() -> duckdb.DuckDBPyConnection:
    """A read-only connection in UTC with the dataset (tables and models) on the search path.

    Close it when done (`with connect() as con:`); `query()` does that for you.
    """
    path, schema = warehouse_path(), dataset()
    if not path.exists():
        raise FileNotFoundError(
            f"No warehouse at {path}: run `make demo` (or `python pipelines/task_runs.py"
            " --demo`) in the repository root, or point DECK_DUCKDB_PATH at your DuckDB file."
        )
    if (path, schema) not in _models_checked and _missing_models(path, schema):
        # A warehouse loaded before the models existed: create them once (views, no data moves).
        import dlt
        from deck.models import refresh_models

        refresh_models(
            dlt.pipeline(
                pipeline_name="deck_notebook_models",
                pipelines_dir=tempfile.mkdtemp(),
                destination=dlt.destinations.duckdb(str(path)),
                dataset_name=schema,
            )
        )
    _models_checked.add((path, schema))
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET schema = '{schema}'")
    return con


def query(sql: str) -> pd.DataFrame:
    """Run SQL (tables and models are on the search path) and return a DataFrame; the
    connection is closed before this returns."""
    with connect() as con:
        return con.sql(sql).df()


def show(fig: plt.Figure, name: str) -> None:
    """Check that every axis drew data, save the figure when DECK_FIGURES_DIR is set, show it."""
    empty = [ax.get_title() or "untitled" for ax in fig.axes if not ax.has_data()]
    assert not empty, f"figure {name}: nothing drawn in {empty}"
    fig.tight_layout()
    target = figures_dir()
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        fig.savefig(target / f"{name}.png", dpi=100)
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)
    else:
        plt.show()


def short(ident: Any) -> str:
    """Ids are long; 12 characters tell them apart in a chart."""
    return "(none)" if ident is None or pd.isna(ident) else str(ident)[:12]
