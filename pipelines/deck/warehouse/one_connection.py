"""One DuckDB connection for each load step, where dlt opens one per job.

dlt's load step opens the DuckDB file for every job (each table's file, the state, the loader's
own bookkeeping: some ten per load here) and closes it after each, and DuckDB checkpoints the
file whenever its last connection closes. Measured (py-spy, a sync of 100-run loads): the opens
and checkpoints were a third of a load's CPU. dlt keeps a connection it is given as credentials
(a `DuckDBPyConnection`) open for every client it makes, and never closes it; so for the load
step only, the sync gives dlt one connection, opened when the load step starts and closed when
it ends. Readers still get the file while the sync lists, extracts and normalizes.

No dlt option does this: its connection pool lives in each client's credentials, and each job
resolves credentials of its own. Hence the swap of the destination's `credentials` parameter
(what `dlt.destinations.duckdb(credentials=...)` sets) around `pipeline.load`, which dlt's
`pipeline.run` calls. A file that another process holds makes the connect fail with DuckDB's lock
error, which `deck.warehouse.lock.WarehouseLock.run` waits out as it does dlt's own.

Credentials with `statements` (ATTACH, CREATE SECRET) or `read_only` keep dlt's way: dlt runs the
statements on each connection it opens, and would run them again on a shared one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dlt

logger = logging.getLogger("deck")

_UNSET = object()


def shareable(credentials: Any) -> bool:
    """Whether dlt's clients can share one connection opened on these credentials' file."""
    return not getattr(credentials, "statements", None) and not getattr(
        credentials, "read_only", False
    )


@contextmanager
def one_connection_per_load(pipeline: dlt.Pipeline, path: str | None) -> Iterator[None]:
    """While the sync runs, each `pipeline.load` of `pipeline` writes `path` (the DuckDB file,
    `deck.warehouse.lock.duckdb_file`; None: not a local DuckDB file, nothing changes) through one
    connection."""
    destination = pipeline.destination
    if path is None or destination is None or "load" in vars(pipeline):
        yield
        return
    load = pipeline.load
    params = destination.config_params

    def load_on_one_connection(*args: Any, **kwargs: Any) -> Any:
        import duckdb

        connection = duckdb.connect(path)
        given = params.get("credentials", _UNSET)
        params["credentials"] = connection
        try:
            return load(*args, **kwargs)
        finally:
            if given is _UNSET:
                del params["credentials"]
            else:
                params["credentials"] = given
            connection.close()

    pipeline.load = load_on_one_connection  # type: ignore[method-assign]
    try:
        yield
    finally:
        del pipeline.load
