"""dlt settings this connector runs best with, handed to dlt as defaults that yield to the user's.

dlt reads its settings (file sizes, compression, ...) from config providers: environment
variables, `.dlt/config.toml`, and so on. A setting that only `.dlt/config.toml` carries is lost
wherever the connector runs from another working directory (an orchestrator, the benchmarks), so
the connector's own defaults are registered here as one more provider, the last one dlt asks
(`dlt.config.register_provider`): any value the user sets, under any section, wins over them.

- Under `sources.deck` (the source's own section, so other sources are untouched), always.
- DuckDB's settings are the whole database's, and `[load] workers` the whole pipeline's, so
  they are answered only while `deck.sync` runs (`SYNC_DEFAULTS`), the latter only into DuckDB:
  a user's own pipelines in the same process keep dlt's and DuckDB's defaults.

What each one buys is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from .scope import current_scope

DEFAULTS: dict[str, Any] = {
    "sources": {
        "deck": {
            # The files that extract hands to normalize live a few seconds and are read once:
            # gzip at dlt's level 9 cost about 2 CPU s per 100k runs (some 10% of a backfill)
            # to save disk space that is freed right after. `[sources.deck.data_writer]`.
            "data_writer": {"disable_compression": True},
        }
    }
}


# DuckDB, during a sync only. DuckDB may take 80% of RAM by default, and a backfill's peak grew
# with the table: each load merges into a larger one, and the checkpoint at ~400k runs took
# +150-300 MiB. Capped, DuckDB evicts cached blocks of the file (they are on disk) and spills
# joins and sorts to its temp directory. `[destination.duckdb.credentials] global_config` of the
# user replaces this whole dict.
DUCKDB_GLOBAL_CONFIG: dict[str, Any] = {"memory_limit": "128MB"}
# dlt loads up to 20 files at once, each into DuckDB on a thread of its own: their memory adds up
# and each thread's malloc arena keeps some after it ends. One at a time costs little on DuckDB
# (every statement already uses all cores); remote warehouses keep dlt's parallel jobs.
DUCKDB_LOAD_WORKERS = 1
SYNC_DEFAULTS: dict[str, Any] = {
    "destination": {"duckdb": {"credentials": {"global_config": DUCKDB_GLOBAL_CONFIG}}}
}
DUCKDB_TYPE = "dlt.destinations.duckdb"


class ConnectorDefaults(DictionaryProvider):
    """The last provider dlt asks: answers the keys in `DEFAULTS`, and those in `SYNC_DEFAULTS`
    while a `deck.sync` runs."""

    NAME: ClassVar[str] = "Deck connector defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = copy.deepcopy(DEFAULTS)
        self._sync_doc = DictionaryProvider()
        self._sync_doc._config_doc = copy.deepcopy(SYNC_DEFAULTS)

    @property
    def supports_secrets(self) -> bool:
        return False

    @property
    def is_writable(self) -> bool:
        return False

    def get_value(
        self, key: str, hint: type[Any], pipeline_name: str, *sections: str
    ) -> tuple[Any | None, str]:
        value, full_key = super().get_value(key, hint, pipeline_name, *sections)
        if value is not None or current_scope() is None:
            return value, full_key
        if key == "workers" and sections == ("load",) and not pipeline_name:
            return (DUCKDB_LOAD_WORKERS if _loading_into_duckdb() else None), full_key
        value, _ = self._sync_doc.get_value(key, hint, pipeline_name, *sections)
        return copy.deepcopy(value), full_key  # dlt may keep and change what it is given


def _loading_into_duckdb() -> bool:
    """Whether the pipeline dlt is running loads into DuckDB (MotherDuck is another type)."""
    try:
        destination = dlt.current.pipeline().destination
    except Exception:  # no active pipeline
        return False
    return destination is not None and destination.destination_type == DUCKDB_TYPE


def register() -> None:
    """Add the defaults to dlt's providers once per run context (idempotent, cheap)."""
    providers = Container()[PluggableRunContext].providers
    if ConnectorDefaults.NAME not in providers:
        dlt.config.register_provider(ConnectorDefaults())
