"""`kill -9` at any moment of a sync, then a rerun: the warehouse is exact, nothing lost or doubled.

The CLI runs as a real process against a simulator in this process; the kill is timed by the
number of requests the simulator has received (a point in the backfill) or by wall time (which
lands in extract, normalize or load alike).
"""

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Dict

import pytest
from conftest import Warehouse, assert_matches_ground_truth
from deck.simulator import DeckSimulator
from test_cli import SCRIPT, run_cli


def cli_env(tmp_path: Path, sim: DeckSimulator) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    env.update({
        "DLT_DATA_DIR": str(tmp_path / "dlt-data"),
        "SOURCES__DECK__API_KEY": sim.api_key,
        "SOURCES__DECK__BASE_URL": sim.base_url,
        # small windows and loads so that a 3,000-run backfill commits many times
        "SOURCES__DECK__MAX_RUNS_PER_LOAD": "400",
        "SOURCES__DECK__PAGES_PER_WINDOW": "3",
    })
    return env


def kill_when(
    tmp_path: Path,
    sim: DeckSimulator,
    *,
    requests: int = 0,
    seconds: float = 0,
    log_line: str = "",
) -> bool:
    """Start a sync and SIGKILL it at the given point; True if it was killed before finishing.

    The point is a number of requests the simulator received, a time, or a line the CLI logs.
    """
    seen = len(sim.requests)
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], cwd=tmp_path,
                            env=cli_env(tmp_path, sim), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    logged = threading.Event()

    def watch_log() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            if log_line and log_line in line:
                logged.set()

    threading.Thread(target=watch_log, daemon=True).start()
    started = time.monotonic()
    while proc.poll() is None:
        if requests and len(sim.requests) - seen >= requests:
            break
        if seconds and time.monotonic() - started >= seconds:
            break
        if logged.is_set():
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def reader(tmp_path: Path, sim: DeckSimulator) -> Warehouse:
    return Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", sim)


@pytest.fixture
def slow_sim():
    sim = DeckSimulator(seed=21, runs=3_000, history_days=10, latency=0.01).start()
    yield sim
    sim.stop()


@pytest.mark.parametrize("after_requests", [2, 9, 17, 26])
def test_rerun_after_kill_at_a_point_of_the_backfill_is_exact(tmp_path, slow_sim, after_requests):
    assert kill_when(tmp_path, slow_sim, requests=after_requests)
    slow_sim.advance(3600 * 5, new_runs=120)

    rerun = run_cli(tmp_path, env=cli_env(tmp_path, slow_sim))

    assert rerun.returncode == 0, rerun.stderr
    assert_matches_ground_truth(reader(tmp_path, slow_sim), slow_sim.runs())


def test_repeated_kills_at_random_moments_then_a_rerun_is_exact(tmp_path, slow_sim):
    rng = random.Random(5)
    kills = 0
    for _ in range(6):
        kills += kill_when(tmp_path, slow_sim, seconds=rng.uniform(0.8, 4.0))
        slow_sim.advance(rng.uniform(60, 3600 * 24), new_runs=rng.randint(0, 150))

    rerun = run_cli(tmp_path, env=cli_env(tmp_path, slow_sim))

    assert kills >= 3
    assert rerun.returncode == 0, rerun.stderr
    assert_matches_ground_truth(reader(tmp_path, slow_sim), slow_sim.runs())


def test_a_killed_backfill_resumes_from_its_last_committed_window(tmp_path, slow_sim):
    assert kill_when(tmp_path, slow_sim, log_line="Load 2 committed")
    committed = reader(tmp_path, slow_sim).runs()
    assert len(committed) >= 800  # two loads were committed before the kill
    slow_sim.clear_requests()

    rerun = run_cli(tmp_path, env=cli_env(tmp_path, slow_sim))
    assert rerun.returncode == 0, rerun.stderr

    # Loaded again: what was not committed, plus at most the load that was being extracted
    # when the process died (max_runs_per_load = 400); never the committed history.
    reloaded = int(rerun.stdout.split("runs:")[1].split(" new")[0].replace(",", ""))
    assert reloaded <= 3_000 - len(committed) + 400, (reloaded, len(committed))
    assert_matches_ground_truth(reader(tmp_path, slow_sim), slow_sim.runs())


def test_a_sync_after_one_killed_between_extract_and_load_syncs_everything(tmp_path, simulator):
    """dlt's `run` loads leftover packages and then returns without extracting: `sync` must
    notice and go on, or every run after the leftover package would be silently skipped."""
    from conftest import FAST_RETRIES
    from deck import deck

    simulator.advance(3600 * 24, new_runs=100)
    wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", simulator)
    wh.sync()
    simulator.advance(3600 * 24 * 4, new_runs=900)
    wh.pipeline().extract(
        deck(api_key=simulator.api_key, base_url=simulator.base_url, max_runs_per_load=200,
             pages_per_window=2, **FAST_RETRIES)
    )  # as if killed right after extract: a package and advanced state, nothing loaded
    assert wh.pipeline().has_pending_data
    simulator.advance(3600 * 3, new_runs=100)

    result = wh.sync(pages_per_window=2)

    assert result.loads >= 1
    assert_matches_ground_truth(wh, simulator.runs())


def test_root_rows_copied_by_a_resumed_package_are_removed(simulator, warehouse):
    """A resumed package can carry two identical copies of a run row (dlt re-runs a staging copy
    job that a kill interrupted after it wrote); the runner keeps one of each."""
    import duckdb
    from deck.runner import remove_copied_run_rows

    simulator.advance(3600 * 24, new_runs=200)
    warehouse.sync()
    [load_id] = [r["load_id"] for r in warehouse.query("SELECT load_id FROM deck._dlt_loads")]
    with duckdb.connect(str(warehouse.path)) as con:  # what the interrupted load left behind
        con.execute("INSERT INTO deck.task_runs SELECT * FROM deck.task_runs LIMIT 37")
    assert warehouse.query("SELECT count(*) AS n FROM deck.task_runs")[0]["n"] == 237

    removed = remove_copied_run_rows(warehouse.pipeline(), [load_id])

    assert removed == 37
    assert_matches_ground_truth(warehouse, simulator.runs())
