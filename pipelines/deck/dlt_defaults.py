"""dlt settings this connector runs best with, handed to dlt as defaults that yield to the user's.

dlt reads its settings (file sizes, compression, ...) from config providers: environment
variables, `.dlt/config.toml`, and so on. A setting that only `.dlt/config.toml` carries is lost
wherever the connector runs from another working directory (an orchestrator, the benchmarks), so
the connector's own defaults are registered here as one more provider, the last one dlt asks
(`dlt.config.register_provider`): any value the user sets, under any section, wins over them.

Every key is under `sources.deck`, the source's own section, so other sources and pipelines in the
same process are untouched. What each one buys is measured in docs/benchmarks.md.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.providers import DictionaryProvider
from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

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


class ConnectorDefaults(DictionaryProvider):
    """The last provider dlt asks: answers only the keys in `DEFAULTS`."""

    NAME: ClassVar[str] = "Deck connector defaults"

    def __init__(self) -> None:
        super().__init__()
        self._config_doc = copy.deepcopy(DEFAULTS)

    @property
    def supports_secrets(self) -> bool:
        return False

    @property
    def is_writable(self) -> bool:
        return False


def register() -> None:
    """Add the defaults to dlt's providers once per run context (idempotent, cheap)."""
    providers = Container()[PluggableRunContext].providers
    if ConnectorDefaults.NAME not in providers:
        dlt.config.register_provider(ConnectorDefaults())
