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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from deck.core.errors import DeckError, causes
from deck.core.shown import shown_path

logger = logging.getLogger("deck")

READ_ONLY = "read-only"
FULL = "full"
READ, WRITE = "read", "write"  # what was refused (`StorageFault.refused`)
# errno -> what kind of fault it is
_KINDS = {
    errno.EROFS: READ_ONLY,
    errno.EACCES: READ_ONLY,
    errno.EPERM: READ_ONLY,
    errno.ENOSPC: FULL,
    errno.EDQUOT: FULL,
}
# DuckDB has no exception class per cause: `IO Error: Cannot open file "/x.duckdb": Read-only
# file system`, `Could not write file "/x.duckdb.wal": No space left on device`. Other databases
# word theirs alike (PostgreSQL: `could not extend file "base/16384/16397": No space left on
# device`, on the server's disk), so such a text is this machine's fault only when the file it
# names is the DuckDB warehouse's (`_names_the_warehouse`).
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
    """What the operating system refused: `reason` in its words, `filename` when it named one,
    and whether it refused to let the file be read or written (`refused`: a read-only file
    system or a full disk refuse writes; a permission, whichever the file's mode refuses)."""

    errno: int
    reason: str
    filename: str | None = None
    refused: str = WRITE

    @property
    def kind(self) -> str:
        return _KINDS[self.errno]


@dataclass(frozen=True)
class LocalPlaces:
    """Where a sync writes on this machine: the pipeline's working folder and, with DuckDB,
    the warehouse file (None for other destinations)."""

    working_dir: str
    warehouse: str | None = None


def storage_fault(
    exc: BaseException | None, places: LocalPlaces | None = None
) -> StorageFault | None:
    """The read-only folder, refused permission or full disk behind `exc`, if that is what it
    is. A database's message naming a file counts only when the file is the DuckDB warehouse of
    `places` (or beside it): another destination's is about its server's disk, not this
    machine's."""
    if exc is None:
        return None
    for current in causes(exc):
        if isinstance(current, OSError) and current.errno in _KINDS:
            filename = current.filename if isinstance(current.filename, str) else None
            code = current.errno
            return StorageFault(code, os.strerror(code), filename, _refused(code, filename))
    warehouse = places.warehouse if places is not None else None
    if warehouse is None:
        return None
    for current in causes(exc):
        for match in _DUCKDB_FILE_ERROR.finditer(str(current)):
            filename = match.group("file")
            if _names_the_warehouse(filename, warehouse):
                code = _DUCKDB_REASONS[match.group("reason")]
                return StorageFault(code, os.strerror(code), filename, _refused(code, filename))
    return None


def _names_the_warehouse(filename: str, warehouse: str) -> bool:
    """Whether a file a database message names is the DuckDB warehouse, a file beside it that
    DuckDB writes (`.wal`, `.tmp`: named after it) or its folder."""
    name, file = os.path.abspath(filename), os.path.abspath(warehouse)
    return name.startswith(file) or name == os.path.dirname(file)


def _refused(code: int, filename: str | None) -> str:
    """Whether `code` refused a read or a write of `filename`: a read-only file system or a full
    disk refuse only writes; a permission refuses a read when the file exists and its mode does
    not let this user read it (a settings file such as ~/.dlt/secrets.toml), else a write."""
    if code not in (errno.EACCES, errno.EPERM) or filename is None:
        return WRITE
    try:
        readable = os.access(filename, os.R_OK)
        exists = os.path.exists(filename)
    except (OSError, ValueError):
        return WRITE
    return READ if exists and not readable else WRITE


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
    if warehouse is not None and _names_the_warehouse(name, warehouse):
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
    if fault.refused == READ:
        return _describe_read(fault, places, working, warehouse)
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


def _describe_read(fault: StorageFault, places: LocalPlaces, working: bool, warehouse: bool) -> str:
    """A file whose mode does not let the sync's user read it: a settings file (~/.dlt/
    secrets.toml), or one of the pipeline's own files left by another user."""
    where = shown_path(fault.filename) if fault.filename else "a file"
    if warehouse and places.warehouse is not None:
        return (
            f"cannot read the warehouse {shown_path(places.warehouse)}: {fault.reason}. DuckDB"
            " reads and writes the file and a .wal file beside it, so they must be readable and"
            " writable by the user running the sync (another user may have created them). Give"
            " that user access to them, and run the sync again." + _RESUMES
        )
    if working:
        return (
            f"cannot read {where} in the pipeline's working folder"
            f" {shown_path(places.working_dir)}: {fault.reason}. The sync keeps its state, load"
            " packages and lock there (under DLT_DATA_DIR), so they must be readable and writable"
            " by the user running the sync (another user may have run a sync there). Give that"
            " user access to them, or point DLT_DATA_DIR at a folder of its own (the sync then"
            " restores its state from the warehouse), and run the sync again." + _RESUMES
        )
    return (
        f"cannot read {where}: {fault.reason}. Make it readable by the user running the sync"
        " (settings such as .dlt/secrets.toml are read at every sync) and run the sync again."
        + _RESUMES
    )


def raise_for_storage_fault(exc: BaseException, places: LocalPlaces) -> None:
    """Raise `LocalStorageError` (from `exc`) when `exc` is a read-only folder or a full disk."""
    fault = storage_fault(exc, places)
    if fault is not None:
        raise LocalStorageError(describe(fault, places)) from exc


_syncing: list[LocalPlaces] = []  # the places of the sync under way (`places_of_the_sync`)


@contextmanager
def places_of_the_sync(places: LocalPlaces) -> Iterator[None]:
    """While a sync runs, `QuietStorageFaults` knows its warehouse (which database messages are
    about this machine's disk)."""
    _syncing.append(places)
    try:
        yield
    finally:
        _syncing.remove(places)


class QuietStorageFaults(logging.Filter):
    """Holds back the log records (with their tracebacks) that dlt writes about a read-only
    folder or a full disk before the sync fails on it: a load worker that "died in
    uncontrollable manner", a trace it could not save. The paragraph that follows says what
    happened and what to do; `--debug` shows them."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        places = _syncing[-1] if _syncing else None
        return storage_fault(exc, places) is None
