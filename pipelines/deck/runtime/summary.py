"""What the CLI prints after a sync: where the runs went, what it cost, and a command that reads
them. Every line goes through the scrubber, like every text that leaves the connector.
"""

import os
import re
import shlex
import sys
from typing import Any

import dlt

from deck.core import settings
from deck.core.redact import scrub
from deck.core.tables import EVENT_GAPS_TABLE, REJECTED_TABLE
from deck.runtime.runner import SyncResult
from deck.warehouse.destination import DestinationTraits


def say(text: str, file: Any = None) -> None:
    """Print a line the user sees (stdout unless `file`), scrubbed of the key like every text
    that leaves the connector (redact.scrub)."""
    print(scrub(text), file=file or sys.stdout)


def print_summary(pipeline: dlt.Pipeline, result: SyncResult) -> None:
    traits = result.destination or DestinationTraits(pipeline.destination.destination_name)
    location = traits.location or traits.name
    total = result.runs_in_warehouse
    in_warehouse = f" ({total:,} in the warehouse)" if total is not None else ""
    say(f"Deck task runs -> {traits.name} dataset '{pipeline.dataset_name}' at {location}")
    resumed = ""
    if result.resumed_runs:
        resumed = f" + {result.resumed_runs:,} from an interrupted earlier sync"
    say(
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
        say(f"  events:   {result.new_events:,} new{gaps}")
    say(
        f"  requests: {result.requests:,} ({result.pages:,} pages, {result.open_rechecked:,} open"
        f" runs fetched by id, {result.retries:,} retries) in {result.loads} load(s),"
        f" {result.seconds:.1f} s"
    )
    if result.quarantined:
        say(
            f"  quarantined: {result.quarantined:,} run{'s' if result.quarantined != 1 else ''}"
            f" (see {pipeline.dataset_name}.{REJECTED_TABLE}); they are retried at the next sync"
        )
    if result.not_relisted:
        say(
            f"  missing:  {result.not_relisted:,} record(s) Deck listed before a cut did not come"
            " back with the rest of their window (see the warning above)"
        )
    for reason in result.ended_early:
        say(f"  ended:    {reason}")
    if result.models:
        say(f"  models:   {', '.join(result.models)} (views in '{pipeline.dataset_name}')")
    if traits.name == "duckdb" and traits.location:
        say(f"  try:      {try_command(traits.location, pipeline.dataset_name)}")


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
