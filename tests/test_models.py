"""The SQL models (views in the dataset) against figures computed in Python from the simulator.

Every expected value below is derived from `DeckSimulator.runs()` (the ground truth), never from
the warehouse. The same checks run on PostgreSQL (the session's server, in a UTC+14 database).
"""

import math
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import dlt
import duckdb
import pytest
from deck import sync
from deck.warehouse.models import (
    MODELS_DIR,
    DeckModelError,
    drop_models,
    model_file,
    model_names,
    refresh_models,
    render_model,
)
from deck_simulator import DEMO_API_KEY, DeckSimulator
from support import FAST_RETRIES, Warehouse, make_simulator, ts
from support.postgres import PostgresServer
from support.shared import copy_of, shared

# The event models (daily_task_run_waits, task_run_lifecycle, task_run_status_history) are checked
# in test_lifecycle_models.py; here they only have to be created.
MODELS = [
    "daily_task_run_stats", "daily_task_run_waits", "open_task_runs", "task_run_errors",
    "task_run_facts", "task_run_lifecycle", "task_run_status_history",
]
FINAL = {"completed", "failed", "canceled"}
UNKNOWN_STATUS = "on_hold"  # a status Deck might add one day: it must count as open

Row = Dict[str, Any]


# ------------------------------------------------------------------------------------------------
# ground truth, computed from the simulator's runs only
# ------------------------------------------------------------------------------------------------


def runtime(run: Row) -> Optional[int]:
    return None if run["runtime_ms"] is None else int(run["runtime_ms"])


def utc_day(run: Row) -> date:
    return ts(run["created_at"]).astimezone(timezone.utc).date()


def percentile_cont(values: List[float], p: float) -> Optional[float]:
    """SQL's percentile_cont: linear interpolation between the closest ranks, p*(n-1)."""
    if not values:
        return None
    xs = sorted(values)
    pos = p * (len(xs) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def expected_daily(truth: List[Row]) -> Dict[Tuple[Any, ...], Row]:
    groups: Dict[Tuple[Any, ...], List[Row]] = defaultdict(list)
    for run in truth:
        groups[(utc_day(run), run["agent_id"], run["source_id"], run["task_id"])].append(run)
    out = {}
    for key, runs in groups.items():
        rated = [r for r in runs if r["status"] in FINAL and r["result"] is not None]
        wins = [r for r in rated if r["result"] == "success"]
        runtimes = [float(runtime(r)) for r in runs if runtime(r) is not None]
        out[key] = {
            "runs": len(runs),
            "successes": sum(r["result"] == "success" for r in runs),
            "failures": sum(r["result"] == "failure" for r in runs),
            "unknowns": sum(r["result"] == "unknown" for r in runs),
            "rated_runs": len(rated),
            "success_rate": len(wins) / len(rated) if rated else None,
            "p50_runtime_ms": percentile_cont(runtimes, 0.5),
            "p95_runtime_ms": percentile_cont(runtimes, 0.95),
        }
    return out


def open_runs(truth: List[Row]) -> List[Row]:
    """Runs not final, oldest first (created_at, then id)."""
    return sorted(
        (r for r in truth if r["status"] not in FINAL), key=lambda r: (ts(r["created_at"]), r["id"])
    )


# ------------------------------------------------------------------------------------------------
# the data: a week of runs, one busy group, two runs in a status nobody knows yet
# ------------------------------------------------------------------------------------------------


@dataclass
class Loaded:
    pipeline: dlt.Pipeline
    truth: List[Row]
    created: List[str]
    path: Optional[Path] = None  # the DuckDB file, when the destination is DuckDB

    def read(self, sql: str) -> List[Row]:
        return read(self.pipeline, sql)

    def model(self, name: str) -> List[Row]:
        return read_model(self.pipeline, name)


def read(pipeline: dlt.Pipeline, sql: str) -> List[Row]:
    with pipeline.sql_client() as client:
        with client.execute_query(sql) as cursor:
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_model(pipeline: dlt.Pipeline, name: str) -> List[Row]:
    with pipeline.sql_client() as client:
        view = client.make_qualified_table_name(name)
    return read(pipeline, f"SELECT * FROM {view}")


def seed(sim: DeckSimulator) -> None:
    """800 runs over a week, plus a busy day x agent x source x task group of 45 runs in mixed
    final and open states (so percentiles and rates are over many values), plus two runs in a
    status the connector does not know."""
    sim.advance(3600 * 24 * 7, new_runs=800)
    busy = {
        "agent_id": sim.agents[0],
        "source_id": sim.sources[0],
        "task_id": next(iter(sim.tasks)),
    }
    start = sim.now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    statuses = ["completed"] * 30 + ["failed"] * 8 + ["canceled"] * 4 + ["running"] * 3
    for i, status in enumerate(statuses):
        sim.add_runs(1, created_at=start + timedelta(minutes=17 * i), status=status, **busy)
    sim.add_runs(2, status=UNKNOWN_STATUS)


def load(simulator: DeckSimulator, warehouse: Warehouse) -> Loaded:
    seed(simulator)
    warehouse.sync()
    pipeline = warehouse.pipeline()
    created = refresh_models(pipeline)
    return Loaded(pipeline, simulator.runs(), created, warehouse.path)


def build_loaded(folder: Path) -> List[str]:
    """The seeded, synced and refreshed warehouse in `folder`; the models created."""
    sim = make_simulator(seed=11, runs=0)  # as the `simulator` fixture
    try:
        return load(sim, Warehouse(folder / "warehouse.duckdb", folder / "dlt", sim)).created
    finally:
        sim.stop()


def copy_of_loaded(
    tmp_path_factory: pytest.TempPathFactory, to: Path, simulator: DeckSimulator
) -> Loaded:
    """A copy, in `to`, of the warehouse `load` leaves (built once per session, whichever xdist
    worker asks first: support.shared), and `simulator` seeded to match it."""
    folder, created = shared(tmp_path_factory, "models-duckdb", build_loaded)
    copy_of(folder, to)
    seed(simulator)
    warehouse = Warehouse(to / "warehouse.duckdb", to / "dlt", simulator)
    return Loaded(warehouse.pipeline(), simulator.runs(), created, warehouse.path)


@pytest.fixture(scope="session")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Loaded:
    """One seeded, synced and refreshed warehouse shared by the tests that only read it (a copy
    per xdist worker: dlt's SQL client opens the DuckDB file for writing)."""
    truth = DeckSimulator(seed=11, runs=0)  # as the `simulator` fixture, never started
    return copy_of_loaded(tmp_path_factory, tmp_path_factory.mktemp("models"), truth)


@pytest.fixture
def fresh(
    simulator: DeckSimulator, warehouse: Warehouse, tmp_path_factory: pytest.TempPathFactory
) -> Loaded:
    """The same warehouse, of this test's own, for the tests that change it."""
    assert warehouse.path.parent == warehouse.pipelines_dir.parent
    return copy_of_loaded(tmp_path_factory, warehouse.path.parent, simulator)


# ------------------------------------------------------------------------------------------------
# checks, one behaviour each; the DuckDB tests run them one by one, the portability tests all
# ------------------------------------------------------------------------------------------------


def check_facts_have_one_row_per_run_with_its_own_columns(rows: List[Row], truth: List[Row]):
    assert len(rows) == len(truth)
    got = {
        r["id"]: (
            r["status"], r["result"], r["agent_id"], r["source_id"], r["task_id"],
            r["credential_id"], r["created_at"], r["updated_at"], r["runtime_ms"],
        )
        for r in rows
    }
    want = {
        t["id"]: (
            t["status"], t["result"], t["agent_id"], t["source_id"], t["task_id"],
            t["credential_id"], ts(t["created_at"]), ts(t["updated_at"]), runtime(t),
        )
        for t in truth
    }
    assert got == want


def check_facts_derive_day_finality_and_duration(rows: List[Row], truth: List[Row]):
    by_id = {r["id"]: r for r in rows}
    for run in truth:
        row = by_id[run["id"]]
        assert row["day"] == utc_day(run), run["id"]
        assert row["is_final"] is (run["status"] in FINAL), run["id"]
        if runtime(run) is None:
            assert row["duration_seconds"] is None
        else:
            assert float(row["duration_seconds"]) == pytest.approx(runtime(run) / 1000.0)


def check_facts_count_errors_and_name_the_first(rows: List[Row], truth: List[Row]):
    by_id = {r["id"]: r for r in rows}
    for run in truth:
        errors = run["errors"] or []
        row = by_id[run["id"]]
        first = errors[0] if errors else {}
        assert (row["error_count"], row["first_error_type"], row["first_error_code"]) == (
            len(errors),
            first.get("type"),
            first.get("code"),
        ), run["id"]


def check_errors_have_one_row_per_error_with_its_run(rows: List[Row], truth: List[Row]):
    got = sorted(
        (
            r["id"], r["error_index"], r["agent_id"], r["source_id"], r["task_id"], r["status"],
            r["created_at"], r["type"], r["code"], r["message"], r["field"],
        )
        for r in rows
    )
    want = sorted(
        (
            t["id"], i, t["agent_id"], t["source_id"], t["task_id"], t["status"],
            ts(t["created_at"]), e["type"], e["code"], e["message"], e.get("field"),
        )
        for t in truth
        for i, e in enumerate(t["errors"] or [])
    )
    assert got == want


def _daily(rows: List[Row]) -> Dict[Tuple[Any, ...], Row]:
    out = {}
    for r in rows:
        key = (r["day"], r["agent_id"], r["source_id"], r["task_id"])
        assert key not in out, f"two rows for {key}"
        out[key] = r
    return out


def check_daily_stats_count_runs_and_results_per_group(rows: List[Row], truth: List[Row]):
    want = expected_daily(truth)
    got = _daily(rows)
    assert set(got) == set(want)
    for key, w in want.items():
        g = got[key]
        assert (g["runs"], g["successes"], g["failures"], g["unknowns"], g["rated_runs"]) == (
            w["runs"], w["successes"], w["failures"], w["unknowns"], w["rated_runs"],
        ), key


def check_daily_stats_success_rate_is_over_final_runs_with_a_result(
    rows: List[Row], truth: List[Row]
):
    want = expected_daily(truth)
    for key, g in _daily(rows).items():
        expected = want[key]["success_rate"]
        if expected is None:
            assert g["success_rate"] is None, key
        else:
            assert float(g["success_rate"]) == pytest.approx(expected), key


def check_daily_stats_percentiles_interpolate_like_percentile_cont(
    rows: List[Row], truth: List[Row]
):
    want = expected_daily(truth)
    for key, g in _daily(rows).items():
        for col in ("p50_runtime_ms", "p95_runtime_ms"):
            expected = want[key][col]
            if expected is None:
                assert g[col] is None, (key, col)
            else:
                assert float(g[col]) == pytest.approx(expected, rel=1e-12), (key, col)


def check_open_runs_are_the_non_final_ones_oldest_first(rows: List[Row], truth: List[Row]):
    want = open_runs(truth)
    assert [r["id"] for r in rows] == [w["id"] for w in want]
    assert [(r["status"], r["created_at"], r["updated_at"]) for r in rows] == [
        (w["status"], ts(w["created_at"]), ts(w["updated_at"])) for w in want
    ]


def check_open_runs_age_is_now_minus_created_at(
    rows: List[Row], truth: List[Row], before: float, after: float
):
    by_id = {r["id"]: r for r in truth}
    for row in rows:
        created = ts(by_id[row["id"]]["created_at"]).timestamp()
        updated = ts(by_id[row["id"]]["updated_at"]).timestamp()
        age = float(row["age_seconds"])
        assert before - created - 0.01 <= age <= after - created + 0.01, row["id"]
        since_update = float(row["seconds_since_update"])
        assert before - updated - 0.01 <= since_update <= after - updated + 0.01, row["id"]
        if "age" in row:
            assert row["age"].total_seconds() == pytest.approx(age, abs=0.01)


ALL_CHECKS: Dict[str, List[Callable[[List[Row], List[Row]], None]]] = {
    "task_run_facts": [
        check_facts_have_one_row_per_run_with_its_own_columns,
        check_facts_derive_day_finality_and_duration,
        check_facts_count_errors_and_name_the_first,
    ],
    "task_run_errors": [check_errors_have_one_row_per_error_with_its_run],
    "daily_task_run_stats": [
        check_daily_stats_count_runs_and_results_per_group,
        check_daily_stats_success_rate_is_over_final_runs_with_a_result,
        check_daily_stats_percentiles_interpolate_like_percentile_cont,
    ],
    "open_task_runs": [check_open_runs_are_the_non_final_ones_oldest_first],
}


def check_every_model(pipeline: dlt.Pipeline, truth: List[Row], read_rows) -> None:
    for name, checks in ALL_CHECKS.items():
        before = time.time()
        rows = read_rows(name)
        after = time.time()
        for check in checks:
            check(rows, truth)
        if name == "open_task_runs":
            check_open_runs_age_is_now_minus_created_at(rows, truth, before, after)


def generic_rows(pipeline: dlt.Pipeline, name: str) -> List[Row]:
    """Rows of the generic (ANSI) file of a model, run as a plain query on this destination."""
    with pipeline.sql_client() as client:
        select = render_model(name, client, None)
    return read(pipeline, select)


# ------------------------------------------------------------------------------------------------
# DuckDB: one behaviour per test
# ------------------------------------------------------------------------------------------------


def test_refresh_creates_every_model_as_a_view_in_the_dataset(loaded: Loaded):
    assert loaded.created == MODELS
    views = loaded.read(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = 'deck' AND table_type = 'VIEW' ORDER BY table_name"
    )
    assert [v["table_name"] for v in views] == MODELS


def test_refresh_is_repeatable(fresh: Loaded):
    assert refresh_models(fresh.pipeline) == MODELS
    assert len(fresh.model("task_run_facts")) == len(fresh.truth)


def test_task_run_facts_has_one_row_per_run_with_its_own_columns(loaded: Loaded):
    check_facts_have_one_row_per_run_with_its_own_columns(
        loaded.model("task_run_facts"), loaded.truth
    )


def test_task_run_facts_derives_utc_day_finality_and_duration(loaded: Loaded):
    check_facts_derive_day_finality_and_duration(loaded.model("task_run_facts"), loaded.truth)


def test_unknown_statuses_are_not_final(loaded: Loaded):
    unknown = {r["id"] for r in loaded.truth if r["status"] == UNKNOWN_STATUS}
    assert len(unknown) == 2
    facts = {r["id"]: r for r in loaded.model("task_run_facts")}
    assert all(facts[rid]["is_final"] is False for rid in unknown)
    assert unknown <= {r["id"] for r in loaded.model("open_task_runs")}


def test_day_is_the_utc_date_whatever_the_session_time_zone(loaded: Loaded):
    truth = {r["id"]: utc_day(r) for r in loaded.truth}
    with duckdb.connect(str(loaded.path), read_only=True) as con:
        con.execute("SET TimeZone = 'Pacific/Kiritimati'")  # UTC+14
        local_days = con.execute(
            "SELECT count(*) FROM deck.task_runs WHERE CAST(created_at AS DATE) <> "
            "CAST(timezone('UTC', created_at) AS DATE)"
        ).fetchall()[0][0]
        facts = con.execute("SELECT id, day FROM deck.task_run_facts").fetchall()
        daily = con.execute("SELECT sum(runs) AS runs, count(DISTINCT day) FROM "
                            "deck.daily_task_run_stats").fetchall()[0]
    assert local_days > 0, "the session time zone must move some runs to another date"
    assert dict(facts) == truth
    assert daily == (len(truth), len(set(truth.values())))


def test_task_run_facts_counts_errors_and_names_the_first_by_list_index(loaded: Loaded):
    several = [r for r in loaded.truth if r["errors"] and len(r["errors"]) > 1]
    differing = [r for r in several if r["errors"][0]["code"] != r["errors"][1]["code"]]
    assert differing, "the seed must give runs whose first and second errors differ"
    check_facts_count_errors_and_name_the_first(loaded.model("task_run_facts"), loaded.truth)


def test_task_run_errors_has_one_row_per_error_with_its_run(loaded: Loaded):
    rows = loaded.model("task_run_errors")
    assert len(rows) == sum(len(r["errors"] or []) for r in loaded.truth) > 0
    check_errors_have_one_row_per_error_with_its_run(rows, loaded.truth)


def test_daily_stats_count_runs_and_results_per_day_agent_source_task(loaded: Loaded):
    rows = loaded.model("daily_task_run_stats")
    assert sum(r["runs"] for r in rows) == len(loaded.truth)
    assert any(r["source_id"] is None for r in rows), "NULL source_id forms its own group"
    check_daily_stats_count_runs_and_results_per_group(rows, loaded.truth)


def test_daily_success_rate_is_successes_over_final_runs_with_a_result(loaded: Loaded):
    rows = loaded.model("daily_task_run_stats")
    rates = [r["success_rate"] for r in rows]
    assert None in rates and any(r is not None and 0 < r < 1 for r in rates)
    check_daily_stats_success_rate_is_over_final_runs_with_a_result(rows, loaded.truth)


def test_daily_percentiles_interpolate_like_percentile_cont(loaded: Loaded):
    rows = loaded.model("daily_task_run_stats")
    busiest = max(expected_daily(loaded.truth).values(), key=lambda g: g["runs"])
    assert busiest["runs"] >= 45 and busiest["p95_runtime_ms"] != busiest["p50_runtime_ms"]
    check_daily_stats_percentiles_interpolate_like_percentile_cont(rows, loaded.truth)


def test_open_task_runs_lists_non_final_runs_oldest_first(loaded: Loaded):
    rows = loaded.model("open_task_runs")
    assert len(rows) == len(open_runs(loaded.truth)) > 10
    check_open_runs_are_the_non_final_ones_oldest_first(rows, loaded.truth)


def test_open_task_runs_age_is_now_minus_created_at(loaded: Loaded):
    before = time.time()
    rows = loaded.model("open_task_runs")
    after = time.time()
    check_open_runs_age_is_now_minus_created_at(rows, loaded.truth, before, after)


def test_generic_sql_files_give_the_same_answers_on_duckdb(loaded: Loaded):
    """The ANSI fallbacks (what a new dialect starts from) are right too, not only DuckDB's."""
    check_every_model(loaded.pipeline, loaded.truth, lambda n: generic_rows(loaded.pipeline, n))


def test_models_exist_before_any_run_failed_and_see_errors_once_one_does(simulator, warehouse):
    simulator.add_runs(5, status="completed")
    warehouse.sync()
    assert "task_runs__errors" not in warehouse.tables()

    assert refresh_models(warehouse.pipeline()) == MODELS

    facts = read_model(warehouse.pipeline(), "task_run_facts")
    assert [r["error_count"] for r in facts] == [0] * 5
    assert read_model(warehouse.pipeline(), "task_run_errors") == []

    simulator.add_runs(1, status="failed")
    warehouse.sync()
    refresh_models(warehouse.pipeline())
    truth = simulator.runs()
    check_errors_have_one_row_per_error_with_its_run(
        read_model(warehouse.pipeline(), "task_run_errors"), truth
    )
    check_facts_count_errors_and_name_the_first(
        read_model(warehouse.pipeline(), "task_run_facts"), truth
    )


def test_views_follow_later_loads_without_a_refresh(fresh: Loaded, simulator, warehouse):
    simulator.advance(3600 * 24, new_runs=120)
    warehouse.sync()
    truth = simulator.runs()
    check_facts_have_one_row_per_run_with_its_own_columns(fresh.model("task_run_facts"), truth)
    check_open_runs_are_the_non_final_ones_oldest_first(fresh.model("open_task_runs"), truth)


def test_drop_models_removes_the_views_and_leaves_the_tables(fresh: Loaded, warehouse):
    assert drop_models(fresh.pipeline) == MODELS
    assert not set(MODELS) & set(warehouse.tables())
    assert len(warehouse.runs()) == len(fresh.truth)


def test_refresh_without_task_runs_creates_nothing(tmp_path: Path):
    pipeline = dlt.pipeline(
        pipeline_name="deck_models_empty",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.duckdb(str(tmp_path / "empty.duckdb")),
        dataset_name="deck",
    )
    assert refresh_models(pipeline) == []


def test_refresh_skips_destinations_without_sql(tmp_path: Path):
    pipeline = dlt.pipeline(
        pipeline_name="deck_models_files",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.filesystem(str(tmp_path / "lake")),
        dataset_name="deck",
    )
    assert refresh_models(pipeline) == []


def test_a_broken_model_fails_naming_its_file(fresh: Loaded, tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "broken_model.sql").write_text("SELECT no_such_column FROM {{ task_runs }}")
    with pytest.raises(DeckModelError, match=r"broken_model \(broken_model.sql\)"):
        refresh_models(fresh.pipeline, models_dir=models)


def test_an_unknown_placeholder_is_an_error(fresh: Loaded, tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    (models / "typo.sql").write_text("SELECT * FROM {{ task_run }}")
    with pytest.raises(DeckModelError, match="unknown placeholder"):
        refresh_models(fresh.pipeline, models_dir=models)


@pytest.mark.unit
def test_every_model_has_a_generic_file_and_dialect_files_name_a_model():
    assert model_names() == MODELS
    for path in MODELS_DIR.glob("*.sql"):
        if path.name.startswith("_"):
            continue  # a fragment (test_lifecycle_models.py)
        name, *dialect, _ = path.name.split(".")
        assert name in MODELS and len(dialect) <= 1, path.name
        assert model_file(name, None) == MODELS_DIR / f"{name}.sql"
    assert model_file("task_run_facts", "snowflake").name == "task_run_facts.sql"


@pytest.mark.unit
def test_a_dialect_file_overrides_the_generic_one_for_its_dialect_only(tmp_path: Path):
    (tmp_path / "daily.sql").write_text("SELECT 1")
    (tmp_path / "daily.bigquery.sql").write_text("SELECT 2")

    assert model_file("daily", "bigquery", tmp_path).name == "daily.bigquery.sql"
    assert model_file("daily", "duckdb", tmp_path).name == "daily.sql"
    assert model_names(tmp_path) == ["daily"]


# ------------------------------------------------------------------------------------------------
# PostgreSQL: the session's server (tests/conftest.py), one database per test at UTC+14
# ------------------------------------------------------------------------------------------------


def load_postgres(server: PostgresServer, simulator: DeckSimulator, pipelines_dir: Path) -> Loaded:
    seed(simulator)
    # A session time zone far from UTC (UTC+14): `day` must still be the UTC date.
    database = server.create_database(timezone="Pacific/Kiritimati")
    pipeline = dlt.pipeline(
        pipeline_name="deck_models_pg",
        pipelines_dir=str(pipelines_dir),
        destination=dlt.destinations.postgres(server.database_url(database)),
        dataset_name=f"deck_{uuid.uuid4().hex[:8]}",
    )
    sync(pipeline, api_key=DEMO_API_KEY, base_url=simulator.base_url, **FAST_RETRIES)
    created = refresh_models(pipeline)
    return Loaded(pipeline, simulator.runs(), created)


@pytest.fixture(scope="session")  # once per xdist worker, whatever runs in between
def pg_shared(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    """One loaded PostgreSQL database shared by the tests that only read it."""
    sim = make_simulator(seed=11, runs=0)  # as the `simulator` fixture
    try:
        yield load_postgres(postgres_server, sim, tmp_path_factory.mktemp("models-pg") / "dlt")
    finally:
        sim.stop()


@pytest.fixture
def pg_loaded(
    postgres_server: PostgresServer, simulator: DeckSimulator, tmp_path: Path
) -> Loaded:
    """A loaded PostgreSQL database of this test's own, for the tests that change it."""
    return load_postgres(postgres_server, simulator, tmp_path / "dlt")


def test_every_model_matches_ground_truth_on_postgres(pg_shared: Loaded):
    assert pg_shared.created == MODELS
    check_every_model(pg_shared.pipeline, pg_shared.truth, pg_shared.model)


def test_generic_sql_files_give_the_same_answers_on_postgres(pg_shared: Loaded):
    check_every_model(
        pg_shared.pipeline, pg_shared.truth, lambda n: generic_rows(pg_shared.pipeline, n)
    )


def test_a_postgres_view_whose_columns_changed_is_replaced(pg_loaded: Loaded, tmp_path: Path):
    """PostgreSQL's CREATE OR REPLACE VIEW cannot drop or retype columns: refresh drops first."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "open_task_runs.sql").write_text("SELECT id FROM {{ task_runs }}")
    assert refresh_models(pg_loaded.pipeline, models_dir=models) == ["open_task_runs"]
    rows = pg_loaded.model("open_task_runs")
    assert list(rows[0]) == ["id"] and len(rows) == len(pg_loaded.truth)

    assert refresh_models(pg_loaded.pipeline) == MODELS
    check_open_runs_are_the_non_final_ones_oldest_first(
        pg_loaded.model("open_task_runs"), pg_loaded.truth
    )


def test_a_full_refresh_on_postgres_drops_the_models_before_the_tables(
    pg_loaded: Loaded, simulator: DeckSimulator
):
    """PostgreSQL will not drop a table a view reads: sync drops the models first, then
    recreates them after the reload."""
    result = sync(pg_loaded.pipeline, full_refresh=True, api_key=DEMO_API_KEY,
                  base_url=simulator.base_url, **FAST_RETRIES)

    assert result.models == MODELS
    check_facts_have_one_row_per_run_with_its_own_columns(
        pg_loaded.model("task_run_facts"), simulator.runs()
    )
