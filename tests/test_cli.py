"""`python pipelines/task_runs.py` as a user runs it: real HTTP, real DuckDB; the first `--demo` as
a real process, the rest through `deck.runtime.cli.main` in process (`support.cli.run_main`)."""

import shutil
import subprocess
import sys

import duckdb
import pytest
from deck.core import settings
from deck.runtime.cli import DEMO_RUNS, DEMO_SEED
from deck_simulator import DeckSimulator
from support import ts
from support.cli import SAFETY_TIMEOUT_S, clean_env, run_main

# The demo tests here and the notebook tests share one first `--demo` run (conftest.first_demo:
# built once per session, whichever xdist worker asks first); the second run is in a copy of it.


@pytest.mark.smoke  # `make check`'s one sync end to end
def test_demo_syncs_the_simulator_into_its_own_duckdb_file(first_demo):
    checkout, first = first_demo
    assert first.returncode == 0, first.stderr
    assert f"{DEMO_RUNS:,} new, 0 updated ({DEMO_RUNS:,} in the warehouse)" in first.stdout
    assert "deck_task_runs_demo.duckdb" in first.stdout

    truth = DeckSimulator(
        seed=DEMO_SEED, runs=DEMO_RUNS, history_days=60, now=settings.DEMO_NOW
    ).runs()
    with duckdb.connect(str(checkout / "deck_task_runs_demo.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT id, status, updated_at FROM deck.task_runs").fetchall()
    assert {r[0]: (r[1], r[2]) for r in rows} == {
        r["id"]: (r["status"], ts(r["updated_at"])) for r in truth
    }
    pipelines = checkout / "dlt-data" / "pipelines"
    assert sorted(p.name for p in pipelines.iterdir()) == [settings.DEMO_PIPELINE_NAME]
    assert not (checkout / "deck_task_runs.duckdb").exists()


def test_a_second_demo_run_is_a_cheap_no_change_sync(first_demo, tmp_path):
    checkout, first = first_demo
    assert first.returncode == 0, first.stderr
    # the demo file's path is worked out from the checkout on every run, never remembered
    shutil.copytree(checkout, tmp_path, dirs_exist_ok=True)

    second = run_main(tmp_path, "--demo")

    assert second.returncode == 0, second.stderr
    assert f"0 new, 0 updated ({DEMO_RUNS:,} in the warehouse)" in second.stdout
    requests = int(second.stdout.split("requests:")[1].split()[0])
    assert requests <= 5


def test_help_lists_every_option(tmp_path):
    out = run_main(tmp_path, "--help").stdout
    for option in (
        "--demo", "--destination", "--dataset", "--start-date", "--end-date", "--full-refresh",
        "--status", "--outcome", "--source-id", "--agent-id", "--credential-id", "--task-id",
        "--workflow-id", "--search",
    ):
        assert option in out


@pytest.fixture
def live_simulator():
    sim = DeckSimulator(seed=3, runs=300, history_days=5).start()
    yield sim
    sim.stop()


def test_cli_syncs_with_key_and_base_url_from_the_environment(tmp_path, live_simulator):
    env = {
        "SOURCES__DECK__API_KEY": live_simulator.api_key,
        "SOURCES__DECK__BASE_URL": live_simulator.base_url,
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "elsewhere.duckdb"),
    }
    result = run_main(tmp_path, "--agent-id", live_simulator.runs()[0]["agent_id"], env=env)

    assert result.returncode == 0, result.stderr
    with duckdb.connect(str(tmp_path / "elsewhere.duckdb"), read_only=True) as con:
        loaded = {r[0] for r in con.execute("SELECT agent_id FROM deck.task_runs").fetchall()}
    assert loaded == {live_simulator.runs()[0]["agent_id"]}
    assert live_simulator.api_key not in result.stdout + result.stderr


def test_full_refresh_reloads_everything(tmp_path, live_simulator):
    env = {
        "SOURCES__DECK__API_KEY": live_simulator.api_key,
        "SOURCES__DECK__BASE_URL": live_simulator.base_url,
    }
    assert run_main(tmp_path, env=env).returncode == 0
    again = run_main(tmp_path, "--full-refresh", env=env)
    assert again.returncode == 0, again.stderr
    assert "300 new, 0 updated (300 in the warehouse)" in again.stdout


def _install_requirements(distribution: str) -> set[str]:
    """Every distribution a plain `pip install <distribution>` brings (extras left out), by the
    installed packages' own metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    todo = [distribution]
    while todo:
        name = todo.pop()
        try:
            wanted = requires(name) or []
        except PackageNotFoundError:  # a requirement for another platform, not installed here
            continue
        for line in wanted:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_cli_processes_cannot_import_pandas_as_a_users_install_cannot():
    # support.cli hides pandas, which only the notebooks extra installs, from every CLI process
    # of the suite (see AS_INSTALLED): right only while the connector's own install lacks it.
    assert "pandas" not in _install_requirements("deck-task-runs")
    assert "dlt" in _install_requirements("deck-task-runs")  # the walk does find dependencies

    done = subprocess.run(
        [sys.executable, "-c", "import pandas"],
        env=clean_env(), capture_output=True, text=True, timeout=SAFETY_TIMEOUT_S,
    )

    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'pandas'" in done.stderr
