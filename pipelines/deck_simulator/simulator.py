"""DeckSimulator: the public facade over the layers (data, store, api, faults, server).

Its settings (the key, the order, the contract, the rate limit, event retention) are the mixin
`settings.SimulatorSettings`; what tests do to its requests is `control.RequestControls`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Self

from .api import DEMO_API_KEY, DeckAPI
from .contract import READINGS, Contract, as_contract
from .control import RequestControls
from .data import RunGenerator
from .events import EventLog
from .faults import FaultQueue
from .ratewindow import RateWindow
from .requestlog import RequestLog
from .server import Serving
from .settings import ORDERS, SimulatorSettings
from .store import RunStore
from .times import dt_to_ms, ms_to_dt

logger = logging.getLogger("deck.simulator")
DOCUMENTED = READINGS["documented"]


class DeckSimulator(SimulatorSettings, RequestControls):
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
    - ``GET /events``: every status change of a run is an event at the change's time (creation
      is ``task_run.queued`` at created_at; ``add_runs(status=X)`` adds an X event at created_at
      too; ``update_run(status=...)`` one at the clock; serve_fields none). Review is typed
      ``task_run.pending``; ~30% of review events say ``data.status: "pending"`` and ~30% of
      canceling events are ``task_run.cancelling``/``"cancelling"`` (older spellings). Events
      older than ``event_retention_days`` are neither served nor counted; those already that
      old when the history is seeded are not even kept (not in event_log()).
    - ``contract`` (a ``Contract`` or a ``READINGS`` name) picks how bounds are read, how finely
      instants are kept and how timestamps are printed; ``runs()``, ``run()``, ``events()`` and
      ``event_log()`` return them as printed under it. ``skew_dates``/``omit_date``/
      ``date_header`` shape the ``Date`` header.
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
        event_retention_days: float = 30.0,
        contract: Contract | str = DOCUMENTED,
    ) -> None:
        if order not in ORDERS:
            raise ValueError("order must be 'newest_first' or 'oldest_first'")
        if runs < 0:
            raise ValueError("runs must be >= 0")
        self.latency = latency
        """Seconds slept before every answer (concurrently across requests)."""
        self.connections_opened = 0
        """TCP connections accepted (to check that clients reuse keep-alive connections)."""
        self.date_header: str | None = None
        """The `Date` header sent verbatim; None sends the simulated clock (the default)."""
        self.omit_date = False
        """Answer without any `Date` header (a proxy that strips it)."""
        self._date_skew = None

        gen = RunGenerator(seed)
        self.agents = gen.agents
        self.sources = gen.sources
        self.credentials = gen.credentials
        self.tasks = gen.tasks
        """task_id -> task name (what ``search`` matches besides ids)."""
        self.workflows = gen.workflows
        self._store = RunStore(gen, dt_to_ms(now), EventLog(seed, event_retention_days))
        self._rate = RateWindow(rate_limit)
        self._api = DeckAPI(self._store, gen.task_search, api_key, order, self._rate)
        self._api.rate_limit_retry_after = rate_limit_retry_after
        self._store.set_contract(as_contract(contract))
        self._faults = FaultQueue()
        self._log = RequestLog()
        self._http = Serving(host, port)
        if runs:
            self._store.seed_history(runs, history_days)

    # ---------------------------------------------------------------- lifecycle of the server

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self, so ``sim = DeckSimulator().start()``."""
        if not self._http.running:
            self._http.start(self)
            logger.debug("deck simulator serving at %s", self.base_url)
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close open keep-alive connections."""
        self._http.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (the requested one before start())."""
        return self._http.port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>/v2`` - what the connector uses as its API base."""
        if not self._http.running:
            raise RuntimeError("simulator not started")
        return f"http://{self._http.host}:{self.port}/v2"

    @property
    def now(self) -> datetime:
        """The simulated clock (millisecond precision); only advance() moves it."""
        with self._store.lock:
            return ms_to_dt(self._store.now_ms)

    # ---------------------------------------------------------------- ground truth and control

    def runs(self) -> list[dict[str, Any]]:
        """Deep copies of every run as the API would return it now (printed under the contract),
        sorted by (created_at, id)."""
        return self._store.runs()

    def run(self, run_id: str) -> dict[str, Any]:
        """Deep copy of one run; KeyError if unknown."""
        return self._store.run(run_id)

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
        return self._store.add_runs(n, created_at, status, ids, fields)

    def advance(self, seconds: float, *, new_runs: int = 0) -> None:
        """Move the clock forward, create ``new_runs`` runs spread over the interval, and apply
        every scheduled lifecycle transition up to the new clock (each sets updated_at)."""
        self._store.advance(seconds, new_runs)

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Mutate fields of a run (updated_at = clock unless given). Setting ``status`` cancels
        the run's remaining scheduled transitions, so the test stays in control of it."""
        self._store.update_run(run_id, fields)

    # ---------------------------------------------------------------- hostile records

    def add_raw_record(self, record: Any, *, created_at: datetime | str) -> str:
        """Serve ``record`` verbatim in listings, sorted as if created at ``created_at``.

        For contract breaches the run lifecycle cannot produce: a record without ``id``, with an
        unparseable ``created_at``, or not an object at all. Deck knows the record's creation
        time (it filters and sorts by it) even when the field it serves is broken. Returns a
        handle for replace_raw_record(); raw records are not in runs() and never move.
        """
        return self._store.add_raw_record(record, created_at)

    def serve_fields(self, run_id: str, **fields: Any) -> None:
        """Serve these values verbatim on a run (``created_at`` too, unparsed) while the run
        keeps its sort position; nothing else changes (not updated_at). For broken fields."""
        self._store.serve_fields(run_id, fields)

    def replace_raw_record(self, handle: str, record: Any) -> None:
        """Serve ``record`` instead of the raw record ``handle`` (same sort position)."""
        self._store.replace_raw_record(handle, record)

    # ---------------------------------------------------------------- events

    def events(self) -> list[dict[str, Any]]:
        """Every event ``GET /events`` serves now (within retention, raw events excluded),
        as served, sorted by (created_at, id)."""
        return self._store.rendered_events(served_only=True)

    def event_log(self) -> list[dict[str, Any]]:
        """Every event emitted and kept, expired ones included (raw events excluded), as
        ``GET /events`` would serve them, sorted by (created_at, id)."""
        return self._store.rendered_events(served_only=False)

    def add_raw_event(self, record: Any, *, created_at: datetime | str) -> str:
        """Serve ``record`` verbatim in ``GET /events``, sorted as if created at ``created_at``
        (for hostile input: no id, a broken ``data``, not an object). Returns a handle for
        replace_raw_event(); raw events expire like others and are not in events()."""
        return self._store.add_raw_event(record, created_at)

    def replace_raw_event(self, handle: str, record: Any) -> None:
        """Serve ``record`` instead of the raw event ``handle`` (same sort position)."""
        self._store.replace_raw_event(handle, record)
