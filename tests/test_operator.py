"""What an operator meets at the edges: Ctrl-C and SIGTERM, missing or broken settings, an option
value that would break the models, a table dropped by hand, a sync resumed from leftovers.

The CLI runs against the simulator over real HTTP: as a real process where signals are sent (at
deterministic points: a request the simulator holds, a line the CLI logged), in process
(`support.cli.run_main`) for what it says and the reruns.
"""

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List

import dlt
import duckdb
import pytest
from deck import deck
from deck_simulator import DeckSimulator
from support import FAST_RETRIES, Warehouse, assert_matches_ground_truth
from support.cli import SCRIPT, cli_env, run_cli, run_main
from support.destinations import DestinationWarehouse, make_warehouse

# How long a CLIProcess waits for what a test waits for, and for its exit: only so that a broken
# build cannot hang the suite, not an expectation about speed. Running out of it kills the CLI
# (no process outlives the test) and fails the test saying what never came.
SAFETY_TIMEOUT_S = 60


def reader(tmp_path: Path, sim: DeckSimulator) -> Warehouse:
    """The CLI's default warehouse: deck_task_runs.duckdb in its working directory."""
    return Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", sim)


class CLIProcess:
    """The CLI as a background process whose stderr lines are collected as they come."""

    def __init__(self, tmp_path: Path, sim: DeckSimulator, *args: str, **settings: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            cwd=tmp_path,
            env={**cli_env(tmp_path, sim), **settings},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: List[str] = []
        self.stdout = ""
        self._readers = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader_thread in self._readers:
            reader_thread.start()

    def _read(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))

    def _read_stdout(self) -> None:
        self.stdout = self.proc.stdout.read()  # type: ignore[union-attr]

    def wait_for(self, condition, what: str, timeout: float = SAFETY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"the sync ended before {what}: {self.lines[-5:]}"
            if time.monotonic() >= deadline:
                self.kill()
                pytest.fail(
                    f"never saw {what} within the {timeout:.0f} s safety timeout; the CLI was"
                    f" killed. Its last lines: {self.lines[-5:]}"
                )
            time.sleep(0.005)

    def logged(self, text: str) -> bool:
        return any(text in line for line in list(self.lines))

    def finish(self, timeout: float = SAFETY_TIMEOUT_S) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(
                f"the CLI did not exit within the {timeout:.0f} s safety timeout; it was"
                f" killed. Its last lines: {self.lines[-5:]}"
            )
        self._join_readers()
        return code

    def kill(self) -> None:
        """End the CLI now (SIGKILL) and reap it: nothing is left running after the test."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._join_readers()

    def _join_readers(self) -> None:
        for reader_thread in self._readers:  # the pipes close with the process
            reader_thread.join(timeout=SAFETY_TIMEOUT_S)

    def assert_stopped_with(self, message: str) -> None:
        assert_last_own_line(self.lines, message)


# Lines a dlt worker may log after the CLI's own last line (a log line and a short traceback)
TAIL_LINES = 20
# What the CLI itself writes on stderr: its paragraphs, and its log lines ("12:00:01 INFO ...",
# cli.configure_logging); dlt's own log lines look otherwise ("2026-...|[WARNING]|...")
CLI_OWN_LINE = re.compile(r"Deck sync |\d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def assert_last_own_line(lines: List[str], message: str) -> None:
    """`message` is the CLI's own last line of stderr. A dlt load worker may still log (a line,
    a traceback) after the test released the lock the load waited for, so the message need not
    be the very last line: it is among the last lines, printed once, and nothing the CLI itself
    writes (a paragraph, a log line of its own) comes after it."""
    tail = lines[-TAIL_LINES:]
    assert message in tail, f"{message!r} is not among the last lines: {tail}"
    assert lines.count(message) == 1, lines
    after = lines[lines.index(message) + 1 :]
    assert not [line for line in after if CLI_OWN_LINE.match(line)], after


@pytest.fixture
def backfill_sim():
    """A backfill of five loads at cli_env's max_runs_per_load (400) and windows of 300 runs;
    each rerun is a multi-load backfill (3,000 runs made eight loads, no more situations, and
    each load costs a few seconds)."""
    sim = DeckSimulator(seed=21, runs=2_000, history_days=10, latency=0.005).start()
    yield sim
    sim.stop()


CTRL_C_MESSAGE = (
    "Deck sync interrupted (Ctrl-C). Every load committed before it is kept; the next sync"
    " resumes from there and loses nothing."
)
SIGTERM_MESSAGE = (
    "Deck sync stopped (SIGTERM). Every load committed before it is kept; the next sync"
    " resumes from there and loses nothing."
)


# ---- 11: Ctrl-C and SIGTERM ----------------------------------------------------------------------


def test_ctrl_c_during_a_stalled_read_exits_130_with_a_resume_message(tmp_path, backfill_sim):
    backfill_sim.inject("hang", path="task-runs")  # the first listing never answers
    cli = CLIProcess(tmp_path, backfill_sim)
    cli.wait_for(lambda: backfill_sim.pending_faults() == 0, "the stalled request")

    cli.proc.send_signal(signal.SIGINT)
    code = cli.finish()

    assert code == 130, cli.lines
    assert cli.lines[-1] == CTRL_C_MESSAGE
    assert not any("Deck sync failed" in line for line in cli.lines)
    rerun = run_main(tmp_path, env=cli_env(tmp_path, backfill_sim))
    assert rerun.returncode == 0, rerun.stderr
    assert_matches_ground_truth(reader(tmp_path, backfill_sim), backfill_sim.runs())


def test_sigterm_mid_backfill_exits_143_keeps_committed_loads_and_the_rerun_is_exact(
    tmp_path, backfill_sim
):
    # At 200 runs per load a load holds fewer than 400 runs, and the sync lists ahead fewer than
    # two loads' worth (400) plus one listing (at most a load) per worker: when the first load
    # has committed, at most ~1,200 of the 2,000 runs are listed, so a read made after the
    # fault is set up is certain.
    cli = CLIProcess(
        tmp_path, backfill_sim, SOURCES__DECK__MAX_WORKERS="2",
        SOURCES__DECK__MAX_RUNS_PER_LOAD="200",
    )
    cli.wait_for(lambda: cli.logged("Load 1 committed"), "a committed load")
    backfill_sim.inject("hang", path="task-runs")  # and a read stalls when the signal comes
    cli.wait_for(lambda: backfill_sim.pending_faults() == 0, "the stalled request")

    cli.proc.send_signal(signal.SIGTERM)
    code = cli.finish()

    assert code == 143, cli.lines
    assert cli.lines[-1] == SIGTERM_MESSAGE
    committed = reader(tmp_path, backfill_sim).runs()
    assert len(committed) >= 200  # a committed load holds at least max_runs_per_load runs
    backfill_sim.advance(3600, new_runs=50)
    rerun = run_main(tmp_path, env=cli_env(tmp_path, backfill_sim))
    assert rerun.returncode == 0, rerun.stderr
    assert_matches_ground_truth(reader(tmp_path, backfill_sim), backfill_sim.runs())


# Signals while dlt's load step runs. dlt installs its own handlers of SIGINT and SIGTERM for its
# normalize and load steps; the signal is sent while the load is held at a deterministic point:
# a PostgreSQL table the load needs is locked by the test, and the signal goes once the load's
# statement is seen waiting for that lock (pg_stat_activity). The lock is released right after.


class TableLock:
    """An ACCESS EXCLUSIVE lock on one table of the warehouse, held by the test."""

    def __init__(self, url: str, table: str) -> None:
        import psycopg2

        self.url = url
        self.con = psycopg2.connect(url)
        with self.con.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        self.pid = self.con.get_backend_pid()
        self._watch = psycopg2.connect(url)
        self._watch.autocommit = True

    def blocks_the_load(self) -> bool:
        """Whether one of dlt's load statements (they read the staging dataset) waits for it."""
        with self._watch.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
                " AND query LIKE '%%deck_staging%%'",
                (self.pid,),
            )
            return cur.fetchone()[0] > 0

    def release(self) -> None:
        self.con.rollback()
        self.con.close()
        self._watch.close()


@pytest.fixture
def postgres_cli(tmp_path, postgres_server, backfill_sim):
    """A CLI syncing into a fresh PostgreSQL database: the first sync is done, and new runs
    wait for the next one."""
    url = postgres_server.database_url(postgres_server.create_database())
    env = {**cli_env(tmp_path, backfill_sim), "DESTINATION__POSTGRES__CREDENTIALS": url}
    first = run_main(tmp_path, "--destination", "postgres", env=env)
    assert first.returncode == 0, first.stderr
    backfill_sim.advance(3600, new_runs=30)
    return SimpleNamespace(url=url, env=env, sim=backfill_sim)


def signal_while_dlt_loads(tmp_path: Path, postgres_cli, table: str, signum: int) -> CLIProcess:
    lock = TableLock(postgres_cli.url, table)
    try:
        cli = CLIProcess(tmp_path, postgres_cli.sim, "--destination", "postgres",
                         DESTINATION__POSTGRES__CREDENTIALS=postgres_cli.url)
        cli.wait_for(lock.blocks_the_load, f"dlt's load step waiting for {table}")
        cli.proc.send_signal(signum)
    finally:
        lock.release()
    cli.finish()
    return cli


def test_sigterm_while_dlt_loads_a_package_exits_143_and_says_sigterm(tmp_path, postgres_cli):
    # The staging table: the load has jobs left when the signal comes (dlt logs "Exiting runner
    # due to signal 15"), and the next sync loads the package.
    cli = signal_while_dlt_loads(tmp_path, postgres_cli, "deck_staging.task_runs", signal.SIGTERM)

    assert cli.proc.returncode == 143, cli.lines
    cli.assert_stopped_with(SIGTERM_MESSAGE)
    assert not any("Deck sync failed" in line for line in cli.lines)
    rerun = run_main(tmp_path, "--destination", "postgres", env=postgres_cli.env)
    assert rerun.returncode == 0, rerun.stderr
    reader = DestinationWarehouse(
        "postgres", dlt.destinations.postgres(postgres_cli.url), tmp_path / "reader",
        postgres_cli.sim,
    )
    assert_matches_ground_truth(reader, postgres_cli.sim.runs())


@pytest.mark.parametrize(
    "signum, message, code",
    [(signal.SIGTERM, SIGTERM_MESSAGE, 143), (signal.SIGINT, CTRL_C_MESSAGE, 130)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_during_the_last_job_of_dlts_load_stops_the_sync(
    tmp_path, postgres_cli, signum, message, code
):
    # The merge into deck.task_runs is the package's last job: dlt finishes it and, with no job
    # left, would go on as if no signal had come.
    cli = signal_while_dlt_loads(tmp_path, postgres_cli, "deck.task_runs", signum)

    assert cli.proc.returncode == code, cli.lines
    cli.assert_stopped_with(message)
    assert not any("Deck sync failed" in line for line in cli.lines)
    assert cli.stdout == ""  # no summary: the sync did not complete


DLT_AFTER_THE_LOCK = [  # what a load worker logs once the lock it waited for is released
    "2026-12-07 06:00:00,123|[WARNING]|4242|Thread-3|dlt|load.py|complete_jobs:512|Exiting"
    " runner due to signal 15",
    "Traceback (most recent call last):",
    '  File "load.py", line 1, in run',
    "psycopg2.errors.AdminShutdown: terminating connection",
]


@pytest.mark.unit
@pytest.mark.parametrize(
    "lines, holds",
    [
        (["12:00:01 INFO Progress: ...", SIGTERM_MESSAGE], True),
        (["12:00:01 INFO Progress: ...", SIGTERM_MESSAGE, *DLT_AFTER_THE_LOCK], True),
        ([SIGTERM_MESSAGE, "Deck sync failed: something else"], False),  # another paragraph
        ([SIGTERM_MESSAGE, "12:00:02 INFO Load 3 committed: ..."], False),  # the CLI went on
        ([SIGTERM_MESSAGE, *DLT_AFTER_THE_LOCK * 6], False),  # not among the last lines
        ([SIGTERM_MESSAGE, SIGTERM_MESSAGE], False),  # said twice
        (["12:00:01 INFO Progress: ...", SIGTERM_MESSAGE + "."], False),  # not the exact text
    ],
    ids=["last", "dlt-logged-after", "another-paragraph", "cli-logged-after", "too-far-up",
         "twice", "other-text"],
)
def test_the_clis_last_own_line_may_be_followed_only_by_what_dlt_logs(lines, holds):
    if holds:
        assert_last_own_line(lines, SIGTERM_MESSAGE)
    else:
        with pytest.raises(AssertionError):
            assert_last_own_line(lines, SIGTERM_MESSAGE)


@pytest.mark.parametrize("waiting", ["wait_for", "finish"])
def test_a_safety_timeout_kills_the_cli_and_fails_saying_what_never_came(
    tmp_path, simulator, waiting
):
    simulator.inject("hang", path="test")  # the CLI's first request never answers
    cli = CLIProcess(tmp_path, simulator)

    with pytest.raises(pytest.fail.Exception) as failed:
        if waiting == "wait_for":
            cli.wait_for(lambda: False, "the impossible", timeout=2)
        else:
            cli.finish(timeout=2)

    assert cli.proc.poll() is not None  # killed and reaped: nothing outlives the test
    assert str(failed.value).startswith(
        "never saw the impossible within the 2 s safety timeout; the CLI was killed."
        if waiting == "wait_for"
        else "the CLI did not exit within the 2 s safety timeout; it was killed."
    )


@pytest.mark.unit
@pytest.mark.parametrize(
    "signum, message", [(signal.SIGTERM, SIGTERM_MESSAGE), (signal.SIGINT, CTRL_C_MESSAGE)],
    ids=["SIGTERM", "SIGINT"],
)
def test_a_signal_dlts_handler_turned_into_an_exception_is_reported_as_that_signal(
    signum, message
):
    # Should dlt's own handler catch a signal after all (its SignalReceivedException, a
    # KeyboardInterrupt carrying the signal's number), the message still follows the signal.
    from deck.runtime.signals import interrupt_message, received_signal
    from dlt.common.exceptions import SignalReceivedException

    assert received_signal(SignalReceivedException(signum)) == signum
    assert interrupt_message(received_signal(SignalReceivedException(signum))) == message


# ---- 12: a destination without its settings ---------------------------------------------------


@pytest.fixture
def small_sim():
    sim = DeckSimulator(seed=3, runs=300, history_days=5).start()
    yield sim
    sim.stop()


def key_env(tmp_path: Path, sim: DeckSimulator, **extra: str) -> dict:
    return {"SOURCES__DECK__API_KEY": sim.api_key, "SOURCES__DECK__BASE_URL": sim.base_url, **extra}


@pytest.mark.parametrize(
    "destination, expected",
    [
        (
            "postgres",
            "Deck sync failed: destination postgres is not configured: credentials not set (it"
            " needs database, password, username, host). Set DESTINATION__POSTGRES__CREDENTIALS,"
            " or credentials under [destination.postgres] in .dlt/secrets.toml. See README,"
            ' "Other destinations and scheduling".',
        ),
        (
            "filesystem",
            "Deck sync failed: destination filesystem is not configured: bucket_url not set."
            " Set DESTINATION__FILESYSTEM__BUCKET_URL, or bucket_url under"
            ' [destination.filesystem] in .dlt/secrets.toml. See README, "Other destinations'
            ' and scheduling".',
        ),
    ],
)
def test_a_destination_without_credentials_names_the_missing_setting(
    tmp_path, small_sim, destination, expected
):
    result = run_main(tmp_path, "--destination", destination, env=key_env(tmp_path, small_sim))

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == expected
    assert small_sim.requests == []  # refused before the extract, not after it

    demo = run_main(tmp_path, "--demo", "--destination", destination)
    assert demo.returncode == 2
    assert demo.stderr.strip().splitlines()[-1] == expected


# ---- 13: broken settings files and wrong-typed options ----------------------------------------


def write_settings(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / ".dlt").mkdir(exist_ok=True)
    (tmp_path / ".dlt" / name).write_text(text)


def test_a_malformed_config_toml_is_named_with_its_line(tmp_path, small_sim):
    broken = '[sources.deck]\nmax_runs_per_load = 10\nstart_date = "2026-01-01\n'
    write_settings(tmp_path, "config.toml", broken)

    result = run_cli(tmp_path, env=key_env(tmp_path, small_sim))

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Deck sync failed: .dlt/config.toml, line 3: not valid TOML: Control"
        " characters (codes less than 0x1f and 0x7f) are not allowed in strings, use \\u000a"
        " instead. Fix that line (strings need both quotes, sections look like"
        " [sources.deck]); nothing was synced."
    ]
    assert small_sim.requests == []


def test_a_malformed_secrets_toml_is_named_with_its_line(tmp_path, small_sim):
    write_settings(tmp_path, "config.toml", "[sources.deck]\nmax_workers = 2\n")
    write_settings(tmp_path, "secrets.toml", "[sources.deck]\napi_key = = 3\n")

    result = run_cli(tmp_path, env={"SOURCES__DECK__BASE_URL": small_sim.base_url})

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Deck sync failed: .dlt/secrets.toml, line 2: not valid TOML: Unexpected"
        " character: '='. Fix that line (strings need both quotes, sections look like"
        " [sources.deck]); nothing was synced."
    ]


def test_a_wrong_typed_option_in_config_toml_is_one_paragraph_and_exit_2(tmp_path, small_sim):
    write_settings(tmp_path, "config.toml", '[sources.deck]\n\nmax_runs_per_load = "lots"\n')

    result = run_main(tmp_path, env=key_env(tmp_path, small_sim))

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        "Deck sync failed: max_runs_per_load = 'lots' in .dlt/config.toml, line 3 is not valid:"
        " use a whole number from 1 to 10000000 (default 50000)."
    ]
    assert small_sim.requests == []


def test_a_wrong_typed_option_in_the_environment_names_the_variable(tmp_path, small_sim):
    env = key_env(tmp_path, small_sim, SOURCES__DECK__RATE_LIMIT_PERIOD_S="ten")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Deck sync failed: rate_limit_period_s = 'ten' in environment variable"
        " SOURCES__DECK__RATE_LIMIT_PERIOD_S is not valid: use a number of seconds above 0, up"
        " to 3600 (default 10)."
    )


@pytest.mark.unit
def test_a_wrong_typed_value_that_may_be_a_secret_is_not_echoed():
    from deck.runtime.failures import describe_wrong_type
    from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

    class Credentials:  # a non-numeric hint, as dlt's credential specs are
        pass

    secret_url = "postgresql://u:hunter2@h/db"
    exc = ConfigValueCannotBeCoercedException("credentials", secret_url, Credentials)

    assert describe_wrong_type(exc) == (
        "credentials in the configuration is not Credentials. Fix the value (see the options in"
        " README); nothing was synced."
    )


# ---- 14: max_table_nesting ----------------------------------------------------------------------


def test_max_table_nesting_0_is_refused_because_the_models_need_the_errors_table(
    tmp_path, small_sim
):
    env = key_env(tmp_path, small_sim, SOURCES__DECK__MAX_TABLE_NESTING="0")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Deck sync failed: max_table_nesting = 0 in environment variable"
        " SOURCES__DECK__MAX_TABLE_NESTING is not valid: use a whole number from 1 to 100"
        " (default 2); below 1 each run's `errors` would be stored as JSON in task_runs instead"
        " of the task_runs__errors table, and the SQL models would report no errors."
    )
    assert small_sim.requests == []
    assert not (tmp_path / "deck_task_runs.duckdb").exists()


def test_max_table_nesting_1_keeps_errors_in_their_table_and_the_models_count_them(
    simulator, warehouse
):
    simulator.advance(3600 * 24 * 3, new_runs=400)
    truth = simulator.runs()
    failed_with_errors = [r for r in truth if r.get("errors")]
    assert failed_with_errors  # the seed has runs with errors

    warehouse.sync(max_table_nesting=1)

    assert_matches_ground_truth(warehouse, truth)  # errors included, from task_runs__errors
    counted = warehouse.query("SELECT count(*) AS n FROM deck.task_run_errors")[0]["n"]
    assert counted == sum(len(r["errors"]) for r in failed_with_errors)


# ---- 15: a table dropped by hand -----------------------------------------------------------------


DROPPED_WARNING = (
    "WARNING deck.task_runs is missing from the warehouse (dropped?): reloading all runs from"
    " start_date"
)


def drop_table(path: Path, table: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(f"DROP TABLE deck.{table}")


def test_a_dropped_task_runs_table_is_rebuilt_by_the_next_no_change_sync(tmp_path, small_sim):
    env = key_env(tmp_path, small_sim)
    assert run_main(tmp_path, env=env).returncode == 0
    drop_table(tmp_path / "deck_task_runs.duckdb", "task_runs")

    again = run_main(tmp_path, env=env)

    assert again.returncode == 0, again.stderr
    assert any(line.endswith(DROPPED_WARNING) for line in again.stderr.splitlines()), again.stderr
    assert "300 new, 0 updated (300 in the warehouse)" in again.stdout
    assert_matches_ground_truth(reader(tmp_path, small_sim), small_sim.runs())


def test_a_dropped_errors_table_is_rebuilt_with_every_error(simulator, warehouse):
    simulator.advance(3600 * 24 * 3, new_runs=400)
    warehouse.sync()
    drop_table(warehouse.path, "task_runs__errors")
    simulator.advance(3600 * 6, new_runs=60)

    warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())


def test_full_refresh_recovers_after_a_dropped_table_made_a_load_fail(tmp_path):
    """What users of the earlier version hit: the drop made a load fail and leave a package that
    failed again on every run, --full-refresh included."""
    sim = DeckSimulator(seed=1, runs=300, history_days=5).start()
    try:
        env = key_env(tmp_path, sim)
        assert run_main(tmp_path, env=env).returncode == 0
        drop_table(tmp_path / "deck_task_runs.duckdb", "task_runs")
        sim.advance(3600, new_runs=5)  # new runs that add no column: dlt does not migrate
        pipeline = cli_pipeline(tmp_path)
        with pytest.raises(Exception, match="task_runs does not exist"):
            pipeline.run(deck(api_key=sim.api_key, base_url=sim.base_url, **FAST_RETRIES))
        assert pipeline.has_pending_data  # the failed package, retried (and failing) each run

        result = run_main(tmp_path, "--full-refresh", env=env)

        assert result.returncode == 0, result.stderr
        assert "305 new, 0 updated (305 in the warehouse)" in result.stdout
        assert (
            "WARNING Discarding load packages left by an earlier sync: reloading anyway"
            in result.stderr
        )
        assert_matches_ground_truth(reader(tmp_path, sim), sim.runs())
    finally:
        sim.stop()


def cli_pipeline(tmp_path: Path) -> dlt.Pipeline:
    """The pipeline `run_cli` syncs, opened in this process."""
    return dlt.pipeline(
        pipeline_name="deck_task_runs",
        pipelines_dir=str(tmp_path / "dlt-data" / "pipelines"),
        destination=dlt.destinations.duckdb(str(tmp_path / "deck_task_runs.duckdb")),
        dataset_name="deck",
    )


# ---- 16: runs loaded from an interrupted sync's package are counted ------------------------------


def test_runs_loaded_from_an_interrupted_syncs_package_are_counted(tmp_path, small_sim):
    env = key_env(tmp_path, small_sim)
    assert run_main(tmp_path, env=env).returncode == 0
    before = set(reader(tmp_path, small_sim).runs())
    small_sim.advance(3600 * 24 * 4, new_runs=900)
    pipeline = cli_pipeline(tmp_path)
    # As if killed between normalize and load: a complete package, nothing loaded.
    pipeline.extract(
        deck(api_key=small_sim.api_key, base_url=small_sim.base_url, max_runs_per_load=200,
             pages_per_window=2, **FAST_RETRIES)
    )
    pipeline.normalize()
    in_package = pipeline.last_trace.last_normalize_info.row_counts["task_runs"]
    [package] = pipeline.list_normalized_load_packages()
    assert 0 < in_package < 900

    result = run_main(tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    truth = small_sim.runs()
    runs_line = next(line for line in result.stdout.splitlines() if "runs:" in line)
    new = int(runs_line.split("runs:")[1].split(" new")[0].replace(",", ""))
    updated = int(runs_line.split("new, ")[1].split(" updated")[0].replace(",", ""))
    assert runs_line.strip() == (
        f"runs:     {new:,} new, {updated:,} updated + {in_package:,} from an interrupted earlier"
        " sync"
        f" ({len(truth):,} in the warehouse)"
    )
    # The package may hold a newer version of a run loaded before it (the lookback re-reads the
    # newest runs): that one is neither new nor missing.
    rows = reader(tmp_path, small_sim).runs()
    in_package_before = {rid for rid in before if rows[rid]["_dlt_load_id"] == package}
    assert len(before) + new + in_package - len(in_package_before) == len(truth)
    assert_matches_ground_truth(reader(tmp_path, small_sim), truth)


def test_a_table_dropped_on_postgres_with_its_views_is_rebuilt(
    tmp_path, simulator, request, caplog
):
    """PostgreSQL refuses to drop a table the model views read, so an analyst drops it with
    CASCADE; the next sync must rebuild the table and the views."""
    server = request.getfixturevalue("postgres_server")
    wh = make_warehouse("postgres", tmp_path, simulator, server)
    simulator.advance(3600 * 24, new_runs=300)
    wh.sync()
    with wh.pipeline().sql_client() as client:
        client.execute_sql(f"DROP TABLE {client.make_qualified_table_name('task_runs')} CASCADE")

    with caplog.at_level("WARNING", logger="deck"):
        result = wh.sync()

    assert (
        "deck.task_runs is missing from the warehouse (dropped?): reloading all runs from"
        " start_date" in caplog.messages
    )
    assert result.new_runs == len(simulator.runs()) == 300
    assert len(result.models) == 7  # the four run models and the three event models
    assert_matches_ground_truth(wh, simulator.runs())
