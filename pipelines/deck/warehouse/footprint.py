"""A CLI run that fails before it loads anything leaves nothing behind.

dlt writes the pipeline's local state, destination included, as soon as `dlt.pipeline()` is
called, and DuckDB creates its file on the first connection (the sync opens it to check for
dropped tables before the first request). So a first attempt that failed -- `--destination
postgres` without credentials, a `base_url` whose host does not resolve, a wrong key -- left an
empty `deck_task_runs.duckdb` next to the code, and a state naming the destination it could not
use: the next run printed dlt's raw warning "The destination ... in state differs from
destination ... in pipeline and will be ignored". `Footprint` remembers what existed before the
run and puts it back when nothing was loaded.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass

import dlt

logger = logging.getLogger("deck")

STATE_FILE = "state.json"


@dataclass
class Footprint:
    """The pipeline's local folder (and its DuckDB file) as they were before this run."""

    working_dir: str
    existed: bool
    state: bytes | None
    duckdb_file: str | None = None
    duckdb_existed: bool = True

    @classmethod
    def before(cls, pipeline_name: str) -> Footprint:
        from dlt.common.pipeline import get_dlt_pipelines_dir

        working_dir = os.path.join(get_dlt_pipelines_dir(), pipeline_name)
        state_path = os.path.join(working_dir, STATE_FILE)
        state = None
        if os.path.isfile(state_path):
            with open(state_path, "rb") as handle:
                state = handle.read()
        return cls(working_dir, os.path.isdir(working_dir), state)

    def note_destination(self, pipeline: dlt.Pipeline) -> None:
        """Remember whether the DuckDB file the sync will write exists yet (before any
        connection creates it)."""
        if pipeline.destination is None or pipeline.destination.destination_name != "duckdb":
            return
        try:
            database = pipeline.destination_client().config.credentials.database  # type: ignore[attr-defined]
        except Exception:  # unresolved settings: explained by the sync itself
            return
        if database and database != ":memory:":
            self.duckdb_file = os.path.abspath(str(database))
            self.duckdb_existed = os.path.exists(self.duckdb_file)

    def erase(self) -> None:
        """Undo what this run created. Only for a run that loaded nothing and left no package:
        the state restored is then exactly the state the warehouse agrees with."""
        self._erase_empty_duckdb()
        state_path = os.path.join(self.working_dir, STATE_FILE)
        try:
            if not self.existed:
                shutil.rmtree(self.working_dir, ignore_errors=True)
            elif self.state is not None and _read(state_path) != self.state:
                with open(state_path, "wb") as handle:
                    handle.write(self.state)
        except OSError as exc:  # cleaning up must never hide the failure being reported
            logger.debug("Could not restore %s: %s", self.working_dir, exc)

    def _erase_empty_duckdb(self) -> None:
        """Remove the DuckDB file this run created, if it holds no table."""
        path = self.duckdb_file
        if path is None or self.duckdb_existed or not os.path.isfile(path):
            return
        try:
            import duckdb

            with duckdb.connect(path, read_only=True) as con:
                tables = con.execute(
                    "SELECT count(*) FROM information_schema.tables"
                    " WHERE table_catalog = current_database()"
                ).fetchone()
            if tables and tables[0]:
                return
            for leftover in (path, path + ".wal"):
                if os.path.exists(leftover):
                    os.remove(leftover)
        except Exception as exc:  # locked or unreadable: leave it
            logger.debug("Could not remove the empty DuckDB file %s: %s", path, exc)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None
