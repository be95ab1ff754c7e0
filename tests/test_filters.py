"""Every filter of `GET /task-runs` is a source option: sent to Deck, honoured in the warehouse."""

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


@pytest.mark.parametrize(
    "options, predicate",
    [
        ({"status": ["failed"]}, lambda r: r["status"] == "failed"),
        ({"status": ["completed", "canceled"]}, lambda r: r["status"] in ("completed", "canceled")),
        ({"outcome": ["failure"]}, lambda r: r["result"] == "failure"),
        ({"outcome": ["success", "unknown"]}, lambda r: r["result"] in ("success", "unknown")),
    ],
)
def test_state_filter_loads_runs_in_the_selected_states(simulator, warehouse, options, predicate):
    simulator.advance(3600 * 24 * 3, new_runs=400)

    warehouse.sync(**options)

    expected = [r for r in simulator.runs() if predicate(r)]
    assert 0 < len(expected) < 400
    assert_matches_ground_truth(warehouse, expected)
    key = next(iter(options))
    assert simulator.requests[1].params[key] == options[key]


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
