"""This machine's disk at fault: a read-only folder, a full disk. The CLI fails with the one
paragraph README's Troubleshooting documents (what happened, where, what to do), no traceback,
and leaves nothing half-written: once the fault is fixed, the next sync loads exactly Deck's runs.

The faults are real (tests/support/disks.py): a read-only bind mount (EROFS, which binds root
too, unlike a file mode) and a small tmpfs filled up (ENOSPC), inside a private mount namespace
that the CLI runs in. Outside that namespace the folders stay writable, which is how a fault is
"fixed" for the read-only cases; the full disk is freed by deleting the file that filled it.
"""

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from support import Warehouse, assert_matches_ground_truth, make_simulator
from support.cli import ROOT, SCRIPT, cli_env, run_main, without_timer_lines
from support.disks import MountNamespace, MountNamespaceUnavailable, fill

RESUMES = (
    " Nothing was half-loaded: the loads committed before are kept and the next sync resumes"
    " from there.\n"
)
WORKING_FOLDER = "dlt-data/pipelines/deck_task_runs"
UNFINISHED = re.compile(r"[0-9a-f]{16}")  # dlt's temporary name for a file it is writing


@pytest.fixture
def sim():
    simulator = make_simulator(seed=4, runs=300, history_days=3)
    yield simulator
    simulator.stop()


@pytest.fixture
def namespace():
    try:
        space = MountNamespace()
    except MountNamespaceUnavailable as exc:
        pytest.skip(f"a read-only folder or a small disk needs a private mount namespace: {exc}")
    yield space
    space.close()


def run_inside(space: MountNamespace, checkout: Path, env: dict[str, str]):
    """The CLI as `support.cli.run_cli` runs it, inside the namespace with the faulty folder."""
    done = space.run(
        [sys.executable, str(SCRIPT)], cwd=checkout, env=env, capture_output=True, text=True,
        timeout=180,
    )
    done.stderr = without_timer_lines(done.stderr)  # a busy machine's timing, not the code's
    return done


def warehouse_at(path: Path, sim) -> Warehouse:
    return Warehouse(path, path.parent / "unused-pipelines", sim)


# ---- a read-only warehouse folder --------------------------------------------------------------


@pytest.mark.parametrize("earlier_sync", [True, False], ids=["later-sync", "first-sync"])
def test_a_read_only_warehouse_folder_is_one_paragraph_and_once_writable_the_sync_loads_decks_runs(
    tmp_path, sim, namespace, earlier_sync
):
    data = tmp_path / "data"
    data.mkdir()
    env = cli_env(tmp_path, sim)
    env["DESTINATION__DUCKDB__CREDENTIALS"] = str(data / "warehouse.duckdb")
    if earlier_sync:
        assert run_main(tmp_path, env=env).returncode == 0
        sim.advance(3600, new_runs=100)
    namespace.make_read_only(data)

    failed = run_inside(namespace, tmp_path, env)
    fixed = run_main(tmp_path, env=env)

    assert failed.returncode == 1
    assert failed.stderr == (
        "Deck sync failed: cannot write the warehouse data/warehouse.duckdb: Read-only file system."
        " DuckDB writes the file and a .wal file beside it, so its folder data must be writable"
        " by the user running the sync. Make it writable, or point"
        " DESTINATION__DUCKDB__CREDENTIALS at a file in a writable folder, and run the sync"
        " again." + RESUMES
    )
    assert fixed.returncode == 0, fixed.stderr
    assert_matches_ground_truth(warehouse_at(data / "warehouse.duckdb", sim), sim.runs())


# ---- a read-only DLT_DATA_DIR ------------------------------------------------------------------


@pytest.mark.parametrize("earlier_sync", [True, False], ids=["later-sync", "first-sync"])
def test_a_read_only_data_dir_is_one_paragraph_and_once_writable_the_sync_loads_decks_runs(
    tmp_path, sim, namespace, earlier_sync
):
    env = cli_env(tmp_path, sim)
    (tmp_path / "dlt-data").mkdir()
    if earlier_sync:
        assert run_main(tmp_path, env=env).returncode == 0
        sim.advance(3600, new_runs=100)
    namespace.make_read_only(tmp_path / "dlt-data")

    failed = run_inside(namespace, tmp_path, env)
    fixed = run_main(tmp_path, env=env)

    assert failed.returncode == 1
    assert failed.stderr == (
        f"Deck sync failed: cannot write the pipeline's working folder {WORKING_FOLDER}:"
        " Read-only file system. The sync keeps its state, load packages and lock there (under"
        " DLT_DATA_DIR), so it must be writable by the user running the sync. Make it writable,"
        " or point DLT_DATA_DIR at a writable folder (the sync then restores its state from the"
        " warehouse), and run the sync again." + RESUMES
    )
    assert fixed.returncode == 0, fixed.stderr
    assert_matches_ground_truth(warehouse_at(tmp_path / "deck_task_runs.duckdb", sim), sim.runs())


# ---- a full disk -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "free_kb",
    [0, 1024],
    # 0: the first write of the sync fails (extract); 1 MB: the load step fails, its workers'
    # tracebacks logged by dlt
    ids=["no-space-at-all", "space-for-the-extract"],
)
def test_a_full_disk_is_one_paragraph_and_once_space_is_freed_the_sync_loads_decks_runs(
    tmp_path, sim, namespace, free_kb
):
    checkout = tmp_path / "disk"  # the whole checkout: warehouse and DLT_DATA_DIR
    env = cli_env(checkout, sim)
    namespace.small_disk(checkout, size_kb=8192)
    disk = namespace.path(checkout)  # the small disk as this process sees it
    (disk / ".dlt").mkdir()
    shutil.copyfile(ROOT / ".dlt" / "config.toml", disk / ".dlt" / "config.toml")
    assert run_inside(namespace, checkout, env).returncode == 0
    sim.advance(3600, new_runs=200)
    filler = fill(disk, leave_kb=free_kb)

    failed = run_inside(namespace, checkout, env)
    os.remove(filler)
    fixed = run_inside(namespace, checkout, env)

    assert failed.returncode == 1
    assert failed.stderr == (
        f"Deck sync failed: the disk holding the pipeline's working folder {WORKING_FOLDER} and"
        " the warehouse deck_task_runs.duckdb is full (No space left on device). Free some space"
        " on it and run the sync again." + RESUMES
    )
    assert fixed.returncode == 0, fixed.stderr
    copy = tmp_path / "copy.duckdb"  # DuckDB resolves /proc/<pid>/root: read a copy
    for suffix in ("", ".wal"):
        if (disk / f"deck_task_runs.duckdb{suffix}").exists():
            shutil.copyfile(disk / f"deck_task_runs.duckdb{suffix}", f"{copy}{suffix}")
    assert_matches_ground_truth(warehouse_at(copy, sim), sim.runs())
    leftovers = [p.name for p in (disk / WORKING_FOLDER).iterdir() if UNFINISHED.fullmatch(p.name)]
    assert leftovers == []  # the temporary files of dlt's writes that the full disk cut short
