"""The `deck` dlt source and its `task_runs` resource.

How a sync keeps one row per run with its latest state, cheaply
----------------------------------------------------------------
Deck's list can only be filtered by creation time, but runs change long after they are created.
Each sync therefore does two things:

1. **New runs** -- list `created_at >= watermark` (the largest `created_at` already loaded; the
   runs sitting exactly on it are remembered with their `updated_at`, so the exclusive
   `created_after` loses none of them and re-reading them costs no duplicate work). A first sync or
   a backfill cuts its range into windows by density and commits after every `max_runs_per_load`
   runs, so a killed backfill resumes from its last committed window.
2. **Open runs** -- every run last seen in a non-final status is remembered in state
   (`open_runs`). The sync lists the still-open ones in one filtered listing
   (`status=queued,running,...` since the oldest remembered one), and fetches by id
   (`GET /task-runs/{id}`) only those that left that list, i.e. the ones that actually finished.

A sync where nothing changed costs two requests; one where N runs arrived and M open runs finished
costs about ceil(N/100) + 1 + M. Nothing re-reads history.
"""

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from math import ceil
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import dlt
from dlt.common.schema.typing import TColumnSchema
from dlt.extract.resource import DltResource

from . import records, settings
from .client import DeckClient, Page, RateLimiter, RequestStats, RetryPolicy, split_filters
from .errors import DeckConfigError
from .records import NULLABLE_JSON_FIELDS, Rejection, coerce_runtime_ms  # noqa: F401 (API)
from .state import UNKNOWN_FINGERPRINT, OpenRun, Plan, TaskRunState, fingerprint
from .windows import (
    EARLIEST_PLAUSIBLE,
    Window,
    estimate_pages,
    format_timestamp,
    is_plausible,
    page_direction,
    page_stamps,
    parse_timestamp,
)

logger = logging.getLogger("deck")

TASK_RUN_COLUMNS: Dict[str, TColumnSchema] = {
    "id": {"data_type": "text", "nullable": False},
    "object": {"data_type": "text"},
    "status": {"data_type": "text"},
    "result": {"data_type": "text"},
    "task_id": {"data_type": "text"},
    "credential_id": {"data_type": "text"},
    "session_id": {"data_type": "text"},
    "agent_id": {"data_type": "text"},
    "source_id": {"data_type": "text"},
    "workflow_id": {"data_type": "text"},
    "runtime_ms": {"data_type": "bigint"},
    "created_at": {"data_type": "timestamp", "nullable": False},
    "updated_at": {"data_type": "timestamp", "dedup_sort": "desc"},
    "canceled_at": {"data_type": "timestamp"},
}

ERROR_COLUMNS: Dict[str, TColumnSchema] = {
    name: {"name": name, "data_type": "text"} for name in ("type", "code", "message", "field")
}

# Records that cannot be placed (no id, no parseable created_at) go here whole, instead of stopping
# the sync. Not `task_runs__rejected`: that name belongs to dlt's nested tables of `task_runs` (a
# list field `rejected` would land there).
REJECTED_TABLE = "task_runs_rejected"
REJECTED_COLUMNS: Dict[str, TColumnSchema] = {
    "key": {"data_type": "text", "nullable": False},
    "run_id": {"data_type": "text"},
    "reason": {"data_type": "text"},
    "raw_json": {"data_type": "text"},
    "request_id": {"data_type": "text"},
    "first_seen_at": {"data_type": "timestamp"},
    "last_seen_at": {"data_type": "timestamp"},
    # Never set on a stored row: a row with resolved=true deletes the quarantined one.
    "resolved": {"data_type": "bool", "hard_delete": True},
}
# Quarantined records retried at later syncs; beyond this the oldest stop being retried.
MAX_REJECTED_TRACKED = 100
ONE_US = timedelta(microseconds=1)

# Below this a window is not split further, however dense (runs can share one timestamp).
MIN_WINDOW_SPAN = timedelta(seconds=1)
PROGRESS_EVERY_S = 5.0


@dataclass
class _WindowResult:
    parts: List[Window] = field(default_factory=list)
    pages: List[Page] = field(default_factory=list)
    rejected: List[Rejection] = field(default_factory=list)


@dataclass
class SyncStats:
    """What one `pipeline.run` of the source did; read by the CLI summary and the benchmarks."""

    new_runs: int = 0
    updated_runs: int = 0
    windows: int = 0
    open_rechecked: int = 0
    quarantined: int = 0  # distinct records put in (or kept in) quarantine by this load
    extracted: bool = False  # False after pipeline.run when dlt only finished pending packages
    more_to_load: bool = False
    requests: RequestStats = field(default_factory=RequestStats)


@dataclass(frozen=True)
class Filters:
    """The endpoint's filters. status/outcome change which runs are loaded, the rest which exist."""

    status: Optional[Tuple[str, ...]] = None
    outcome: Optional[Tuple[str, ...]] = None
    source_id: Optional[Tuple[str, ...]] = None
    agent_id: Optional[str] = None
    credential_id: Optional[str] = None
    task_id: Optional[str] = None
    workflow_id: Optional[str] = None
    search: Optional[str] = None

    def scope_params(self) -> Dict[str, Any]:
        """Filters that decide which runs exist for this pipeline (not their current state)."""
        params = {
            "source_id": list(self.source_id) if self.source_id else None,
            "agent_id": self.agent_id,
            "credential_id": self.credential_id,
            "task_id": self.task_id,
            "workflow_id": self.workflow_id,
            "search": self.search,
        }
        return {k: v for k, v in params.items() if v}

    def params(self) -> Dict[str, Any]:
        params = self.scope_params()
        if self.status:
            params["status"] = list(self.status)
        if self.outcome:
            params["outcome"] = list(self.outcome)
        return params

    @property
    def selects_by_state(self) -> bool:
        return bool(self.status or self.outcome)

    def matches(self, run: Dict[str, Any]) -> bool:
        return (not self.status or run.get("status") in self.status) and (
            not self.outcome or run.get("result") in self.outcome
        )

    def fingerprint(self) -> str:
        return repr(sorted((k, v) for k, v in self.__dict__.items() if v))


def is_final(status: Any) -> bool:
    return status in settings.FINAL_STATUSES


class TaskRunSync:
    """One load of `task_runs`: walks the planned windows, re-checks open runs, keeps the state.

    Why not `dlt.sources.incremental`: windows are listed in parallel and out of order, a plan of
    windows spans several loads, and runs change after they are created (open runs are re-checked
    by id, and a lookback re-reads the newest runs), so the cursor is more than one high-water mark.
    """

    def __init__(
        self,
        client: DeckClient,
        filters: Filters,
        state: Dict[str, Any],
        *,
        start: Optional[datetime],
        end: Optional[datetime],
        max_runs_per_load: int,
        pages_per_window: int,
        stats: SyncStats,
        workers: int = 1,
        lookback: timedelta = timedelta(seconds=settings.LOOKBACK_S),
        redact: Sequence[str] = (),
    ) -> None:
        self.client = client
        self.filters = filters
        self.raw_state = state
        self.start = start
        self.end = end
        self.max_runs_per_load = max_runs_per_load
        self.pages_per_window = pages_per_window
        self.stats = stats
        self.workers = workers
        self.lookback = lookback
        self.redact = [r for r in redact if r]  # never written into the quarantine table
        self.rejected_now: Set[str] = set()  # quarantine keys of records rejected in this load
        self.seen: Dict[str, str] = {}  # id -> fingerprint of the version handled in this load
        self.loaded_runs = 0
        self._listed_top = False  # whether this load listed the plan's newest window
        self._last_progress = time.monotonic()
        self.state = TaskRunState.load(state)
        if self.state.filters not in (None, filters.fingerprint()):
            logger.warning(
                "The filters changed since the last sync (%s -> %s): listing from start_date"
                " again; rows already loaded stay.",
                self.state.filters,
                filters.fingerprint(),
            )
            # Quarantined records are retried whatever the filters: their rows must not linger.
            self.state = TaskRunState(rejected=self.state.rejected)
        self.state.filters = filters.fingerprint()

    @property
    def clock(self) -> datetime:
        """Deck's "now": no run listed so far can have been created later than this."""
        return self.client.stats.deck_now()

    # ---- public ------------------------------------------------------------------------------

    def pages(self) -> Iterator[List[Dict[str, Any]]]:
        """Pages of runs to load: the planned windows (new runs, backfill), then open runs."""
        try:
            plan = self._plan()
            yield from self._walk(plan)
            if self.stats.more_to_load:
                return
            if not self._listed_top and plan.max_seen is not None:
                # The newest window was listed by an earlier load of this plan: runs created since
                # then lie above everything listed, so list the top once more before finishing.
                plan.windows = [self._top_window(plan.max_seen)]
                yield from self._walk(plan)
                if self.stats.more_to_load:
                    return
            self._finish(plan)
            yield from self._retry_rejected()
            yield from self._recheck_open_runs()
            yield from self._resolve_fetched_by_id()
        finally:
            self.state.save(self.raw_state)

    # ---- the plan: windows still to list, kept in state across loads -------------------------

    def _top_window(self, watermark: datetime) -> Window:
        """New runs: from the lookback below the watermark, so runs that became visible late
        (created before runs already listed, committed after) are still found."""
        return Window(watermark - self.lookback, self.end)

    def _plan(self) -> Plan:
        """The windows this range still needs, resumed from state after a committed load."""
        st = self.state
        if st.plan is not None:
            return st.plan
        clock = self.clock
        if st.watermark is not None and st.watermark > clock:
            logger.warning(
                "The saved watermark %s lies after Deck's clock (%s): an earlier version followed"
                " a run dated in the future. Listing all of history again to find the runs it"
                " skipped; rows already loaded stay.",
                format_timestamp(st.watermark),
                format_timestamp(clock),
            )
            st.watermark, st.covered_from, st.recent = None, None, {}
        if st.watermark is None:
            plan = Plan([Window(self.start, self.end)], True, self.start)
        else:
            plan = Plan([], max_seen=st.watermark, recent=dict(st.recent))
            lower = st.covered_from
            if lower is not None and (self.start is None or self.start < lower):
                plan.windows.append(Window(self.start, lower))
                plan.extends_coverage, plan.new_covered_from = True, self.start
            top = self._top_window(st.watermark)
            if top.end is None or top.start < top.end:
                plan.windows.append(top)
        st.plan = plan
        return plan

    def _finish(self, plan: Plan) -> None:
        """Every window listed: the watermark becomes the newest `created_at` seen.

        Taken from Deck's own timestamps, never from this machine's clock, and never past Deck's
        clock (a run dated in the future is loaded, but does not hide the runs created before it).
        """
        st = self.state
        st.plan = None
        if plan.extends_coverage:
            st.covered_from = plan.new_covered_from
        if plan.max_seen is not None and (st.watermark is None or plan.max_seen >= st.watermark):
            st.watermark = plan.max_seen
            st.recent = plan.recent

    def _walk(self, plan: Plan) -> Iterator[List[Dict[str, Any]]]:
        """List the plan's windows, up to `workers` at once, loading each as soon as it is done.

        All requests share one rate limiter. A window's runs are loaded only once it was listed
        to its last page; no window is fetched unless it will be loaded in this load, so a
        committed load never throws work away and memory holds at most `workers` windows.
        """
        pending = list(plan.windows)
        in_flight: Dict[Future[_WindowResult], Window] = {}
        per_window = self.pages_per_window * self.client.page_size
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-window")
        interrupted = False
        try:
            while pending or in_flight:
                while (
                    pending
                    and len(in_flight) < self.workers
                    and self.loaded_runs + len(in_flight) * per_window < self.max_runs_per_load
                ):
                    window = pending.pop(0)
                    in_flight[pool.submit(self._fetch_window, window, stop)] = window
                if not in_flight:
                    break
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: in_flight[f].sort_key()):
                    window = in_flight.pop(future)
                    result = future.result()
                    if result.parts:
                        pending = sorted(pending + result.parts, key=Window.sort_key)
                        continue
                    self.stats.windows += 1
                    self._listed_top |= window.end == self.end
                    for page in result.pages:
                        runs = self._accept(page.runs, window, plan)
                        if runs:
                            yield runs
                        self._progress(window)
                    yield from self._quarantine(result.rejected)
            plan.windows = pending
            if pending:
                logger.info(
                    "Committing after %d runs; %d windows left for the next load",
                    self.loaded_runs,
                    len(pending),
                )
                self.stats.more_to_load = True
        except KeyboardInterrupt:
            interrupted = True  # Ctrl-C/SIGTERM: do not wait for reads that may be stalled
            raise
        finally:
            stop.set()
            pool.shutdown(wait=not interrupted, cancel_futures=True)

    def _fetch_window(self, window: Window, stop: threading.Event) -> "_WindowResult":
        """In a worker: the window's pages, or the parts to list instead when it is too big."""
        pages = self.client.list_task_runs({**self.filters.params(), **window.params()})
        checks: List[records.Checked] = []
        first = self._checked(next(pages), checks)
        parts = self._split(window, first.runs, first.has_more)
        if parts:
            pages.close()
            return _WindowResult(parts=parts)
        fetched = [first]
        for page in pages:
            if stop.is_set():
                raise RuntimeError("sync stopped")  # only after another window failed
            fetched.append(self._checked(page, checks))
        return _WindowResult(pages=fetched, rejected=_locate(window, checks))

    def _progress(self, window: Window) -> None:
        """A line every few seconds, so a long backfill shows it is moving."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_S:
            return
        self._last_progress = now
        logger.info(
            "... %d pages, %d runs so far (%d requests); listing %s",
            self.stats.requests.pages,
            self.loaded_runs,
            self.stats.requests.requests,
            window,
        )

    def _split(
        self, window: Window, first_page: List[Dict[str, Any]], has_more: bool
    ) -> List[Window]:
        """Cut a window that holds more than ~`pages_per_window` pages; [] to list it whole.

        The first page is the newest or the oldest end of the window, which its own order
        shows. From that end a slice of about `pages_per_window` pages is peeled off (its size
        judged from the page's time density) and the rest is cut again when listed. The order
        only steers how windows are cut: correctness rests on the half-open windows alone.
        Timestamps Deck's clock rules out (a run dated in the future) are left out of the
        density, so one bad record cannot make the cutter reach for year 277.
        """
        clock = self.clock
        stamps = [s for s in page_stamps(first_page) if is_plausible(s, clock)]
        if not has_more or len(set(stamps)) < 2:
            return []
        span = window.span
        if span is not None and span <= MIN_WINDOW_SPAN:
            return []
        pages = estimate_pages(window, stamps, len(first_page), self.client.page_size)
        if pages <= self.pages_per_window * 1.5:
            return []
        low, high = min(stamps), max(stamps)
        slice_span = (high - low) * (self.pages_per_window - 1)
        direction = page_direction(stamps)
        if direction == "newest_first":
            cut = max(low - slice_span, EARLIEST_PLAUSIBLE)
        elif direction == "oldest_first":
            cut = min(high + slice_span, clock)
        elif span is not None:
            parts = int(min(16, max(2, ceil(pages / self.pages_per_window))))
            return window.split(parts)
        else:
            return []
        if not window.contains(cut) or cut == window.start:
            return []
        return [Window(window.start, cut), Window(cut, window.end)]

    def _accept(
        self, runs: List[Dict[str, Any]], window: Window, plan: Plan
    ) -> List[Dict[str, Any]]:
        """Validate, keep the window's runs, drop unchanged re-reads; track the newest seen."""
        accepted: List[Dict[str, Any]] = []
        clock = self.clock
        open_runs = self.state.open_runs
        for run in runs:
            created_at = _validate(run)
            if not window.contains(created_at):
                continue
            run_id = run["id"]
            known = plan.recent.get(run_id)
            tracked = open_runs.get(run_id)
            needs_digest = (
                known is not None
                or tracked is not None
                or not is_final(run.get("status"))
                or plan.in_zone(created_at, self.lookback)
            )
            digest = fingerprint(run) if needs_digest else UNKNOWN_FINGERPRINT
            if digest and self.seen.get(run_id) == digest:
                continue  # this version was handled earlier in this load
            plan.see(run_id, created_at, digest, clock, self.lookback)
            was_loaded = known is not None or (tracked is not None and tracked.loaded)
            before = known.fingerprint if known else tracked.fingerprint if tracked else None
            self._track(run_id, run.get("status"), created_at, digest, loaded=True)
            if was_loaded and digest and before == digest:
                continue  # a re-read (lookback, watermark) of a version already loaded
            if was_loaded:
                self.stats.updated_runs += 1
            else:
                self.stats.new_runs += 1
            accepted.append(run)
        self.loaded_runs += len(accepted)
        return [_prepare(r) for r in accepted]

    def _track(
        self, run_id: str, status: Any, created_at: datetime, digest: str, loaded: bool
    ) -> None:
        """Remember which version of the run this load handled, and whether it is still open.

        `loaded` says whether the run has a row in the warehouse: with status/outcome filters, an
        open run may be tracked only to load it once it finishes in a selected state.
        """
        self.seen[run_id] = digest
        open_runs = self.state.open_runs
        if is_final(status):
            open_runs.pop(run_id, None)
            return
        previous = open_runs.get(run_id)
        open_runs[run_id] = OpenRun(
            created_at, digest, loaded or (previous is not None and previous.loaded)
        )

    # ---- open runs ---------------------------------------------------------------------------

    def _recheck_open_runs(self) -> Iterator[List[Dict[str, Any]]]:
        """Bring every remembered open run up to date: one listing, then GET the ones that left.

        With status/outcome filters the listing covers every open run in scope (not only the
        remembered ones), so that a run is loaded when it finishes in a selected state.
        """
        open_runs = self.state.open_runs
        stale = {rid: run for rid, run in open_runs.items() if rid not in self.seen}
        by_state = self.filters.selects_by_state
        if not stale and not by_state:
            return
        since = self.start if by_state else min(run.created_at for run in stale.values())
        listed: Set[str] = set()
        yield from self._list_open(since, listed, stale)
        batch: List[Dict[str, Any]] = []
        finished = [rid for rid in stale if rid not in listed]
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="deck-get") as pool:
            fetched = list(pool.map(self.client.get_task_run, finished))
        for rid, run in zip(finished, fetched, strict=True):
            previous = open_runs.get(rid)
            self.stats.open_rechecked += 1
            if run is None:
                logger.warning("Run %s is no longer known to Deck; its last loaded row stays", rid)
                open_runs.pop(rid, None)
                continue
            checked = records.check_page([run])
            _log_warnings(checked.warnings)
            if checked.rejected:  # stays in open_runs: fetched again at the next sync
                yield from self._quarantine(checked.rejected, by_id=True)
                continue
            run = checked.runs[0]
            if self._changed_and_selected(run, _validate(run), previous):
                batch.append(_prepare(run))
            if len(batch) >= self.client.page_size:
                yield batch
                batch = []
        if batch:
            yield batch

    def _list_open(
        self, since: Optional[datetime], listed: Set[str], stale: Dict[str, OpenRun]
    ) -> Iterator[List[Dict[str, Any]]]:
        """One listing of the runs that are open now; yields the ones to (re)load."""
        window = Window(since, self.end)
        params = {**self.filters.scope_params(), "status": list(settings.OPEN_STATUSES)}
        for page in self.client.list_task_runs({**params, **window.params()}):
            checks: List[records.Checked] = []
            page = self._checked(page, checks)
            yield from self._quarantine(_locate(window, checks))
            changed: List[Dict[str, Any]] = []
            for run in page.runs:
                created_at = _validate(run)
                if not window.contains(created_at) or run["id"] in self.seen:
                    continue
                listed.add(run["id"])
                if run["id"] not in stale and not self.filters.selects_by_state:
                    continue
                previous = self.state.open_runs.get(run["id"])
                if self._changed_and_selected(run, created_at, previous):
                    changed.append(_prepare(run))
            if changed:
                yield changed

    def _changed_and_selected(
        self, run: Dict[str, Any], created_at: datetime, previous: Optional[OpenRun]
    ) -> bool:
        """Track the run's new version; True when it must be (re)loaded.

        Compared by content: a run that turned `failed` while Deck kept its `updated_at` is a
        change like any other.
        """
        digest = fingerprint(run)
        if self.seen.get(run["id"]) == digest:
            return False
        was_loaded = previous is not None and previous.loaded
        selected = self.filters.matches(run)
        self._track(run["id"], run.get("status"), created_at, digest, loaded=selected)
        if previous is not None and previous.fingerprint == digest:
            return False
        if not (selected or was_loaded):
            return False
        if was_loaded:
            self.stats.updated_runs += 1
        else:
            self.stats.new_runs += 1
        return True

    # ---- records that cannot be placed: quarantine, retried at the next sync -----------------

    def _checked(self, page: Page, checks: List["records.Checked"]) -> Page:
        """The page with only its loadable runs (fixed up); the rest is kept in `checks`."""
        checked = records.check_page(page.runs)
        for rejection in checked.rejected:
            rejection.request_id = page.request_id
        _log_warnings(checked.warnings)
        checks.append(checked)
        return Page(runs=checked.runs, has_more=page.has_more, request_id=page.request_id)

    def _quarantine(self, rejections: List[Rejection], by_id: bool = False) -> Iterator[Any]:
        """Rows for `task_runs_rejected`, and the state to retry each record at the next sync.

        `state["rejected"]` maps the row key to {first_seen, range, known, run_id}: `range` is
        the created_at range [after, before] re-listed at the next sync (None for a run fetched
        by id, which is fetched again as an open run).
        """
        if not rejections:
            return
        now = format_timestamp(datetime.now(timezone.utc))
        entries: Dict[str, Dict[str, Any]] = self.state.rejected
        rows = []
        for rejection in rejections:
            entry = entries.get(rejection.key)
            if entry is None:
                entry = entries[rejection.key] = {
                    "first_seen": now,
                    "range": None
                    if by_id
                    else [
                        format_timestamp(rejection.after) if rejection.after else None,
                        format_timestamp(rejection.before) if rejection.before else None,
                    ],
                    "known": rejection.known,
                    "run_id": rejection.run_id,
                }
            raw, reason = rejection.raw, rejection.reason
            for secret in self.redact:
                raw = raw.replace(secret, "[redacted]")
                reason = reason.replace(secret, "[redacted]")
            if rejection.key not in self.rejected_now:
                self.rejected_now.add(rejection.key)
                self.stats.quarantined += 1
                logger.warning(
                    "Quarantined a task run Deck returned%s: %s It is kept whole in %s and"
                    " retried at the next sync; the runs after it load normally.",
                    f" (request_id {rejection.request_id})" if rejection.request_id else "",
                    reason,
                    REJECTED_TABLE,
                )
            rows.append(
                {
                    "key": rejection.key,
                    "run_id": rejection.run_id,
                    "reason": reason,
                    "raw_json": raw,
                    "request_id": rejection.request_id,
                    "first_seen_at": entry["first_seen"],
                    "last_seen_at": now,
                }
            )
        self._bound_rejected(entries)
        yield dlt.mark.with_table_name(rows, REJECTED_TABLE)

    def _bound_rejected(self, entries: Dict[str, Dict[str, Any]]) -> None:
        if len(entries) <= MAX_REJECTED_TRACKED:
            return
        oldest = sorted(entries, key=lambda k: entries[k]["first_seen"])
        dropped = oldest[: len(entries) - MAX_REJECTED_TRACKED]
        for key in dropped:
            del entries[key]
        logger.warning(
            "More than %d task runs are in %s: the %d seen first are no longer retried (their rows"
            " stay until Deck returns them again).",
            MAX_REJECTED_TRACKED,
            REJECTED_TABLE,
            len(dropped),
        )

    def _retry_rejected(self) -> Iterator[Any]:
        """Re-list the range of every record quarantined by an earlier sync.

        A record that comes back loadable is loaded like any new run (it is the run in its range
        that is not one of the `known` ones listed there before) and its quarantine row is
        deleted; one still broken stays. A run fetched by id is retried as an open run instead.
        """
        entries: Dict[str, Dict[str, Any]] = self.state.rejected
        groups: Dict[Tuple[Optional[str], Optional[str]], List[str]] = {}
        resolved: List[str] = []
        for key, entry in entries.items():
            if key in self.rejected_now:
                continue
            if entry.get("range") is None:
                continue  # see _resolve_fetched_by_id
            groups.setdefault(tuple(entry["range"]), []).append(key)  # type: ignore[arg-type]
        for (after, before), keys in groups.items():
            window = Window(
                parse_timestamp(after) if after else None,
                parse_timestamp(before) + ONE_US if before else None,
            )
            known = {run_id for key in keys for run_id in entries[key]["known"]}
            checks: List[records.Checked] = []
            for page in self.client.list_task_runs({**self.filters.params(), **window.params()}):
                page = self._checked(page, checks)
                batch: List[Dict[str, Any]] = []
                for run in page.runs:
                    # No window.contains check: whatever Deck lists in the range is loaded.
                    if run["id"] in known or run["id"] in self.seen:
                        continue
                    created_at = _validate(run)
                    previous = self.state.open_runs.get(run["id"])
                    if self._changed_and_selected(run, created_at, previous):
                        batch.append(_prepare(run))
                if batch:
                    yield batch
            yield from self._quarantine(_locate(window, checks))
            resolved += [key for key in keys if key not in self.rejected_now]
        yield from self._resolve(resolved)

    def _resolve_fetched_by_id(self) -> Iterator[Any]:
        """A run quarantined when fetched by id stays an open run and is fetched again; it leaves
        the quarantine once this sync saw it loadable, or when it is no longer an open run."""
        entries: Dict[str, Dict[str, Any]] = self.state.rejected
        open_runs = self.state.open_runs
        yield from self._resolve(
            [
                key
                for key, entry in entries.items()
                if entry.get("range") is None
                and key not in self.rejected_now
                and (entry.get("run_id") in self.seen or entry.get("run_id") not in open_runs)
            ]
        )

    def _resolve(self, keys: List[str]) -> Iterator[Any]:
        """Delete the quarantine rows of records that came back loadable (or are gone)."""
        if not keys:
            return
        entries: Dict[str, Dict[str, Any]] = self.state.rejected
        for key in keys:
            entries.pop(key, None)
        logger.info(
            "%d quarantined task run(s) came back loadable or gone; removed from %s",
            len(keys),
            REJECTED_TABLE,
        )
        yield dlt.mark.with_table_name(
            [{"key": key, "resolved": True} for key in keys], REJECTED_TABLE
        )


def _validate(run: Dict[str, Any]) -> datetime:
    """The created_at of a run that `records.check_page` accepted (so it parses)."""
    return parse_timestamp(run["created_at"])


def _prepare(run: Dict[str, Any]) -> Dict[str, Any]:
    warnings: List[str] = []
    records.prepare(run, warnings)
    _log_warnings(warnings)
    return run


def _log_warnings(warnings: List[str]) -> None:
    for warning in warnings:
        logger.warning("%s", warning)


def _locate(window: Window, checks: List["records.Checked"]) -> List[Rejection]:
    """The rejected records of one listing of `window`, each with the range that holds it."""
    if not any(check.rejected for check in checks):
        return []
    hi = window.end - ONE_US if window.end is not None else None
    return records.locate(checks, window.start, hi, max_known=200)


def parse_date_option(name: str, value: Optional[Any]) -> Optional[datetime]:
    """start_date / end_date: ISO 8601 date or timestamp (UTC when no offset is given)."""
    if value is None or value == "":
        return None
    try:
        return parse_timestamp(value)
    except (TypeError, ValueError):
        raise DeckConfigError(
            f"{name} {value!r} is not a date: use ISO 8601, e.g. 2026-01-31 or"
            " 2026-01-31T08:00:00Z."
        ) from None


def _choices(name: str, values: Optional[Tuple[str, ...]], allowed: Sequence[str]) -> None:
    for value in values or ():
        if value not in allowed:
            raise DeckConfigError(
                f"{name} {value!r} is not one of Deck's values: {', '.join(allowed)}."
            )


@dlt.source(name="deck", section="deck")
def deck(
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    start_date: Optional[str] = None,
    end_date: Optional[str] = None,
    status: Optional[List[str]] = None,
    outcome: Optional[List[str]] = None,
    source_id: Optional[List[str]] = None,
    agent_id: Optional[str] = None,
    credential_id: Optional[str] = None,
    task_id: Optional[str] = None,
    workflow_id: Optional[str] = None,
    search: Optional[str] = None,
    max_table_nesting: int = settings.DEFAULT_MAX_TABLE_NESTING,
    page_size: int = settings.PAGE_SIZE,
    max_runs_per_load: int = 50_000,
    pages_per_window: int = 25,
    max_workers: int = 6,
    rate_limit_requests: int = 200,
    rate_limit_period_s: float = 10.0,
    request_max_attempts: int = 8,
    backoff_base_s: float = 1.0,
    backoff_cap_s: float = 30.0,
    connect_timeout_s: float = settings.CONNECT_TIMEOUT_S,
    read_timeout_s: float = settings.READ_TIMEOUT_S,
    lookback_s: float = settings.LOOKBACK_S,
    request_deadline_s: Optional[float] = None,
    check_credentials: bool = True,
    stats: Optional[SyncStats] = None,
) -> DltResource:
    """Deck task runs, one row per run with its latest state.

    Every argument can come from `[sources.deck]` in `.dlt/config.toml` (the key from
    `.dlt/secrets.toml` or `SOURCES__DECK__API_KEY`). Configuration is checked here, before any
    request, so a typo fails in a second rather than after an hour of backfill.
    """
    start = parse_date_option("start_date", start_date)
    end = parse_date_option("end_date", end_date)
    if start and end and start >= end:
        raise DeckConfigError(
            f"start_date {start_date} is not before end_date {end_date}: swap them or widen the"
            " range."
        )
    filters = Filters(
        status=split_filters(status),
        outcome=split_filters(outcome),
        source_id=split_filters(source_id),
        agent_id=agent_id or None,
        credential_id=credential_id or None,
        task_id=task_id or None,
        workflow_id=workflow_id or None,
        search=search or None,
    )
    _choices("status", filters.status, settings.ALL_STATUSES)
    _choices("outcome", filters.outcome, settings.OUTCOMES)
    if lookback_s < 0:
        raise DeckConfigError(
            f"lookback_s must be 0 or more seconds (got {lookback_s}): it is how late a run may"
            " become visible and still be found."
        )
    if max_runs_per_load < 1 or pages_per_window < 1 or max_workers < 1:
        raise DeckConfigError(
            "max_runs_per_load, pages_per_window and max_workers must be at least 1."
        )
    if max_table_nesting < 1:
        raise DeckConfigError(
            f"max_table_nesting = {max_table_nesting} would store each run's `errors` as JSON in"
            " task_runs instead of the task_runs__errors table, and the SQL models would then"
            " report no errors at all. Use 1 or more (default"
            f" {settings.DEFAULT_MAX_TABLE_NESTING}); deeper JSON is kept as JSON anyway."
        )
    stats = stats if stats is not None else SyncStats()
    policy = RetryPolicy(
        max_attempts=request_max_attempts,
        backoff_base_s=backoff_base_s,
        backoff_cap_s=backoff_cap_s,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        request_deadline_s=request_deadline_s,
    )
    limiter = RateLimiter(rate_limit_requests, rate_limit_period_s) if rate_limit_requests else None
    client = DeckClient(
        base_url,
        api_key,
        page_size=page_size,
        policy=policy,
        limiter=limiter,
        stats=stats.requests,
    )

    @dlt.resource(
        name="task_runs",
        primary_key="id",
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        columns=TASK_RUN_COLUMNS,
        nested_hints={"errors": {"columns": ERROR_COLUMNS}},
    )
    def task_runs() -> Iterator[List[Dict[str, Any]]]:
        """Task runs created in [start_date, end_date), kept at their latest state."""
        stats.extracted = True
        try:
            if check_credentials:
                client.check_credentials()
            sync = TaskRunSync(
                client,
                filters,
                dlt.current.resource_state(),
                start=start,
                end=end,
                max_runs_per_load=max_runs_per_load,
                pages_per_window=pages_per_window,
                stats=stats,
                workers=max_workers,
                lookback=timedelta(seconds=lookback_s),
                redact=(str(api_key).strip(),),
            )
            yield from sync.pages()
        finally:
            client.close()

    task_runs.max_table_nesting = max_table_nesting
    # The quarantine table's own hints (a variant: it must not inherit task_runs' columns/key).
    task_runs.apply_hints(
        table_name=REJECTED_TABLE, columns={}, nested_hints={}, create_table_variant=True
    )
    task_runs.apply_hints(
        table_name=REJECTED_TABLE,
        primary_key="key",
        columns=REJECTED_COLUMNS,
        write_disposition={"disposition": "merge", "strategy": "delete-insert"},
        create_table_variant=True,
    )
    return task_runs
