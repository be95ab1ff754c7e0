"""What a sync holds in memory does not grow with the number of its loads.

A backfill is many loads in one process (`deck.sync`); whatever a load leaves behind adds up over
a long history (docs/benchmarks.md, "What grows with the history"). These tests count what is
held after each load, never time or RSS: real HTTP against the simulator, a real DuckDB file.
"""

import gc

import pytest
from deck.listing.windowed import WindowedLoad
from deck.progress.display import Reporter
from dlt.common.configuration.utils import get_resolved_traces
from support import Warehouse, make_simulator

RUNS = 2_400
MAX_RUNS_PER_LOAD = 250  # loads of ~300 runs (one-page windows): at least six loads


class HeldAfterEachLoad(Reporter):
    """Records, after each load committed, what the process still holds of it."""

    def __init__(self) -> None:
        super().__init__()
        self.config_lookups: list[int] = []  # entries of dlt's log of config lookups
        self.loads_alive: list[int] = []  # the loads' own objects (their state, runs handled)

    def load_committed(self, loads: int, more: bool) -> None:
        super().load_committed(loads, more)
        self.config_lookups.append(len(get_resolved_traces().all_traces))
        gc.collect()
        self.loads_alive.append(sum(isinstance(o, WindowedLoad) for o in gc.get_objects()))


@pytest.fixture(scope="module")
def held(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("memory")
    sim = make_simulator(seed=3, runs=RUNS, history_days=10)
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        held = HeldAfterEachLoad()
        result = warehouse.sync(max_runs_per_load=MAX_RUNS_PER_LOAD, progress=held)
        assert result.loads >= 6 and len(warehouse.runs()) == RUNS
        return held
    finally:
        sim.stop()


def test_dlts_log_of_config_lookups_does_not_grow_with_the_loads_of_a_sync(held):
    # Every load looks up the same few hundred keys: kept per load, the log held about
    # `loads` times the second load's entries by the end (5,000 more per load).
    assert max(held.config_lookups) <= 1.2 * held.config_lookups[1]


def test_a_committed_load_leaves_none_of_its_objects_behind(held):
    # Its state (every open run, parsed) and the runs it handled: the next load reads the state
    # dlt committed, and dlt's load step (where memory peaks) needs none of it.
    assert held.loads_alive == [0] * len(held.loads_alive)
