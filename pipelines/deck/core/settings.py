"""Constants of the Deck v2 API and of this connector's defaults, in one place."""

from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType

DEFAULT_BASE_URL = "https://api.deck.co/v2"
TASK_RUNS_PATH = "task-runs"
TEST_PATH = "test"
EVENTS_PATH = "events"

# Deck keeps events this long: a first sync gets this much lifecycle history, and a connector not
# run for longer leaves a hole (recorded in `task_run_event_gaps`).
EVENT_RETENTION_DAYS = 30
# Events of task runs; others (if Deck adds kinds) are not this connector's.
TASK_RUN_EVENT_PREFIX = "task_run."

# The API allows 1..100; the largest page means the fewest requests.
PAGE_SIZE = 100

# Statuses a run never leaves. Everything else -- including spellings this code does not know
# ("pending", "cancelling", or a status added by a newer API version) -- is treated as still open,
# so the run keeps being re-checked until it reaches one of these.
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "canceled"})

# The documented open statuses, used as the `status` filter when re-listing open runs.
OPEN_STATUSES: tuple[str, ...] = (
    "queued",
    "running",
    "canceling",
    "interaction_required",
    "review_required",
)

ALL_STATUSES: tuple[str, ...] = OPEN_STATUSES + ("completed", "canceled", "failed")
OUTCOMES: tuple[str, ...] = ("success", "failure", "unknown")

# Depth to which arbitrary JSON in `output`, `interaction`, `input`... is unpacked into columns
# (objects) and child tables (lists). Deeper levels are kept as JSON.
DEFAULT_MAX_TABLE_NESTING = 2

# New runs are listed from this far below the newest `created_at` already listed, so a run that
# becomes visible late (committed or replicated after runs created after it) is still found.
# Covers runs visible up to 10 minutes late; unchanged re-reads are not reloaded.
LOOKBACK_S = 600.0

# Deck's `Date` header is its clock: no listed run can be newer, so the watermark never passes it.
# It is trusted up to MAX_CLOCK_SKEW_S ahead of this machine's clock; without a `Date` header this
# machine's clock plus FALLBACK_CLOCK_SKEW_S is used. Too low a bound only costs re-reads of the
# newest runs (unchanged ones are not reloaded); too high a one could skip runs.
MAX_CLOCK_SKEW_S = 24 * 3600.0
FALLBACK_CLOCK_SKEW_S = 300.0

# Pace of a sync: a backfill commits every MAX_RUNS_PER_LOAD runs, in windows of about
# PAGES_PER_WINDOW pages listed by up to MAX_WORKERS threads.
MAX_RUNS_PER_LOAD = 50_000
PAGES_PER_WINDOW = 25
MAX_WORKERS = 6

# Deck allows 200 requests per 10 s per organization, shared by all its API keys.
RATE_LIMIT_REQUESTS = 200
RATE_LIMIT_PERIOD_S = 10.0

# Retries: Deck recommends exponential backoff from 1 s, doubling, capped at 30 s.
REQUEST_MAX_ATTEMPTS = 8
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 30.0

# A host name that does not resolve is retried this many times in all, at most this many seconds
# apart, then explained: a resolver's hiccup passes in seconds, and a wrong base_url never does.
UNRESOLVED_MAX_ATTEMPTS = 3
UNRESOLVED_RETRY_WAIT_S = 2.0

# HTTP behaviour.
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# One attempt (connect, headers, body) must finish within this many read timeouts unless
# request_deadline_s is set: the read timeout is per socket read, so it alone never ends a trickle.
REQUEST_DEADLINE_FACTOR = 2.0

# A listing that returns this many empty pages in a row while saying has_more=true makes no
# progress; the walk stops instead of spending the rate limit forever.
MAX_EMPTY_PAGES = 3

# DuckDB lets a process write its file only while no other process has it open, read-only
# included (a `duckdb -readonly` shell, a notebook's connection). A sync that finds the file
# taken waits up to LOCK_WAIT_S (option `lock_wait_s`) for it, trying every LOCK_POLL_S and
# saying so every LOCK_REPORT_S, then fails with nothing half-loaded. Five minutes outlasts a
# reader's query, and still tells a scheduler about a session left open long before the next run.
LOCK_WAIT_S = 300.0
LOCK_POLL_S = 0.5
LOCK_REPORT_S = 30.0

# Completed load packages kept in the working folder for `dlt pipeline ... info` / `load-package`
# (their data files are deleted at once, `[load] delete_completed_jobs`); older ones are
# deleted after each sync. A resume needs none of them: it needs only the pending packages.
KEEP_LOADED_PACKAGES = 10

PIPELINE_NAME = "deck_task_runs"
DEMO_PIPELINE_NAME = "deck_task_runs_demo"
DATASET_NAME = "deck"

# The demo's simulated clock is fixed so that every `--demo` run serves the same data and a second
# run shows what a no-change sync costs.
DEMO_NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)

# Older API pages spell some statuses differently (FACTS.md): `pending` for `review_required`,
# `cancelling` for `canceling`. Loaded rows keep what Deck sent; the event-based SQL models
# (task_run_status_history, task_run_lifecycle, daily_task_run_waits) read each spelling on the
# left as the status on the right, so one status never splits into two.
STATUS_SPELLINGS: Mapping[str, str] = MappingProxyType(
    {"pending": "review_required", "cancelling": "canceling"}
)

# Deck emits several events of one run in the same millisecond (a run created already running
# gets `task_run.queued` and `task_run.running` at one created_at) and event ids are random, so the
# event models order a run's events by created_at, then by the (normalised) status's place in the
# lifecycle below, then by id. A status not listed (a newer API's) ranks UNLISTED_STATUS_ORDER:
# after running, before canceling and the final statuses, like the statuses that wait on a person.
STATUS_ORDER: Mapping[str, int] = MappingProxyType(
    {
        "queued": 0,
        "running": 1,
        "interaction_required": 2,
        "review_required": 2,
        "canceling": 3,
        "completed": 4,
        "failed": 4,
        "canceled": 4,
    }
)
UNLISTED_STATUS_ORDER = 2

# daily_task_run_waits.stuck_runs counts a run as stuck when its current status is open (not in
# FINAL_STATUSES) and was entered more than this many seconds before the query runs. An hour is
# twice Deck's default 30-minute run timeout: a run still queued, running or waiting on a person
# after that is worth a look. Raise it where reviews routinely take days.
STUCK_AFTER_S = 3600
