"""This machine's disk at fault: a read-only folder, a full disk. The CLI fails with the one
paragraph README's Troubleshooting documents (what happened, where, what to do), no traceback,
and leaves nothing half-written: once the fault is fixed, the next sync loads exactly Deck's runs.

The faults are real (tests/support/disks.py): a read-only bind mount (EROFS, which binds root
too, unlike a file mode) and a small tmpfs filled up (ENOSPC), inside a private mount namespace
that the CLI runs in. Outside that namespace the folders stay writable, which is how a fault is
"fixed" for the read-only cases; the full disk is freed by deleting the file that filled it.
"""

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deck.warehouse.local_faults import (
    READ,
    WRITE,
    LocalPlaces,
    StorageFault,
    describe,
    raise_for_storage_fault,
    storage_fault,
)
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


# ---- CI's preflight: the mount namespace these tests need ---------------------------------------

CHECK = ROOT / ".ci" / "check-mount-namespace.sh"


def test_ci_preflight_passes_where_these_tests_can_make_their_faults(namespace):
    done = subprocess.run(["bash", str(CHECK)], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr


def test_without_a_mount_namespace_ci_fails_first_saying_what_it_must_provide(tmp_path):
    """A container without CAP_SYS_ADMIN, or a kernel without unprivileged user namespaces:
    unshare refuses (faked here by an unshare that does)."""
    fake = tmp_path / "bin"
    fake.mkdir()
    unshare = fake / "unshare"
    unshare.write_text(
        '#!/bin/sh\necho "unshare: unshare failed: Operation not permitted" >&2\nexit 1\n'
    )
    unshare.chmod(0o755)
    path = f"{fake}{os.pathsep}{os.environ['PATH']}"

    done = subprocess.run(["bash", str(CHECK)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": path})

    assert done.returncode == 1
    first, *rest = done.stderr.splitlines()
    assert re.fullmatch(
        r"check-mount-namespace: `unshare --mount --propagation private( --user"
        r" --map-root-user)?` with a read-only bind mount and a tmpfs inside failed: unshare:"
        r" unshare failed: Operation not permitted",
        first,
    ), first
    assert rest[1] == "disk, and CI=true fails a skipped test. CI must provide:"
    assert "CAP_SYS_ADMIN" in done.stderr and "unprivileged" in done.stderr


# ---- which fault a message is, and how it is worded (pure) -------------------------------------

WAREHOUSE = "/srv/deck/warehouse.duckdb"
DUCKDB_PLACES = LocalPlaces("/srv/dlt-data/pipelines/deck_task_runs", WAREHOUSE)
POSTGRES_PLACES = LocalPlaces("/srv/dlt-data/pipelines/deck_task_runs")  # no local warehouse
POSTGRES_FULL = (
    'could not extend file "base/16384/16397": No space left on device\n'
    "HINT:  Check free disk space."
)


def wrapped(message: str) -> Exception:
    """A database error as dlt raises it: its text, with the driver's error as the cause."""
    try:
        try:
            raise RuntimeError(message)
        except RuntimeError as driver:
            raise Exception(f"Job for task_runs failed terminally: {driver}") from driver
    except Exception as exc:
        return exc


@pytest.mark.unit
@pytest.mark.parametrize("places", [POSTGRES_PLACES, DUCKDB_PLACES], ids=["postgres", "duckdb"])
def test_a_servers_full_disk_is_not_taken_for_this_machines(places):
    """PostgreSQL words its full disk as DuckDB does, but the file it names is on the server:
    not the disk of the pipeline's working folder here."""
    assert storage_fault(wrapped(POSTGRES_FULL), places) is None
    raise_for_storage_fault(wrapped(POSTGRES_FULL), places)  # nothing raised: dlt's paragraph


@pytest.mark.unit
@pytest.mark.parametrize(
    "message, code, filename",
    [
        (f'IO Error: Could not write file "{WAREHOUSE}.wal": No space left on device',
         errno.ENOSPC, f"{WAREHOUSE}.wal"),
        (f'IO Error: Cannot open file "{WAREHOUSE}": Read-only file system',
         errno.EROFS, WAREHOUSE),
        ('IO Error: Cannot open database "/srv/deck": Permission denied', errno.EACCES,
         "/srv/deck"),
    ],
    ids=["wal-full", "read-only", "folder"],
)
def test_duckdbs_message_about_the_warehouse_is_a_local_fault(message, code, filename):
    assert storage_fault(wrapped(message), DUCKDB_PLACES) == StorageFault(
        code, os.strerror(code), filename, WRITE
    )
    assert storage_fault(wrapped(message), POSTGRES_PLACES) is None  # not this sync's file
    assert storage_fault(wrapped(message.replace("/srv/deck", "/elsewhere")), DUCKDB_PLACES) is None


@pytest.mark.unit
def test_a_permission_refused_on_a_file_the_user_cannot_read_is_a_read(monkeypatch, tmp_path):
    settings = tmp_path / "secrets.toml"
    settings.write_text("")
    monkeypatch.setattr(os, "access", lambda path, mode, **_: mode != os.R_OK)  # mode 0200
    refused = PermissionError(errno.EACCES, "Permission denied", str(settings))

    assert storage_fault(refused).refused == READ
    # a file that is not there was being created: a write; so is any read-only or full disk
    missing = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "new"))
    assert storage_fault(missing).refused == WRITE
    assert storage_fault(OSError(errno.EROFS, "x", str(settings))).refused == WRITE


@pytest.mark.unit
def test_a_refused_read_is_worded_as_one():
    def said(filename, refused, places=DUCKDB_PLACES):
        return describe(StorageFault(errno.EACCES, "Permission denied", filename, refused), places)

    assert said("/home/u/.dlt/secrets.toml", READ) == (
        "cannot read /home/u/.dlt/secrets.toml: Permission denied. Make it readable by the user"
        " running the sync (settings such as .dlt/secrets.toml are read at every sync) and run"
        " the sync again." + RESUMES.rstrip("\n")
    )
    assert said("/home/u/.dlt/secrets.toml", WRITE).startswith(
        "cannot write /home/u/.dlt/secrets.toml: Permission denied. Make it writable"
    )
    state = f"{DUCKDB_PLACES.working_dir}/state.json"
    assert said(state, READ).startswith(
        f"cannot read {state} in the pipeline's working folder {DUCKDB_PLACES.working_dir}:"
        " Permission denied. The sync keeps its state, load packages and lock there (under"
        " DLT_DATA_DIR), so they must be readable and writable by the user running the sync"
    )
    assert said(WAREHOUSE, READ).startswith(
        f"cannot read the warehouse {WAREHOUSE}: Permission denied. DuckDB reads and writes"
    )
    assert said(WAREHOUSE, WRITE).startswith(f"cannot write the warehouse {WAREHOUSE}:")
