"""The calls the connector makes to Deck's v2 API: list task runs page by page, get one run,
check the key.

Built on dlt's RESTClient; each concern under it has its own module, after the layout of
dlt.sources.helpers.rest_client: session.py (retries, timeouts, error messages), deadline.py (a
total deadline per attempt), ratelimit.py (the organization's request budget), paginator.py
(cursor pagination that refuses to loop), urls.py (base_url and path checks). The key is checked
here (`check_api_key`) and kept out of every text by `deck.core.redact`; what the requests cost
is counted in `deck.core.stats.RequestStats`.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from dlt.common.jsonpath import compile_path
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import BearerTokenAuth

from deck.api.paginator import DeckCursorPaginator
from deck.api.ratelimit import RateLimiter
from deck.api.session import DeckSession, RetryPolicy
from deck.api.urls import path_segment, validate_base_url
from deck.core import settings
from deck.core.errors import (
    DeckConfigError,
    DeckPermanentError,
    DeckResponseError,
    request_id_of,
    scrubbed_exception,
)
from deck.core.records import run_id_of
from deck.core.redact import remember_secret, scrub_optional
from deck.core.stats import RequestStats

_T = TypeVar("_T")

# dlt's RESTClient parses a data selector given as text again for every page (jsonpath_ng builds
# its whole parser each time: ~4 ms, about 40% of our CPU per page); compiled once, it is not.
DATA_SELECTOR = compile_path("data")


@dataclass
class Page:
    """One page of a list (`GET /task-runs`, `GET /events`): its records, whether more follow,
    and the page's request_id."""

    items: list[dict[str, Any]]
    has_more: bool
    request_id: str | None


class DeckClient:
    """The calls the connector makes: list task runs page by page, get one run, check the key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_size: int = settings.PAGE_SIZE,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        stats: RequestStats | None = None,
    ) -> None:
        key = check_api_key(api_key)
        if not 1 <= page_size <= 100:
            raise DeckConfigError(f"page_size must be between 1 and 100 (got {page_size}).")
        self.base_url = validate_base_url(base_url)
        self.page_size = page_size
        self.session = DeckSession(policy, limiter, stats)
        self.session.secret = key
        self.stats = self.session.stats
        self._rest = RESTClient(
            base_url=self.base_url,
            auth=BearerTokenAuth(token=key),
            session=self.session,
            data_selector=DATA_SELECTOR,
        )

    def _guard(self, call: Callable[[], _T]) -> _T:
        """Run `call`; an exception whose text carries the API key leaves without it.

        The replacement is raised outside the `except` block so that it carries no
        `__context__` (and no traceback frames) referring to the original.
        """
        try:
            return call()
        except Exception as exc:
            clean = scrubbed_exception(exc, self.session.secret)
            if clean is None:
                raise
        raise clean

    def check_credentials(self) -> None:
        """`GET /test`: one cheap call that fails fast on a wrong key or base_url."""
        self._guard(lambda: self._rest.get(settings.TEST_PATH, hooks={"response": []}))

    def list_task_runs(self, params: dict[str, Any]) -> Iterator[Page]:
        """Every page of `GET /task-runs` for these filters, in the API's (undocumented) order."""
        return self._list(settings.TASK_RUNS_PATH, params)

    def list_events(self, params: dict[str, Any]) -> Iterator[Page]:
        """Every page of `GET /events` (`created_after`/`created_before`, `type[]`), same paging.

        An event looks like ``{"id": "evt_…", "object": "event", "type": "task_run.running",
        "data": {<the run's summary at that moment>}, "created_at": "2026-01-01T12:00:00.123Z"}``.
        """
        return self._list(settings.EVENTS_PATH, params)

    def _list(self, path: str, params: dict[str, Any]) -> Iterator[Page]:
        pages = self._pages(path, params)
        while True:
            page = self._guard(lambda: next(pages, None))
            if page is None:
                return
            yield page

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[Page]:
        query = {"limit": self.page_size, **{k: v for k, v in params.items() if v is not None}}
        for page in self._rest.paginate(
            path,
            params=query,
            paginator=DeckCursorPaginator(),
            hooks={"response": []},
        ):
            self.stats.count(page=True)
            body = page.response.json()
            yield Page(
                items=list(page),
                has_more=body["has_more"],
                request_id=scrub_optional(request_id_of(body)),  # kept in the quarantine's rows
            )

    def get_task_run(self, run_id: str) -> dict[str, Any] | None:
        """`GET /task-runs/{id}`; None when Deck no longer knows the run (404)."""
        return self._guard(lambda: self._get_task_run(run_id))

    def _get_task_run(self, run_id: str) -> dict[str, Any] | None:
        path = f"{settings.TASK_RUNS_PATH}/{path_segment(run_id)}"
        try:
            response = self._rest.get(path, hooks={"response": []})
        except DeckPermanentError as exc:
            if exc.status == 404:
                return None
            raise
        body = response.json()
        # An integer id was stored as its digits (records.run_id_of): compare the same way.
        if not isinstance(body, dict) or run_id_of(body) != run_id:
            raise DeckResponseError(
                f"Deck answered GET /task-runs/{run_id} with something that is not that run.",
                request_id=request_id_of(body, response.headers),
            )
        return body

    def close(self) -> None:
        self.session.close()


def check_api_key(api_key: Any) -> str:
    """The key as it will be sent; refuse what cannot be an HTTP header value, without echoing it.

    A CR/LF inside the key would otherwise end up in requests' "Invalid header value
    b'Bearer sk_live_...'" message, on stderr and in dlt's trace. Either way the key is
    remembered, so that `scrub` hides it from here on.
    """
    key = str(api_key or "").strip()
    remember_secret(key)
    if not key:
        raise DeckConfigError(
            "api_key is empty: set SOURCES__DECK__API_KEY or api_key under [sources.deck] in"
            " .dlt/secrets.toml (see .dlt/secrets.toml.example)."
        )
    if any(not 0x21 <= ord(c) <= 0x7E for c in key):
        raise DeckConfigError(
            "api_key contains a line break, a space, a control or a non-ASCII character, so it"
            " cannot be sent in an HTTP header (the key is not shown here). Copy the key again"
            " into SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml;"
            " it looks like sk_live_ followed by letters and digits."
        )
    return key


__all__ = ["DeckClient", "Page"]
