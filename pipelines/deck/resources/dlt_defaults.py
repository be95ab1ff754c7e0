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
from dlt.common.configuration.providers import ConfigProvider
from dlt.common.configuration.providers.provider import get_key_name
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

from deck.resources.scope import current_scope

# Each default is one leaf, (sections, key) -> value: the provider answers exactly these keys and
# nothing above them. (dlt also asks for whole sections, e.g. `destination.duckdb.credentials`
# as one value; answering those with a dict would hand dlt a "secret" from a provider that holds
# none, which dlt refuses.)
Leaf = tuple[tuple[str, ...], str]

DEFAULTS: dict[Leaf, Any] = {
    # The files that extract hands to normalize live a few seconds and are read once: gzip at
    # dlt's level 9 cost about 2 CPU s per 100k runs (some 10% of a backfill) to save disk space
    # that is freed right after. `[sources.deck.data_writer] disable_compression`.
    (("sources", "deck", "data_writer"), "disable_compression"): True,
}

# DuckDB, during a sync only. DuckDB may take 80% of RAM by default, and a backfill's peak grew
# with the table: each load merges into a larger one, and the checkpoint at ~400k runs took
# +150-300 MiB. Capped, DuckDB evicts cached blocks of the file (they are on disk) and spills
# joins and sorts to its temp directory. `[destination.duckdb.credentials] global_config` of the
# user replaces this whole dict.
DUCKDB_GLOBAL_CONFIG: dict[str, Any] = {"memory_limit": "128MB"}
SYNC_DEFAULTS: dict[Leaf, Any] = {
    (("destination", "duckdb", "credentials"), "global_config"): DUCKDB_GLOBAL_CONFIG,
}
# dlt loads up to 20 files at once, each into DuckDB on a thread of its own: their memory adds up
# and each thread's malloc arena keeps some after it ends. One at a time costs little on DuckDB
# (every statement already uses all cores); remote warehouses keep dlt's parallel jobs.
DUCKDB_LOAD_WORKERS = 1
LOAD_WORKERS: Leaf = (("load",), "workers")
DUCKDB_TYPE = "dlt.destinations.duckdb"


class ConnectorDefaults(ConfigProvider):
    """The last provider dlt asks: answers the leaves in `DEFAULTS`, and those in
    `SYNC_DEFAULTS` (and `[load] workers` into DuckDB) while a `deck.sync` runs."""

    NAME: ClassVar[str] = "Deck connector defaults"

    @property
    def name(self) -> str:
        return self.NAME

    @property
    def supports_secrets(self) -> bool:
        return False

    @property
    def supports_sections(self) -> bool:
        return True

    def get_value(
        self, key: str, hint: type[Any], pipeline_name: str | None, *sections: str
    ) -> tuple[Any | None, str]:
        full_key = get_key_name(key, "__", *sections)
        if pipeline_name:  # dlt asks again without the pipeline's name: answered then
            return None, full_key
        leaf = (tuple(sections), key)
        if leaf in DEFAULTS:
            return DEFAULTS[leaf], full_key
        if current_scope() is None:
            return None, full_key
        if leaf == LOAD_WORKERS:
            return (DUCKDB_LOAD_WORKERS if _loading_into_duckdb() else None), full_key
        return copy.deepcopy(SYNC_DEFAULTS.get(leaf)), full_key  # dlt may change what it gets


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
