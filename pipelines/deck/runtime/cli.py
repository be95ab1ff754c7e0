"""Command line of `python pipelines/task_runs.py`: parse options, run the sync, print a summary.

Exit codes: 0 everything loaded; 1 the sync failed (API, data or load); 2 bad configuration;
130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM.
3 the sync completed but some records Deck returned could not be placed and were quarantined in
`task_runs_rejected` (they are retried at the next sync).
"""

import argparse
import logging
import os
import sys
import tomllib
from contextlib import ExitStack
from typing import Any

import dlt
from dlt.common.configuration.exceptions import (
    ConfigurationException,
)
from dlt.pipeline.exceptions import PipelineStepFailed

from deck.core import settings
from deck.core.configured import settings_files
from deck.core.errors import DeckConfigError, DeckError
from deck.core.filters import FILTERS, filter_flag, flatten_cli_values
from deck.core.redact import install_log_filter, remember_secret
from deck.core.shown import shown_path
from deck.progress.display import Reporter, reporter_for
from deck.runtime.failures import (
    describe_destination_error,
    describe_failure,
    describe_unexpected,
    explain,
)
from deck.runtime.runner import sync
from deck.runtime.signals import (
    hard_exit,
    install_signal_handlers,
    keep_our_signal_handlers,
    received_signal,
)
from deck.runtime.summary import print_summary, say
from deck.warehouse.footprint import Footprint
from deck.warehouse.local_faults import LocalPlaces, QuietStorageFaults, raise_for_storage_fault
from deck.warehouse.working_folder import (
    DeckSyncLockedError,
    check_working_folder,
    folder_lock,
    reset_working_folder,
    working_dir_of,
)

logger = logging.getLogger("deck")

EXIT_QUARANTINED = 3  # synced, but some records were quarantined (see print_summary)
DEMO_RUNS = 5_000
DEMO_SEED = 7


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python pipelines/task_runs.py",
        description="Load Deck task runs into a warehouse (DuckDB by default) with dlt.",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="sync from the bundled Deck API simulator (seeded data, no key needed) into"
        f" {settings.DEMO_PIPELINE_NAME}.duckdb, kept apart from the real pipeline",
    )
    parser.add_argument("--destination", help="any dlt destination name (default: duckdb)")
    parser.add_argument("--dataset", help=f"dataset/schema name (default: {settings.DATASET_NAME})")
    parser.add_argument("--pipeline-name", help=f"default: {settings.PIPELINE_NAME}")
    parser.add_argument("--start-date", help="load runs created at or after this ISO date/time")
    parser.add_argument("--end-date", help="load runs created before this ISO date/time")
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the runs' tables and saved state first, then load all runs again"
        f" (task_run_events are kept: Deck keeps only {settings.EVENT_RETENTION_DAYS} days of"
        " them)",
    )
    parser.add_argument(
        "--reset-state",
        action="store_true",
        help="empty the pipeline's working folder and take the saved state back from the"
        " warehouse (a resource whose state cannot be read there either lists all again, merging"
        " by id), keep every table: the way out of a damaged working folder",
    )
    parser.add_argument(
        "--no-events",
        dest="events",
        action="store_false",
        default=None,
        help="leave out task_run_events (status changes from GET /events) in this run",
    )
    filters = parser.add_argument_group("filters (Deck's own; repeat or comma-separate lists)")
    for spec in FILTERS:
        filters.add_argument(
            filter_flag(spec), action="append" if spec.many else "store", help=spec.help
        )
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    return parser


def source_options(args: argparse.Namespace) -> dict[str, Any]:
    """Only what the user set, so that everything else still comes from dlt's config."""
    options: dict[str, Any] = {
        "start_date": args.start_date,
        "end_date": args.end_date,
        "events": args.events,
    }
    for spec in FILTERS:
        value = getattr(args, spec.name)
        options[spec.name] = flatten_cli_values(value) if spec.many else value
    return {k: v for k, v in options.items() if v is not None}


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    install_log_filter(handler)  # also the records of deck.* loggers (the demo's simulator)
    root = logging.getLogger("deck")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    # dlt logs the tracebacks of a full disk or a read-only folder (its load workers, its trace)
    # before the sync fails with one paragraph about it; --debug keeps them
    dlt_logger = logging.getLogger("dlt")
    for quiet in [f for f in dlt_logger.filters if isinstance(f, QuietStorageFaults)]:
        dlt_logger.removeFilter(quiet)
    if not debug:  # first: the scrubber (redact.ScrubbingFilter) drops the exception it reads
        dlt_logger.filters.insert(0, QuietStorageFaults())


def remember_configured_key() -> None:
    """Have the scrubber know the key configured for the source (SOURCES__DECK__API_KEY,
    `api_key` under [sources.deck]) before anything can fail: an option's refusal echoes its
    value, which may be the key pasted into the wrong option, and dlt's own refusals of a value
    it cannot coerce come before `deck()` runs."""
    try:
        keys = [dlt.secrets.get("sources.deck.api_key")]
    except Exception:  # a settings file that cannot be read: its own paragraph says so; or a
        # dlt setting that breaks dlt's start (RUNTIME__LOG_FORMAT=TEXT): the key may still be
        # in the environment or a settings file, and the paragraph about the failure may quote it
        keys = [os.environ.get("SOURCES__DECK__API_KEY"), *keys_in_settings_files()]
    for key in keys:
        if isinstance(key, str):
            remember_secret(key.strip())


def keys_in_settings_files() -> list[Any]:
    """Every `api_key` of the sections dlt would read the source's key from, read without dlt
    (for when dlt cannot start); files that cannot be read or parsed give none."""
    found: list[Any] = []
    for path in settings_files():
        try:
            with open(path, "rb") as file:
                document = tomllib.load(file)
        except (OSError, ValueError):
            continue
        sources = document.get("sources")
        deck = sources.get("deck") if isinstance(sources, dict) else None
        inner = deck.get("deck") if isinstance(deck, dict) else None
        for section in (sources, deck, inner):
            if isinstance(section, dict):
                found.append(section.get("api_key"))
    return found


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.debug)
    install_signal_handlers()
    simulator = None
    pipeline: dlt.Pipeline | None = None
    footprint: Footprint | None = None
    reporter = reporter_for(sys.stderr)  # the one choice: a live display on a terminal, or logs
    pending_before = False
    held = ExitStack()  # the pipeline's lock, held from a --reset-state to the end of the sync
    try:
        remember_configured_key()
        options = source_options(args)
        if args.demo:
            from deck_simulator import DEMO_API_KEY, DeckSimulator

            simulator = DeckSimulator(
                seed=DEMO_SEED, runs=DEMO_RUNS, history_days=60, now=settings.DEMO_NOW
            ).start()
            logger.info("Demo: Deck API simulator, %d runs, at %s", DEMO_RUNS, simulator.base_url)
            options.update(api_key=DEMO_API_KEY, base_url=simulator.base_url)
            pipeline_name = args.pipeline_name or settings.DEMO_PIPELINE_NAME
            # An absolute path in dlt's local dir (the checkout, see task_runs.py): the demo file
            # never follows a path remembered by an earlier demo elsewhere, nor
            # DESTINATION__DUCKDB__CREDENTIALS.
            destination: Any = args.destination or dlt.destinations.duckdb(
                os.path.join(
                    os.path.abspath(dlt.current.run_context().local_dir),
                    f"{settings.DEMO_PIPELINE_NAME}.duckdb",
                )
            )
        else:
            pipeline_name = args.pipeline_name or settings.PIPELINE_NAME
            destination = args.destination or "duckdb"
        working_dir = working_dir_of(pipeline_name)
        try:
            if args.reset_state:
                held.enter_context(folder_lock(working_dir, pipeline_name))
                removed = reset_working_folder(working_dir)
                if removed:
                    logger.info(
                        "Emptied the working folder %s (%s)",
                        shown_path(working_dir),
                        ", ".join(removed),
                    )
            else:  # before dlt reads it, so that damage is named (--full-refresh drops the runs')
                check_working_folder(working_dir, ("task_runs",) if args.full_refresh else ())
            footprint = Footprint.before(pipeline_name)
        except OSError as exc:
            raise_for_storage_fault(exc, LocalPlaces(working_dir))
            raise
        try:
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name,
                destination=destination,
                dataset_name=args.dataset or settings.DATASET_NAME,
            )
            keep_our_signal_handlers(pipeline)
            pending_before = pipeline.has_pending_data
            footprint.note_destination(pipeline)
            # Resolve the destination's settings now: missing credentials otherwise fail only at
            # the load step, after the whole extract.
            pipeline.destination_client()
        except ConfigurationException:
            raise  # a broken settings file or value, missing credentials: explained below
        except Exception as exc:  # unknown destination names fail here, before any request
            raise_for_storage_fault(exc, LocalPlaces(working_dir))  # DLT_DATA_DIR read-only
            if isinstance(exc, OSError):  # not the destination's name: a fault said as such
                raise
            raise DeckConfigError(describe_destination_error(str(args.destination), exc)) from None
        result = sync(
            pipeline,
            full_refresh=args.full_refresh,
            reset_state=args.reset_state,
            progress=reporter,
            **options,
        )
        print_summary(pipeline, result)
        return EXIT_QUARANTINED if result.quarantined else 0
    except (DeckError, ConfigurationException, PipelineStepFailed) as exc:
        cause = explain(exc)
        if isinstance(cause, KeyboardInterrupt):
            _stop(simulator)
            hard_exit(received_signal(cause))
        if footprint is not None and _loaded_nothing(pipeline, reporter, pending_before, cause):
            footprint.erase()
        if args.debug:
            logger.exception("Sync failed")
        message, code = describe_failure(cause)
        say(f"Deck sync failed: {message}", file=sys.stderr)
        if not isinstance(cause, (DeckError, ConfigurationException)):
            print("Run again with --debug for the full traceback.", file=sys.stderr)
        return code
    except KeyboardInterrupt as interrupt:
        _stop(simulator)
        hard_exit(received_signal(interrupt))
        raise  # not reached
    except Exception as exc:  # anything else: one paragraph, never a raw traceback (it may
        # quote the key, e.g. in a path); the traceback is logged, scrubbed, under --debug only
        try:
            if footprint is not None and _loaded_nothing(pipeline, reporter, pending_before, exc):
                footprint.erase()
        except Exception:  # leaving what this run wrote is safe: a later sync reads past it
            logger.debug("Could not undo what this run wrote locally", exc_info=True)
        if args.debug:
            logger.exception("Sync failed")
        say(f"Deck sync failed: {describe_unexpected(exc, args.debug)}", file=sys.stderr)
        return 1
    finally:
        held.close()
        _stop(simulator)


def _loaded_nothing(
    pipeline: dlt.Pipeline | None, reporter: Reporter, pending_before: bool, cause: BaseException
) -> bool:
    """Whether this failed run read no page and committed nothing, so that undoing what it wrote
    locally (`Footprint.erase`) loses nothing. Never while another sync holds the pipeline."""
    if isinstance(cause, DeckSyncLockedError) or pending_before:
        return False
    stats, progress = reporter.stats, reporter.progress
    if (stats is not None and stats.requests.pages) or (progress is not None and progress.loads):
        return False
    try:
        return pipeline is None or not pipeline.has_pending_data
    except Exception:  # a pipeline folder in a state dlt cannot read: leave it alone
        return False


def _stop(simulator: Any) -> None:
    if simulator is not None:
        simulator.stop()
