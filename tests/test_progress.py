"""A long sync as a user watches it: progress lines (no terminal), the live display (a terminal),
the summary's try line, dlt's trace, and `max_runs_per_load` as an upper bound per load.

The CLI runs against the simulator over real HTTP into a real DuckDB file (a real process where a
terminal or dlt's own commands are involved, in process otherwise: `support.cli.run_main`);
counts are checked against the simulator's runs and request log and against the rows each load
left in the warehouse, never against the numbers the code under test computed.
"""

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections import Counter
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path

import duckdb
import pytest
from deck_simulator import DeckSimulator
from support import Warehouse, assert_matches_ground_truth, make_simulator
from support.cli import SCRIPT, cli_env, run_main
from support.shared import shared

RUNS = 3_200
MAX_RUNS_PER_LOAD = 1_000
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
LOAD_LINE = re.compile(r"INFO Load (\d+) committed: runs ([\d,]+)[ ;,]")
PROGRESS_LINE = re.compile(r"INFO (?:Progress|Load \d+ committed): runs ([\d,]+)[ ;,]")
LISTED = re.compile(r"; listed runs (.+?); ")
RANGE = re.compile(r"(start|\d{4}-\d\d-\d\d \d\d:\d\d)\.\.(now|\d{4}-\d\d-\d\d \d\d:\d\d)")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def rows_per_load(database: Path, table: str = "task_runs") -> list[int]:
    """Rows of `table` each load left, in the order the loads were committed (every load)."""
    with duckdb.connect(str(database), read_only=True) as con:
        loads = con.execute("SELECT load_id FROM deck._dlt_loads ORDER BY 1").fetchall()
        counts = dict(
            con.execute(f"SELECT _dlt_load_id, count(*) FROM deck.{table} GROUP BY 1").fetchall()
        )
    return [counts.get(load, 0) for (load,) in loads]


# Built once per session, whichever xdist worker asks first (support.shared); the tests only read
# it. Its ground truth comes from a simulator of the same seed, never started.
@pytest.fixture(scope="session")
def backfill(tmp_path_factory):
    """One multi-load backfill through the CLI without a terminal (stderr is a pipe)."""

    def build(tmp_path: Path) -> list:
        sim = make_simulator(seed=5, runs=RUNS, history_days=20)
        try:
            env = cli_env(tmp_path, sim, max_runs_per_load=MAX_RUNS_PER_LOAD)
            done = run_main(tmp_path, env=env, progress=True)
            return [done.returncode, done.stdout, done.stderr]
        finally:
            sim.stop()

    tmp_path, (code, stdout, stderr) = shared(tmp_path_factory, "progress-backfill", build)
    result = subprocess.CompletedProcess([], code, stdout, stderr)
    assert result.returncode == 0, result.stderr
    return tmp_path, DeckSimulator(seed=5, runs=RUNS, history_days=20), result


# ---- 4. progress without a terminal: cumulative log lines --------------------------------------


def test_each_committed_load_logs_the_runs_of_the_whole_sync_so_far(backfill):
    tmp_path, sim, result = backfill
    lines = [(number(n), number(runs)) for n, runs in LOAD_LINE.findall(result.stderr)]

    loaded = list(accumulate(rows_per_load(tmp_path / "deck_task_runs.duckdb")))

    assert loaded[-1] == len(sim.runs())
    # every load but the last logs a line (the summary follows the last one)
    assert lines == [(i + 1, total) for i, total in enumerate(loaded[:-1])]
    assert len(lines) >= 2


def test_progress_lines_never_count_backwards(backfill):
    _, _, result = backfill
    counts = [number(runs) for runs in PROGRESS_LINE.findall(result.stderr)]

    assert counts == sorted(counts) and counts


def test_progress_lines_name_what_was_listed_oldest_first(backfill):
    _, _, result = backfill
    listed = LISTED.findall(result.stderr)
    assert listed

    for ranges in listed:
        bounds = []
        for start, end in RANGE.findall(ranges):
            bounds += [
                datetime.min if start == "start" else datetime.fromisoformat(start),
                datetime.max if end == "now" else datetime.fromisoformat(end),
            ]
        assert bounds and bounds == sorted(bounds), ranges


def test_from_the_first_load_each_line_sizes_the_history_and_says_what_is_left(backfill):
    """From the first load on, the history is sized: each line says how many requests of about
    how many, and what is left: an ETA, or that it is still measuring the rate (a first load
    can commit within the rate's first second), or that everything is listed and it is loading
    (the producer lists ahead of the loads). Never that it is still looking for the start."""
    _, _, result = backfill
    lines = [line for line in result.stderr.splitlines() if LOAD_LINE.search(line)]

    assert len(lines) > 1
    for line in lines:
        assert re.search(r"; requests [\d,]+ of ~[\d,]+( at [\d.]+/s)?, 0 retries,", line), line
    for line in lines[:-1]:
        assert re.search(
            r"; (ETA \d+:\d\d:\d\d|ETA not known yet \(measuring the rate\)"
            r"|everything listed; loading); continuing$",
            line,
        ), line


# ---- 5. the summary and dlt's trace ------------------------------------------------------------


def test_the_try_line_works_as_printed_and_counts_the_runs_by_status(backfill):
    tmp_path, sim, result = backfill
    command = result.stdout.split("  try:      ", 1)[1].splitlines()[0]

    shown = subprocess.run(
        command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert shown.returncode == 0, shown.stderr
    table = {
        cells[0]: int(cells[1])
        for row in shown.stdout.splitlines()
        if len(cells := [c.strip() for c in row.split("│") if c.strip()]) == 2
        and cells[1].isdigit()
    }
    assert table == dict(Counter(run["status"] for run in sim.runs()))


def test_dlt_pipeline_trace_shows_every_load_of_the_sync(backfill):
    tmp_path, sim, _ = backfill
    dlt_cli = Path(sys.executable).with_name("dlt")

    shown = subprocess.run(
        [str(dlt_cli), "pipeline", "deck_task_runs", "trace"],
        cwd=tmp_path,
        env={**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt-data")},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert shown.returncode == 0, shown.stderr
    normalized = [int(n) for n in re.findall(r"^- task_runs: (\d+) row\(s\)$", shown.stdout, re.M)]
    assert sum(normalized) == len(sim.runs())
    loads = rows_per_load(tmp_path / "deck_task_runs.duckdb")
    assert normalized == [n for n in loads if n]


# ---- 6c. max_runs_per_load bounds every load -----------------------------------------------------


# 1,000 runs (one load) and ~3,100 events (three loads)
BOUNDED_RUNS = 1_000


@pytest.mark.parametrize("order", ["newest_first", "oldest_first"])
def test_every_load_but_the_last_holds_max_runs_per_load_and_none_twice_that(tmp_path, order):
    sim = make_simulator(seed=9, runs=BOUNDED_RUNS, history_days=12, order=order)
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim, with_events=True)

        result = warehouse.sync(max_runs_per_load=MAX_RUNS_PER_LOAD)  # default 25-page windows

        runs = rows_per_load(warehouse.path)
        events = rows_per_load(warehouse.path, "task_run_events")
        for per_load in (runs, events):  # loads take whole windows until they hold the max
            holding = [n for n in per_load if n]
            assert all(n >= MAX_RUNS_PER_LOAD for n in holding[:-1]), per_load
            assert max(holding) < 2 * MAX_RUNS_PER_LOAD, per_load
        assert sum(runs) == BOUNDED_RUNS and len([n for n in events if n]) >= 2
        assert result.loads == len(runs)
        assert_matches_ground_truth(warehouse, sim.runs())
    finally:
        sim.stop()


# ---- 4. progress on a terminal: the live display ------------------------------------------------


def run_on_a_terminal(tmp_path: Path, env: dict) -> tuple[int, str, str]:
    """The CLI with stderr on a pseudo-terminal (120 columns) and stdout on a pipe: returns the
    exit code, stdout, and everything the terminal received."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT)],
        cwd=tmp_path,
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120", "PYTHONIOENCODING": "utf-8"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=terminal,
    )
    os.close(terminal)
    received = bytearray()
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal's last descriptor
            break
        if not chunk:
            break
        received += chunk
    stdout = proc.stdout.read().decode()  # type: ignore[union-attr]
    os.close(controller)
    return proc.wait(), stdout, received.decode("utf-8", "replace")


def test_on_a_terminal_the_live_display_ends_showing_the_syncs_totals(tmp_path):
    sim = make_simulator(seed=6, runs=2_500, history_days=10)
    try:
        code, stdout, screen = run_on_a_terminal(
            tmp_path, cli_env(tmp_path, sim, max_runs_per_load=MAX_RUNS_PER_LOAD)
        )
        requests = len(sim.requests)
        runs = len(sim.runs())
        oldest = min(datetime.fromisoformat(r["created_at"].replace("Z", "+00:00"))
                     for r in sim.runs())
    finally:
        sim.stop()

    assert code == 0, screen
    text = ANSI.sub("", screen).replace("\r", "\n")
    final = text[text.rindex("Deck sync") :]
    loads = len(rows_per_load(tmp_path / "deck_task_runs.duckdb"))
    assert re.match(r"Deck sync ━+ 100%  done in \d+:\d\d:\d\d\n", final), final
    assert f"  runs {runs:,}\n" in final
    assert re.search(
        rf"  requests {requests:,} \([\d.]+/s\) \| retries 0 \| answered 429 0"
        rf" \| loads committed {loads}\n",
        final,
    ), final
    # from where the history was found to start (at most 1/64 of its ten days below its oldest run)
    listed_from = re.search(r"  listed runs (\d{4}-\d\d-\d\d \d\d:\d\d)\.\.now\n", final)
    assert listed_from, final
    start = datetime.fromisoformat(listed_from.group(1)).replace(tzinfo=timezone.utc)
    assert oldest - timedelta(days=10 / 64 + 1 / 1440) <= start <= oldest
    assert "Progress:" not in text and "committed: runs" not in text  # no log lines on a tty
    assert f"{runs:,} new" in stdout
