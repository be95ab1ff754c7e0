"""A local stand-in of Deck's v2 API (task runs), served over real HTTP on loopback.

Deck has no sandbox for v2 (every call is live), so the connector's tests, demo and
benchmarks run against this simulator instead. It speaks HTTP as Deck's v2 API reference
describes (auth, errors, validation, keyset pagination, rate limit) and adds what tests need
on top: a simulated clock that moves runs through their lifecycle, ground-truth access to every
run, a request log and injectable faults.

Run it by hand with ``python -m deck.simulator --runs 5000 --seed 7 --port 8765``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import dataclasses
import email.utils
import gc
import hashlib
import heapq
import json
import logging
import math
import os
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

FINAL_STATUSES = frozenset({"completed", "failed", "canceled"})
OPEN_STATUSES = ("queued", "running", "canceling", "interaction_required", "review_required")
"""The documented open statuses (older docs also spell ``cancelling`` and ``pending``)."""
DOCUMENTED_STATUSES = frozenset(OPEN_STATUSES) | FINAL_STATUSES
LEGACY_STATUS_ALIASES = {"cancelling": "canceling", "pending": "review_required"}
"""Older spellings (FACTS.md) -> the documented status they stand for."""
OUTCOMES = frozenset({"success", "failure", "unknown"})
DEMO_API_KEY = "sk_test_deck_simulator"
FAULT_KINDS = frozenset(
    {
        "429",
        "500",
        "502",
        "503",
        "504",
        "drop",
        "slow",
        "hang",
        "truncate",
        "non_json",
        "bad_shape",
        "redirect",
        "trickle",
        "trickle_headers",
        "has_more_lie",
    }
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS_PER_DAY = 86_400_000
_VALIDATION_TYPE = "https://tools.ietf.org/html/rfc9110#section-15.5.1"
_VALIDATION_TITLE = "One or more validation errors occurred."
_INT_PATTERN_CHARS = frozenset("0123456789")
_NON_JSON_BODY = b"<html><body>502 Bad Gateway</body></html>"
_HANG_STEP = 0.05
_TASK_NAMES = (
    "Download invoices",
    "Fetch bank statements",
    "Sync payroll report",
    "Export utility bills",
    "Retrieve tax documents",
    "Update billing address",
    "Pull insurance claims",
    "Download pay stubs",
    "Check account balance",
    "Submit meter reading",
)
_ERROR_CODES = {
    # code: (type, message, field names that may be blamed)
    "timeout": ("task", "Task run exceeded the maximum runtime of 30 minutes.", ()),
    "source_error": (
        "source",
        "The source returned an unexpected error.",
        ("account_number", "period"),
    ),
    "source_not_available": ("source", "The source is temporarily unavailable.", ()),
    "interaction_timeout": ("interaction", "The interaction was not answered in time.", ("code",)),
    "api_error": ("api", "An internal error occurred.", ()),
    "invalid_credentials": (
        "auth",
        "The credentials were rejected by the source.",
        ("username", "password"),
    ),
}
_FAILURE_CODES = (
    ("timeout", 0.22),
    ("source_error", 0.30),
    ("source_not_available", 0.20),
    ("api_error", 0.10),
    ("invalid_credentials", 0.13),
    ("interaction_timeout", 0.05),
)


# --------------------------------------------------------------------------------------------
# time helpers: the simulator keeps every instant as integer milliseconds since the epoch
# --------------------------------------------------------------------------------------------


def _fmt_ms(ms: int) -> str:
    """Render epoch milliseconds the way Deck does: ``2026-01-01T12:00:00.123Z``."""
    secs, frac = divmod(ms, 1000)
    t = time.gmtime(secs)
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
        f"T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{frac:03d}Z"
    )


def _to_utc(dt: datetime) -> datetime:
    """Naive datetimes are taken as UTC, so callers cannot accidentally shift the clock."""
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _dt_to_us(dt: datetime) -> int:
    """Exact microseconds since the epoch (no float rounding)."""
    delta = _to_utc(dt) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt_to_ms(dt: datetime) -> int:
    return _dt_to_us(dt) // 1000


def _ms_to_dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _parse_iso(value: str) -> datetime | None:
    """ISO 8601 with ``Z`` or an offset, with or without fractional seconds; None if invalid."""
    text = value.strip()
    if not text or not text[0].isdigit():
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        return _to_utc(datetime.fromisoformat(text))
    except ValueError:
        return None


def _coerce_time(value: datetime | str) -> int:
    """A datetime or ISO string given by a test -> epoch milliseconds."""
    if isinstance(value, datetime):
        return _dt_to_ms(value)
    parsed = _parse_iso(str(value))
    if parsed is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    return _dt_to_ms(parsed)


def _jsonable(value: Any) -> Any:
    """Datetimes given by tests become API timestamps, so objects stay JSON-serializable."""
    if isinstance(value, datetime):
        return _fmt_ms(_dt_to_ms(value))
    return value


# --------------------------------------------------------------------------------------------
# public records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the simulator received, so tests can assert what the connector sent."""

    method: str
    path: str
    """Path without the query string."""
    params: dict[str, list[str]]
    """Query parameters as ``parse_qs(..., keep_blank_values=True)`` returns them."""
    status: int
    """Status answered, or 0 if the connection was dropped (or is still pending) unanswered."""
    authorization: str | None
    """The raw Authorization header, or None."""
    at: float
    """``time.monotonic()`` when the request was received."""
    request_id: str | None = None
    """The request_id answered (body and X-Request-Id), once answered."""


@dataclass
class _Fault:
    kind: str
    remaining: int
    retry_after: str | None
    delay: float
    location: str | None
    path: str | None


class RequestHold:
    """A gate that leaves requests unanswered from a chosen request on, until ``release()``.

    Tests use it to stop a client at a deterministic point (the N-th request, the first request
    after a log line, ...) and kill or inspect it there, instead of guessing a moment in time.
    """

    def __init__(self, when: Callable[[RecordedRequest], bool] | None) -> None:
        self.when = when
        """Called with each request as it is received; the first True closes the gate."""
        self.closed = False
        """True once a request matched: it and every request received after it are held."""
        self.reached = threading.Event()
        """Set as soon as a request is being held."""
        self.released = threading.Event()

    def release(self) -> None:
        """Answer the held requests normally and hold no more."""
        self.released.set()


@dataclass
class _Response:
    status: int
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    request_id: str | None = None
    mode: str = "normal"  # normal | drop | hang | truncate | trickle | trickle_headers
    hang_for: float = 0.0
    trickle_every: float = 0.0
    """Seconds between the bytes of a trickled answer."""


class _Plan:
    """The remaining lifecycle steps of one run; its identity marks heap entries as current."""

    __slots__ = ("index", "steps")

    def __init__(self, steps: list[tuple[int, dict[str, Any]]], index: int) -> None:
        self.steps = steps
        self.index = index


class _ValidationError(Exception):
    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors


# --------------------------------------------------------------------------------------------
# the simulator
# --------------------------------------------------------------------------------------------


class DeckSimulator:
    """Deck's v2 task-runs API on loopback, with a simulated clock, ground truth and faults.

    Choices where the reference is silent (so tests can rely on them):

    - ``GET /task-runs/{id}`` and ``GET /test`` answer the bare documented object; envelopes
      (list pages, errors, validation errors) carry ``request_id``; every answer has
      ``X-Request-Id``.
    - Keyset pagination on (created_at, id); a cursor keeps the order it was issued in even if
      ``order`` changes mid-walk, and is bound to the filters (not to ``limit``).
    - The ``status`` filter accepts only the 8 documented values; ``review_required`` and
      ``canceling`` also match runs stored with the older spellings ``pending``/``cancelling``.
    - Order of checks: injected fault, then auth (401), then rate limit, then routing.
      Only requests that pass auth and are not rejected count in the rate-limit window.
    - Fields given to ``add_runs(**fields)`` are kept by later lifecycle transitions;
      ``update_run(status=...)`` cancels the run's remaining scheduled transitions.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        runs: int = 0,
        history_days: float = 30.0,
        now: datetime = datetime(2026, 1, 1, tzinfo=UTC),
        api_key: str = DEMO_API_KEY,
        order: str = "newest_first",
        latency: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        rate_limit_retry_after: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if order not in ("newest_first", "oldest_first"):
            raise ValueError("order must be 'newest_first' or 'oldest_first'")
        if runs < 0:
            raise ValueError("runs must be >= 0")
        self.api_key = api_key
        self._order = order
        self.latency = latency
        """Seconds slept before every answer (concurrently across requests)."""
        self.rate_limit = rate_limit
        """(count, seconds) sliding window over accepted requests, or None for no limit."""
        self.rate_limit_retry_after = rate_limit_retry_after
        """Send a Retry-After header on rate-limit 429s (Deck documents none)."""
        self.rate_limited_count = 0
        """Number of 429 answers sent (rate limit and injected '429' faults)."""
        self.requests: list[RecordedRequest] = []
        """Every HTTP request received, in order of receipt."""
        self.connections_opened = 0
        """TCP connections accepted (to check that clients reuse keep-alive connections)."""
        self.date_header: str | None = None
        """The `Date` header sent verbatim; None sends the simulated clock (the default)."""

        self._host = host
        self._port = port
        self._rng = random.Random(seed)
        self._lock = threading.RLock()  # runs, index, heap, clock
        self._log_lock = threading.Lock()  # requests, faults, rate window
        self._log_generation = 0
        self._faults: deque[_Fault] = deque()
        self._hold: RequestHold | None = None
        self._window: deque[float] = deque()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

        self._now_ms = _dt_to_ms(now)
        self._runs: dict[str, dict[str, Any]] = {}
        self._keys: list[tuple[int, str]] = []
        self._plans: dict[str, _Plan] = {}
        self._heap: list[tuple[int, int, str, _Plan]] = []
        self._seq = 0
        self._sticky: dict[str, set[str]] = {}
        self._raw: set[str] = set()  # handles of records served as given (add_raw_record)

        self.agents: tuple[str, ...] = tuple(self._new_id("agt_") for _ in range(5))
        self.sources: tuple[str, ...] = tuple(self._new_id("src_") for _ in range(6))
        self.credentials: tuple[str, ...] = tuple(self._new_id("cred_") for _ in range(8))
        self.tasks: dict[str, str] = {self._new_id("task_"): name for name in _TASK_NAMES}
        """task_id -> task name (what ``search`` matches besides ids)."""
        self.workflows: tuple[str, ...] = tuple(self._new_id("wflo_") for _ in range(3))
        self._task_ids = tuple(self.tasks)
        self._task_search = {tid: name.lower() for tid, name in self.tasks.items()}

        if runs:
            span = max(0, round(history_days * _MS_PER_DAY))
            times = self._spread_times(runs, self._now_ms - span, self._now_ms)
            self._bulk_create(times)

    # ---------------------------------------------------------------- lifecycle of the server

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self, so ``sim = DeckSimulator().start()``."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self._host, self._port), _Handler)
        server.simulator = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits at most one poll interval
            name="deck-simulator",
            daemon=True,
        )
        self._thread.start()
        logger.debug("deck simulator serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open keep-alive connections."""
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the requested one before start())."""
        return self._server.server_address[1] if self._server is not None else self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v2`` - what the connector uses as its API base."""
        if self._server is None:
            raise RuntimeError("simulator not started")
        return f"http://{self._host}:{self.port}/v2"

    @property
    def order(self) -> str:
        """Listing order of new walks ('newest_first' or 'oldest_first'); a cursor keeps its own."""
        return self._order

    @order.setter
    def order(self, value: str) -> None:
        if value not in ("newest_first", "oldest_first"):
            raise ValueError("order must be 'newest_first' or 'oldest_first'")
        self._order = value

    @property
    def now(self) -> datetime:
        """The simulated clock (millisecond precision); only advance() moves it."""
        with self._lock:
            return _ms_to_dt(self._now_ms)

    # ---------------------------------------------------------------- ground truth and control

    def runs(self) -> list[dict[str, Any]]:
        """Deep copies of every run as the API would return it now, sorted by (created_at, id)."""
        with self._lock:
            return json.loads(
                json.dumps([self._runs[rid] for _, rid in self._keys if rid not in self._raw])
            )

    def run(self, run_id: str) -> dict[str, Any]:
        """Deep copy of one run; KeyError if unknown."""
        with self._lock:
            return json.loads(json.dumps(self._runs[run_id]))

    def add_runs(
        self,
        n: int,
        *,
        created_at: datetime | str | None = None,
        status: str | None = None,
        ids: list[str] | None = None,
        **fields: Any,
    ) -> list[str]:
        """Create n runs at the clock (or all at ``created_at``, for equal timestamps).

        ``ids`` gives the runs these ids instead of generated ``trun_...`` ones (any string, to
        test ids with ``/ ? # %`` or ``../test`` in them); it must hold n new ids.

        ``status`` forces the current status; the run then stays in it until advance() reaches
        its next scheduled transition (scheduled after the clock) or update_run changes it.
        A status outside the documented set is allowed (to test unknown statuses) and never moves.
        ``fields`` override or add fields on the run objects and are kept by later transitions.
        """
        if n < 0:
            raise ValueError("n must be >= 0")
        for bad in ("id", "created_at"):
            if bad in fields:
                raise ValueError(f"{bad} cannot be set through **fields")
        if ids is not None and (len(ids) != n or len(set(ids)) != n):
            raise ValueError("ids must hold n distinct ids")
        extra = {k: _jsonable(v) for k, v in fields.items()}
        created: list[str] = []
        with self._lock:
            if ids is not None and any(i in self._runs for i in ids):
                raise ValueError("a run with one of these ids exists already")
            c = self._now_ms if created_at is None else _coerce_time(created_at)
            for i in range(n):
                run_id = ids[i] if ids is not None else None
                created.append(self._create_run(c, status=status, extra=extra, run_id=run_id))
        return created

    def advance(self, seconds: float, *, new_runs: int = 0) -> None:
        """Move the clock forward, create ``new_runs`` runs spread over the interval, and apply
        every scheduled lifecycle transition up to the new clock (each sets updated_at)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            start = self._now_ms
            end = start + round(seconds * 1000)
            if new_runs:
                for c in self._spread_times(new_runs, start + 1 if end > start else start, end):
                    self._create_run(c, schedule_only=True)
            self._now_ms = end
            self._run_due()

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Mutate fields of a run (updated_at = clock unless given). Setting ``status`` cancels
        the run's remaining scheduled transitions, so the test stays in control of it."""
        if "id" in fields:
            raise ValueError("id cannot be changed")
        with self._lock:
            obj = self._runs[run_id]
            if "created_at" in fields:
                new_c = _coerce_time(fields.pop("created_at"))
                old_key = (self._created_ms(obj), run_id)
                del self._keys[bisect.bisect_left(self._keys, old_key)]
                bisect.insort(self._keys, (new_c, run_id))
                obj["created_at"] = _fmt_ms(new_c)
            if "status" in fields:
                self._plans.pop(run_id, None)
            for key, value in fields.items():
                obj[key] = _jsonable(value)
            if "updated_at" not in fields:
                obj["updated_at"] = _fmt_ms(self._now_ms)

    # ---------------------------------------------------------------- hostile records

    def add_raw_record(self, record: Any, *, created_at: datetime | str) -> str:
        """Serve ``record`` verbatim in listings, sorted as if created at ``created_at``.

        For contract breaches the run lifecycle cannot produce: a record without ``id``, with an
        unparseable ``created_at``, or not an object at all. Deck knows the record's creation
        time (it filters and sorts by it) even when the field it serves is broken. Returns a
        handle for replace_raw_record(); raw records are not in runs() and never move.
        """
        with self._lock:
            c = _coerce_time(created_at)
            handle = f"raw_{len(self._raw):04d}_{self._rng.getrandbits(32):08x}"
            self._raw.add(handle)
            self._runs[handle] = record
            bisect.insort(self._keys, (c, handle))
        return handle

    def serve_fields(self, run_id: str, **fields: Any) -> None:
        """Serve these values verbatim on a run (``created_at`` too, unparsed) while the run
        keeps its sort position; nothing else changes (not updated_at). For broken fields."""
        with self._lock:
            self._runs[run_id].update(fields)

    def replace_raw_record(self, handle: str, record: Any) -> None:
        """Serve ``record`` instead of the raw record ``handle`` (same sort position)."""
        with self._lock:
            if handle not in self._raw:
                raise KeyError(handle)
            self._runs[handle] = record

    def clear_requests(self) -> None:
        """Forget recorded requests (in-flight ones are not re-added)."""
        with self._log_lock:
            self.requests.clear()
            self._log_generation += 1

    def inject(
        self,
        kind: str,
        *,
        times: int = 1,
        retry_after: str | None = None,
        delay: float = 0.0,
        location: str | None = None,
        path: str | None = None,
    ) -> None:
        """Queue a fault for the next ``times`` requests (whose path contains ``path``, if given).

        Faults are consumed FIFO, one per matching request, before normal handling and auth.
        Kinds: 429, 500, 502, 503, 504, drop, slow, hang, truncate, non_json, bad_shape, redirect,
        trickle, trickle_headers, has_more_lie.
        ``retry_after`` is sent verbatim as Retry-After (429 and 5xx); ``delay`` is the sleep of
        slow/hang (hang with delay <= 0 waits until stop()); ``location`` is the redirect target
        (default: the requested URL itself, so a client that follows it gets the normal answer).
        ``trickle`` sends the normal answer's headers at once and then its body one byte every
        ``delay`` seconds (default 0.2); ``trickle_headers`` trickles from the status line on.
        ``has_more_lie`` answers an empty page with ``has_more: true`` and a fresh cursor.
        """
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._log_lock:
            self._faults.append(_Fault(kind, times, retry_after, delay, location, path))

    def clear_faults(self) -> None:
        """Drop every queued fault (to let a test's next sync run clean)."""
        with self._log_lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        """How many fault answers are still queued (so tests can check they were all consumed)."""
        with self._log_lock:
            return sum(f.remaining for f in self._faults)

    def hold(self, when: Callable[[RecordedRequest], bool] | None = None) -> RequestHold:
        """Hold requests, unanswered, from the first one for which ``when(request)`` is True
        (every request if ``when`` is None) until ``release()`` on the returned gate, or stop().

        ``when`` runs on the server thread as each request arrives, before faults and auth, so
        it sees the world as it was when the client sent that request. A new ``hold`` releases
        the previous gate.
        """
        gate = RequestHold(when)
        with self._log_lock:
            previous, self._hold = self._hold, gate
        if previous is not None:
            previous.release()
        return gate

    def _wait_if_held(self, request: RecordedRequest) -> bool:
        """Block while the current gate holds ``request``; False if the simulator is stopping."""
        gate = self._hold
        if gate is None or gate.released.is_set():
            return True
        if not gate.closed:
            if gate.when is not None and not gate.when(request):
                return True
            gate.closed = True
        gate.reached.set()
        while not gate.released.wait(_HANG_STEP):
            if self._stopping.is_set():
                return False
        return True

    # ---------------------------------------------------------------- data generation

    # fast, deterministic stand-ins for randint/randrange/choice (those dominate generation time)
    def _ri(self, lo: int, hi: int) -> int:
        return lo + int(self._rng.random() * (hi - lo + 1))

    def _rr(self, n: int) -> int:
        return int(self._rng.random() * n)

    def _pick(self, seq: tuple[Any, ...]) -> Any:
        return seq[int(self._rng.random() * len(seq))]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}{self._rng.getrandbits(96):024x}"

    def _new_run_id(self) -> str:
        while True:
            rid = self._new_id("trun_")
            if rid not in self._runs:
                return rid

    def _spread_times(self, n: int, lo: int, hi: int) -> list[int]:
        """n creation instants in [lo, hi]; ~5% come in batches of 2-8 sharing one instant."""
        rng = self._rng
        out: list[int] = []
        while len(out) < n:
            c = self._ri(lo, hi) if hi > lo else hi
            if rng.random() < 0.0105:
                size = min(self._ri(2, 8), n - len(out))
            else:
                size = 1
            out.extend([c] * size)
        out.sort()
        return out

    @staticmethod
    def _created_ms(obj: dict[str, Any]) -> int:
        parsed = _parse_iso(obj["created_at"])
        assert parsed is not None
        return _dt_to_ms(parsed)

    def _bulk_create(self, times: list[int]) -> None:
        """Initial history: build every run, then sort the index once (fast for 500k runs)."""
        now = self._now_ms
        keys = self._keys
        gc_was_enabled = gc.isenabled()
        gc.disable()  # millions of small dicts, no cycles: the collector would only slow this down
        try:
            for c in times:
                rid = self._new_run_id()
                obj, steps = self._generate(rid, c, None)
                self._runs[rid] = obj
                keys.append((c, rid))
                self._settle(rid, obj, steps, 0, now)
            keys.sort()
        finally:
            if gc_was_enabled:
                gc.enable()

    def _create_run(
        self,
        c: int,
        *,
        status: str | None = None,
        extra: dict[str, Any] | None = None,
        schedule_only: bool = False,
        run_id: str | None = None,
    ) -> str:
        rid = run_id if run_id is not None else self._new_run_id()
        obj, steps = self._generate(rid, c, status)
        if extra:
            obj.update(extra)
            self._sticky[rid] = set(extra)
        self._runs[rid] = obj
        bisect.insort(self._keys, (c, rid))
        if status is not None:
            # steps[0] holds the forced state; the rest are scheduled after the clock
            self._settle(rid, obj, steps, 0, c, apply_until_index=1)
        elif schedule_only:
            self._settle(rid, obj, steps, 0, c, apply_until_index=1)
        else:
            self._settle(rid, obj, steps, 0, self._now_ms)
        return rid

    def _settle(
        self,
        rid: str,
        obj: dict[str, Any],
        steps: list[tuple[int, dict[str, Any]]],
        index: int,
        until: int,
        apply_until_index: int | None = None,
    ) -> None:
        """Apply the steps due by ``until`` (or exactly the first ``apply_until_index``);
        schedule the rest."""
        sticky = self._sticky.get(rid)
        last_t = None
        n = len(steps)
        while index < n:
            t, updates = steps[index]
            if apply_until_index is not None:
                if index >= apply_until_index:
                    break
            elif t > until:
                break
            if sticky:
                for k, v in updates.items():
                    if k not in sticky:
                        obj[k] = v
            else:
                obj.update(updates)
            last_t = t
            index += 1
        if last_t is not None and not (sticky and "updated_at" in sticky):
            obj["updated_at"] = _fmt_ms(last_t)
        if index < n:
            plan = _Plan(steps, index)
            self._plans[rid] = plan
            self._seq += 1
            heapq.heappush(self._heap, (steps[index][0], self._seq, rid, plan))
        else:
            self._plans.pop(rid, None)

    def _run_due(self) -> None:
        """Apply every scheduled transition whose time is <= the clock, in time order."""
        heap = self._heap
        now = self._now_ms
        while heap and heap[0][0] <= now:
            t, _, rid, plan = heapq.heappop(heap)
            if self._plans.get(rid) is not plan:
                continue  # cancelled by update_run
            obj = self._runs[rid]
            sticky = self._sticky.get(rid)
            _, updates = plan.steps[plan.index]
            for k, v in updates.items():
                if not sticky or k not in sticky:
                    obj[k] = v
            if not sticky or "updated_at" not in sticky:
                obj["updated_at"] = _fmt_ms(t)
            plan.index += 1
            if plan.index < len(plan.steps):
                self._seq += 1
                heapq.heappush(heap, (plan.steps[plan.index][0], self._seq, rid, plan))
            else:
                del self._plans[rid]

    def _generate(
        self, rid: str, c: int, forced: str | None
    ) -> tuple[dict[str, Any], list[tuple[int, dict[str, Any]]]]:
        """A new run object (queued at c) and its lifecycle steps [(time_ms, field updates)].

        With ``forced`` the first step is the forced state at c and later steps are shifted to
        start after max(c, clock), so the run is in the forced status right now.
        """
        rng = self._rng
        r = rng.random
        legacy = r() < 0.01
        newer = r() < 0.30
        str_runtime = r() < 0.30
        task_id = self._task_ids[self._rr(len(self._task_ids))]
        agent_id = self.agents[self._rr(5)]
        source_id = self.sources[self._rr(6)] if r() < 0.9 else None
        credential_id = self.credentials[self._rr(8)] if r() < 0.85 else None
        session_id = f"sess_{rng.getrandbits(96):024x}" if r() < 0.85 else None
        created = _fmt_ms(c)
        obj: dict[str, Any] = {
            "id": rid,
            "object": "task_run",
            "status": "queued",
            "result": None,
            "task_id": task_id,
            "credential_id": credential_id,
            "session_id": session_id,
            "agent_id": agent_id,
            "source_id": source_id,
            "runtime_ms": None,
            "output": None,
            "errors": None,
            "interaction": None,
            "created_at": created,
            "updated_at": created,
        }
        if newer:
            obj["workflow_id"] = self.workflows[self._rr(3)] if r() < 0.6 else None
            obj["input"] = self._gen_input()
            obj["storage"] = []
            obj["canceled_at"] = None

        if forced is not None:
            if forced in ("pending", "cancelling"):
                legacy = True
            elif forced in ("review_required", "canceling"):
                legacy = False  # the forced spelling wins over the 1% legacy draw
            category = {
                "completed": "completed",
                "failed": "failed",
                "canceling": "cancel",
                "cancelling": "cancel",
                "canceled": "cancel",
                "interaction_required": "interaction",
                "review_required": "review",
                "pending": "review",
            }.get(forced)
            if category is None and forced not in ("queued", "running"):
                obj["status"] = forced
                return obj, [(c, {"status": forced})]
        else:
            category = None
        if category is None:
            u = r()
            if u < 0.70:
                category = "completed"
            elif u < 0.82:
                category = "failed"
            elif u < 0.85:
                category = "cancel"
            elif u < 0.91:
                category = "interaction"
            elif u < 0.97:
                category = "review"
            else:
                category = "long"
        steps = self._gen_steps(c, category, legacy, newer, str_runtime)
        if forced is None:
            return obj, steps
        k = next(i for i, (_, u) in enumerate(steps) if u.get("status") == forced)
        merged: dict[str, Any] = {}
        for _, updates in steps[: k + 1]:
            merged.update(updates)
        base = max(c, self._now_ms)
        t_k = steps[k][0]
        shifted = [(c, merged)] + [(base + (t - t_k), u) for t, u in steps[k + 1 :]]
        return obj, shifted

    def _gen_steps(
        self, c: int, category: str, legacy: bool, newer: bool, str_runtime: bool
    ) -> list[tuple[int, dict[str, Any]]]:
        rng = self._rng
        randint = self._ri
        canceling = "cancelling" if legacy else "canceling"
        review = "pending" if legacy else "review_required"

        def rt(ms: int) -> int | str:
            return str(ms) if str_runtime else ms

        steps: list[tuple[int, dict[str, Any]]] = [(c, {"status": "queued"})]
        t1 = c + randint(1000, 30_000)
        steps.append((t1, {"status": "running"}))
        if category == "completed":
            t2 = t1 + self._duration()
            steps.append((t2, self._completion(rt(t2 - t1), newer)))
        elif category == "failed":
            code = self._failure_code()
            t2 = t1 + (1_800_000 if code == "timeout" else self._duration())
            steps.append((t2, self._failure(rt(t2 - t1), code)))
        elif category == "cancel":
            t2 = t1 + randint(2000, 300_000)
            t3 = t2 + randint(1000, 20_000)
            steps.append((t2, {"status": canceling}))
            done: dict[str, Any] = {
                "status": "canceled",
                "result": None if rng.random() < 0.6 else "failure",
                "runtime_ms": rt(t3 - t1),
            }
            if newer:
                done["canceled_at"] = _fmt_ms(t3)
            steps.append((t3, done))
        elif category == "interaction":
            t2 = t1 + randint(3000, 60_000)
            steps.append(
                (t2, {"status": "interaction_required", "interaction": self._interaction()})
            )
            t3 = t2 + randint(60_000, 1_800_000)
            if rng.random() < 0.6:
                steps.append((t3, {"status": "running", "interaction": None}))
                t4 = t3 + self._duration()
                steps.append((t4, self._completion(rt(t4 - t1), newer)))
            else:
                steps.append((t3, self._failure(rt(t3 - t1), "interaction_timeout")))
        elif category == "review":
            t2 = t1 + self._duration()
            steps.append((t2, {"status": review}))
            t3 = t2 + randint(_MS_PER_DAY, 21 * _MS_PER_DAY)
            steps.append((t3, self._completion(rt(t2 - t1), newer)))
        else:  # long: stays open for weeks to months
            u = rng.random()
            t2 = t1 + randint(5000, 120_000)
            if u < 0.25:
                steps.append((t2, {"status": review}))
            elif u < 0.40:
                steps.append(
                    (t2, {"status": "interaction_required", "interaction": self._interaction()})
                )
            t_end = t1 + randint(30 * _MS_PER_DAY, 120 * _MS_PER_DAY)
            steps.append((t_end, self._completion(rt(t_end - t1), newer)))
        return steps

    def _duration(self) -> int:
        """Execution time in ms: mostly tens of seconds, a tail of minutes, capped below 30 min."""
        ms = int(self._rng.lognormvariate(10.7, 0.9))
        return max(800, min(ms, 1_790_000))

    def _failure_code(self) -> str:
        u = self._rng.random()
        acc = 0.0
        for code, weight in _FAILURE_CODES:
            acc += weight
            if u < acc:
                return code
        return _FAILURE_CODES[-1][0]

    def _error(self, code: str) -> dict[str, Any]:
        etype, message, fields = _ERROR_CODES[code]
        field = fields[self._rr(len(fields))] if fields and self._rng.random() < 0.5 else None
        return {"type": etype, "code": code, "message": message, "field": field}

    def _failure(self, runtime: int | str, code: str) -> dict[str, Any]:
        errors = [self._error(code)]
        if self._rng.random() < 0.2:
            errors.append(self._error(self._failure_code()))
        return {
            "status": "failed",
            "result": "failure",
            "runtime_ms": runtime,
            "output": None,
            "errors": errors,
            "interaction": None,
        }

    def _completion(self, runtime: int | str, newer: bool) -> dict[str, Any]:
        rng = self._rng
        done: dict[str, Any] = {
            "status": "completed",
            "result": "success" if rng.random() < 0.92 else "unknown",
            "runtime_ms": runtime,
            "output": self._output(),
            "errors": None,
            "interaction": None,
        }
        if newer:
            done["storage"] = [
                {
                    "id": f"stor_{rng.getrandbits(96):024x}",
                    "name": self._pick(
                        ("invoice.pdf", "statement.pdf", "report.csv", "screenshot.png")
                    ),
                    "size": self._ri(200, 5_000_000),
                }
                for _ in range(self._pick((0, 0, 1, 1, 2, 3)))
            ]
        return done

    def _gen_input(self) -> dict[str, Any]:
        rng = self._rng
        shape = self._rr(4)
        if shape == 0:
            return {}
        if shape == 1:
            return {"month": f"2025-{self._ri(1, 12):02d}"}
        if shape == 2:
            return {
                "account_number": f"****{self._ri(1000, 9999)}",
                "include_pdf": rng.random() < 0.5,
            }
        return {"date_range": {"from": "2025-10-01", "to": "2025-12-31"}, "limit": self._ri(1, 50)}

    def _interaction(self) -> Any:
        shape = self._rr(5)
        if shape == 0:
            return {
                "type": "mfa",
                "prompt": "Enter the code",
                "fields": [{"name": "code", "type": "text"}],
            }
        if shape == 1:
            return {
                "type": "security_question",
                "question": "What was the name of your first pet?",
                "fields": [{"name": "answer", "type": "text"}],
            }
        if shape == 2:
            return {
                "type": "select",
                "prompt": "Choose an account",
                "options": [
                    {"id": f"acc_{i}", "label": f"Checking ending {self._ri(1000, 9999)}"}
                    for i in range(self._ri(2, 4))
                ],
            }
        if shape == 3:
            return {
                "type": "mfa",
                "channel": self._pick(("sms", "email")),
                "expires_in": self._ri(60, 600),
            }
        return "Enter the code sent to your phone"

    def _output(self) -> Any:
        """Arbitrary JSON whose shape and types drift between runs, as real task outputs do."""
        rng = self._rng
        u = rng.random()
        if u < 0.45:
            out: dict[str, Any] = {}
            a = self._rr(3)
            out["amount"] = (
                self._ri(1, 5000)
                if a == 0
                else (
                    f"{self._ri(1, 5000)}.{self._ri(0, 99):02d}"
                    if a == 1
                    else round(rng.uniform(1, 5000), 2)
                )
            )
            if rng.random() < 0.7:
                out["currency"] = self._pick(("USD", "EUR", "CAD"))
            if rng.random() < 0.5:
                out["invoice_count"] = (
                    self._ri(0, 20) if rng.random() < 0.8 else str(self._ri(0, 20))
                )
            if rng.random() < 0.4:
                out["paid"] = (
                    rng.random() < 0.5 if rng.random() < 0.8 else self._pick(("yes", "no"))
                )
            if rng.random() < 0.3:
                out["due_date"] = f"2025-{self._ri(1, 12):02d}-{self._ri(1, 28):02d}"
            if rng.random() < 0.2:
                out["documents"] = [f"doc_{self._ri(1, 999)}.pdf" for _ in range(self._ri(0, 3))]
            if rng.random() < 0.15:
                out["notes"] = None
            return out
        if u < 0.60:
            return {
                "account": {
                    "holder": {
                        "name": self._pick(("Ada Lovelace", "Alan Turing", "Grace Hopper")),
                        "id": self._ri(1, 10_000),
                    },
                    "summary": {
                        "balance": self._ri(0, 100_000)
                        if rng.random() < 0.5
                        else f"{self._ri(0, 100_000)}.00",
                        "open": True,
                    },
                },
                "fetched": self._ri(1, 50),
            }
        if u < 0.75:
            return [
                {
                    "invoice_id": f"INV-{self._ri(1000, 9999)}",
                    "amount": self._ri(1, 900) if rng.random() < 0.5 else f"{self._ri(1, 900)}.50",
                }
                for _ in range(self._ri(0, 4))
            ]
        if u < 0.82:
            return [
                self._ri(1, 100) if rng.random() < 0.7 else str(self._ri(1, 100))
                for _ in range(self._ri(1, 5))
            ]
        if u < 0.89:
            return self._pick(("Downloaded 3 invoices", "No new documents", "done"))
        if u < 0.94:
            return self._ri(0, 1000) if rng.random() < 0.5 else round(rng.uniform(0, 100), 3)
        if u < 0.97:
            return True
        return None

    # ---------------------------------------------------------------- HTTP side

    def _record_start(
        self, method: str, path: str, params: dict[str, list[str]], auth: str | None, at: float
    ) -> tuple[int, int]:
        rec = RecordedRequest(method, path, params, 0, auth, at)
        with self._log_lock:
            self.requests.append(rec)
            return self._log_generation, len(self.requests) - 1

    def _record_status(
        self, slot: tuple[int, int], status: int, request_id: str | None = None
    ) -> None:
        generation, index = slot
        with self._log_lock:
            if generation == self._log_generation and index < len(self.requests):
                self.requests[index] = dataclasses.replace(
                    self.requests[index], status=status, request_id=request_id
                )

    def _take_fault(self, path: str) -> _Fault | None:
        with self._log_lock:
            for fault in self._faults:
                if fault.path is None or fault.path in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _check_rate(self) -> float | None:
        """None if the request is accepted (and counted), else seconds until a slot frees."""
        limit = self.rate_limit
        if not limit:
            return None
        count, window = limit
        now = time.monotonic()
        with self._log_lock:
            w = self._window
            while w and w[0] <= now - window:
                w.popleft()
            if len(w) >= count:
                return max(0.0, w[0] + window - now) if w else window
            w.append(now)
        return None

    def _sleep(self, seconds: float) -> bool:
        """Interruptible sleep; False if the simulator is stopping."""
        if seconds <= 0:
            return not self._stopping.is_set()
        return not self._stopping.wait(seconds)

    def _json(
        self,
        status: int,
        payload: Any,
        request_id: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> _Response:
        body = json.dumps(payload, separators=(",", ":")).encode()
        return _Response(status, body, "application/json", headers or [], request_id)

    def _error_response(
        self,
        status: int,
        etype: str,
        code: str,
        message: str,
        headers: list[tuple[str, str]] | None = None,
    ) -> _Response:
        rid = _request_id()
        payload = {
            "errors": [{"type": etype, "code": code, "message": message, "field": None}],
            "request_id": rid,
        }
        return self._json(status, payload, rid, headers)

    def _rate_limited(self, retry_after: str | None) -> _Response:
        headers = [("Retry-After", retry_after)] if retry_after is not None else []
        with self._log_lock:
            self.rate_limited_count += 1
        return self._error_response(
            429, "rate_limit", "rate_limit_exceeded", "Rate limit exceeded. Retry later.", headers
        )

    def _fault_response(
        self,
        fault: _Fault,
        method: str,
        path: str,
        params: dict[str, list[str]],
        auth: str | None,
        raw_path: str,
    ) -> _Response | None:
        """The answer for an injected fault, or None for 'slow' (normal answer after the delay)."""
        kind = fault.kind
        if kind == "429":
            return self._rate_limited(fault.retry_after)
        if kind in ("500", "502", "503", "504"):
            headers = [("Retry-After", fault.retry_after)] if fault.retry_after is not None else []
            return self._error_response(
                int(kind), "api", "api_error", "An internal error occurred.", headers
            )
        if kind == "drop":
            return _Response(0, mode="drop")
        if kind == "hang":
            return _Response(0, mode="hang", hang_for=fault.delay)
        if kind == "slow":
            self._sleep(fault.delay)
            return None
        if kind == "truncate":
            normal = self._handle(method, path, params, auth)
            return _Response(
                200,
                normal.body,
                normal.content_type,
                normal.headers,
                normal.request_id,
                mode="truncate",
            )
        if kind == "non_json":
            return _Response(200, _NON_JSON_BODY, "text/html")
        if kind == "bad_shape":
            rid = _request_id()
            return self._json(200, {"items": [], "request_id": rid}, rid)
        if kind == "redirect":
            location = fault.location or f"http://{self._host}:{self.port}{raw_path}"
            return _Response(302, b"", None, [("Location", location)])
        if kind in ("trickle", "trickle_headers"):
            normal = self._handle(method, path, params, auth)
            return dataclasses.replace(
                normal, mode=kind, trickle_every=fault.delay if fault.delay > 0 else 0.2
            )
        if kind == "has_more_lie":
            rid = _request_id()
            cursor = _encode_cursor((0, "trun_" + os.urandom(12).hex()), "desc", "lie")
            payload = {"data": [], "has_more": True, "next_cursor": cursor, "request_id": rid}
            return self._json(200, payload, rid)
        raise AssertionError(kind)

    def _respond(
        self, method: str, path: str, params: dict[str, list[str]], auth: str | None, raw_path: str
    ) -> _Response:
        fault = self._take_fault(path)
        if fault is not None:
            response = self._fault_response(fault, method, path, params, auth, raw_path)
            if response is not None:
                return response
        return self._handle(method, path, params, auth)

    def _handle(
        self, method: str, path: str, params: dict[str, list[str]], auth: str | None
    ) -> _Response:
        """Normal handling: auth, rate limit, routing."""
        if not self._authorized(auth):
            return self._error_response(
                401,
                "auth",
                "unauthorized",
                "Invalid API key provided.",
                [("WWW-Authenticate", "Bearer")],
            )
        wait = self._check_rate()
        if wait is not None:
            retry = str(max(1, math.ceil(wait))) if self.rate_limit_retry_after else None
            return self._rate_limited(retry)
        route = path.rstrip("/") if path != "/" else path
        if route == "/v2/test":
            kind = "test"
        elif route == "/v2/task-runs":
            kind = "list"
        elif route.startswith("/v2/task-runs/") and route.count("/") == 3:
            kind = "get"
        else:
            return self._error_response(
                404, "request", "not_found", f"The requested path {path} was not found."
            )
        if method not in ("GET", "HEAD"):
            return self._error_response(
                405,
                "request",
                "method_not_allowed",
                f"Method {method} is not allowed on {path}.",
                [("Allow", "GET")],
            )
        if kind == "test":
            return self._json(200, {"status": "ready", "environment": "live"}, _request_id())
        if kind == "get":
            run_id = unquote(route.rsplit("/", 1)[1])  # ids are percent-encoded path segments
            with self._lock:
                obj = self._runs.get(run_id)
                if obj is not None:
                    body = json.dumps(obj, separators=(",", ":")).encode()
            if obj is None:
                return self._error_response(
                    404, "request", "resource_not_found", f"Task run {run_id} not found."
                )
            return _Response(200, body, "application/json", [], _request_id())
        return self._list(params)

    def _authorized(self, auth: str | None) -> bool:
        if not auth:
            return False
        scheme, _, token = auth.strip().partition(" ")
        return scheme.lower() == "bearer" and token.strip() == self.api_key

    # ---------------------------------------------------------------- listing

    def _list(self, params: dict[str, list[str]]) -> _Response:
        try:
            query = _parse_list_query(params, self.order, self._task_search)
        except _ValidationError as exc:
            return self._validation_error(exc.errors)
        limit, order, after_key, filters, fhash, match = query
        page: list[dict[str, Any]]
        rid = _request_id()
        with self._lock:
            keys = self._keys
            runs = self._runs
            lo = 0
            hi = len(keys)
            if filters["created_after"] is not None:
                lo = bisect.bisect_left(keys, (filters["created_after"] // 1000 + 1, ""))
            if filters["created_before"] is not None:
                hi = bisect.bisect_left(keys, (-(-filters["created_before"] // 1000), ""))
            if order == "asc":
                start = lo if after_key is None else max(lo, bisect.bisect_right(keys, after_key))
                indices: Iterable[int] = range(start, hi)
            else:
                end = hi if after_key is None else min(hi, bisect.bisect_left(keys, after_key))
                indices = range(end - 1, lo - 1, -1)
            page = []
            more = False
            last_key: tuple[int, str] | None = None
            if match is None:
                rng_idx = indices  # O(page): slice the range
                assert isinstance(rng_idx, range)
                chosen = rng_idx[: limit + 1]
                more = len(chosen) > limit
                page = [runs[keys[i][1]] for i in chosen[:limit]]
                if page:
                    last_key = keys[chosen[len(page) - 1]]
            else:
                for i in indices:
                    obj = runs[keys[i][1]]
                    if isinstance(obj, dict) and match(obj):
                        if len(page) == limit:
                            more = True
                            break
                        page.append(obj)
                        last_key = keys[i]
            next_cursor = None
            if more and last_key is not None:
                next_cursor = _encode_cursor(last_key, order, fhash)
            payload = {
                "data": page,
                "has_more": more,
                "next_cursor": next_cursor,
                "request_id": rid,
            }
            body = json.dumps(payload, separators=(",", ":")).encode()
        return _Response(200, body, "application/json", [], rid)

    def _validation_error(self, errors: dict[str, list[str]]) -> _Response:
        rid = _request_id()
        payload = {
            "type": _VALIDATION_TYPE,
            "title": _VALIDATION_TITLE,
            "status": 400,
            "errors": errors,
            "traceId": f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00",
            "request_id": rid,
        }
        return self._json(400, payload, rid)


def _request_id() -> str:
    """A fresh request id; from os.urandom so it never disturbs the seeded data generator."""
    return "req_" + os.urandom(12).hex()


def _encode_cursor(key: tuple[int, str], order: str, fhash: str) -> str:
    raw = json.dumps(
        {"v": 1, "k": [key[0], key[1]], "o": order, "f": fhash}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(token: str) -> tuple[tuple[int, str], str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        key = data["k"]
        order = data["o"]
        fhash = data["f"]
        if (
            data.get("v") != 1
            or not isinstance(key, list)
            or len(key) != 2
            or type(key[0]) is not int
            or not isinstance(key[1], str)
            or order not in ("asc", "desc")
            or not isinstance(fhash, str)
        ):
            return None
        return (key[0], key[1]), order, fhash
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        return None


def _values(params: dict[str, list[str]], name: str) -> list[str]:
    """Non-blank values of a (possibly repeated) query parameter; blank values count as absent."""
    return [v for v in params.get(name, []) if v != ""]


def _parse_list_query(
    params: dict[str, list[str]], default_order: str, task_names: dict[str, str]
) -> tuple[
    int, str, tuple[int, str] | None, dict[str, Any], str, Callable[[dict[str, Any]], bool] | None
]:
    """Validate the list query.

    Returns (limit, order, cursor key, filters, filter hash, matcher or None)."""
    errors: dict[str, list[str]] = {}

    def fail(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    limit = 20
    if "limit" in params:
        raw = params["limit"][0]
        body = raw.removeprefix("-")
        if not body or not set(body) <= _INT_PATTERN_CHARS or (len(body) > 1 and body[0] == "0"):
            fail("limit", f"The value '{raw}' is not valid for limit.")
        else:
            limit = int(raw)
            if not 1 <= limit <= 100:
                fail("limit", "The field limit must be between 1 and 100.")

    statuses = _values(params, "status")
    for s in statuses:
        if s not in DOCUMENTED_STATUSES:
            fail("status", f"The value '{s}' is not valid for status.")
    outcomes = _values(params, "outcome")
    for o in outcomes:
        if o not in OUTCOMES:
            fail("outcome", f"The value '{o}' is not valid for outcome.")
    bounds: dict[str, int | None] = {}
    for name in ("created_after", "created_before"):
        vals = _values(params, name)
        bounds[name] = None
        if vals:
            parsed = _parse_iso(vals[0])
            if parsed is None:
                fail(name, f"The value '{vals[0]}' is not valid for {name}.")
            else:
                bounds[name] = _dt_to_us(parsed)

    def single(name: str) -> str | None:
        vals = _values(params, name)
        return vals[0] if vals else None

    search = single("search")
    filters: dict[str, Any] = {
        "status": sorted(set(statuses)),
        "source_id": sorted(set(_values(params, "source_id"))),
        "outcome": sorted(set(outcomes)),
        "agent_id": single("agent_id"),
        "credential_id": single("credential_id"),
        "task_id": single("task_id"),
        "workflow_id": single("workflow_id"),
        "created_after": bounds["created_after"],
        "created_before": bounds["created_before"],
        "search": search.lower() if search is not None else None,
    }
    fhash = hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]

    order = "desc" if default_order == "newest_first" else "asc"
    after_key = None
    cursors = _values(params, "cursor")
    if cursors:
        decoded = _decode_cursor(cursors[0])
        if decoded is None:
            fail("cursor", "The cursor is invalid.")
        elif decoded[2] != fhash:
            fail("cursor", "The cursor does not match the filters of this request.")
        else:
            after_key, order, _ = decoded
    if errors:
        raise _ValidationError(errors)
    return limit, order, after_key, filters, fhash, _matcher(filters, task_names)


def _matcher(
    filters: dict[str, Any], task_names: dict[str, str]
) -> Callable[[dict[str, Any]], bool] | None:
    """A predicate for the non-date filters, or None when every run in the date range matches.

    ``task_names`` maps task_id -> lower-cased task name, for ``search``."""
    checks: list[Callable[[dict[str, Any]], bool]] = []
    if filters["status"]:
        wanted = set(filters["status"])
        wanted |= {alias for alias, canon in LEGACY_STATUS_ALIASES.items() if canon in wanted}
        checks.append(lambda o: _text(o.get("status")) in wanted)
    if filters["source_id"]:
        sources = set(filters["source_id"])
        checks.append(lambda o: _text(o.get("source_id")) in sources)
    if filters["outcome"]:
        outcomes = set(filters["outcome"])
        checks.append(lambda o: _text(o.get("result")) in outcomes)
    for name in ("agent_id", "credential_id", "task_id", "workflow_id"):
        value = filters[name]
        if value is not None:
            checks.append(lambda o, name=name, value=value: o.get(name) == value)
    if filters["search"] is not None:
        needle = filters["search"]

        def searched(o: dict[str, Any]) -> bool:
            task_id = str(o.get("task_id") or "")
            return (
                needle in task_names.get(task_id, "")
                or needle in task_id.lower()
                or needle in str(o.get("id", "")).lower()
            )

        checks.append(searched)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda o: all(check(o) for check in checks)


def _text(value: Any) -> str | None:
    """A filter compares strings only: a hostile record's `status: {}` matches nothing."""
    return value if isinstance(value, str) else None


class _Server(ThreadingHTTPServer):
    """Threaded server that can close its keep-alive connections on stop()."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128
    simulator: DeckSimulator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
            self.simulator.connections_opened += 1
        try:
            super().finish_request(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.discard(request)

    def close_connections(self) -> None:
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, asks the simulator for the answer, and writes it (or misbehaves)."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        try:
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s - %s", self.address_string(), format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header tells the simulated clock (Deck's clock, as a client sees it)."""
        sim = self.server.simulator
        if sim.date_header is not None:
            return sim.date_header
        return email.utils.format_datetime(sim.now, usegmt=True)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sim = self.server.simulator
        received = time.monotonic()
        split = urlsplit(self.path)
        path = split.path
        params = parse_qs(split.query, keep_blank_values=True)
        auth = self.headers.get("Authorization")
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))  # keep the connection usable
        slot = sim._record_start(method, path, params, auth, received)
        if not sim._wait_if_held(RecordedRequest(method, path, params, 0, auth, received)):
            self.close_connection = True
            return
        try:
            response = sim._respond(method, path, params, auth, self.path)
        except Exception:  # pragma: no cover - a bug in the simulator must still answer
            logger.exception("deck simulator failed to handle %s %s", method, self.path)
            response = sim._error_response(500, "api", "api_error", "An internal error occurred.")
        sim._record_status(slot, response.status, response.request_id)
        if not sim._sleep(sim.latency):
            self.close_connection = True
            return
        if response.mode == "drop":
            self.close_connection = True
            return
        if response.mode == "hang":
            deadline = time.monotonic() + response.hang_for if response.hang_for > 0 else math.inf
            while not sim._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sim._stopping.wait(min(_HANG_STEP, left))
            self.close_connection = True
            return
        if response.mode in ("trickle", "trickle_headers"):
            self._trickle(response)
            return
        self._write(response, head_only=(method == "HEAD"))

    def _trickle(self, response: _Response) -> None:
        """Send the answer one byte every ``trickle_every`` seconds (the headers at once unless
        the mode is ``trickle_headers``), until done, the client leaves or the simulator stops."""
        sim = self.server.simulator
        self.close_connection = True
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        if response.request_id:
            self.send_header("X-Request-Id", response.request_id)
        self.send_header("Connection", "close")
        head = b"".join(self._headers_buffer) + b"\r\n"
        self._headers_buffer = []
        data = response.body
        try:
            if response.mode == "trickle":
                self.wfile.write(head)
            else:
                data = head + data
            for i in range(len(data)):
                if sim._stopping.wait(response.trickle_every):
                    return
                self.wfile.write(data[i : i + 1])
        except OSError:  # the client gave up (its deadline) and closed the connection
            return

    def _write(self, response: _Response, *, head_only: bool) -> None:
        try:
            self.send_response(response.status)
            if response.content_type:
                self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            if response.request_id:
                self.send_header("X-Request-Id", response.request_id)
            for name, value in response.headers:
                self.send_header(name, value)
            if response.mode == "truncate":
                self.send_header("Connection", "close")
                self.close_connection = True
            body = response.body
            if head_only:
                body = b""
            elif response.mode == "truncate":
                body = body[: len(body) // 2]
            # headers and body in one write: no Nagle/delayed-ACK stall between them
            self._headers_buffer.append(b"\r\n" + body)
            self.flush_headers()
        except OSError:  # the client went away (e.g. it timed out)
            self.close_connection = True


def main(argv: list[str] | None = None) -> None:
    """Serve a simulator until Ctrl-C (for demos and manual poking with curl)."""
    parser = argparse.ArgumentParser(
        prog="python -m deck.simulator", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--runs", type=int, default=5000, help="runs in the initial history")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history-days", type=float, default=30.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--api-key", default=DEMO_API_KEY)
    parser.add_argument("--order", choices=("newest_first", "oldest_first"), default="newest_first")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds slept before every answer"
    )
    parser.add_argument(
        "--rate-limit", default=None, help="COUNT/SECONDS, e.g. 200/10 (Deck's documented limit)"
    )
    parser.add_argument(
        "--tick",
        type=float,
        default=0.0,
        help="advance the simulated clock by this many seconds every second",
    )
    parser.add_argument(
        "--new-runs-per-tick", type=int, default=0, help="new runs created on each tick"
    )
    args = parser.parse_args(argv)
    rate_limit = None
    if args.rate_limit:
        count, _, seconds = args.rate_limit.partition("/")
        rate_limit = (int(count), float(seconds or 10))
    logging.basicConfig(level=logging.INFO)
    sim = DeckSimulator(
        seed=args.seed,
        runs=args.runs,
        history_days=args.history_days,
        api_key=args.api_key,
        order=args.order,
        latency=args.latency,
        rate_limit=rate_limit,
        host=args.host,
        port=args.port,
    ).start()
    print(f"Deck simulator: {len(sim._keys)} runs, clock {sim.now.isoformat()}")
    print(f"  base URL: {sim.base_url}")
    print(f"  API key:  {sim.api_key}")
    print(
        f"  try: curl -H 'Authorization: Bearer {sim.api_key}' '{sim.base_url}/task-runs?limit=2'"
    )
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(1.0)
            if args.tick > 0:
                sim.advance(args.tick, new_runs=args.new_runs_per_tick)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
