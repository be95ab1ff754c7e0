"""Command line of `python pipelines/task_runs.py`: parse options, run the sync, print a summary.

Exit codes: 0 everything loaded; 1 the sync failed (API, data or load); 2 bad configuration;
3 the sync completed but some records Deck returned could not be placed and were quarantined in
`task_runs_rejected` (they are retried at the next sync).
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, List, Optional

import dlt
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.pipeline.exceptions import PipelineStepFailed

from . import settings
from .errors import DeckConfigError, DeckError
from .runner import SyncResult, sync
from .source import REJECTED_TABLE

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
        help="drop this source's tables and saved state first, then load everything again",
    )
    filters = parser.add_argument_group("filters (Deck's own; repeat or comma-separate lists)")
    filters.add_argument("--status", action="append", help="e.g. completed, failed")
    filters.add_argument("--outcome", action="append", help="success, failure or unknown")
    filters.add_argument("--source-id", action="append")
    filters.add_argument("--agent-id")
    filters.add_argument("--credential-id")
    filters.add_argument("--task-id")
    filters.add_argument("--workflow-id")
    filters.add_argument("--search", help="free text over task name, task id and run id")
    parser.add_argument("--debug", action="store_true", help="verbose logs and tracebacks")
    return parser


def _flatten(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def source_options(args: argparse.Namespace) -> Dict[str, Any]:
    """Only what the user set, so that everything else still comes from dlt's config."""
    options = {
        "start_date": args.start_date,
        "end_date": args.end_date,
        "status": _flatten(args.status),
        "outcome": _flatten(args.outcome),
        "source_id": _flatten(args.source_id),
        "agent_id": args.agent_id,
        "credential_id": args.credential_id,
        "task_id": args.task_id,
        "workflow_id": args.workflow_id,
        "search": args.search,
    }
    return {k: v for k, v in options.items() if v is not None}


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("deck")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False


def warehouse_location(pipeline: dlt.Pipeline) -> str:
    try:
        credentials = pipeline.destination_client().config.credentials  # type: ignore[attr-defined]
        database = getattr(credentials, "database", None)
        database = database or getattr(credentials, "bucket_url", None)
        if pipeline.destination.destination_name == "duckdb" and database:
            return os.path.relpath(str(database))
        if database:
            return str(database)
    except Exception:  # the summary must not fail a successful sync
        pass
    return pipeline.destination.destination_name


def count_runs(pipeline: dlt.Pipeline) -> Optional[int]:
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name("task_runs")
            rows = client.execute_sql(f"SELECT count(*) FROM {table}")
            return int(rows[0][0])
    except Exception:
        return None


def print_summary(pipeline: dlt.Pipeline, result: SyncResult) -> None:
    location = warehouse_location(pipeline)
    total = count_runs(pipeline)
    in_warehouse = f" ({total:,} in the warehouse)" if total is not None else ""
    print(
        f"Deck task runs -> {pipeline.destination.destination_name} dataset"
        f" '{pipeline.dataset_name}' at {location}"
    )
    print(f"  runs:     {result.new_runs:,} new, {result.updated_runs:,} updated{in_warehouse}")
    print(
        f"  requests: {result.requests:,} ({result.pages:,} pages, {result.open_rechecked:,} open"
        f" runs fetched by id, {result.retries:,} retries) in {result.loads} load(s),"
        f" {result.seconds:.1f} s"
    )
    if result.quarantined:
        print(
            f"  quarantined: {result.quarantined:,} run{'s' if result.quarantined != 1 else ''}"
            f" (see {pipeline.dataset_name}.{REJECTED_TABLE}); they are retried at the next sync"
        )
    if result.models:
        print(f"  models:   {', '.join(result.models)} (views in '{pipeline.dataset_name}')")
    if pipeline.destination.destination_name == "duckdb":
        print(
            f"  try:      duckdb {location} -c \"SELECT status, count(*) FROM"
            f" {pipeline.dataset_name}.task_runs GROUP BY 1 ORDER BY 2 DESC\""
        )


def explain(exc: BaseException) -> BaseException:
    """The error worth showing: dlt wraps source errors in PipelineStepFailed and others."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (DeckError, ConfigFieldMissingException)):
            return exc
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.debug)
    simulator = None
    try:
        options = source_options(args)
        if args.demo:
            from .simulator import DEMO_API_KEY, DeckSimulator

            simulator = DeckSimulator(
                seed=DEMO_SEED, runs=DEMO_RUNS, history_days=60, now=settings.DEMO_NOW
            ).start()
            logger.info("Demo: Deck API simulator, %d runs, at %s", DEMO_RUNS, simulator.base_url)
            options.update(api_key=DEMO_API_KEY, base_url=simulator.base_url)
            pipeline_name = args.pipeline_name or settings.DEMO_PIPELINE_NAME
            # An absolute path in the working directory: the demo file never follows a path
            # remembered by an earlier demo elsewhere, nor DESTINATION__DUCKDB__CREDENTIALS.
            destination: Any = args.destination or dlt.destinations.duckdb(
                os.path.abspath(f"{settings.DEMO_PIPELINE_NAME}.duckdb")
            )
        else:
            pipeline_name = args.pipeline_name or settings.PIPELINE_NAME
            destination = args.destination or "duckdb"
        try:
            pipeline = dlt.pipeline(
                pipeline_name=pipeline_name,
                destination=destination,
                dataset_name=args.dataset or settings.DATASET_NAME,
            )
        except Exception as exc:  # unknown destination names fail here, before any request
            raise DeckConfigError(
                f"destination {args.destination!r} cannot be used: {exc}. Use a dlt destination"
                " name such as duckdb, postgres, motherduck, bigquery, snowflake or filesystem."
            ) from None
        result = sync(pipeline, full_refresh=args.full_refresh, **options)
        print_summary(pipeline, result)
        return EXIT_QUARANTINED if result.quarantined else 0
    except (DeckError, ConfigFieldMissingException, PipelineStepFailed) as exc:
        cause = explain(exc)
        if args.debug:
            logger.exception("Sync failed")
        if isinstance(cause, ConfigFieldMissingException):
            print(
                "Deck sync failed: no API key. Set SOURCES__DECK__API_KEY, or api_key under"
                " [sources.deck] in .dlt/secrets.toml (copy .dlt/secrets.toml.example), or try"
                " --demo.",
                file=sys.stderr,
            )
            return 2
        print(f"Deck sync failed: {cause}", file=sys.stderr)
        if not isinstance(cause, DeckError):
            print("Run again with --debug for the full traceback.", file=sys.stderr)
        return 2 if isinstance(cause, DeckConfigError) else 1
    except KeyboardInterrupt:
        print("Interrupted: nothing after the last committed load was saved.", file=sys.stderr)
        return 130
    finally:
        if simulator is not None:
            simulator.stop()
