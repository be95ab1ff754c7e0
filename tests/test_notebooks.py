"""The analysts' notebooks run end to end on a demo warehouse, and every figure draws data.

The demo warehouse is written the way a user writes it (`python pipelines/task_runs.py --demo` in
a scratch directory), the SQL models are refreshed on it, and each notebook is executed from its
jupytext source with nbclient. Each notebook asserts that every axis of every figure has data and
saves each figure to `DECK_FIGURES_DIR`; this test checks that the PNGs are there and not blank.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import dlt
import duckdb
import pytest
from deck import settings
from deck.models import refresh_models

jupytext = pytest.importorskip("jupytext", reason="notebook tests need the 'notebooks' extra")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the 'notebooks' extra")
pytest.importorskip("ipykernel", reason="notebook tests need the 'notebooks' extra")
pytest.importorskip("pandas", reason="notebook tests need the 'notebooks' extra")
image = pytest.importorskip("matplotlib.image", reason="notebook tests need the 'notebooks' extra")
nbformat = pytest.importorskip("nbformat", reason="notebook tests need the 'notebooks' extra")
# Under pytest-xdist (`--dist loadgroup`) the tests sharing the module's demo warehouse run in one
# worker, so it is built once.
DEMO_GROUP = pytest.mark.xdist_group("notebooks-demo-warehouse")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
# Notebooks are the jupytext sources (percent format, with a jupytext header); deck_notebook.py
# beside them is their shared helper module.
NOTEBOOKS = sorted(p for p in NOTEBOOKS_DIR.glob("*.py") if "jupytext:" in p.read_text()[:400])
SCRIPT = ROOT / "pipelines" / "task_runs.py"
MODELS = [
    "daily_task_run_stats", "daily_task_run_waits", "open_task_runs", "task_run_errors",
    "task_run_facts", "task_run_lifecycle", "task_run_status_history",
]
OVERVIEW_FIGURES = {
    "runs_per_day",
    "success_rate_by_agent_and_source",
    "runtime_distribution",
    "top_error_codes",
    "open_run_aging",
}
# The lifecycle notebook reads the task-run events (task_run_events); without them it draws
# nothing and says so.
LIFECYCLE_FIGURES = {
    "time_in_status_by_agent_and_source",
    "queue_wait_per_day",
    "slowest_interactions_and_reviews",
    "stuck_runs_now",
}


def demo_pipeline(workdir: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name=settings.DEMO_PIPELINE_NAME,
        pipelines_dir=str(workdir / "dlt-data" / "pipelines"),
        destination=dlt.destinations.duckdb(str(workdir / "deck_task_runs_demo.duckdb")),
        dataset_name=settings.DATASET_NAME,
    )


def demo_pipeline_at(path: Path, workdir: Path) -> dlt.Pipeline:
    """A pipeline onto an existing copy of the demo warehouse (to refresh its models)."""
    return dlt.pipeline(
        pipeline_name="deck_notebook_copy",
        pipelines_dir=str(workdir / "dlt-copy"),
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name=settings.DATASET_NAME,
    )


# Session scope: built at most once per xdist worker even when other files' tests run between the
# ones using it (a module fixture is rebuilt then); the tests only read it (one copies it first).
@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deck_task_runs_demo.duckdb as `--demo` writes it, with the SQL models refreshed."""
    workdir = tmp_path_factory.mktemp("demo")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env["DLT_DATA_DIR"] = str(workdir / "dlt-data")
    env["DLT_LOCAL_DIR"] = str(workdir)  # the demo file lands here, not in the checkout
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--demo"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert refresh_models(demo_pipeline(workdir)) == MODELS
    return workdir / "deck_task_runs_demo.duckdb"


def execute(notebook: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> "nbformat.NotebookNode":
    """Run every cell of the notebook's jupytext source; a failing cell fails the test."""
    # The kernel imports `deck` from this checkout, not from wherever the venv's editable
    # install points (another worktree's code would be tested otherwise).
    pythonpath = os.pathsep.join(
        p for p in (str(ROOT / "pipelines"), os.environ.get("PYTHONPATH", "")) if p
    )
    defaults = {"MPLBACKEND": "Agg", "DECK_DATASET": "deck", "PYTHONPATH": pythonpath}
    for key, value in {**defaults, **env}.items():
        monkeypatch.setenv(key, value)
    nb = jupytext.read(notebook)
    client = nbclient.NotebookClient(
        nb,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()
    return nb


def figure_names(notebook: Path) -> List[str]:
    return re.findall(r"""show\(fig, "(\w+)"\)""", notebook.read_text())


def test_there_are_an_overview_an_errors_and_a_lifecycle_notebook():
    assert [p.stem for p in NOTEBOOKS] == ["errors", "lifecycle", "overview"]
    assert (NOTEBOOKS_DIR / "deck_notebook.py").exists()
    assert OVERVIEW_FIGURES <= set(figure_names(NOTEBOOKS_DIR / "overview.py"))
    assert LIFECYCLE_FIGURES == set(figure_names(NOTEBOOKS_DIR / "lifecycle.py"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
@DEMO_GROUP
def test_notebook_runs_and_draws_every_figure(
    notebook: Path, demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    figures = tmp_path / "figures"

    execute(
        notebook,
        monkeypatch,
        DECK_DUCKDB_PATH=str(demo_warehouse),
        DECK_FIGURES_DIR=str(figures),
    )

    expected = figure_names(notebook)
    assert expected, f"{notebook.name} shows no figure"
    assert sorted(p.stem for p in figures.glob("*.png")) == sorted(expected)
    for name in expected:
        path = figures / f"{name}.png"
        assert path.stat().st_size > 10_000, f"{path.name} is suspiciously small"
        pixels = image.imread(path)[..., :3]
        assert pixels.std() > 0.05, f"{path.name} is (nearly) blank"


@DEMO_GROUP
def test_a_notebook_creates_the_models_when_the_warehouse_has_none(
    demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A warehouse loaded before the models existed still opens: the notebook creates them."""
    copy = tmp_path / "older.duckdb"
    shutil.copy(demo_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        for model in MODELS:
            con.execute(f"DROP VIEW deck.{model}")

    execute(NOTEBOOKS_DIR / "errors.py", monkeypatch, DECK_DUCKDB_PATH=str(copy))

    with duckdb.connect(str(copy), read_only=True) as con:
        views = con.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'deck' AND table_type = 'VIEW' ORDER BY 1"
        ).fetchall()
    assert [v[0] for v in views] == MODELS


@DEMO_GROUP
def test_the_lifecycle_notebook_says_no_events_loaded_instead_of_drawing(
    demo_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A warehouse without task-run events (events off, or loaded before they existed)."""
    copy = tmp_path / "no-events.duckdb"
    shutil.copy(demo_warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DROP TABLE IF EXISTS deck.task_run_events")
    refresh_models(demo_pipeline_at(copy, tmp_path))  # the event models over empty stand-ins
    figures = tmp_path / "figures"

    nb = execute(NOTEBOOKS_DIR / "lifecycle.py", monkeypatch, DECK_DUCKDB_PATH=str(copy),
                 DECK_FIGURES_DIR=str(figures))

    said = [
        output.get("data", {}).get("text/markdown", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    ]
    assert any("No events loaded" in text for text in said)
    assert not figures.exists() or not list(figures.glob("*.png"))


def test_the_connector_package_imports_no_plotting_or_notebook_library():
    """`import deck` (every module of it) must work with only the connector's dependencies."""
    code = (
        "import importlib, pkgutil, sys, deck\n"
        "for m in pkgutil.walk_packages(deck.__path__, 'deck.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in"
        " ('pandas', 'matplotlib', 'IPython', 'nbclient', 'jupytext'))\n"
        "print(','.join(bad))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT / "pipelines", timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_a_missing_warehouse_fails_with_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="make demo"):
        execute(
            NOTEBOOKS_DIR / "overview.py", monkeypatch, DECK_DUCKDB_PATH=str(tmp_path / "no.duckdb")
        )


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_paired_ipynb_matches_its_py_source_and_has_no_outputs(notebook: Path):
    """The .py (percent format) is what reviewers read; the .ipynb must say exactly the same.
    After editing either, run `jupytext --sync notebooks/*.py`."""
    paired = notebook.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run jupytext --sync {notebook}"
    source = jupytext.read(notebook)
    stored = nbformat.read(paired, as_version=4)

    def cells(nb) -> List[Dict[str, str]]:
        return [{"type": c.cell_type, "source": c.source.strip()} for c in nb.cells]

    assert cells(stored) == cells(source), f"run jupytext --sync {notebook}"
    assert all(not c.get("outputs") for c in stored.cells), f"clear the outputs of {paired.name}"
