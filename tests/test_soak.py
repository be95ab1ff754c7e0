"""A bounded soak: many syncs with random faults and random changes between them, each compared
with the simulator's ground truth."""

import random
import threading

import pytest
from deck.runtime.runner import DeckSyncLockedError
from support import Warehouse, assert_matches_ground_truth

FAULTS = ["429", "500", "502", "503", "504", "drop", "truncate", "non_json", "slow", "hang"]
ORDERS = ["newest_first", "oldest_first"]
PAGES_PER_WINDOW = [2, 5, 25]
# Twelve syncs with 2-5 faults each (about 40 in all) test as much as thirty with 0-3 each did:
# what a fault exercises is the retry of one request, and the schedule below still draws every
# kind, order and window size, so fewer syncs only cut the per-sync cost (~3 s of dlt work).
SYNCS = 12
FAULTS_PER_SYNC = (2, 5)  # at most 5 in a row on one request: it still gets 3 of its 8 attempts


def fault_schedule(rng: random.Random) -> list[list[str]]:
    """Fault kinds per sync, seed-driven, with every kind in FAULTS drawn at least once."""
    sizes = [rng.randint(*FAULTS_PER_SYNC) for _ in range(SYNCS)]
    kinds = FAULTS + [rng.choice(FAULTS) for _ in range(sum(sizes) - len(FAULTS))]
    rng.shuffle(kinds)
    schedule, start = [], 0
    for size in sizes:
        schedule.append(kinds[start:start + size])
        start += size
    return schedule


def every_value_once_then_random(rng: random.Random, values: list[str] | list[int]) -> list:
    """SYNCS draws from values, each value at least once, in a seed-driven order."""
    drawn = list(values) + [rng.choice(values) for _ in range(SYNCS - len(values))]
    rng.shuffle(drawn)
    return drawn


def test_a_dozen_syncs_with_random_faults_and_mutations_stay_exact(simulator, warehouse):
    """Every fault kind, both listing orders and every window size occur (by construction of
    the seed-driven schedules, checked at the end), with new and finished runs between syncs."""
    rng = random.Random(2026)
    schedule = fault_schedule(rng)
    orders = every_value_once_then_random(rng, ORDERS)
    windows = every_value_once_then_random(rng, PAGES_PER_WINDOW)
    simulator.advance(3600 * 24 * 5, new_runs=800)
    injected: list[str] = []
    for kinds, order, pages_per_window in zip(schedule, orders, windows, strict=True):
        for kind in kinds:
            simulator.inject(
                kind,
                retry_after=rng.choice([None, "0", "1"]) if kind == "429" else None,
                delay=0.05 if kind == "slow" else 2.0,
                path=rng.choice([None, "/task-runs"]),
            )
            injected.append(kind)
        simulator.order = order
        simulator.advance(rng.uniform(10, 3600 * 24 * 3), new_runs=rng.randint(0, 400))
        runs = simulator.runs()
        for run in rng.sample(runs, k=min(10, len(runs))):
            if run["status"] not in ("completed", "failed", "canceled"):
                simulator.update_run(run["id"], status="completed", result="success",
                                     runtime_ms=str(rng.randint(1, 10**6)),
                                     output={"soak": rng.randint(0, 9)})

        warehouse.sync(read_timeout_s=0.5, pages_per_window=pages_per_window)

        assert_matches_ground_truth(warehouse, simulator.runs())
    assert len(injected) >= 30
    assert set(injected) == set(FAULTS)
    assert set(orders) == set(ORDERS) and set(windows) == set(PAGES_PER_WINDOW)


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
