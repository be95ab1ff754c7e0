"""What a sync holds in memory does not grow with the number of its loads.

A backfill is many loads in one process (`deck.sync`); whatever a load leaves behind adds up over
a long history (docs/benchmarks.md, "What grows with the history"). These tests count what is
held, never time or RSS: real HTTP against the simulator, a real DuckDB file.
"""

from deck.progress_display import Reporter
from dlt.common.configuration.utils import get_resolved_traces
from support import Warehouse, make_simulator

RUNS = 2_400
MAX_RUNS_PER_LOAD = 400  # at least six loads


class ConfigLookupsPerLoad(Reporter):
    """Records, after each load, how many config lookups dlt's log holds (what its trace keeps)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def load_committed(self, loads: int, more: bool) -> None:
        super().load_committed(loads, more)
        self.sizes.append(len(get_resolved_traces().all_traces))


def test_dlts_log_of_config_lookups_does_not_grow_with_the_loads_of_a_sync(tmp_path):
    sim = make_simulator(seed=3, runs=RUNS, history_days=10)
    try:
        warehouse = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        lookups = ConfigLookupsPerLoad()

        result = warehouse.sync(max_runs_per_load=MAX_RUNS_PER_LOAD, progress=lookups)

        assert result.loads >= 6 and len(warehouse.runs()) == RUNS
        # Every load looks up the same few hundred keys: kept per load, the log held about
        # `loads` times the second load's entries by the end (5,000 more per load).
        assert max(lookups.sizes) <= 1.2 * lookups.sizes[1]
    finally:
        sim.stop()
