"""Run the `deck` source to completion: one `pipeline.run` per committed window of a backfill.

A plain `pipeline.run(deck())` loads at most `max_runs_per_load` runs and saves its progress;
`sync()` repeats it until nothing is left, so an orchestrator gets the whole sync in one call and
a killed process loses at most the window it was in.
"""

import itertools
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.destination.client import JobClientBase
from dlt.common.pipeline import LoadInfo
from dlt.common.schema import Schema
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.job_client_impl import SqlJobClientBase
from dlt.destinations.sql_client import SqlClientBase

from . import settings
from .destination import DestinationTraits, SyncDestination
from .errors import DeckError
from .events import EVENTS_TABLE
from .lakehouse import prepare_for_destination, prune_orphaned_nested_rows
from .local_faults import LocalPlaces, places_of_the_sync, raise_for_storage_fault
from .local_files import prune_loaded_packages, remove_unfinished_writes
from .models import create_models, drop_models, refresh_models, table_exists
from .packages import drop_extracted_copies_of_committed_packages
from .progress_display import LogProgress, Reporter
from .scope import SyncScope, sync_scope
from .source import deck
from .stats import SyncStats
from .tracing import forget_repeated_config_lookups, one_trace
from .warehouse_lock import WarehouseLock, configured_lock_wait, duckdb_file
from .working_folder import DeckSyncLockedError as DeckSyncLockedError  # raised by sync()
from .working_folder import (
    check_saved_state,
    damaged,
    folder_lock,
    forget_saved_state,
    saved_state_error,
    state_problem,
)

logger = logging.getLogger("deck")

RESOURCE = "task_runs"
RESOURCES = (RESOURCE, EVENTS_TABLE)  # every resource of the source, by table name
RELOADED = {
    RESOURCE: "all runs from start_date",
    EVENTS_TABLE: f"the events Deck still keeps (the last {settings.EVENT_RETENTION_DAYS} days)",
}


def _belongs(table: str, root: str) -> bool:
    """Whether `table` is the resource's own table or one nested in it."""
    return table == root or table.startswith(root + "__")


@dataclass
class SyncResult:
    """Totals of a sync, for the CLI summary, the tests and the benchmarks."""

    new_runs: int = 0
    updated_runs: int = 0
    new_events: int = 0
    event_gaps: int = 0  # holes in the event history found (see task_run_event_gaps)
    resumed_runs: int = 0  # rows loaded from packages an interrupted earlier sync left behind
    loads: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    open_rechecked: int = 0
    quarantined: int = 0  # records Deck returned that could not be placed (task_runs_rejected)
    not_relisted: int = 0  # records a cut left to the rest of a window that never came back
    ended_early: list[str] = field(default_factory=list)  # why the sync ended with work left
    seconds: float = 0.0
    runs_in_warehouse: int | None = None  # None where it cannot be counted (no SQL)
    destination: DestinationTraits | None = None
    models: list[str] = field(default_factory=list)
    load_infos: list[LoadInfo] = field(default_factory=list)


@contextmanager
def pipeline_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """One sync per pipeline at a time (`working_folder.folder_lock`)."""
    with folder_lock(pipeline.working_dir, pipeline.pipeline_name):
        yield


def _sql_client(pipeline: dlt.Pipeline, job_client: JobClientBase | None) -> SqlClientBase[Any]:
    """The SQL client of the sync's job client (`destination.SyncDestination`), else a new one
    from `pipeline` (which resolves the destination's configuration again)."""
    if isinstance(job_client, SqlJobClientBase):
        return job_client.sql_client
    return pipeline.sql_client()


def remove_copied_run_rows(
    pipeline: dlt.Pipeline,
    traits: DestinationTraits,
    load_ids: list[str],
    *,
    job_client: JobClientBase | None = None,
) -> int:
    """Delete exact copies of root rows that a resumed load package inserted twice.

    dlt 1.31 retries a staging copy job that a kill interrupted after it had written; in a merge
    with nested tables it deduplicates the nested rows but inserts every copy of the root row
    (same `_dlt_id`). The copies are identical, so one of each is kept. Only packages resumed
    after an interruption can have them, so only their rows are checked. `job_client`: the
    sync's own; None: one is made here.
    """
    removed = 0
    if not traits.has_sql:  # filesystem: nothing to repair this way
        return 0
    with _sql_client(pipeline, job_client) as client:
        for name, load_id in itertools.product(RESOURCES, load_ids):
            if not table_exists(client, name):
                continue
            table = client.make_qualified_table_name(name)
            temp = client.escape_column_name("deck_copied_rows")
            rows = client.execute_sql(
                f"SELECT count(*) - count(DISTINCT _dlt_id) FROM {table} WHERE _dlt_load_id = %s",
                load_id,
            )
            copies = int(rows[0][0]) if rows else 0
            if not copies:
                continue
            with client.begin_transaction():
                client.execute_sql(
                    f"CREATE TEMPORARY TABLE {temp} AS SELECT DISTINCT * FROM {table}"
                    f" WHERE _dlt_load_id = %s AND _dlt_id IN (SELECT _dlt_id FROM {table}"
                    " WHERE _dlt_load_id = %s GROUP BY _dlt_id HAVING count(*) > 1)",
                    load_id,
                    load_id,
                )
                client.execute_sql(
                    f"DELETE FROM {table} WHERE _dlt_load_id = %s"
                    f" AND _dlt_id IN (SELECT _dlt_id FROM {temp})",
                    load_id,
                )
                client.execute_sql(f"INSERT INTO {table} SELECT * FROM {temp}")
                client.execute_sql(f"DROP TABLE {temp}")
            logger.warning(
                "Removed %d copies of %s rows left by a load interrupted earlier (%s)",
                copies,
                name,
                load_id,
            )
            removed += copies
    return removed


def count_rows_of_loads(
    pipeline: dlt.Pipeline,
    traits: DestinationTraits,
    load_ids: list[str],
    *,
    job_client: JobClientBase | None = None,
) -> int:
    """How many `task_runs` rows the given load packages wrote (0 without a SQL client).

    Counted right after those packages loaded, so no later load has replaced their rows yet.
    """
    if not load_ids or not traits.has_sql:  # filesystem/Delta: the summary leaves these out
        return 0
    try:
        with _sql_client(pipeline, job_client) as client:
            table = client.make_qualified_table_name("task_runs")
            marks = ", ".join(["%s"] * len(load_ids))
            rows = client.execute_sql(
                f"SELECT count(*) FROM {table} WHERE _dlt_load_id IN ({marks})", *load_ids
            )
            return int(rows[0][0]) if rows else 0
    except Exception as exc:  # a count must never fail a sync that loaded fine
        logger.debug("Could not count the rows of loads %s: %s", load_ids, exc)
        return 0


def missing_tables(
    pipeline: dlt.Pipeline, traits: DestinationTraits, *, job_client: JobClientBase | None = None
) -> list[str]:
    """Tables of the source that dlt created in the warehouse but that are gone from it.

    An analyst's `DROP TABLE deck.task_runs` is invisible to dlt: the schema it stored in the
    warehouse still lists the table, so it never creates it again and every later merge fails.
    The tables are taken from that stored schema (not the local one, which may already know
    tables of a package not loaded yet). Only SQL destinations whose dataset exists are checked
    (a deleted dataset dlt handles itself). `job_client`: the sync's own; None: one is made here.
    """
    if not pipeline.default_schema_name or not traits.has_sql:
        return []
    job_client = pipeline.destination_client() if job_client is None else job_client
    if not isinstance(job_client, SqlJobClientBase):
        return []
    with job_client:
        if not job_client.sql_client.has_dataset():
            return []
        stored = job_client.get_stored_schema(pipeline.default_schema_name)
        if stored is None:
            return []
        schema = Schema.from_stored_schema(json.loads(stored.schema))
        expected = [
            name
            for name in schema.data_table_names(seen_data_only=True)
            if any(_belongs(name, root) for root in RESOURCES)
        ]
        if not expected:
            return []
        present = {name for name, columns in job_client.get_storage_tables(expected) if columns}
    return [name for name in expected if name not in present]


def count_runs(
    pipeline: dlt.Pipeline, traits: DestinationTraits, *, job_client: JobClientBase | None = None
) -> int | None:
    """Rows in `task_runs` after the sync, for the summary. `job_client` as in `missing_tables`."""
    if not traits.has_sql:
        return None
    try:
        with _sql_client(pipeline, job_client) as client:
            return _count_runs(client)
    except DatabaseUndefinedRelation:  # nothing loaded yet (an empty range)
        return 0


def _count_runs(client: SqlClientBase[Any]) -> int:
    """`count_runs` on an open connection."""
    try:
        table = client.make_qualified_table_name(RESOURCE)
        return int(client.execute_sql(f"SELECT count(*) FROM {table}")[0][0])
    except DatabaseUndefinedRelation:  # nothing loaded yet (an empty range)
        return 0


def refresh_models_and_count_runs(
    pipeline: dlt.Pipeline, destination: SyncDestination
) -> tuple[list[str], int | None]:
    """`refresh_models`, then `count_runs`, on one connection: one open of the warehouse (and one
    probe of its lock) after the loads instead of two."""
    job_client = destination.sql_job_client
    if job_client is None:  # no SQL there: refresh_models says it skips, and nothing is counted
        models = refresh_models(pipeline, job_client=destination.job_client)
        return models, count_runs(pipeline, destination.traits, job_client=destination.job_client)
    with job_client.sql_client as client:
        return create_models(client, pipeline.dataset_name), _count_runs(client)


def unfinished_plans(pipeline: dlt.Pipeline, resources: list[str]) -> dict[str, Any]:
    """The plans the last load left with windows still to list (of runs or of events), by
    resource: they are in the committed resource state, for the next load to resume.

    Only the resources this sync runs count: a plan of events left by an earlier sync, when
    events are now turned off, waits for them to be turned on again.
    """
    sources = pipeline.state.get("sources", {})
    saved = sources.get("deck", {}).get("resources", {})
    return {
        name: saved[name]["plan"] for name in resources if saved.get(name, {}).get("plan")
    }


def loaded_records(stats: SyncStats) -> int:
    """Records the sync has loaded so far (new or changed runs, new events)."""
    return stats.new_runs + stats.updated_runs + stats.new_events


def sync(
    pipeline: dlt.Pipeline,
    *,
    full_refresh: bool = False,
    reset_state: bool = False,
    max_loads: int | None = None,
    lock_wait_s: float | None = None,
    progress: Reporter | None = None,
    **source_options: Any,
) -> SyncResult:
    """Sync Deck task runs into `pipeline`'s destination until the warehouse is current.

    `reset_state`: forget the saved state first (locally and in the warehouse), keep the
    tables, and list everything again, merging by id (`working_folder.forget_saved_state`; a
    folder dlt cannot read at all is emptied first with `working_folder.reset_working_folder`).
    `lock_wait_s`: how long to wait for a DuckDB file that another process has open (default
    `lock_wait_s` of `[sources.deck]`, else 300 s); see `warehouse_lock`. `progress` shows how
    far it is (default: log lines, `progress_display.LogProgress`); all its loads are one dlt trace
    (`tracing.one_trace`).

    A read-only folder or a full disk raises `local_faults.LocalStorageError`, a saved state
    that cannot be read `working_folder.DamagedWorkingFolderError`: each a paragraph naming the
    path and what to do.
    """
    # dlt resolves the destination's configuration here, once for all of the sync's own steps
    destination = SyncDestination.of(pipeline)
    warehouse = WarehouseLock(
        duckdb_file(pipeline, destination.job_client), configured_lock_wait(lock_wait_s)
    )
    reporter = progress if progress is not None else LogProgress()
    places = LocalPlaces(pipeline.working_dir, warehouse.path)
    try:
        with places_of_the_sync(places), pipeline_lock(pipeline), one_trace(pipeline), reporter:
            # before anything opens the file: a sync that cannot start does nothing
            warehouse.wait()
            remove_unfinished_writes(pipeline.working_dir)  # a full disk's leftovers
            if reset_state:
                warehouse.call(_forget_saved_state, pipeline)
            else:  # the rebuilt runs' state is dropped anyway
                check_saved_state(
                    pipeline.state, pipeline.working_dir, (RESOURCE,) if full_refresh else ()
                )
            result = _sync_locked(
                pipeline, destination, full_refresh, max_loads, source_options, warehouse, reporter
            )
            prune_loaded_packages(pipeline)  # completed packages: a resume needs none of them
    except DeckError:
        raise
    except Exception as exc:
        raise_for_storage_fault(exc, places)
        # The local state was read above: this one dlt restored from the warehouse's copy
        found = saved_state_error(exc)
        if found is not None:
            problem = state_problem(*found, restored=True)
            raise damaged(pipeline.working_dir, problem, restored=True) from exc
        raise
    return result


def _forget_saved_state(pipeline: dlt.Pipeline) -> None:
    dropped = forget_saved_state(pipeline)
    logger.warning(
        "Reset the saved state of pipeline '%s'%s: the tables are kept, and this sync lists"
        " every run again and merges it",
        pipeline.pipeline_name,
        f" ({', '.join(dropped)})" if dropped else "",
    )


def _sync_locked(
    pipeline: dlt.Pipeline,
    destination: SyncDestination,
    full_refresh: bool,
    max_loads: int | None,
    source_options: Any,
    warehouse: WarehouseLock,
    reporter: Reporter,
) -> SyncResult:
    result = SyncResult()
    started = time.monotonic()
    drop_extracted_copies_of_committed_packages(pipeline)
    traits, job_client = destination.traits, destination.job_client
    result.destination = traits
    file_format = traits.loader_file_format
    # Resources whose tables and state are dropped and loaded again: on request only the runs
    # (Deck keeps events 30 days: a history older than that exists only in the warehouse).
    rebuild = [RESOURCE] if full_refresh else []
    gone = (
        []
        if full_refresh
        else warehouse.call(missing_tables, pipeline, traits, job_client=job_client)
    )
    if gone:
        rebuild = [root for root in RESOURCES if any(_belongs(name, root) for name in gone)]
        logger.warning(
            "%s missing from the warehouse (dropped?): reloading %s",
            " and ".join(f"{pipeline.dataset_name}.{name}" for name in gone)
            + (" is" if len(gone) == 1 else " are"),
            " and ".join(RELOADED[root] for root in rebuild),
        )
    if rebuild:
        if pipeline.has_pending_data:
            # Leftovers of an earlier sync would be loaded first, into tables about to be
            # dropped (or already gone: they would fail on every run). Everything is reloaded.
            logger.warning("Discarding load packages left by an earlier sync: reloading anyway")
            pipeline.abort_packages()
        # PostgreSQL refuses to drop tables that the views read
        warehouse.call(drop_models, pipeline, job_client=job_client)
    scope = SyncScope()
    reporter.start(scope.stats)
    with sync_scope(scope):
        if pipeline.has_pending_data:
            # Packages of an interrupted sync (a kill during normalize or load): finish them
            # first, so that this sync resumes from the state they commit.
            info = warehouse.run(pipeline, loader_file_format=file_format)
            if info is not None:  # None: dlt discarded them when it first synced its state
                result.load_infos.append(info)
                warehouse.call(
                    remove_copied_run_rows, pipeline, traits, info.loads_ids, job_client=job_client
                )
                result.resumed_runs += warehouse.call(
                    count_rows_of_loads, pipeline, traits, info.loads_ids, job_client=job_client
                )
                logger.info("Finished loading a package left by an interrupted sync; syncing now")
        previous: tuple[dict[str, Any], int] | None = None  # the last load's plans, records
        while True:
            source = deck(**source_options)
            refresh = None
            running = list(source.resources)
            kept = [name for name in running if name not in rebuild]
            if rebuild and result.loads == 0:
                # dlt drops the tables and state of the resources it runs, and only those
                source = source.with_resources(*[n for n in source.resources if n in rebuild])
                refresh = "drop_resources"
            prepare_for_destination(source, traits)  # Delta on `filesystem`: upsert; else no-op
            info = warehouse.run(pipeline, source, loader_file_format=file_format, refresh=refresh)
            prune_orphaned_nested_rows(pipeline, traits)  # Delta: nested rows of older versions
            result.load_infos.append(info)
            result.loads += 1
            forget_repeated_config_lookups()  # else one_trace keeps every load's lookups
            # a rebuild's first load ran only the rebuilt resources: the others still sync
            plans = unfinished_plans(pipeline, running)
            more_to_load = bool(plans) or bool(refresh and kept and result.loads == 1)
            now = (plans, loaded_records(scope.stats), sorted(scope.stats.top_relisted))
            if plans and previous == now:
                # A load that loaded nothing and left the plan as it found it would be followed
                # by another identical one, for ever: the sync ends; the next resumes the plan.
                # Not after the sync's one re-list of the top (`top_relisted`): the next load
                # differs, it finishes the plan instead of listing the top again.
                scope.stats.ended_early.append(
                    f"load {result.loads} loaded nothing and left the plan of"
                    f" {', '.join(sorted(plans))} unchanged; the next sync resumes it"
                )
                logger.warning("The sync ends early: %s.", scope.stats.ended_early[-1])
                more_to_load = False
            previous = now
            reporter.load_committed(result.loads, more_to_load)  # "Load N committed: ..."
            if not more_to_load or (max_loads is not None and result.loads >= max_loads):
                break
    stats = scope.stats
    result.new_runs, result.updated_runs = stats.new_runs, stats.updated_runs
    result.new_events, result.event_gaps = stats.new_events, stats.event_gaps
    result.pages, result.requests = stats.requests.pages, stats.requests.requests
    result.retries, result.open_rechecked = stats.requests.retries, stats.open_rechecked
    result.quarantined = stats.quarantined
    result.not_relisted, result.ended_early = stats.not_relisted, list(stats.ended_early)
    if stats.events_unavailable:
        result.ended_early.append("Deck has no GET /events for this key: events were not synced")
    result.models, result.runs_in_warehouse = warehouse.call(
        refresh_models_and_count_runs, pipeline, destination
    )
    result.seconds = time.monotonic() - started
    return result
