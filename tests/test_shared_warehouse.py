"""A warehouse shared with readers, a checkout used from anywhere, a working folder kept small.

1. DuckDB lets a process write its file only while no other process has it open. A reader is a
   real second process (support.holder.FileHolder); the sync waits for it, says so, and goes on
   when it closes (the test releases it upon the sync's "Waiting for" line, never after a
   guessed time), or fails with one paragraph and loses nothing.
2. `pipelines/task_runs.py` uses its checkout's `.dlt/` and keeps its files in the checkout,
   whatever the working directory; two checkouts never share a pipeline.
3. Completed load packages keep no data files, and only the newest few are kept at all.
4. A load step opens the file once (deck.warehouse.one_connection), not once per job.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dlt
import duckdb
import pytest
from deck.core import settings
from deck.core.errors import DeckConfigError
from deck.core.options import parse_lock_wait_s
from deck.runtime.cli import DEMO_RUNS
from deck.warehouse.lock import configured_lock_wait
from deck.warehouse.one_connection import shareable
from deck_simulator import DeckSimulator
from dlt.pipeline.exceptions import CannotRestorePipelineException
from support import Warehouse, assert_matches_ground_truth, make_simulator
from support.cli import BackgroundCLI, clean_env, cli_env, make_checkout, run_main
from support.holder import FileHolder
from support.shared import shared

PIPELINE = "deck_task_runs"  # the CLI's default pipeline name
DATA_FILE_SUFFIXES = (".parquet", ".sql", ".gz", ".jsonl", ".typed-jsonl", ".insert_values")


@pytest.fixture
def sim():
    sim = make_simulator(seed=31, runs=300, history_days=5)
    yield sim
    sim.stop()


def cli_warehouse(tmp_path: Path, sim: DeckSimulator) -> Warehouse:
    """The CLI's default warehouse (support.cli makes tmp_path its checkout)."""
    return Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", sim)


def expected_paragraph(path: Path, holder: FileHolder, waited: str) -> str:
    return (
        f"Deck sync failed: the warehouse {path} is open in another process ({holder.program},"
        f" PID {holder.pid}), and {waited}. DuckDB lets a process write a file only while no"
        " other process has it open, even read-only. Close that session (a `duckdb` shell, a"
        " notebook kernel keeping a connection) and read through short-lived connections"
        " (connect, query, close: README, \"Reading the warehouse while syncs run\"), or raise"
        " lock_wait_s. Nothing was half-loaded: the loads committed before are kept and the next"
        " sync resumes from there."
    )


# ---- 1: a reader holding the DuckDB file -------------------------------------------------------


def test_a_sync_waits_for_a_reader_that_has_the_file_open_and_loads_once_it_closes(tmp_path, sim):
    path = tmp_path / "deck_task_runs.duckdb"
    with FileHolder(path) as reader:
        sync = BackgroundCLI(env=cli_env(tmp_path, sim), cwd=tmp_path)
        waiting = sync.wait_for_line("Waiting for")
        reader.release()
        done = sync.finish()

    assert done.returncode == 0, done.stderr
    assert f"Waiting for {path}: another process ({reader.program}, PID {reader.pid})" in waiting
    assert_matches_ground_truth(cli_warehouse(tmp_path, sim), sim.runs())


def test_a_reader_opening_the_file_during_a_sync_delays_its_load_and_each_run_loads_once(
    tmp_path, sim
):
    """The reader takes the file while the sync lists runs (no connection open then): the load
    step finds it taken, waits, and loads the package it had extracted (not a second one)."""
    path = tmp_path / "deck_task_runs.duckdb"
    gate = sim.hold(lambda request: request.path.endswith("/task-runs"))
    sync = BackgroundCLI(env=cli_env(tmp_path, sim), cwd=tmp_path)
    try:
        assert gate.reached.wait(timeout=120), "the sync never listed runs"
        with FileHolder(path) as reader:
            gate.release()
            waiting = sync.wait_for_line("Waiting for")
            reader.release()
        done = sync.finish()
    finally:
        gate.release()
        sync.kill()

    assert done.returncode == 0, done.stderr
    assert f"another process ({reader.program}, PID {reader.pid})" in waiting
    assert_matches_ground_truth(cli_warehouse(tmp_path, sim), sim.runs())  # no run twice
    loads = cli_warehouse(tmp_path, sim).query("SELECT count(*) AS n FROM deck._dlt_loads")
    assert loads == [{"n": 1}]


def test_a_sync_that_cannot_get_the_file_fails_with_one_paragraph_and_the_next_resumes(
    tmp_path, sim
):
    """The reader takes the file while the sync lists new runs; with lock_wait_s = 0 the load
    step gives up at once, leaving its package pending, and the next sync loads it."""
    path = tmp_path / "deck_task_runs.duckdb"
    assert run_main(tmp_path, env=cli_env(tmp_path, sim)).returncode == 0
    before = sim.runs()
    sim.advance(3600, new_runs=40)
    env = {**cli_env(tmp_path, sim), "SOURCES__DECK__LOCK_WAIT_S": "0"}
    gate = sim.hold(lambda request: request.path.endswith("/task-runs"))
    sync = BackgroundCLI(env=env, cwd=tmp_path)
    try:
        assert gate.reached.wait(timeout=120), "the sync never listed runs"
        with FileHolder(path) as reader:
            gate.release()
            failed = sync.finish()
            reader.release()
    finally:
        gate.release()
        sync.kill()

    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == expected_paragraph(path, reader, "lock_wait_s is 0")
    assert "Traceback" not in failed.stderr
    assert_matches_ground_truth(cli_warehouse(tmp_path, sim), before)  # nothing half-loaded

    rerun = run_main(tmp_path, env=cli_env(tmp_path, sim))

    assert rerun.returncode == 0, rerun.stderr
    assert "Finished loading a package left by an interrupted sync" in rerun.stderr
    assert_matches_ground_truth(cli_warehouse(tmp_path, sim), sim.runs())


def test_a_reader_that_never_closes_fails_the_sync_after_lock_wait_s(tmp_path, sim):
    """Before anything is loaded: the sync that cannot start leaves the warehouse as it was."""
    path = tmp_path / "deck_task_runs.duckdb"
    assert run_main(tmp_path, env=cli_env(tmp_path, sim)).returncode == 0
    before = sim.runs()
    sim.advance(3600, new_runs=40)
    env = {**cli_env(tmp_path, sim), "SOURCES__DECK__LOCK_WAIT_S": "1"}
    with FileHolder(path) as reader:
        failed = run_main(tmp_path, env=env)
        reader.release()

    assert failed.returncode == 1
    assert failed.stderr.splitlines()[-1] == expected_paragraph(
        path, reader, "stayed so for the 1 s this sync waited (lock_wait_s)"
    )
    assert_matches_ground_truth(cli_warehouse(tmp_path, sim), before)


@pytest.mark.unit
@pytest.mark.parametrize("value", [-1, float("inf"), float("nan"), "soon"])
def test_lock_wait_s_must_be_a_finite_number_of_seconds(value):
    with pytest.raises(DeckConfigError, match="lock_wait_s = .* is not valid: use a number of"):
        parse_lock_wait_s(value)


@pytest.mark.unit
def test_lock_wait_s_comes_from_the_sources_configuration(monkeypatch):
    monkeypatch.setenv("SOURCES__DECK__LOCK_WAIT_S", "12.5")
    assert configured_lock_wait() == 12.5
    assert configured_lock_wait(0) == 0  # an explicit value (deck.sync's argument) wins
    monkeypatch.setenv("SOURCES__DECK__LOCK_WAIT_S", "soon")
    with pytest.raises(DeckConfigError, match="lock_wait_s = 'soon' is not valid: use a number"):
        configured_lock_wait()
    monkeypatch.delenv("SOURCES__DECK__LOCK_WAIT_S")
    assert configured_lock_wait() == settings.LOCK_WAIT_S


# ---- 2: the checkout, from any working directory -----------------------------------------------


def point_checkout_at(checkout: Path, sim: DeckSimulator) -> None:
    """The checkout's own settings, as a user writes them: config.toml and secrets.toml."""
    config = checkout / ".dlt" / "config.toml"
    text = config.read_text()
    shipped = 'base_url = "https://api.deck.co/v2"'
    assert shipped in text
    config.write_text(text.replace(shipped, f'base_url = "{sim.base_url}"'))
    (checkout / ".dlt" / "secrets.toml").write_text(f'[sources.deck]\napi_key = "{sim.api_key}"\n')


def test_the_cli_uses_its_checkouts_settings_and_folders_from_any_working_directory(
    tmp_path, sim
):
    checkout = make_checkout(tmp_path / "checkout")
    point_checkout_at(checkout, sim)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = run_in(checkout, elsewhere)

    assert done.returncode == 0, done.stderr
    assert os.listdir(elsewhere) == []
    assert (checkout / ".dlt-data" / "pipelines" / PIPELINE / "state.json").is_file()
    warehouse = Warehouse(checkout / "deck_task_runs.duckdb", tmp_path / "unused", sim)
    assert_matches_ground_truth(warehouse, sim.runs())
    assert f"at {checkout / 'deck_task_runs.duckdb'}" in done.stdout


def run_in(checkout: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """The checkout's task_runs.py run from `cwd`, with no dlt or Deck variables set."""
    return subprocess.run(
        [sys.executable, str(checkout / "pipelines" / "task_runs.py"), *args],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_two_checkouts_keep_their_own_demo(tmp_path):
    first = make_checkout(tmp_path / "first")
    second = make_checkout(tmp_path / "second")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    done = run_in(first, elsewhere, "--demo")

    assert done.returncode == 0, done.stderr
    assert os.listdir(elsewhere) == []
    demo = Warehouse(first / "deck_task_runs_demo.duckdb", tmp_path / "unused", None)
    assert demo.query("SELECT count(DISTINCT id) AS n FROM deck.task_runs") == [{"n": DEMO_RUNS}]
    # What `dlt pipeline --pipelines-dir <checkout>/.dlt-data/pipelines deck_task_runs_demo show`
    # opens: the first checkout's demo in its own file; the second checkout has none.
    attached = dlt.attach(settings.DEMO_PIPELINE_NAME, pipelines_dir=pipelines_dir(first))
    credentials = attached.destination_client().config.credentials  # type: ignore[attr-defined]
    assert credentials.database == str(first / "deck_task_runs_demo.duckdb")
    with pytest.raises(CannotRestorePipelineException):
        dlt.attach(settings.DEMO_PIPELINE_NAME, pipelines_dir=pipelines_dir(second))
    assert not (second / "deck_task_runs_demo.duckdb").exists()


def pipelines_dir(checkout: Path) -> str:
    return str(checkout / ".dlt-data" / "pipelines")


# ---- 3: what stays on disk ---------------------------------------------------------------------


def data_files(pipelines: Path) -> list[str]:
    """Load job files (parquet, SQL, ...) anywhere under dlt's working folders."""
    return sorted(
        str(path.relative_to(pipelines))
        for path in pipelines.rglob("*")
        if path.is_file() and path.name.endswith(DATA_FILE_SUFFIXES)
    )


@dataclass
class BacklogSync:
    """One CLI sync of a backlog in many loads, shared by the tests that read what it left."""

    checkout: Path
    sim: DeckSimulator
    result: subprocess.CompletedProcess

    def load_ids(self) -> list[str]:
        """dlt's record of the loads, in the warehouse (not in the working folder)."""
        rows = cli_warehouse(self.checkout, self.sim).query(
            "SELECT load_id FROM deck._dlt_loads ORDER BY inserted_at"
        )
        return [row["load_id"] for row in rows]


# Built once per session, whichever xdist worker asks first (support.shared); the tests only
# read it. Its ground truth comes from a simulator of the same seed, never started.
@pytest.fixture(scope="session")
def backlog_sync(tmp_path_factory):
    def build(checkout: Path) -> list:
        sim = make_simulator(seed=32, runs=1_800, history_days=8)
        try:
            # windows of one page, a load per window: more loads than the packages kept
            env = cli_env(checkout, sim, max_runs_per_load=100)
            env["SOURCES__DECK__PAGES_PER_WINDOW"] = "1"
            done = run_main(checkout, env=env)
            return [done.returncode, done.stdout, done.stderr]
        finally:
            sim.stop()

    checkout, (code, stdout, stderr) = shared(tmp_path_factory, "shared-warehouse-backlog", build)
    result = subprocess.CompletedProcess([], code, stdout, stderr)
    return BacklogSync(checkout, DeckSimulator(seed=32, runs=1_800, history_days=8), result)


def test_a_multi_load_sync_keeps_no_data_files_of_loaded_packages(backlog_sync):
    assert backlog_sync.result.returncode == 0, backlog_sync.result.stderr
    assert len(backlog_sync.load_ids()) > 1
    assert data_files(backlog_sync.checkout / "dlt-data" / "pipelines") == []
    assert_matches_ground_truth(
        cli_warehouse(backlog_sync.checkout, backlog_sync.sim), backlog_sync.sim.runs()
    )


def test_only_the_newest_completed_packages_stay_in_the_working_folder(backlog_sync):
    assert backlog_sync.result.returncode == 0, backlog_sync.result.stderr
    loaded = backlog_sync.checkout / "dlt-data" / "pipelines" / PIPELINE / "load" / "loaded"
    kept = sorted(p.name for p in loaded.iterdir() if not p.name.startswith("."))
    load_ids = backlog_sync.load_ids()
    assert len(load_ids) > settings.KEEP_LOADED_PACKAGES
    assert kept == sorted(load_ids[-settings.KEEP_LOADED_PACKAGES:])


# ---- 4: one connection per load -----------------------------------------------------------------


def test_each_load_opens_the_duckdb_file_once_and_loads_every_run(tmp_path, monkeypatch):
    """dlt alone opens (and checkpoints) the file for every job of a load: ~10 a load here. The
    sync opens it once per load step, plus once per load to see that no reader holds it, plus
    its own steps around the loads (restoring state, counting runs, the models)."""
    opened: list[str] = []
    connect = duckdb.connect

    def counted_connect(database: str = ":memory:", *args, **kwargs):
        opened.append(str(database))
        return connect(database, *args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", counted_connect)
    sim = make_simulator(seed=41, runs=600)
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "pipelines", sim)
        result = warehouse.sync(max_runs_per_load=100, page_size=50)
    finally:
        sim.stop()

    assert result.loads >= 5
    assert len([db for db in opened if db == str(warehouse.path)]) <= 2 * result.loads + 4
    assert_matches_ground_truth(warehouse, sim.runs())


@pytest.mark.unit
def test_credentials_that_run_statements_or_only_read_keep_a_connection_per_job():
    from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

    assert shareable(DuckDbCredentials("/tmp/w.duckdb"))
    with_statements = DuckDbCredentials("/tmp/w.duckdb")
    with_statements.statements = ["ATTACH 'other.duckdb' AS other"]
    read_only = DuckDbCredentials("/tmp/w.duckdb")
    read_only.read_only = True
    assert not shareable(with_statements)
    assert not shareable(read_only)
