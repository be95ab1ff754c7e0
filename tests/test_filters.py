"""Every filter of `GET /task-runs` is a source option: sent to Deck, honoured in the warehouse."""

from datetime import timedelta
from typing import Any, Callable, Dict

import pytest
from support import assert_matches_ground_truth


def pick(truth, key):
    """A value of `key` that some but not all runs have, taken from the ground truth."""
    values = sorted({r[key] for r in truth if r.get(key)})
    return values[0]


CASES: Dict[str, Callable[[list], tuple]] = {
    "agent_id": lambda t: (
        {"agent_id": pick(t, "agent_id")},
        lambda r, v: r["agent_id"] == v["agent_id"],
    ),
    "credential_id": lambda t: (
        {"credential_id": pick(t, "credential_id")},
        lambda r, v: r["credential_id"] == v["credential_id"],
    ),
    "task_id": lambda t: (
        {"task_id": pick(t, "task_id")},
        lambda r, v: r["task_id"] == v["task_id"],
    ),
    "workflow_id": lambda t: (
        {"workflow_id": pick(t, "workflow_id")},
        lambda r, v: r.get("workflow_id") == v["workflow_id"],
    ),
    "source_id": lambda t: (
        {"source_id": sorted({r["source_id"] for r in t if r["source_id"]})[:2]},
        lambda r, v: r["source_id"] in v["source_id"],
    ),
    "search": lambda t: (
        {"search": t[0]["id"][-10:]},
        lambda r, v: v["search"] in r["id"],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_scope_filter_is_sent_and_only_matching_runs_are_loaded(simulator, warehouse, name):
    simulator.advance(3600 * 24 * 3, new_runs=400)
    options, predicate = CASES[name](simulator.runs())

    warehouse.sync(**options)

    expected = [r for r in simulator.runs() if predicate(r, options)]
    assert 0 < len(expected) < 400
    assert_matches_ground_truth(warehouse, expected)
    sent: Dict[str, Any] = simulator.requests[1].params
    value = options[name]
    assert sent[name] == (value if isinstance(value, list) else [value])


OPEN = ["queued", "running", "canceling", "interaction_required", "review_required"]


# What the listing asks Deck for: the selected states and the open ones (an open run is tracked
# by the listing that first sees it); an outcome is matched by the connector (no result yet).
@pytest.mark.parametrize(
    "options, predicate, asked",
    [
        ({"status": ["failed"]}, lambda r: r["status"] == "failed", {"status": OPEN + ["failed"]}),
        ({"status": ["completed", "canceled"]},
         lambda r: r["status"] in ("completed", "canceled"),
         {"status": OPEN + ["completed", "canceled"]}),
        ({"outcome": ["failure"]}, lambda r: r["result"] == "failure", {}),
        ({"outcome": ["success", "unknown"]}, lambda r: r["result"] in ("success", "unknown"), {}),
    ],
)
def test_state_filter_loads_runs_in_the_selected_states(
    simulator, warehouse, options, predicate, asked
):
    simulator.advance(3600 * 24 * 3, new_runs=400)

    warehouse.sync(**options)

    expected = [r for r in simulator.runs() if predicate(r)]
    assert 0 < len(expected) < 400
    assert_matches_ground_truth(warehouse, expected)
    sent = simulator.requests[1].params
    assert {k: v for k, v in sent.items() if k in ("status", "outcome")} == asked


def test_a_run_that_ends_between_the_listing_and_the_open_run_listing_is_loaded(
    simulator, warehouse
):
    """Never seen open before, it turns failed while the sync lists: the listing must have
    tracked it, or no later listing finds it below the lookback."""
    simulator.advance(86400, new_runs=300)
    warehouse.sync(status=["failed"])
    simulator.advance(3600, new_runs=200)
    fifty_minutes_ago = simulator.now - timedelta(minutes=50)
    [late] = simulator.add_runs(1, status="running", created_at=fifty_minutes_ago)
    ended = []

    def fail_it_as_the_open_runs_are_listed(request):
        """A hook, never a hold: the run fails as the open-run listing's request arrives."""
        if request.path.endswith("/task-runs") and "running" in request.params.get("status", []) \
                and "failed" not in request.params.get("status", []) and not ended:
            ended.append(request)
            simulator.update_run(late, status="failed", result="failure")
        return False

    simulator.hold(fail_it_as_the_open_runs_are_listed)
    warehouse.sync(status=["failed"])
    for _ in range(2):  # newer failed runs carry the watermark past its lookback
        simulator.advance(3600, new_runs=200)
        warehouse.sync(status=["failed"])

    assert ended and simulator.run(late)["status"] == "failed"
    assert_matches_ground_truth(
        warehouse, [r for r in simulator.runs() if r["status"] == "failed"]
    )


def test_outcome_filter_loads_a_run_that_fails_after_it_was_first_seen(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=100)
    [run_id] = simulator.add_runs(1, status="running")
    warehouse.sync(outcome=["failure"])
    assert run_id not in warehouse.runs()

    simulator.advance(3600 * 24 * 14, new_runs=0)
    simulator.update_run(run_id, status="failed", result="failure", runtime_ms=99,
                         errors=[{"type": "task", "code": "timeout", "message": "Timed out",
                                  "field": None}])
    warehouse.sync(outcome=["failure"])

    assert warehouse.runs()[run_id]["status"] == "failed"
    expected = [r for r in simulator.runs() if r["result"] == "failure"]
    assert_matches_ground_truth(warehouse, expected)
