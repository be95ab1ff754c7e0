"""Which runs already have a row in the warehouse's `task_runs`: the runs a filtered sync
selected in earlier syncs, whose events it still loads (`deck.listing.events.SelectedRuns`).

A filtered sync's runs and their events need not be listed in the same sync: a backfill capped
at `max_loads` lists its runs over several scheduled syncs, while the events of all of them are
listed once the runs are complete. Keeping every selected id in dlt's state would grow it by
the whole history; the warehouse holds exactly that set already, so it is asked, by id, for
the runs of the events in hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from deck.core.tables import RUNS_TABLE

logger = logging.getLogger("deck")

IDS_PER_QUERY = 500  # bound parameters per statement, well within every destination's limit

LoadedRuns = Callable[[Collection[str]], set[str]]


def loaded_run_ids(pipeline: dlt.Pipeline, run_ids: Collection[str]) -> set[str]:
    """The ids among `run_ids` with a row in `task_runs` (none before its first load).

    Raises what the destination raises otherwise: a file another process holds is waited for
    by the caller (`deck.warehouse.lock.WarehouseLock.call`), and a destination without SQL
    cannot answer at all (`SelectedRuns` then keeps the events it cannot place).
    """
    ids = sorted(set(run_ids))
    found: set[str] = set()
    if not ids:
        return found
    with pipeline.sql_client() as client:
        if not client.has_dataset():
            return found
        table = client.make_qualified_table_name(RUNS_TABLE)
        for at in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[at : at + IDS_PER_QUERY]
            marks = ", ".join(["%s"] * len(chunk))
            try:
                rows = client.execute_sql(f"SELECT id FROM {table} WHERE id IN ({marks})", *chunk)
            except DatabaseUndefinedRelation:
                return found
            found.update(str(row[0]) for row in rows or ())
    return found


def current_pipeline_lookup() -> LoadedRuns:
    """The lookup of the pipeline dlt is extracting for (`pipeline.run(deck())` outside
    `deck.sync`, which passes its own, waiting for the DuckDB file like its other steps)."""

    def lookup(run_ids: Collection[str]) -> set[str]:
        return loaded_run_ids(dlt.current.pipeline(), run_ids)

    return lookup
