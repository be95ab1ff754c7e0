"""What the tests share: the simulator factory, the DuckDB warehouse reader, ground-truth checks.

Assertions compare the warehouse with the simulator's ground truth (`DeckSimulator.runs()`),
never with values computed by the code under test. Fixtures live in tests/conftest.py; the
helpers they use, and that test files import, live here so that no test file imports another.
Submodules: `support.cli` (the CLI as a subprocess), `support.scripted` (ScriptedAPI),
`support.postgres` (a throwaway PostgreSQL server), `support.destinations` (readers for every
destination), `support.events` (the task-run event tables made by hand), `support.lifecycle`
(the Python oracle of the event models).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import dlt
import duckdb
from deck import sync
from deck.runtime.runner import SyncResult
from deck_simulator import DEMO_API_KEY, DeckSimulator

# Fast retries so that fault tests take milliseconds, not Deck's real 1 s..30 s backoff.
FAST_RETRIES = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def make_simulator(**kwargs: Any) -> DeckSimulator:
    """A started simulator on its own loopback port (port 0: safe beside other test workers)."""
    return DeckSimulator(**kwargs).start()


def make_pipeline(name: str, pipelines_dir: Path, destination: Any) -> dlt.Pipeline:
    """A pipeline with its own working folder, loading into dataset `deck`."""
    return dlt.pipeline(
        pipeline_name=name,
        pipelines_dir=str(pipelines_dir),
        destination=destination,
        dataset_name="deck",
    )


def sync_from(simulator: DeckSimulator, pipeline: dlt.Pipeline, **options: Any) -> SyncResult:
    """`deck.sync` against the simulator, with its key and fast retries unless overridden.

    Runs only unless the test passes `events=True`: the many tests of runs need not pay for an
    events backfill, and their request counts stay those of runs. Events are tested where they
    are named (test_events, the destinations matrix, the crash tests with events, the soak) and
    by every CLI test, which syncs with the defaults a user gets.
    """
    options = {
        "api_key": DEMO_API_KEY,
        "base_url": simulator.base_url,
        "events": False,
        **FAST_RETRIES,
        **options,
    }
    return sync(pipeline, **options)


@dataclass
class Warehouse:
    """A dlt pipeline into its own DuckDB file, plus ways to read what landed."""

    path: Path
    pipelines_dir: Path
    simulator: DeckSimulator
    pipeline_name: str = "deck_task_runs_test"
    with_events: bool = False  # whether sync() loads task_run_events too (see sync_from)

    def pipeline(self) -> dlt.Pipeline:
        return make_pipeline(
            self.pipeline_name, self.pipelines_dir, dlt.destinations.duckdb(str(self.path))
        )

    def sync(self, **options: Any) -> SyncResult:
        return sync_from(self.simulator, self.pipeline(), **{"events": self.with_events, **options})

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def tables(self) -> list[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'deck'"
        )
        return sorted(r["table_name"] for r in rows)

    def columns(self, table: str) -> dict[str, str]:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'deck' AND table_name = ?",
            [table],
        )
        return {r["column_name"]: r["data_type"] for r in rows}

    def runs(self) -> dict[str, dict[str, Any]]:
        return rows_by_id(self.query("SELECT * FROM deck.task_runs"))

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of a table or view of dataset `deck`."""
        return self.query(f"SELECT * FROM deck.{table}")

    def events(self) -> dict[str, dict[str, Any]]:
        """`task_run_events` by event id ({} when the table does not exist)."""
        if "task_run_events" not in self.tables():
            return {}
        return rows_by_id(self.query("SELECT * FROM deck.task_run_events"))

    def errors(self) -> dict[str, list[tuple]]:
        if "task_runs__errors" not in self.tables():
            return {}
        rows = self.query(
            "SELECT r.id, e.type, e.code, e.message, e.field FROM deck.task_runs__errors e"
            " JOIN deck.task_runs r ON e._dlt_parent_id = r._dlt_id ORDER BY r.id, e._dlt_list_idx"
        )
        out: dict[str, list[tuple]] = defaultdict(list)
        for r in rows:
            out[r["id"]].append((r["type"], r["code"], r["message"], r["field"]))
        return dict(out)


def rows_by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        assert row["id"] not in by_id, f"duplicate row for {row['id']}"
        by_id[row["id"]] = row
    return by_id


def assert_events_match(warehouse: Any, truth: list[dict[str, Any]]) -> None:
    """`task_run_events` holds exactly these events (the simulator's), each as Deck sent it:
    type and status as sent (legacy spellings included), the run summary's fields beside them."""
    loaded = warehouse.events()
    expected = {event["id"]: event for event in truth}
    missing = sorted(set(expected) - set(loaded))
    extra = sorted(set(loaded) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} missing {missing[:3]}, {len(extra)} extra {extra[:3]}"
    )
    wrong = []
    for event_id, event in expected.items():
        row, data = loaded[event_id], event["data"]
        got = (row["type"], row["created_at"], row["task_run_id"], row["status"],
               row["run_created_at"], row["agent_id"], row["source_id"], row["task_id"])
        want = (event["type"], ts(event["created_at"]), data["id"], data["status"],
                ts(data["created_at"]), data["agent_id"], data["source_id"], data["task_id"])
        if got != want:
            wrong.append((event_id, got, want))
    assert not wrong, f"{len(wrong)} events differ from the simulator's, e.g. {wrong[:2]}"


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected_runtime(value: Any) -> int | None:
    return None if value is None else int(value)


def assert_matches_ground_truth(
    warehouse: Any, truth: list[dict[str, Any]], *, check_errors: bool = True
) -> None:
    """The warehouse (a `Warehouse` or a `support.destinations.DestinationWarehouse`) holds
    exactly the simulator's runs, each at its current state."""
    loaded = warehouse.runs()
    expected = {run["id"]: run for run in truth}
    missing = sorted(set(expected) - set(loaded))
    extra = sorted(set(loaded) - set(expected))
    assert not missing and not extra, f"missing {missing[:5]}... extra {extra[:5]}..."
    stale = []
    for run_id, run in expected.items():
        row = loaded[run_id]
        got = (
            row["status"],
            row["result"],
            row["runtime_ms"],
            row["created_at"],
            row["updated_at"],
            row["agent_id"],
            row["source_id"],
            row["task_id"],
        )
        want = (
            run["status"],
            run["result"],
            expected_runtime(run["runtime_ms"]),
            ts(run["created_at"]),
            ts(run["updated_at"]),
            run["agent_id"],
            run["source_id"],
            run["task_id"],
        )
        if got != want:
            stale.append((run_id, got, want))
    assert not stale, f"{len(stale)} rows differ from ground truth, e.g. {stale[:2]}"
    if check_errors:
        want_errors = {
            run["id"]: [(e["type"], e["code"], e["message"], e.get("field")) for e in run["errors"]]
            for run in truth
            if run.get("errors")
        }
        assert warehouse.errors() == want_errors
