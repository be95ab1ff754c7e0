"""The pipeline's working folder: its lock, a check that dlt can read it, and its reset.

dlt keeps a pipeline's state in two places: `state.json` (and the schemas in `schemas/`) in the
working folder under DLT_DATA_DIR, and a copy committed with every load in the warehouse's
`_dlt_pipeline_state` table (restored from there when the folder is missing). A damaged folder
-- `state.json` cut short or overwritten, a schema file deleted, a value of the connector's state
that does not parse -- used to fail every sync with a message about something else (dlt's
reading errors came out as "destination 'None' cannot be used", a bad watermark as "Invalid
isoformat string"). `check_working_folder` reads the folder the way dlt does before dlt is
asked to, and names the file; `check_saved_state` reads the connector's own values.

The way out is `--reset-state` (`reset_working_folder`, then `sync(..., reset_state=True)`): the
folder is emptied, the state the warehouse keeps is restored and the connector's part of it is
dropped there too (dlt's own `drop --state-only`), the tables are kept, and the sync lists every
run again, merging by id: one row per run, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlt

from deck.core.errors import DeckError, causes
from deck.core.shown import shown_path
from deck.core.state import ListingState, SavedStateError, TaskRunState

logger = logging.getLogger("deck")

LOCK_FILE = "deck-sync.lock"
STATE_FILE = "state.json"
SOURCE = "deck"
# How each resource's state is read (the resources of the `deck` source, by name)
STATE_READERS: dict[str, type[ListingState]] = {
    "task_runs": TaskRunState,
    "task_run_events": ListingState,
}


class DeckSyncLockedError(DeckError):
    """Another process is syncing the same pipeline."""


class DamagedWorkingFolderError(DeckError):
    """The pipeline's working folder holds something neither dlt nor the connector can read."""


def working_dir_of(pipeline_name: str, pipelines_dir: str | None = None) -> str:
    """Where dlt keeps `pipeline_name`'s working folder (dlt's default pipelines folder,
    DLT_DATA_DIR/pipelines, unless `pipelines_dir` is given)."""
    if pipelines_dir is None:
        from dlt.common.pipeline import get_dlt_pipelines_dir

        pipelines_dir = get_dlt_pipelines_dir()
    return os.path.join(pipelines_dir, pipeline_name)


# ---- the sync lock -----------------------------------------------------------------------------

_held: dict[str, int] = {}  # working folders this process holds the lock of -> holding thread


@contextmanager
def folder_lock(working_dir: str, pipeline_name: str) -> Iterator[None]:
    """One sync per pipeline at a time: two would race on the same state and load packages.

    The lock is an advisory `flock` on `deck-sync.lock` in the working folder, released by the
    kernel when the process ends however it ends (kill -9 included), so it never needs cleaning
    up. The thread holding it may take it again (the CLI holds it across `--reset-state` and
    the sync); another thread or process gets DeckSyncLockedError.
    """
    key = os.path.abspath(working_dir)
    if _held.get(key) == threading.get_ident():
        yield
        return
    os.makedirs(working_dir, exist_ok=True)
    path = os.path.join(working_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        try:
            _lock_exclusively(handle)
        except (BlockingIOError, PermissionError):
            handle.seek(0)
            holder = handle.read().strip() or "?"
            raise DeckSyncLockedError(
                f"Another sync of pipeline '{pipeline_name}' is running (pid {holder},"
                f" lock {path}). This run did nothing; let the other one finish, or schedule"
                " syncs so that they do not overlap."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        _held[key] = threading.get_ident()
        try:
            yield
        finally:
            _held.pop(key, None)
    finally:
        handle.close()


def _lock_exclusively(handle: Any) -> None:
    """Take an exclusive, non-blocking lock on an open file (BlockingIOError when held).

    `fcntl` exists only on POSIX, so it is imported here (`import deck` works on Windows, where
    `msvcrt` locks instead and raises PermissionError when the lock is held).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        return
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


# ---- damage: found, named, and the way out -----------------------------------------------------


def damaged(
    working_dir: str, problem: str, *, restored: bool = False
) -> DamagedWorkingFolderError:
    """The paragraph after "Deck sync failed: " for a damaged working folder, or (`restored`)
    for a damaged state that dlt restored from the warehouse into a missing folder."""
    where = (
        "the pipeline's saved state that dlt restored from the warehouse (table"
        " _dlt_pipeline_state) is damaged"
        if restored
        else f"the pipeline's working folder {shown_path(working_dir)} is damaged"
    )
    return DamagedWorkingFolderError(
        f"{where}: {problem}. The warehouse's tables are not affected. Run the sync once with"
        " --reset-state: it empties the working folder and takes the saved state back from the"
        " warehouse; the state of a resource that cannot be read there either is forgotten, and"
        " that resource lists everything again and merges it (still one row per run). Every"
        " table is kept."
    )


def check_working_folder(working_dir: str, skip: tuple[str, ...] = ()) -> None:
    """Read the folder as dlt will (state.json, the schemas it names) and the connector's saved
    state in it (but that of the resources in `skip`, as `check_saved_state`); raise
    DamagedWorkingFolderError naming the first file that cannot be read. A missing folder or
    state.json is not damage: dlt starts over or restores the warehouse's."""
    state_path = os.path.join(working_dir, STATE_FILE)
    if not os.path.isfile(state_path):
        return
    from dlt.common.versioned_state import json_decode_state
    from dlt.pipeline.state_sync import migrate_state_to_current

    try:
        with open(state_path, "rb") as handle:
            text = handle.read().decode("utf-8")
        state = migrate_state_to_current(os.path.basename(working_dir), json_decode_state(text))
        names = list(state.get("schema_names") or [])
    except OSError:
        raise  # not damage: a folder it may not read (local_faults says so)
    except Exception as exc:
        logger.debug("Reading %s: %s", state_path, exc)
        raise damaged(working_dir, f"{STATE_FILE} is not a pipeline state dlt can read") from exc
    for name in names:
        problem = _schema_problem(working_dir, name)
        if problem is not None:
            raise damaged(working_dir, problem)
    check_saved_state(state, working_dir, skip)


def _schema_problem(working_dir: str, name: str) -> str | None:
    """Why dlt could not load schema `name` from the folder (None: it can)."""
    from dlt.common.json import json
    from dlt.common.schema import Schema
    from dlt.common.schema.utils import verify_schema_hash

    relative = os.path.join("schemas", f"{name}.schema.json")
    path = os.path.join(working_dir, relative)
    if not os.path.isfile(path):
        return f"{relative} is missing ({STATE_FILE} names the schema '{name}')"
    try:
        with open(path, "rb") as handle:
            stored = json.loads(handle.read().decode("utf-8"))
        if not verify_schema_hash(stored, verifies_if_not_migrated=True):
            return f"{relative} was changed after dlt wrote it"
        Schema.from_dict(stored, validate_schema=False)
    except OSError:
        raise
    except Exception as exc:
        logger.debug("Reading %s: %s", path, exc)
        return f"{relative} is not a schema dlt can read"
    return None


def check_saved_state(state: Any, working_dir: str, skip: tuple[str, ...] = ()) -> None:
    """Read the connector's saved state of each resource (but those in `skip`, whose state is
    about to be dropped) from a pipeline state; DamagedWorkingFolderError names the value."""
    sources = state.get("sources") if isinstance(state, dict) else None
    resources = ((sources or {}).get(SOURCE) or {}).get("resources") or {}
    for name, reader in STATE_READERS.items():
        if name in resources and name not in skip:
            try:
                reader.load(resources[name])
            except SavedStateError as exc:
                raise damaged(working_dir, state_problem(name, exc)) from exc


def state_problem(resource: str, exc: SavedStateError, *, restored: bool = False) -> str:
    """What cannot be read, for `damaged`: in state.json, or (`restored`) in the state dlt
    restored from the warehouse."""
    if restored:
        return f"its state of {resource} cannot be read: {exc}"
    return f"the saved state of {resource} in {STATE_FILE} cannot be read: {exc}"


def saved_state_error(exc: BaseException) -> tuple[str, SavedStateError] | None:
    """The resource and the SavedStateError behind a failed load (dlt wraps what a resource
    raised in its own exceptions), or None."""
    chain = list(causes(exc))
    error = next((e for e in chain if isinstance(e, SavedStateError)), None)
    if error is None:
        return None
    names = (getattr(e, "pipe_name", None) or getattr(e, "resource_name", None) for e in chain)
    resource = next((name for name in names if name), None)
    return str(resource or "a resource"), error


# ---- --reset-state -----------------------------------------------------------------------------


def reset_working_folder(working_dir: str) -> list[str]:
    """Empty the working folder but its lock (the caller holds it, `folder_lock`); return what
    was removed. dlt then finds no local state and restores the warehouse's."""
    if not os.path.isdir(working_dir):
        return []
    removed = []
    for entry in sorted(os.listdir(working_dir)):
        if entry == LOCK_FILE:
            continue
        path = os.path.join(working_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        removed.append(entry)
    return removed


def forget_unreadable_state(pipeline: dlt.Pipeline) -> list[str]:
    """Take the saved state back from the warehouse and forget that of any resource that cannot
    be read there either, keeping the tables; returns the resources forgotten.

    The working folder was emptied (`reset_working_folder`), so dlt restores the warehouse's
    copy, which a damaged folder leaves intact: the sync goes on incrementally, the events'
    watermark (and so the retention gap check) kept. Only a resource whose copy does not parse
    is dropped, with dlt's `pipeline drop --state-only` (committed to the warehouse at once, so a
    restore never brings it back): it lists everything again, merging by id. Pending load
    packages are aborted first: their runs are listed again anyway."""
    from dlt.pipeline.helpers import pipeline_drop

    if pipeline.has_pending_data:
        pipeline.abort_packages()
    pipeline.sync_destination()  # the state and schemas the warehouse keeps, if any
    sources = pipeline.state.get("sources") or {}
    saved = (sources.get(SOURCE) or {}).get("resources") or {}
    unreadable = []
    for name, reader in STATE_READERS.items():
        if name in saved:
            try:
                reader.load(saved[name])
            except SavedStateError:
                unreadable.append(name)
    if not unreadable or not pipeline.default_schema_name:
        return []
    pipeline_drop(pipeline, resources=unreadable, state_only=True)()
    return unreadable
