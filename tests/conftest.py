"""Shared fixtures: a Deck API simulator over real HTTP, and a temporary DuckDB warehouse.

Assertions compare the warehouse with the simulator's ground truth (`DeckSimulator.runs()`),
never with values computed by the code under test.
"""

import json
import os
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import dlt
import duckdb
import pytest
from deck import sync
from deck.runner import SyncResult
from deck_simulator import DEMO_API_KEY, DeckSimulator

# Fast retries so that fault tests take milliseconds, not Deck's real 1 s..30 s backoff.
FAST_RETRIES = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


@pytest.fixture
def simulator() -> Iterator[DeckSimulator]:
    sim = DeckSimulator(seed=11, runs=0).start()
    try:
        yield sim
    finally:
        sim.stop()


def make_simulator(**kwargs: Any) -> DeckSimulator:
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
    """`deck.sync` against the simulator, with its key and fast retries unless overridden."""
    options = {
        "api_key": DEMO_API_KEY,
        "base_url": simulator.base_url,
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

    def pipeline(self) -> dlt.Pipeline:
        return make_pipeline(
            self.pipeline_name, self.pipelines_dir, dlt.destinations.duckdb(str(self.path))
        )

    def sync(self, **options: Any) -> SyncResult:
        return sync_from(self.simulator, self.pipeline(), **options)

    def query(self, sql: str, params: Optional[List[Any]] = None) -> List[Dict[str, Any]]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def tables(self) -> List[str]:
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'deck'"
        )
        return sorted(r["table_name"] for r in rows)

    def columns(self, table: str) -> Dict[str, str]:
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'deck' AND table_name = ?",
            [table],
        )
        return {r["column_name"]: r["data_type"] for r in rows}

    def runs(self) -> Dict[str, Dict[str, Any]]:
        rows = self.query("SELECT * FROM deck.task_runs")
        by_id: Dict[str, Dict[str, Any]] = {}
        for row in rows:
            assert row["id"] not in by_id, f"duplicate row for {row['id']}"
            by_id[row["id"]] = row
        return by_id

    def errors(self) -> Dict[str, List[tuple]]:
        if "task_runs__errors" not in self.tables():
            return {}
        rows = self.query(
            "SELECT r.id, e.type, e.code, e.message, e.field FROM deck.task_runs__errors e"
            " JOIN deck.task_runs r ON e._dlt_parent_id = r._dlt_id ORDER BY r.id, e._dlt_list_idx"
        )
        out: Dict[str, List[tuple]] = defaultdict(list)
        for r in rows:
            out[r["id"]].append((r["type"], r["code"], r["message"], r["field"]))
        return dict(out)


@pytest.fixture
def warehouse(tmp_path: Path, simulator: DeckSimulator) -> Warehouse:
    return Warehouse(tmp_path / "warehouse.duckdb", tmp_path / "dlt", simulator)


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def expected_runtime(value: Any) -> Optional[int]:
    return None if value is None else int(value)


def assert_matches_ground_truth(
    warehouse: Warehouse, truth: List[Dict[str, Any]], *, check_errors: bool = True
) -> None:
    """The warehouse holds exactly the simulator's runs, each at its current state."""
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


class ScriptedAPI:
    """A real HTTP server answering `GET /v2/task-runs` with scripted pages, for contract breaches
    the simulator never commits (a missing or repeating cursor, records without ids) and for
    error statuses it has no switch for. `answer` returns a body (HTTP 200) or (status, body)."""

    def __init__(self, answer: Callable[[Dict[str, List[str]]], Any]) -> None:
        from urllib.parse import parse_qs, urlparse

        outer = self
        self.requests: List[Dict[str, List[str]]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                params = parse_qs(url.query)
                outer.requests.append(params)
                status = 200
                if url.path.endswith("/test"):
                    body: Any = {"status": "ready", "environment": "live"}
                else:
                    body = answer(params)
                    if isinstance(body, tuple):
                        status, body = body
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """In CI (CI=true) a skipped test is a failure: CI installs everything every test needs, so
    a skip there means a test silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
