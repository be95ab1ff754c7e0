"""The `deck` dlt source: its `task_runs` and `task_run_events` resources.

How a sync keeps one row per run with its latest state, cheaply
----------------------------------------------------------------
Deck's list can only be filtered by creation time, but runs change long after they are created.
Each load therefore does two things (`deck.listing.task_runs.TaskRunLoad`):

1. **New runs** -- list `created_at >= watermark - lookback` (the watermark is the newest
   `created_at` already loaded; the lookback finds runs that became visible late, and re-reading
   it loads nothing unchanged). A first sync or a backfill cuts its range into windows by density
   and commits after every `max_runs_per_load` runs, so a killed backfill resumes from its last
   committed window.
2. **Open runs** -- every run last seen in a non-final status is remembered in state. The load
   lists the still-open ones in one filtered listing and fetches by id only those that left it.

A sync where nothing changed costs two or three requests (the key check, the new-runs page,
and the open-runs page when a run older than the lookback is still open); one where N runs
arrived and M open runs finished about ceil(N/100) + 2 + M. Nothing re-reads history.

`task_run_events` (on unless `events=False`) lists `GET /events` the same way (see
`deck.listing.events`): one more request when nothing changed, about ceil(E/100) for E new events.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource

from deck.api.client import DeckClient
from deck.api.ratelimit import RateLimiter
from deck.api.session import RetryPolicy
from deck.core import settings
from deck.core.configured import check_no_unknown_options
from deck.core.options import SourceOptions, check_option
from deck.core.redact import remember_secret
from deck.core.stats import SyncStats
from deck.core.tables import EVENT_GAPS_TABLE, EVENTS_REJECTED_TABLE, EVENTS_TABLE, REJECTED_TABLE
from deck.resources import dlt_defaults
from deck.resources.columns import (
    ERROR_COLUMNS,
    EVENT_COLUMNS,
    EVENTS_REJECTED_COLUMNS,
    GAP_COLUMNS,
    REJECTED_COLUMNS,
    TASK_RUN_COLUMNS,
)
from deck.resources.loads import SourceLoads
from deck.resources.scope import SyncScope, current_scope


@dlt.source(name="deck", section="deck")
def deck(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | list[str] | None = None,
    outcome: str | list[str] | None = None,
    source_id: str | list[str] | None = None,
    agent_id: str | None = None,
    credential_id: str | None = None,
    task_id: str | None = None,
    workflow_id: str | None = None,
    search: str | None = None,
    max_table_nesting: int = settings.DEFAULT_MAX_TABLE_NESTING,
    page_size: int = settings.PAGE_SIZE,
    max_runs_per_load: int = settings.MAX_RUNS_PER_LOAD,
    pages_per_window: int = settings.PAGES_PER_WINDOW,
    max_workers: int = settings.MAX_WORKERS,
    rate_limit_requests: int = settings.RATE_LIMIT_REQUESTS,
    rate_limit_period_s: float = settings.RATE_LIMIT_PERIOD_S,
    request_max_attempts: int = settings.REQUEST_MAX_ATTEMPTS,
    backoff_base_s: float = settings.BACKOFF_BASE_S,
    backoff_cap_s: float = settings.BACKOFF_CAP_S,
    connect_timeout_s: float = settings.CONNECT_TIMEOUT_S,
    read_timeout_s: float = settings.READ_TIMEOUT_S,
    request_deadline_s: float | None = None,
    lookback_s: float = settings.LOOKBACK_S,
    events: bool = True,
) -> list[DltResource]:
    """Deck task runs, one row per run with its latest state, and their status-change events.

    Every argument can come from `[sources.deck]` in `.dlt/config.toml` (the key from
    `.dlt/secrets.toml` or `SOURCES__DECK__API_KEY`); the filters are those of `filters.FILTERS`
    (a list, or a comma-separated text as the CLI takes them), every other option is declared
    with its range in `options.OPTIONS`. Everything is checked here, each option once, before
    any request, so a typo fails in a second rather than after an hour of backfill; a key under
    `[sources.deck]` that is no option fails too. `events=False` leaves out `task_run_events`
    (and its requests).
    """
    dlt_defaults.register()  # before dlt reads them: the pipeline extracts after this returns
    # before the options' checks: a refusal echoes the value, which may be the key pasted into
    # the wrong option (the client checks the key itself later, and remembers it too)
    remember_secret(str(api_key or "").strip())
    check_no_unknown_options()
    page_size = check_option("page_size", page_size)
    rate_limit_requests = check_option("rate_limit_requests", rate_limit_requests)
    rate_limit_period_s = check_option("rate_limit_period_s", rate_limit_period_s)
    events = check_option("events", events)
    options = SourceOptions.parse(
        start_date=start_date,
        end_date=end_date,
        filters={
            "status": status,
            "outcome": outcome,
            "source_id": source_id,
            "agent_id": agent_id,
            "credential_id": credential_id,
            "task_id": task_id,
            "workflow_id": workflow_id,
            "search": search,
        },
        lookback_s=lookback_s,
        max_runs_per_load=max_runs_per_load,
        pages_per_window=pages_per_window,
        max_workers=max_workers,
        max_table_nesting=max_table_nesting,
    )
    policy = RetryPolicy(
        max_attempts=request_max_attempts,
        backoff_base_s=backoff_base_s,
        backoff_cap_s=backoff_cap_s,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        request_deadline_s=request_deadline_s,
    )

    def build_client(stats: SyncStats) -> DeckClient:
        limiter = (
            RateLimiter(rate_limit_requests, rate_limit_period_s) if rate_limit_requests else None
        )
        return DeckClient(
            base_url, api_key, page_size=page_size, policy=policy, limiter=limiter,
            stats=stats.requests,
        )

    shared = current_scope()
    scope = shared if shared is not None else SyncScope()
    client = scope.client_for(build_client)  # checks base_url and the key before any request

    loads = SourceLoads(
        scope, client, options, redact=[str(api_key).strip()], events=events,
        standalone=shared is None,
    )

    @dlt.resource(
        name="task_runs",
        primary_key="id",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        columns=TASK_RUN_COLUMNS,
        nested_hints={"errors": {"columns": ERROR_COLUMNS}},
    )
    def task_runs() -> Iterator[Any]:
        """Task runs created in [start_date, end_date), kept at their latest state."""
        yield from loads.items("task_runs")

    @dlt.resource(
        name=EVENTS_TABLE,
        primary_key="id",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        columns=EVENT_COLUMNS,
    )
    def task_run_events() -> Iterator[Any]:
        """Every status change of the runs, from Deck's events (kept 30 days by Deck)."""
        yield from loads.items(EVENTS_TABLE)

    task_runs.max_table_nesting = options.max_table_nesting
    task_run_events.max_table_nesting = options.max_table_nesting
    add_table_variant(task_runs, REJECTED_TABLE, "key", REJECTED_COLUMNS)
    add_table_variant(task_run_events, EVENT_GAPS_TABLE, "gap_start", GAP_COLUMNS)
    add_table_variant(task_run_events, EVENTS_REJECTED_TABLE, "key", EVENTS_REJECTED_COLUMNS)
    return [task_runs, task_run_events] if events else [task_runs]


def add_table_variant(
    resource: DltResource, table: str, key: str, columns: dict[str, TColumnSchema]
) -> None:
    """Hints for a side table the resource also writes (quarantine, gaps): a variant, so that it
    inherits neither the resource's columns nor its key."""
    resource.apply_hints(table_name=table, columns={}, nested_hints={}, create_table_variant=True)
    resource.apply_hints(
        table_name=table,
        primary_key=key,
        columns=columns,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        create_table_variant=True,
    )
