"""Sharing the DuckDB file with readers: wait while another process has it open, then go on.

DuckDB lets one process write a database file, and only while no other process has it open,
read-only included: a `duckdb -readonly` shell or a notebook kernel holding a connection makes
every write fail at once with `IO Error: Could not set lock on file ...`. dlt opens and closes
the file around each step, so a reader may take it at any moment of a sync. `WarehouseLock`
checks the file before each step that needs it (a probe: open it for writing, close it again),
waits a bounded time (`lock_wait_s`) while another process holds it, and when a reader slips in
between the check and dlt's own connect, waits again and repeats the step: a load package left
pending is loaded, never extracted twice. When the wait runs out the sync fails with one
paragraph naming the file and the process holding it; every load committed before is kept and
the next sync resumes.

Other destinations (and DuckDB given as a connection, or in memory) need none of this: every
method is then a plain call.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import dlt
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException
from dlt.common.destination.client import JobClientBase

from deck.core import settings
from deck.core.errors import DeckError
from deck.core.options import parse_lock_wait_s

logger = logging.getLogger("deck")

T = TypeVar("T")
DUCKDB_TYPE = "dlt.destinations.duckdb"
LOCK_WAIT_KEY = "sources.deck.lock_wait_s"

# DuckDB 1.x: `IO Error: Could not set lock on file "/x.duckdb": Conflicting lock is held in
# /usr/bin/python3.11 (PID 4242) by user ann. However, ...`. The holder part is optional: the
# message is DuckDB's, not a contract, and the paragraph only names the holder when it can.
_LOCK_ERROR = re.compile(r"Could not set lock on file \"(?P<file>[^\"]*)\"")
_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.+?) \(PID (?P<pid>\d+)\)")


class WarehouseLockedError(DeckError):
    """The DuckDB file stayed open in another process for longer than `lock_wait_s`."""


@dataclass(frozen=True)
class LockHolder:
    """The process DuckDB names as holding the file (both None when it names none)."""

    program: str | None = None
    pid: int | None = None

    def __str__(self) -> str:
        if self.pid is None:
            return "another process"
        return f"another process ({os.path.basename(self.program or '?')}, PID {self.pid})"


def lock_conflict(exc: BaseException | None) -> LockHolder | None:
    """The holder if `exc` (or an exception it was raised from) is DuckDB's lock conflict.

    dlt wraps the driver's error (DestinationConnectionError, PipelineStepFailed, a job's
    retry), so the whole chain is searched; DuckDB has no exception class of its own for it.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if _LOCK_ERROR.search(text):
            holder = _HOLDER.search(text)
            if holder is None:
                return LockHolder()
            return LockHolder(holder.group("program"), int(holder.group("pid")))
        exc = exc.__cause__ or exc.__context__ or getattr(exc, "exception", None)
    return None


def probe(path: str) -> LockHolder | None:
    """Who holds `path` now: open it for writing and close it again (None: free, or missing).

    Errors other than the lock conflict are left for dlt to report where it opens the file.
    """
    if not os.path.exists(path):
        return None
    import duckdb

    try:
        duckdb.connect(path).close()
    except duckdb.Error as exc:
        holder = lock_conflict(exc)
        if holder is None:
            logger.debug("Probing %s: %s", path, exc)
        return holder
    return None


def duckdb_file(pipeline: dlt.Pipeline, job_client: JobClientBase | None = None) -> str | None:
    """The DuckDB file `pipeline` writes, or None when it writes no local DuckDB file.

    `job_client`: the sync's own (`destination.SyncDestination`), so that dlt does not resolve
    the destination's configuration once more; None: one is made here (and raises what dlt
    raises when it cannot be made).
    """
    destination = pipeline.destination
    if destination is None or destination.destination_type != DUCKDB_TYPE:
        return None
    client = job_client or pipeline.destination_client()
    database = client.config.credentials.database  # type: ignore[attr-defined]
    if not isinstance(database, str) or not os.path.isabs(database):  # :memory:, :external:
        return None
    return database


def configured_lock_wait(explicit: float | None = None) -> float:
    """`lock_wait_s` as given, else from dlt's configuration (`[sources.deck]` in
    .dlt/config.toml or SOURCES__DECK__LOCK_WAIT_S), else settings.LOCK_WAIT_S; checked."""
    if explicit is not None:
        return parse_lock_wait_s(explicit)
    try:
        value = dlt.config.get(LOCK_WAIT_KEY, float)
    except ConfigValueCannotBeCoercedException as exc:
        value = exc.field_value  # not a number: parse_lock_wait_s says so, naming the option
    return parse_lock_wait_s(settings.LOCK_WAIT_S if value is None else value)


class WarehouseLock:
    """Waits for the DuckDB file of one sync; a no-op when there is none (`path` None)."""

    def __init__(
        self,
        path: str | None,
        wait_s: float,
        poll_s: float = settings.LOCK_POLL_S,
        report_s: float = settings.LOCK_REPORT_S,
    ) -> None:
        self.path = path
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.report_s = report_s

    @classmethod
    def of(
        cls,
        pipeline: dlt.Pipeline,
        wait_s: float | None = None,
        job_client: JobClientBase | None = None,
    ) -> WarehouseLock:
        """The lock of `pipeline`'s DuckDB file; `job_client` as in `duckdb_file`."""
        return cls(duckdb_file(pipeline, job_client), configured_lock_wait(wait_s))

    def wait(self, holder: LockHolder | None = None, deadline: float | None = None) -> None:
        """Return once no other process holds the file; raise WarehouseLockedError when it is
        still held at `deadline` (default: `wait_s` from now). `holder`: already known to hold
        it (a step just failed on it), so the first probe is skipped."""
        if self.path is None:
            return
        holder = holder or probe(self.path)
        if holder is None:
            return
        started = time.monotonic()
        deadline = started + self.wait_s if deadline is None else deadline
        if started >= deadline:
            raise WarehouseLockedError(self.explain(holder))
        logger.warning(
            "Waiting for %s: %s has it open, and DuckDB lets this sync write only once no other"
            " process has the file open. Waiting up to %.0f s (lock_wait_s).",
            self.path,
            holder,
            deadline - started,
        )
        next_report = started + self.report_s
        while True:
            time.sleep(max(0.0, min(self.poll_s, deadline - time.monotonic())))
            current = probe(self.path)
            now = time.monotonic()
            if current is None:
                logger.info("%s is free after %.0f s of waiting; syncing", self.path, now - started)
                return
            holder = current
            if now >= deadline:
                raise WarehouseLockedError(self.explain(holder))
            if now >= next_report:
                logger.warning(
                    "Still waiting for %s: %s has it open (%.0f s of %.0f s)",
                    self.path,
                    holder,
                    now - started,
                    deadline - started,
                )
                next_report = now + self.report_s

    def explain(self, holder: LockHolder) -> str:
        """The paragraph after "Deck sync failed: "."""
        waited = (
            f"stayed so for the {self.wait_s:.0f} s this sync waited (lock_wait_s)"
            if self.wait_s
            else "lock_wait_s is 0"
        )
        return (
            f"the warehouse {self.path} is open in {holder}, and {waited}."
            " DuckDB lets a process write a file only while no"
            " other process has it open, even read-only. Close that session (a `duckdb` shell,"
            " a notebook kernel keeping a connection) and read through short-lived connections"
            " (connect, query, close: README, \"Reading the warehouse while syncs run\"), or"
            " raise lock_wait_s. Nothing was half-loaded: the loads committed before are kept"
            " and the next sync resumes from there."
        )

    def call(self, step: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a step that opens the file and can be repeated (reads, views, a repair):
        wait for the file first, and again (then repeat the step) if a reader took it
        between the wait and the step's connect."""
        return self._repeat_while_taken(lambda: step(*args, **kwargs))

    def run(self, pipeline: dlt.Pipeline, data: Any = None, **kwargs: Any) -> Any:
        """`pipeline.run(data, **kwargs)`, waiting for the file. When the load step found the
        file taken, the package it extracted is pending: the repeat loads that package (dlt's
        `run()` without data) instead of extracting again, so each load happens once."""
        call = {"data": data, "kwargs": kwargs}

        def before_repeat() -> None:
            if pipeline.has_pending_data:
                call["data"] = None
                call["kwargs"] = {"loader_file_format": kwargs.get("loader_file_format")}

        return self._repeat_while_taken(
            lambda: pipeline.run(call["data"], **call["kwargs"]), before_repeat
        )

    def _repeat_while_taken(
        self, step: Callable[[], T], before_repeat: Callable[[], None] | None = None
    ) -> T:
        self.wait()
        deadline = None
        while True:
            try:
                return step()
            except Exception as exc:
                holder = lock_conflict(exc) if self.path else None
                if holder is None:
                    raise
                deadline = deadline or time.monotonic() + self.wait_s
                self.wait(holder, deadline)
                if before_repeat is not None:
                    before_repeat()
