"""Pages that break the documented contract stop the sync with a clear error and save nothing."""

from typing import Any, Dict, List

import pytest
from deck import sync
from deck.core.errors import DeckResponseError
from dlt.pipeline.exceptions import PipelineStepFailed
from support import FAST_RETRIES, Warehouse
from support.scripted import ScriptedAPI


def run(i: int, created_at: str = "2026-01-01T00:00:00.000Z") -> Dict[str, Any]:
    return {
        "id": f"trun_{i:024x}", "object": "task_run", "status": "completed", "result": "success",
        "task_id": "task_1", "credential_id": None, "session_id": None, "agent_id": "agt_1",
        "source_id": None, "runtime_ms": 5, "output": None, "errors": None, "interaction": None,
        "created_at": created_at, "updated_at": created_at,
    }


def sync_against(api: ScriptedAPI, tmp_path) -> Warehouse:
    wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", simulator=None)  # type: ignore[arg-type]
    sync(wh.pipeline(), api_key="sk_test", base_url=api.base_url, **FAST_RETRIES)
    return wh


def failure_of(api: ScriptedAPI, tmp_path) -> BaseException:
    with pytest.raises(PipelineStepFailed) as info:
        sync_against(api, tmp_path)
    cause: BaseException = info.value
    while not isinstance(cause, DeckResponseError) and cause.__cause__ is not None:
        cause = cause.__cause__
    return cause


def test_has_more_without_a_cursor_is_an_error_not_a_silent_stop(tmp_path):
    api = ScriptedAPI(lambda p: {"data": [run(1)], "has_more": True, "next_cursor": None,
                                 "request_id": "req_nocursor"})
    try:
        error = failure_of(api, tmp_path)
    finally:
        api.close()
    assert str(error) == (
        "Deck said has_more=true but gave no next_cursor, so the next page cannot be requested."
        " Nothing from this sync was saved; run it again, and report the request_id to Deck if"
        " it repeats. (request_id req_nocursor)"
    )


def test_a_repeating_cursor_is_an_error_not_an_endless_loop(tmp_path):
    pages: List[Dict[str, List[str]]] = []

    def answer(params: Dict[str, List[str]]) -> Dict[str, Any]:
        pages.append(params)
        return {"data": [run(len(pages))], "has_more": True, "next_cursor": "same",
                "request_id": f"req_{len(pages)}"}

    api = ScriptedAPI(answer)
    try:
        error = failure_of(api, tmp_path)
    finally:
        api.close()
    assert "next_cursor it had already returned" in str(error)
    assert f"(request_id req_{len(pages)})" in str(error)  # the page that repeated it
    # the listing's two pages (the search for where history starts asked one record at a time)
    assert sum(p.get("limit") != ["1"] for p in pages) == 2


def test_a_run_without_an_id_is_quarantined_and_the_rest_of_the_page_loads(tmp_path):
    """It used to stop every sync; tests/test_hostile_records.py covers the quarantine fully."""
    broken = run(2)
    del broken["id"]
    api = ScriptedAPI(lambda p: {"data": [run(1), broken, run(3)], "has_more": False,
                                 "next_cursor": None, "request_id": "req_x"})
    try:
        wh = sync_against(api, tmp_path)
    finally:
        api.close()
    assert sorted(wh.runs()) == [f"trun_{1:024x}", f"trun_{3:024x}"]
    assert wh.query("SELECT reason, request_id FROM deck.task_runs_rejected") == [
        {"reason": "The record has no id, so it cannot be merged.", "request_id": "req_x"}
    ]


def test_a_page_that_is_not_the_documented_shape_is_an_error(tmp_path):
    api = ScriptedAPI(lambda p: {"items": [run(1)], "request_id": "req_shape"})
    try:
        error = failure_of(api, tmp_path)
    finally:
        api.close()
    assert str(error).startswith("Deck returned a page that is not the documented shape")
    assert "(request_id req_shape)" in str(error)
