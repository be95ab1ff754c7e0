"""`kill -9` at any point of a sync, then a rerun: the warehouse is exact, nothing lost or doubled.

The killed CLI is a real process against a simulator in this process (the rerun is the CLI's
`main` in process: `support.cli.run_main`). Every kill lands at a
deterministic point, never at a moment in time: while the N-th request of the sync is in flight
(extract), while the first request after a "Load K committed" log line is in flight (between
loads), or as soon as a package of the sync reaches dlt's `normalize/extracted` (normalize) or
`load/normalized` (load) folder. The simulator holds every request from that point on
(`DeckSimulator.hold`), so the sync cannot finish before the kill: each kill lands by
construction, on a fast machine or a busy one (see `support.kills`).

The killed sync commits in small loads, so that each point lies mid-backfill; the rerun syncs in
loads of the connector's default size, so it finishes the backfill in one load after it resumed
(what a rerun must get right is that first load: the loads after it are those of any backfill).
"""

import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from deck.core.settings import MAX_RUNS_PER_LOAD
from deck_simulator import DeckSimulator
from support import Warehouse, assert_events_match, assert_matches_ground_truth
from support.cli import cli_env, run_main
from support.kills import KillPoint, kill_at


def reader(tmp_path: Path, sim: DeckSimulator) -> Warehouse:
    return Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", sim)


# The killed syncs commit in loads of 400 runs or more (whole windows of ~200 runs, 2 pages).
BACKLOG_RUNS = 1_500


@pytest.fixture
def backlog_sim():
    sim = DeckSimulator(seed=21, runs=BACKLOG_RUNS, history_days=10).start()
    yield sim
    sim.stop()


def rerun_env(tmp_path: Path, sim: DeckSimulator, events: bool = False) -> dict[str, str]:
    """The rerun's environment: the rest of the backfill in one load (see the docstring)."""
    return cli_env(tmp_path, sim, MAX_RUNS_PER_LOAD, events=events)


# A 1,500-run backfill: three or four loads of a window or two, ~26 requests (the key check, pages,
# the probes that find where history starts; open runs are re-checked by the next sync). The
# first load lists its window in its first requests; "Committing after" then lists the windows
# left ahead while dlt normalizes and loads each load. Request 20 is in the listing of the last
# windows; the latest point, "Load 2 committed", leaves one or two loads to go: every point lies
# mid-backfill.
POINTS_OF_A_BACKFILL = [
    KillPoint(request=2),  # the first page of the backfill is in flight
    KillPoint(request=9),  # the first load's window is being listed
    KillPoint(request=17),  # the windows of the next loads are listed ahead
    KillPoint(request=20),  # the last windows of the backfill are being listed
    # while dlt loads the first load and the next windows are listed ahead: none is done yet
    KillPoint(after_log="Committing after"),
    KillPoint(after_log="Load 2 committed"),
    # normalize and load of the second load: the rerun must finish the package, then sync on
    KillPoint(package_in="normalize/extracted", package=2),
    KillPoint(package_in="load/normalized", package=2),
    KillPoint(package_in="load/normalized"),  # a brand-new pipeline killed in its first load
]


@pytest.mark.parametrize("point", POINTS_OF_A_BACKFILL, ids=str)
def test_rerun_after_kill_at_a_point_of_the_backfill_is_exact(tmp_path, backlog_sim, point):
    assert kill_at(tmp_path, backlog_sim, point)
    backlog_sim.advance(3600 * 5, new_runs=120)

    rerun = run_main(tmp_path, env=rerun_env(tmp_path, backlog_sim))

    assert rerun.returncode == 0, rerun.stderr
    assert_matches_ground_truth(reader(tmp_path, backlog_sim), backlog_sim.runs())


# Runs and events together: a kill while events are being listed (runs were listed in the same
# load), between the loads of the events backfill, and in the load of a package holding both.
# 600 runs have ~1,900 events: four loads of at most 600 of each, ~44 requests; the first load
# lists its events in events requests 1..14, and "Load 2 committed" leaves two loads to go.
EVENTS_RUNS = 600
POINTS_WITH_EVENTS = [
    KillPoint(request=3, path="/events"),
    KillPoint(request=12, path="/events"),
    KillPoint(after_log="Load 2 committed"),
    KillPoint(package_in="load/normalized", package=2),
]


@pytest.mark.parametrize("point", POINTS_WITH_EVENTS, ids=str)
def test_rerun_after_kill_during_an_events_backfill_is_exact(tmp_path, point):
    sim = DeckSimulator(seed=22, runs=EVENTS_RUNS, history_days=10).start()
    try:
        assert kill_at(tmp_path, sim, point, max_runs_per_load=EVENTS_RUNS, events=True)
        sim.advance(3600 * 5, new_runs=60)

        rerun = run_main(tmp_path, env=rerun_env(tmp_path, sim, events=True))

        assert rerun.returncode == 0, rerun.stderr
        assert_events_match(reader(tmp_path, sim), sim.events())
        assert_matches_ground_truth(reader(tmp_path, sim), sim.runs())
    finally:
        sim.stop()


def random_kill_points(rng: random.Random, n: int) -> list[KillPoint]:
    """`n` points drawn from the first load or two of a sync: in extract (one of its first
    requests), between its first two loads, in the normalize or the load of its first package."""
    kinds: list[Callable[[], KillPoint]] = [
        lambda: KillPoint(request=rng.randint(1, 4)),
        lambda: KillPoint(after_log="Load 1 committed"),
        lambda: KillPoint(package_in="normalize/extracted"),
        lambda: KillPoint(package_in="load/normalized"),
    ]
    drawn = [kind() for kind in kinds] + [rng.choice(kinds)() for _ in range(n - len(kinds))]
    rng.shuffle(drawn)  # every phase at least once, in a seeded random order
    return drawn


# Loads of one window (~300 runs): the 3,000-run backfill needs ten, each killed sync commits at
# most one (plus a package an earlier kill left), so every killed sync still has two or more
# loads to go and each point is reached before it could finish.
SMALL_LOADS = 100


def test_repeated_kills_at_random_points_then_a_rerun_is_exact(tmp_path):
    sim = DeckSimulator(seed=21, runs=3_000, history_days=10).start()
    try:
        rng = random.Random(5)
        points = random_kill_points(rng, 6)
        for point in points:
            assert kill_at(tmp_path, sim, point, max_runs_per_load=SMALL_LOADS), point
            sim.advance(rng.uniform(60, 3600 * 24), new_runs=rng.randint(0, 150))

        rerun = run_main(tmp_path, env=rerun_env(tmp_path, sim))

        assert rerun.returncode == 0, rerun.stderr
        assert_matches_ground_truth(reader(tmp_path, sim), sim.runs())
    finally:
        sim.stop()


def new_and_resumed(summary: str) -> int:
    """The runs a sync's summary says it loaded new, plus those from an interrupted package."""
    found = re.search(
        r"runs: +([\d,]+) new, [\d,]+ updated(?: \+ ([\d,]+) from an interrupted earlier sync)?",
        summary,
    )
    assert found, summary
    return sum(int(n.replace(",", "")) for n in found.groups() if n)


def test_a_killed_backfill_resumes_from_its_last_committed_window(tmp_path, backlog_sim):
    assert kill_at(tmp_path, backlog_sim, KillPoint(after_log="Load 2 committed"))
    committed = reader(tmp_path, backlog_sim).runs()
    # two loads were committed before the kill: each holds at least 400 runs
    assert len(committed) >= 800
    backlog_sim.clear_requests()

    rerun = run_main(tmp_path, env=rerun_env(tmp_path, backlog_sim))
    assert rerun.returncode == 0, rerun.stderr

    # Loaded again: only what was not committed, fetched anew or taken from a package the kill
    # left. The kill comes once "Load 2 committed" is logged, but the third load's windows may
    # have been listed ahead by then, so on a busy machine that load can be extracted (and its
    # package be in normalize or load) before the kill lands: the rerun then finishes that
    # package ("+ N from an interrupted earlier sync") and fetches the rest. A committed window
    # fetched again would add its ~300 runs; a few runs on window edges may be counted twice.
    reloaded = new_and_resumed(rerun.stdout)
    left = BACKLOG_RUNS - len(committed)
    assert left <= reloaded < left + 100, (
        reloaded,
        len(committed),
    )
    assert_matches_ground_truth(reader(tmp_path, backlog_sim), backlog_sim.runs())


def test_a_sync_after_one_killed_between_extract_and_load_syncs_everything(tmp_path, simulator):
    """dlt's `run` loads leftover packages and then returns without extracting: `sync` must
    notice and go on, or every run after the leftover package would be silently skipped."""
    from deck import deck
    from support import FAST_RETRIES

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
    from deck.warehouse.destination import DestinationTraits
    from deck.warehouse.repairs import remove_copied_run_rows

    simulator.advance(3600 * 24, new_runs=200)
    warehouse.sync()
    [load_id] = [r["load_id"] for r in warehouse.query("SELECT load_id FROM deck._dlt_loads")]
    with duckdb.connect(str(warehouse.path)) as con:  # what the interrupted load left behind
        con.execute("INSERT INTO deck.task_runs SELECT * FROM deck.task_runs LIMIT 37")
    assert warehouse.query("SELECT count(*) AS n FROM deck.task_runs")[0]["n"] == 237

    pipeline = warehouse.pipeline()
    removed = remove_copied_run_rows(pipeline, DestinationTraits.of(pipeline), [load_id])

    assert removed == 37
    assert_matches_ground_truth(warehouse, simulator.runs())


def test_a_package_left_both_normalized_and_extracted_by_a_kill_mid_commit_is_loaded_once(
    tmp_path, simulator
):
    """dlt commits a normalized package by a rename, then deletes its extracted copy; a SIGKILL
    between the two leaves both, and dlt alone would fail every later sync ("Directory not
    empty"). The disk is put in exactly that state: the extracted copy is saved before normalize
    and put back after it."""
    import shutil

    from deck import deck
    from support import FAST_RETRIES

    simulator.advance(3600 * 24, new_runs=100)
    wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", simulator)
    wh.sync()
    simulator.advance(3600 * 24, new_runs=300)
    pipeline = wh.pipeline()
    pipeline.extract(
        deck(api_key=simulator.api_key, base_url=simulator.base_url, events=False, **FAST_RETRIES)
    )
    [load_id] = pipeline.list_extracted_load_packages()
    extracted = Path(pipeline.working_dir) / "normalize" / "extracted" / load_id
    shutil.copytree(extracted, tmp_path / "saved")
    pipeline.normalize()
    shutil.copytree(tmp_path / "saved", extracted)
    assert load_id in pipeline.list_normalized_load_packages()

    result = wh.sync()

    assert result.resumed_runs >= 300 and result.new_runs == 0  # loaded from the package
    assert_matches_ground_truth(wh, simulator.runs())
