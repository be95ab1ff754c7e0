"""Faults of this machine's disk: a read-only folder, a full disk. One paragraph, no traceback.

A sync writes in two places: the pipeline's working folder (dlt's state, schemas, load packages
and the sync lock, under DLT_DATA_DIR) and, with DuckDB, the warehouse file (and its `.wal`
beside it). When either cannot be written, the error surfaces wherever the write happened: an
`OSError` from `open()` or `os.makedirs`, DuckDB's `IO Error: Cannot open file "...": Read-only
file system` wrapped by dlt in a connection error, or a load step that failed on `[Errno 28] No
space left on device` while dlt logged the tracebacks of its workers. `storage_fault` finds the
fault in any of these; `describe` says what happened, where (the path) and what to do.

Nothing is half-written by such a fault: dlt writes its files atomically (a temporary file, then
a rename), DuckDB rolls back a transaction it could not commit, and the state is committed with
the data of each load; the next sync after the fault is fixed resumes from the last committed
load (tested in tests/test_local_faults.py).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass

from deck.core.errors import DeckError, causes
from deck.core.shown import shown_path

logger = logging.getLogger("deck")

READ_ONLY = "read-only"
FULL = "full"
# errno -> what kind of fault it is
_KINDS = {
    errno.EROFS: READ_ONLY,
    errno.EACCES: READ_ONLY,
    errno.EPERM: READ_ONLY,
    errno.ENOSPC: FULL,
    errno.EDQUOT: FULL,
}
# DuckDB has no exception class per cause: `IO Error: Cannot open file "/x.duckdb": Read-only
# file system`, `Could not write file "/x.duckdb.wal": No space left on device`
_DUCKDB_REASONS = {
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
}
_DUCKDB_FILE_ERROR = re.compile(
    r"(?:file|database) \"(?P<file>[^\"]+)\"[^\"]*?: (?P<reason>"
    + "|".join(re.escape(reason) for reason in _DUCKDB_REASONS)
    + ")"
)


class LocalStorageError(DeckError):
    """A folder the sync writes is read-only, or its disk is full."""


@dataclass(frozen=True)
class StorageFault:
    """What the operating system refused: `reason` in its words, `filename` when it named one."""

    errno: int
    reason: str
    filename: str | None = None

    @property
    def kind(self) -> str:
        return _KINDS[self.errno]


@dataclass(frozen=True)
class LocalPlaces:
    """Where a sync writes on this machine: the pipeline's working folder and, with DuckDB,
    the warehouse file (None for other destinations)."""

    working_dir: str
    warehouse: str | None = None


def storage_fault(exc: BaseException | None) -> StorageFault | None:
    """The read-only folder or full disk behind `exc`, if that is what it is."""
    if exc is None:
        return None
    for current in causes(exc):
        if isinstance(current, OSError) and current.errno in _KINDS:
            filename = current.filename if isinstance(current.filename, str) else None
            return StorageFault(current.errno, os.strerror(current.errno), filename)
    for current in causes(exc):
        match = _DUCKDB_FILE_ERROR.search(str(current))
        if match:
            code = _DUCKDB_REASONS[match.group("reason")]
            return StorageFault(code, os.strerror(code), match.group("file"))
    return None


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _existing(path: str) -> str:
    """`path`, or its nearest ancestor that exists (what a file system can be asked about)."""
    path = os.path.abspath(path)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _device(path: str) -> int | None:
    try:
        return os.stat(_existing(path)).st_dev
    except OSError:
        return None


def _free_bytes(path: str) -> int:
    try:
        return shutil.disk_usage(_existing(path)).free
    except OSError:
        return 0


def _places_hit(fault: StorageFault, places: LocalPlaces) -> tuple[bool, bool]:
    """(the working folder, the warehouse): which of the places the fault is about.

    A read-only fault is about the place whose path it names. A full disk is about every place
    on that disk (the one holding the file it names, else the fullest), wherever the write that
    found it full happened to be.
    """
    warehouse = places.warehouse
    if fault.kind == FULL:
        paths = [places.working_dir] + ([warehouse] if warehouse is not None else [])
        disk = _device(fault.filename) if fault.filename is not None else None
        if disk is None or disk not in {_device(path) for path in paths}:
            fullest = min(_free_bytes(path) for path in paths)
            hit = {path for path in paths if _free_bytes(path) == fullest}
        else:
            hit = {path for path in paths if _device(path) == disk}
        return places.working_dir in hit, warehouse is not None and warehouse in hit
    if fault.filename is None:
        return False, False
    name = os.path.abspath(fault.filename)
    if warehouse is not None and (
        name.startswith(os.path.abspath(warehouse)) or name == os.path.dirname(warehouse)
    ):
        return False, True
    return _within(name, places.working_dir) or _within(places.working_dir, name), False


_RESUMES = (
    " Nothing was half-loaded: the loads committed before are kept and the next sync resumes"
    " from there."
)


def describe(fault: StorageFault, places: LocalPlaces) -> str:
    """The paragraph after "Deck sync failed: ": what happened, where, what to do."""
    working, warehouse = _places_hit(fault, places)
    folder = shown_path(places.working_dir)
    if fault.kind == FULL:
        held = []
        if working:
            held.append(f"the pipeline's working folder {folder}")
        if warehouse and places.warehouse is not None:
            held.append(f"the warehouse {shown_path(places.warehouse)}")
        where = " and ".join(held) or shown_path(fault.filename or places.working_dir)
        return (
            f"the disk holding {where} is full ({fault.reason}). Free some space on it and run"
            " the sync again." + _RESUMES
        )
    if warehouse and places.warehouse is not None:
        directory = shown_path(os.path.dirname(places.warehouse) or ".")
        return (
            f"cannot write the warehouse {shown_path(places.warehouse)}: {fault.reason}. DuckDB"
            " writes the file and a .wal file beside it, so its folder"
            f" {directory} must be writable by the user running the sync. Make it writable, or"
            " point DESTINATION__DUCKDB__CREDENTIALS at a file in a writable folder, and run"
            " the sync again." + _RESUMES
        )
    if working:
        return (
            f"cannot write the pipeline's working folder {folder}: {fault.reason}. The sync"
            " keeps its state, load packages and lock there (under DLT_DATA_DIR), so it must be"
            " writable by the user running the sync. Make it writable, or point DLT_DATA_DIR at"
            " a writable folder (the sync then restores its state from the warehouse), and run"
            " the sync again." + _RESUMES
        )
    where = shown_path(fault.filename) if fault.filename else "a file"
    return (
        f"cannot write {where}: {fault.reason}. Make it writable by the user running the sync"
        " and run the sync again." + _RESUMES
    )


def raise_for_storage_fault(exc: BaseException, places: LocalPlaces) -> None:
    """Raise `LocalStorageError` (from `exc`) when `exc` is a read-only folder or a full disk."""
    fault = storage_fault(exc)
    if fault is not None:
        raise LocalStorageError(describe(fault, places)) from exc


class QuietStorageFaults(logging.Filter):
    """Holds back the log records (with their tracebacks) that dlt writes about a read-only
    folder or a full disk before the sync fails on it: a load worker that "died in
    uncontrollable manner", a trace it could not save. The paragraph that follows says what
    happened and what to do; `--debug` shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return storage_fault(exc) is None
