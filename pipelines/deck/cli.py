"""Command line of `python pipelines/task_runs.py`: parse options, run the sync, print a summary.

Exit codes: 0 everything loaded; 1 the sync failed (API, data or load); 2 bad configuration;
130 interrupted by Ctrl-C (SIGINT), 143 stopped by SIGTERM.
3 the sync completed but some records Deck returned could not be placed and were quarantined in
`task_runs_rejected` (they are retried at the next sync).
"""

import argparse
import logging
import os
import re
import shlex
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException
from dlt.pipeline.exceptions import PipelineStepFailed

from . import settings
from .configured import locate_setting
from .destination import DestinationTraits
from .errors import DeckConfigError, DeckError, DeckOptionError
from .events import EVENT_GAPS_TABLE
from .footprint import Footprint
from .local_faults import LocalPlaces, QuietStorageFaults, raise_for_storage_fault
from .local_files import shown_path
from .options import FILTERS, OPTION_SPECS, filter_flag, flatten_cli_values
from .progress_display import Reporter, reporter_for, restore_terminal
from .quarantine import REJECTED_TABLE
from .redact import install_log_filter, remember_secret, scrub
from .runner import SyncResult, sync
from .working_folder import (
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
        help="empty the pipeline's working folder and forget its saved state (locally and in the"
        " warehouse), keep every table, then list all runs again and merge them: the way out of"
        " a damaged working folder",
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
        key = dlt.secrets.get("sources.deck.api_key")
    except Exception:  # a settings file that cannot be read: its own paragraph says so; or a
        # dlt setting that breaks dlt's start (RUNTIME__LOG_FORMAT=TEXT): the key may still be
        # in the environment, and the paragraph about the failure may quote it
        key = os.environ.get("SOURCES__DECK__API_KEY")
    if isinstance(key, str):
        remember_secret(key.strip())


def _say(text: str, file: Any = None) -> None:
    """Print a line the user sees (stdout unless `file`), scrubbed of the key like every text
    that leaves the connector (redact.scrub)."""
    print(scrub(text), file=file or sys.stdout)


def print_summary(pipeline: dlt.Pipeline, result: SyncResult) -> None:
    traits = result.destination or DestinationTraits(pipeline.destination.destination_name)
    location = traits.location or traits.name
    total = result.runs_in_warehouse
    in_warehouse = f" ({total:,} in the warehouse)" if total is not None else ""
    _say(f"Deck task runs -> {traits.name} dataset '{pipeline.dataset_name}' at {location}")
    resumed = ""
    if result.resumed_runs:
        resumed = f" + {result.resumed_runs:,} from an interrupted earlier sync"
    _say(
        f"  runs:     {result.new_runs:,} new, {result.updated_runs:,} updated{resumed}"
        f"{in_warehouse}"
    )
    if result.new_events or result.event_gaps:
        gaps = ""
        if result.event_gaps:
            gaps = (
                f"; history has a gap (Deck keeps events {settings.EVENT_RETENTION_DAYS} days,"
                f" see {pipeline.dataset_name}.{EVENT_GAPS_TABLE})"
            )
        _say(f"  events:   {result.new_events:,} new{gaps}")
    _say(
        f"  requests: {result.requests:,} ({result.pages:,} pages, {result.open_rechecked:,} open"
        f" runs fetched by id, {result.retries:,} retries) in {result.loads} load(s),"
        f" {result.seconds:.1f} s"
    )
    if result.quarantined:
        _say(
            f"  quarantined: {result.quarantined:,} run{'s' if result.quarantined != 1 else ''}"
            f" (see {pipeline.dataset_name}.{REJECTED_TABLE}); they are retried at the next sync"
        )
    if result.not_relisted:
        _say(
            f"  missing:  {result.not_relisted:,} record(s) Deck listed before a cut did not come"
            " back with the rest of their window (see the warning above)"
        )
    for reason in result.ended_early:
        _say(f"  ended:    {reason}")
    if result.models:
        _say(f"  models:   {', '.join(result.models)} (views in '{pipeline.dataset_name}')")
    if traits.name == "duckdb" and traits.location:
        _say(f"  try:      {try_command(traits.location, pipeline.dataset_name)}")


def try_command(database: str, dataset: str) -> str:
    """A shell command that reads the warehouse just written, and works as printed.

    The DuckDB CLI does not come with the `duckdb` Python package (README, "SQL from the shell");
    the Python that ran this sync has that package, so the command uses it, read-only (a
    scheduled sync may be writing). The interpreter is named relative to the working directory
    when it lies below it (`.venv/bin/python` after `make demo`).
    """
    sql = f"SELECT status, count(*) AS runs FROM {dataset}.task_runs GROUP BY 1 ORDER BY 2 DESC"
    code = (
        f"import duckdb; print(duckdb.connect({database!r}, read_only=True).sql({sql!r}))"
    )
    python = sys.executable
    relative = os.path.relpath(python)
    if not relative.startswith(os.pardir):
        python = relative
    quoted = f'"{code}"' if not re.search(r'["$`\\!]', code) else shlex.quote(code)
    return f"{shlex.quote(python)} -c {quoted}"


def explain(exc: BaseException) -> BaseException:
    """The error worth showing: dlt wraps source errors (and Ctrl-C) in PipelineStepFailed."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (DeckError, ConfigurationException, KeyboardInterrupt)):
            return exc
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


# ---- configuration problems: one paragraph naming the setting and where it goes ------------------

_TOML_POSITION = re.compile(r"\s*at line (\d+) col (\d+)\s*$")
_TYPE_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def describe_toml_error(exc: TomlProviderReadException) -> str:
    """Which settings file is broken and where: dlt's message names only the candidate paths.

    Each existing candidate is parsed again with dlt's own parser (tomlkit) to find the culprit;
    tomlkit's message ends with "at line 3 col 24".
    """
    import tomlkit

    for path in exc.full_paths:
        if not os.path.isfile(path):
            continue
        try:
            tomlkit.parse(Path(path).read_text())
        except Exception as parse_error:
            text = str(parse_error)
            match = _TOML_POSITION.search(text)
            where = shown_path(path)
            if match:
                text = text[: match.start()]
                where = f"{where}, line {match.group(1)}"  # tomlkit's column is not reliable
            return (
                f"{where}: not valid TOML: {text}. Fix that line (strings need both quotes,"
                " sections look like [sources.deck]); nothing was synced."
            )
    return f"a settings file could not be read: {exc}. Nothing was synced."


def describe_wrong_type(exc: ConfigValueCannotBeCoercedException) -> str:
    """Name the option, its value and where it was set. Only values meant to be numbers or
    booleans are echoed: a credential that failed to parse may hold a password. An option of
    `[sources.deck]` says what it accepts (`options.OPTIONS`), as its own check would."""
    where = locate_setting(exc.field_name, exc.field_value)
    spec = OPTION_SPECS.get(exc.field_name)
    if spec is not None:
        return spec.refuse(exc.field_value).describe(where)
    expected = _TYPE_NAMES.get(exc.hint, getattr(exc.hint, "__name__", str(exc.hint)))
    shown = f" = {exc.field_value!r}" if exc.hint in (int, float, bool) else ""
    return (
        f"{exc.field_name}{shown} in {where or 'the configuration'} is not {expected}. Fix the"
        " value (see the options in README); nothing was synced."
    )


def describe_option_error(exc: DeckOptionError) -> str:
    """The option's one line, saying where its value was set when that can be found."""
    where = exc.where
    if where is None and exc.shown:
        where = locate_setting(exc.option, exc.value)
    return exc.describe(where)


def describe_missing_config(exc: ConfigFieldMissingException) -> str:
    """Missing Deck key vs missing destination settings: say which, and where each one goes.

    dlt's exception lists, per missing field, the lookups it tried; for destination credentials
    each lookup is itself a list of the credential's sub-fields (host, password, ...).
    """
    lookups = [t for traces in exc.traces.values() for t in traces]
    sections: list[str] = []
    sub_fields: list[str] = []
    for lookup in lookups:
        nested = getattr(lookup, "traces", None)
        if nested is not None:  # credentials: LookupTraces of one credential spec
            sub_fields.extend(f for f in nested if f not in sub_fields)
            for inner in nested.values():
                sections = sections or list(inner[0].sections[:-1] if inner else [])
        elif not sections:
            sections = list(lookup.sections)
    if not sections or sections[0] != "destination":
        if "api_key" in exc.fields:
            return (
                "no API key. Set SOURCES__DECK__API_KEY, or api_key under [sources.deck] in"
                " .dlt/secrets.toml (copy .dlt/secrets.toml.example), or try --demo."
            )
        fields = ", ".join(exc.fields)
        return f"{fields} is not set for {exc.spec_name}: {str(exc).splitlines()[0]}"
    name = sections[1] if len(sections) > 1 else "?"
    parts = []
    for field in exc.fields:
        env = "__".join(["DESTINATION", name, field]).upper()
        parts.append(f"{env}, or {field} under [destination.{name}] in .dlt/secrets.toml")
    missing = f" (it needs {', '.join(sub_fields)})" if sub_fields else ""
    return (
        f"destination {name} is not configured: {' and '.join(exc.fields)} not set{missing}."
        f" Set {'; '.join(parts)}. See README, \"Other destinations and scheduling\"."
    )


def describe_destination_error(name: str, exc: BaseException) -> str:
    """Why `--destination NAME` cannot be used, in one paragraph (dlt's own message lists every
    module path it tried, over twenty lines)."""
    if isinstance(exc, MissingDependencyException):
        install = " and ".join(f'pip install "{d}"' for d in exc.dependencies)
        return (
            f"destination {name!r} needs packages that are not installed: {install}"
            " (see README, \"Other destinations and scheduling\"). Nothing was synced."
        )
    if isinstance(exc, UnknownDestinationModule):
        env = f"DESTINATION__{name.upper()}__DESTINATION_TYPE"
        return (
            f"destination {name!r} is not a dlt destination. Name one by its type: duckdb (the"
            " default), postgres, motherduck, bigquery, snowflake, databricks, filesystem (see"
            " README, \"Other destinations and scheduling\"), or define a named destination with"
            f" destination_type = \"postgres\" under [destination.{name}] in .dlt/config.toml (or"
            f" {env}=postgres). Nothing was synced."
        )
    first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return (
        f"destination {name!r} cannot be used: {first.strip()} Use a dlt destination name such as"
        " duckdb, postgres, motherduck, bigquery, snowflake or filesystem. Nothing was synced."
    )


def describe_failure(cause: BaseException) -> tuple[str, int]:
    """The paragraph after "Deck sync failed: " and the exit code."""
    if isinstance(cause, ConfigFieldMissingException):
        return describe_missing_config(cause), 2
    if isinstance(cause, TomlProviderReadException):
        return describe_toml_error(cause), 2
    if isinstance(cause, ConfigValueCannotBeCoercedException):
        return describe_wrong_type(cause), 2
    if isinstance(cause, DeckOptionError):
        return describe_option_error(cause), 2
    if isinstance(cause, ConfigurationException):
        return str(cause).strip(), 2
    return str(cause), 2 if isinstance(cause, DeckConfigError) else 1


# ---- Ctrl-C and SIGTERM -------------------------------------------------------------------------

# After the first signal the sync unwinds (dlt rolls back the load in progress); if that takes
# longer than this (a C call that does not return, a thread pool waiting for a stalled read) the
# process exits anyway: a hard exit at any moment is as safe as the `kill -9` the tests prove.
INTERRUPT_GRACE_S = 3.0
_SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}
_received: list[int] = []


def received_signal(cause: BaseException | None = None) -> int:
    """The signal that stopped the sync: the one our handler received, else the one dlt's own
    handler turned into `cause` (dlt's SignalReceivedException carries its number), else SIGINT
    (a KeyboardInterrupt raised by Python's default handler)."""
    if _received:
        return _received[0]
    code = getattr(cause, "signal_code", None)
    return code if isinstance(code, int) and code > 0 else signal.SIGINT


def interrupt_message(signum: int) -> str:
    verb = "interrupted" if signum == signal.SIGINT else "stopped"
    return (
        f"Deck sync {verb} ({_SIGNAL_NAMES.get(signum, signum)}). Every load committed before"
        " it is kept; the next sync resumes from there and loses nothing."
    )


def _hard_exit(signum: int) -> None:
    """Print the message and end the process now, without waiting for worker threads.

    Threads stuck in a socket read cannot be interrupted, and the interpreter would join them at
    exit (up to the 60 s read timeout). Data and state are committed together per load, so
    skipping the rest of the shutdown loses nothing.
    """
    try:
        sys.stdout.flush()
        restore_terminal(sys.stderr)  # a live progress display hid the cursor
        print(interrupt_message(signum), file=sys.stderr)
        sys.stderr.flush()
        logging.shutdown()
    finally:
        os._exit(128 + signum)


def _watchdog(signum: int) -> None:
    time.sleep(INTERRUPT_GRACE_S)
    _hard_exit(signum)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if _received:  # a second Ctrl-C: the user does not want to wait
        _hard_exit(_received[0])
    _received.append(signum)
    threading.Thread(target=_watchdog, args=(signum,), daemon=True).start()
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM (what schedulers send) both unwind the sync like Ctrl-C.

    dlt replaces these handlers with its own while its normalize and load steps run, unless
    told not to (`keep_our_signal_handlers`): its handler records the signal and lets the step
    finish its jobs, so a signal during the last job of a load was forgotten, and one during an
    earlier job came back as an exception our handler never saw (reported as Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _received.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def keep_our_signal_handlers(pipeline: dlt.Pipeline) -> None:
    """Our handlers stay in place through dlt's normalize and load steps (dlt's setting
    `runtime.intercept_signals`, set on this pipeline only): a signal there stops the sync like
    anywhere else, with the exit code and message of the signal received, within
    INTERRUPT_GRACE_S. Ending a load at any moment is safe: data and state are committed
    together, and the next sync completes the package (README, Crash-safe)."""
    pipeline.config.runtime.intercept_signals = False


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
            _hard_exit(received_signal(cause))
        if footprint is not None and _loaded_nothing(pipeline, reporter, pending_before, cause):
            footprint.erase()
        if args.debug:
            logger.exception("Sync failed")
        message, code = describe_failure(cause)
        _say(f"Deck sync failed: {message}", file=sys.stderr)
        if not isinstance(cause, (DeckError, ConfigurationException)):
            print("Run again with --debug for the full traceback.", file=sys.stderr)
        return code
    except KeyboardInterrupt as interrupt:
        _stop(simulator)
        _hard_exit(received_signal(interrupt))
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
        _say(f"Deck sync failed: {describe_unexpected(exc, args.debug)}", file=sys.stderr)
        return 1
    finally:
        held.close()
        _stop(simulator)


def describe_unexpected(exc: BaseException, debug: bool) -> str:
    """The paragraph after "Deck sync failed: " for an error no other paragraph explains."""
    text = " ".join(str(exc).split())
    what = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = "the traceback is above" if debug else "run again with --debug for the traceback"
    return (
        f"an unexpected error: {what}. Nothing was committed after the last load that"
        f" completed; {where}, and report it if the message does not show the cause."
    )


def _loaded_nothing(
    pipeline: dlt.Pipeline | None, reporter: Reporter, pending_before: bool, cause: BaseException
) -> bool:
    """Whether this failed run read no page and committed nothing, so that undoing what it wrote
    locally (`Footprint.erase`) loses nothing. Never while another sync holds the pipeline."""
    if isinstance(cause, DeckSyncLockedError) or pending_before:
        return False
    stats = reporter.stats
    if stats is not None and (stats.requests.pages or stats.progress.loads):
        return False
    try:
        return pipeline is None or not pipeline.has_pending_data
    except Exception:  # a pipeline folder in a state dlt cannot read: leave it alone
        return False


def _stop(simulator: Any) -> None:
    if simulator is not None:
        simulator.stop()
