"""A bounded soak: many syncs with random faults and random changes between them, each compared
with the simulator's ground truth."""

import random
import threading

import pytest
from deck.runner import DeckSyncLockedError
from support import Warehouse, assert_matches_ground_truth

FAULTS = ["429", "500", "502", "503", "504", "drop", "truncate", "non_json", "slow", "hang"]
SYNCS = 30


def test_thirty_syncs_with_random_faults_and_mutations_stay_exact(simulator, warehouse):
    rng = random.Random(2026)
    simulator.advance(3600 * 24 * 5, new_runs=800)
    injected = 0
    for _ in range(SYNCS):
        for _ in range(rng.randint(0, 3)):
            kind = rng.choice(FAULTS)
            simulator.inject(
                kind,
                retry_after=rng.choice([None, "0", "1"]) if kind == "429" else None,
                delay=0.05 if kind == "slow" else 2.0,
                path=rng.choice([None, "/task-runs"]),
            )
            injected += 1
        simulator.order = rng.choice(["newest_first", "oldest_first"])
        simulator.advance(rng.uniform(10, 3600 * 24 * 3), new_runs=rng.randint(0, 250))
        runs = simulator.runs()
        for run in rng.sample(runs, k=min(5, len(runs))):
            if run["status"] not in ("completed", "failed", "canceled"):
                simulator.update_run(run["id"], status="completed", result="success",
                                     runtime_ms=str(rng.randint(1, 10**6)),
                                     output={"soak": rng.randint(0, 9)})

        warehouse.sync(read_timeout_s=0.5, pages_per_window=rng.choice([2, 5, 25]))

        assert_matches_ground_truth(warehouse, simulator.runs())
    assert injected >= 30


def test_a_second_sync_of_the_same_pipeline_refuses_while_one_runs(simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=600)
    gate = simulator.hold()  # the first sync's first request waits until the second has tried
    first_error = []

    def first_sync() -> None:
        try:
            warehouse.sync()
        except Exception as exc:  # pragma: no cover - reported below
            first_error.append(exc)

    worker = threading.Thread(target=first_sync)
    worker.start()
    try:
        while not gate.reached.wait(0.05) and worker.is_alive():
            pass  # the first sync holds the lock from before its first request until it ends
        assert gate.reached.is_set(), first_error
        with pytest.raises(DeckSyncLockedError) as info:
            # if it were not refused, its own request would be held too: it gives up on that at
            # once and fails with another error, rather than hanging the test
            Warehouse(warehouse.path, warehouse.pipelines_dir, simulator).sync(
                request_max_attempts=1, read_timeout_s=0.5
            )
    finally:
        gate.release()
        worker.join()

    assert str(info.value).startswith(
        "Another sync of pipeline 'deck_task_runs_test' is running (pid "
    )
    assert "This run did nothing; let the other one finish" in str(info.value)
    assert first_error == []
    assert_matches_ground_truth(warehouse, simulator.runs())
