"""The simulator's settings that tests change while it serves: the key, the order of new walks,
the contract reading, the rate limit, event retention and what an event's run summary leaves out.

A mixin of `DeckSimulator` (which owns the API, the store and the rate window), like
`control.RequestControls` for the request side.
"""

from __future__ import annotations

from .api import DeckAPI
from .contract import Contract, as_contract
from .ratewindow import RateWindow
from .store import RunStore

ORDERS = ("newest_first", "oldest_first")


class SimulatorSettings:
    """The settings of `DeckSimulator`, read and changed while it serves."""

    _api: DeckAPI
    _store: RunStore
    _rate: RateWindow

    @property
    def api_key(self) -> str:
        """The only key accepted (as ``Authorization: Bearer <key>``)."""
        return self._api.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._api.api_key = value

    @property
    def order(self) -> str:
        """Listing order of new walks ('newest_first' or 'oldest_first'); a cursor keeps its own."""
        return self._api.order

    @order.setter
    def order(self, value: str) -> None:
        if value not in ORDERS:
            raise ValueError("order must be 'newest_first' or 'oldest_first'")
        self._api.order = value

    @property
    def contract(self) -> Contract:
        """The reading of Deck's contract served (bounds, stored precision, timestamp printing);
        set a ``Contract`` or a name in ``READINGS`` to switch it from the next request on."""
        return self._store.contract

    @contract.setter
    def contract(self, value: Contract | str) -> None:
        self._store.set_contract(as_contract(value))

    @property
    def rate_limit(self) -> tuple[int, float] | None:
        """(count, seconds) sliding window over accepted requests, or None for no limit."""
        return self._rate.limit

    @rate_limit.setter
    def rate_limit(self, value: tuple[int, float] | None) -> None:
        self._rate.limit = value

    @property
    def rate_limit_retry_after(self) -> bool:
        """Send a Retry-After header on rate-limit 429s (Deck documents none)."""
        return self._api.rate_limit_retry_after

    @rate_limit_retry_after.setter
    def rate_limit_retry_after(self, value: bool) -> None:
        self._api.rate_limit_retry_after = value

    @property
    def rate_limited_count(self) -> int:
        """Number of 429 answers sent (rate limit and injected '429' faults)."""
        return self._api.rate_limited_count

    @property
    def event_retention_days(self) -> float:
        """Days ``GET /events`` looks back from the simulated clock (Deck keeps 30)."""
        return self._store.events.retention_days

    @event_retention_days.setter
    def event_retention_days(self, value: float) -> None:
        with self._store.lock:
            self._store.events.retention_days = value

    @property
    def event_summary_omits(self) -> frozenset[str]:
        """Fields of the run left out of each event's ``data`` (its run summary), e.g.
        ``{"credential_id"}``: Deck documents the summary only as "a summary of the run", so a
        connector must not rely on any of its fields but the run's ``id``. Empty by default."""
        return self._store.events.summary_omits

    @event_summary_omits.setter
    def event_summary_omits(self, value: set[str] | frozenset[str]) -> None:
        with self._store.lock:
            self._store.events.summary_omits = frozenset(value) - {"id"}
