"""Run the `deck` source to completion: one `pipeline.run` per committed window of a backfill.

A plain `pipeline.run(deck())` loads at most `max_runs_per_load` runs and saves its progress;
`sync()` repeats it until nothing is left, so an orchestrator gets the whole sync in one call and
a killed process loses at most the window it was in.
"""

import logging
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo

from deck.core import settings
from deck.core.errors import DeckError
from deck.core.stats import SyncStats
from deck.core.tables import EVENTS_TABLE, RESOURCES, RUNS_TABLE, belongs
from deck.progress.display import LogProgress, Reporter
from deck.progress.estimate import SyncProgress
from deck.resources.loaded_runs import loaded_run_ids
from deck.resources.scope import SyncScope, sync_scope
from deck.resources.source import deck
from deck.runtime.tracing import forget_repeated_config_lookups, one_trace
from deck.warehouse.destination import (
    DestinationTraits,
    SyncDestination,
    capabilities_resolved_once,
)
from deck.warehouse.lakehouse import prepare_for_destination, prune_orphaned_nested_rows
from deck.warehouse.local_faults import (
    LocalPlaces,
    LocalStorageError,
    places_of_the_sync,
    raise_for_storage_fault,
)
from deck.warehouse.local_files import prune_loaded_packages, remove_unfinished_writes
from deck.warehouse.lock import WarehouseLock, configured_lock_wait, duckdb_file
from deck.warehouse.models import drop_models
from deck.warehouse.one_connection import one_connection_per_load, shareable
from deck.warehouse.packages import drop_extracted_copies_of_committed_packages
from deck.warehouse.repairs import (
    count_rows_of_loads,
    missing_tables,
    refresh_models_and_count_runs,
    remove_copied_run_rows,
)
from deck.warehouse.working_folder import (
    DeckSyncLockedError as DeckSyncLockedError,  # raised by sync()
)
from deck.warehouse.working_folder import (
    check_saved_state,
    damaged,
    folder_lock,
    forget_unreadable_state,
    saved_state_error,
    state_problem,
)

logger = logging.getLogger("deck")

RELOADED = {
    RUNS_TABLE: "all runs from start_date",
    EVENTS_TABLE: f"the events Deck still keeps (the last {settings.EVENT_RETENTION_DAYS} days)",
}


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


def no_sql_to_ask(run_ids: Collection[str]) -> set[str]:
    """`SyncScope.loaded_runs` of a destination without SQL (filesystem, Delta)."""
    raise LookupError("the destination has no SQL to ask")


@contextmanager
def pipeline_lock(pipeline: dlt.Pipeline) -> Iterator[None]:
    """One sync per pipeline at a time (`working_folder.folder_lock`)."""
    with folder_lock(pipeline.working_dir, pipeline.pipeline_name):
        yield


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

    `reset_state`: take the saved state back from the warehouse, forgetting that of a resource
    that cannot be read there either (it lists everything again, merging by id); the tables are
    kept (`working_folder.forget_unreadable_state`; the CLI empties the working folder first
    with `working_folder.reset_working_folder`).
    `lock_wait_s`: how long to wait for a DuckDB file that another process has open (default
    `lock_wait_s` of `[sources.deck]`, else 300 s); see `deck.warehouse.lock`. `progress` shows
    how far it is (default: log lines, `deck.progress.display.LogProgress`); all its loads are one
    dlt trace (`tracing.one_trace`).

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
    credentials = getattr(getattr(destination.job_client, "config", None), "credentials", None)
    one_connection = warehouse.path if shareable(credentials) else None
    try:
        with (
            places_of_the_sync(places), pipeline_lock(pipeline), one_trace(pipeline), reporter,
            capabilities_resolved_once(pipeline), one_connection_per_load(pipeline, one_connection),
        ):
            # before anything opens the file: a sync that cannot start does nothing
            warehouse.wait()
            remove_unfinished_writes(pipeline.working_dir)  # a full disk's leftovers
            if reset_state:
                warehouse.call(_forget_unreadable_state, pipeline)
            else:  # the rebuilt runs' state is dropped anyway
                check_saved_state(
                    pipeline.state, pipeline.working_dir, (RUNS_TABLE,) if full_refresh else ()
                )
            result = _sync_locked(
                pipeline, destination, full_refresh, max_loads, source_options, warehouse, reporter
            )
            prune_loaded_packages(pipeline)  # completed packages: a resume needs none of them
    except LocalStorageError:
        raise
    except DeckError as exc:
        # a step of ours that failed on it (a model, after the load's writes went to DuckDB's
        # log): the full disk is what to fix
        raise_for_storage_fault(exc, places)
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


def _forget_unreadable_state(pipeline: dlt.Pipeline) -> None:
    dropped = forget_unreadable_state(pipeline)
    if dropped:
        logger.warning(
            "Forgot the saved state of pipeline '%s' (%s): it could not be read in the warehouse"
            " either. The tables are kept, and this sync lists those again and merges them",
            pipeline.pipeline_name,
            ", ".join(dropped),
        )
    else:
        logger.info(
            "Took the saved state of pipeline '%s' back from the warehouse", pipeline.pipeline_name
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
    rebuild = [RUNS_TABLE] if full_refresh else []
    gone = (
        []
        if full_refresh
        else warehouse.call(missing_tables, pipeline, traits, job_client=job_client)
    )
    if gone:
        rebuild = [root for root in RESOURCES if any(belongs(name, root) for name in gone)]
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
    progress = SyncProgress()  # what the listings report, for the reporter's estimate
    scope = SyncScope(
        stats=SyncStats(progress=progress),
        loaded_runs=partial(warehouse.call, loaded_run_ids, pipeline)
        if traits.has_sql
        else no_sql_to_ask,
    )
    reporter.start(scope.stats, progress)
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
