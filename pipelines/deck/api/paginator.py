"""Deck's paginator: dlt's cursor paginator, made to refuse a listing that would lose or repeat
data or never end, instead of stopping quietly.
"""

from typing import Any

from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
from requests import Response

from deck.core import settings
from deck.core.errors import DeckResponseError, request_id_of


class DeckCursorPaginator(JSONResponseCursorPaginator):
    """Follows `next_cursor` while `has_more` is true, and refuses to loop forever.

    Deck answers a page like::

        {"data": [{"id": "trun_9d1e...", "object": "task_run", "status": "completed", ...}],
         "has_more": true, "next_cursor": "eyJrIjpb...", "request_id": "req_5a7c..."}

    dlt's paginator stops quietly when the cursor is missing; here `has_more: true` without a
    cursor, or a cursor seen before, is an error, since either would lose or repeat data. So are
    `max_empty_pages` empty pages in a row with `has_more: true` (fresh cursors that never reach
    a run): such a walk makes no progress and would spend the rate limit forever.
    """

    def __init__(self, max_empty_pages: int = settings.MAX_EMPTY_PAGES) -> None:
        super().__init__(cursor_path="next_cursor", cursor_param="cursor", has_more_path="has_more")
        self._seen: set[str] = set()
        self.max_empty_pages = max_empty_pages
        self._empty_in_a_row = 0

    def update_state(self, response: Response, data: list[Any] | None = None) -> None:
        body = response.json()
        rid = request_id_of(body, response.headers)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("data"), list)
            or not isinstance(body.get("has_more"), bool)
        ):
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise DeckResponseError(
                "Deck returned a page that is not the documented shape (expected an object"
                f" with a `data` list and a boolean `has_more`, got {keys}). Nothing from this"
                " sync was saved; run it again, and report the request_id to Deck if it repeats.",
                request_id=rid,
            )
        cursor = body.get("next_cursor")
        if body["has_more"] and not cursor:
            raise DeckResponseError(
                "Deck said has_more=true but gave no next_cursor, so the next page cannot be"
                " requested. Nothing from this sync was saved; run it again, and report the"
                " request_id to Deck if it repeats.",
                request_id=rid,
            )
        if body["has_more"] and cursor in self._seen:
            raise DeckResponseError(
                "Deck returned a next_cursor it had already returned in this listing; following it"
                " would loop forever. Nothing from this sync was saved; run it again, and report"
                " the request_id to Deck if it repeats.",
                request_id=rid,
            )
        empty = body["has_more"] and not body["data"]
        self._empty_in_a_row = self._empty_in_a_row + 1 if empty else 0
        if self._empty_in_a_row >= self.max_empty_pages:
            raise DeckResponseError(
                f"Deck broke its contract: {self._empty_in_a_row} pages in a row came back empty"
                " while saying has_more=true, each with a new next_cursor, so the listing makes no"
                " progress and following it could go on forever (spending the organization's"
                " rate limit). Nothing from this sync was saved; run it again, and report the"
                " request_id to Deck if it repeats.",
                request_id=rid,
            )
        if cursor:
            self._seen.add(cursor)
        super().update_state(response, data)
