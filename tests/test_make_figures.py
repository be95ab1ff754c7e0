"""Which files the figure targets of the Makefile write, read from `make -n` (nothing runs).

`make notebook-figures` draws whatever warehouse DECK_DUCKDB_PATH names, a real one included, so
it must write only under build/; the README's committed picture comes from `make readme-image`,
which draws a demo warehouse it writes itself, whatever DECK_DUCKDB_PATH says.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_WAREHOUSE = "/srv/analytics/deck_task_runs.duckdb"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str, **env: str) -> list[str]:
    """The recipe lines `make -n target` would run (venv set-up lines included)."""
    done = subprocess.run(
        ["make", "-n", target], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_notebook_figures_of_a_real_warehouse_go_to_build_only():
    lines = dry_run("notebook-figures", DECK_DUCKDB_PATH=REAL_WAREHOUSE)

    assert not [line for line in lines if "docs/" in line]
    executes = [line for line in lines if "jupyter execute" in line]
    assert len(executes) == 1
    assert f"DECK_FIGURES_DIR={ROOT}/build/figures " in executes[0]
    assert "--inplace" not in executes[0] and "--output" not in executes[0]
    # Pointed at a real warehouse it leaves the demo alone (no demo sync into the repository).
    assert not [line for line in lines if "--demo" in line]


def test_notebook_figures_without_a_warehouse_draw_the_demo():
    lines = dry_run("notebook-figures", DECK_DUCKDB_PATH="")

    assert [line for line in lines if line.endswith("pipelines/task_runs.py --demo")]
    assert not [line for line in lines if "docs/" in line]


def test_the_readme_image_is_drawn_from_a_fresh_demo_even_when_pointed_at_a_real_warehouse():
    lines = dry_run("readme-image", DECK_DUCKDB_PATH=REAL_WAREHOUSE)
    demo = f"{ROOT}/build/readme-demo"

    assert not [line for line in lines if REAL_WAREHOUSE in line]
    assert [line for line in lines if line.startswith(f"cd {demo} ") and "--demo" in line]
    executes = [line for line in lines if "jupyter execute" in line]
    assert len(executes) == 1
    assert f"DECK_DUCKDB_PATH={demo}/deck_task_runs_demo.duckdb " in executes[0]
    writes_docs = [line for line in lines if "docs/" in line]
    assert writes_docs == [
        f"cp {demo}/figures/runs_per_day.png docs/images/runs_per_day.png"
    ]
