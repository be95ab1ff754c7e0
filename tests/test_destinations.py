"""The sync, mutation and nested-data scenarios on every destination: DuckDB, a real PostgreSQL
server (started by this session on 127.0.0.1) and Delta tables on dlt's `filesystem` destination.

Every destination must hold exactly the simulator's ground truth: one row per run at its latest
state, nested rows replaced when a run changes, runtime_ms as a 64-bit integer, timestamps with
a time zone, drifting output shapes loaded, no duplicate ids. The assertions are the shared
`support.assert_matches_ground_truth`, fed by a destination-agnostic reader
(tests/support/destinations.py).

Run one destination with e.g. `pytest tests/test_destinations.py -k postgres`.
"""

import datetime as dt
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List, Tuple

import dlt
import pytest
from deck import deck
from deck.resources.loaded_runs import IDS_PER_QUERY, loaded_run_ids
from deck.warehouse.destination import DestinationTraits
from deck.warehouse.lakehouse import prepare_for_destination, prune_orphaned_nested_rows
from deck_simulator import DEMO_API_KEY, DeckSimulator
from dlt.pipeline.exceptions import PipelineStepFailed
from support import (
    FAST_RETRIES,
    Warehouse,
    assert_events_match,
    assert_matches_ground_truth,
    make_pipeline,
    sync_from,
    ts,
)
from support.destinations import (
    DESTINATIONS,
    NATIVE_TYPES,
    DestinationWarehouse,
    canonical_type,
    make_warehouse,
)
from support.lifecycle import assert_lifecycle_models_match
from support.postgres import PostgresServer, PostgresUnavailable


@pytest.fixture(params=DESTINATIONS)
def wh(
    request: pytest.FixtureRequest, tmp_path: Path, simulator: DeckSimulator
) -> DestinationWarehouse:
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    return make_warehouse(request.param, tmp_path, simulator, server)


# ---- the scenarios, on every destination -------------------------------------------------------


def test_events_and_their_models_match_the_simulator_on_every_destination(wh, simulator):
    simulator.advance(3600 * 24, new_runs=300)
    wh.sync(events=True)
    simulator.advance(3600 * 3, new_runs=80)

    result = wh.sync(events=True)

    assert result.new_events > 0
    assert_events_match(wh, simulator.events())
    assert_matches_ground_truth(wh, simulator.runs())
    if wh.kind != "delta":  # no SQL client on filesystem: no models there
        assert_lifecycle_models_match(wh.view_rows, simulator.events(), datetime.now(timezone.utc))


def test_first_sync_and_incremental_syncs_match_ground_truth(wh, simulator):
    simulator.advance(3600 * 24, new_runs=700)

    result = wh.sync()

    assert result.pages >= 7
    assert_matches_ground_truth(wh, simulator.runs())
    for _ in range(2):  # new runs arrive, open ones move on through their lifecycle
        simulator.advance(1800, new_runs=60)
        wh.sync()
    rows, distinct = wh.count()
    assert rows == distinct == len(simulator.runs()) == 820
    assert_matches_ground_truth(wh, simulator.runs())


def test_a_backfill_commits_window_by_window(wh, simulator):
    simulator.advance(3600 * 24 * 10, new_runs=450)

    result = wh.sync(max_runs_per_load=150, pages_per_window=2)

    assert result.loads >= 3
    assert_matches_ground_truth(wh, simulator.runs())
    assert wh.count() == (450, 450)


def test_run_that_finishes_weeks_later_is_final_after_the_next_sync(wh, simulator):
    simulator.advance(3600, new_runs=30)
    [slow] = simulator.add_runs(1, status="review_required")
    wh.sync()
    assert wh.runs()[slow]["status"] == "review_required"

    simulator.advance(3600 * 24 * 21, new_runs=20)
    simulator.update_run(
        slow,
        status="completed",
        result="success",
        runtime_ms="1814400000",
        output={"approved_by": "ops", "items": [{"sku": "A1", "qty": 2}]},
    )
    result = wh.sync()

    row = wh.runs()[slow]
    assert (row["status"], row["result"], row["runtime_ms"]) == ("completed", "success", 1814400000)
    assert row["output__approved_by"] == "ops"
    items = wh.child_rows("task_runs__output__items")[slow]
    assert [(i["sku"], i["qty"]) for i in items] == [("A1", 2)]
    assert result.updated_runs >= 1
    assert_matches_ground_truth(wh, simulator.runs())


def test_nested_rows_are_replaced_and_removed_as_a_run_changes(wh, simulator):
    simulator.advance(600, new_runs=40)
    opened = simulator.add_runs(
        3, status="running", created_at=simulator.now - timedelta(days=2)
    )
    [run_id] = simulator.add_runs(1, status="interaction_required")
    simulator.update_run(run_id, errors=[
        {"type": "interaction", "code": "mfa_required", "message": "Code needed", "field": "code"},
        {"type": "source", "code": "source_error", "message": "Flaky", "field": None},
    ])
    wh.sync()
    assert len(wh.errors()[run_id]) == 2
    assert_matches_ground_truth(wh, simulator.runs())

    # an open run fails (gains errors), the other loses one of its two errors
    simulator.advance(60)
    simulator.update_run(opened[0], status="failed", result="failure", runtime_ms=5, errors=[
        {"type": "task", "code": "timeout", "message": "Timed out", "field": None},
    ])
    simulator.update_run(run_id, status="review_required", errors=[
        {"type": "interaction", "code": "interaction_timeout", "message": "No answer",
         "field": None},
    ])
    wh.sync()
    assert wh.errors()[run_id] == [("interaction", "interaction_timeout", "No answer", None)]
    assert wh.errors()[opened[0]] == [("task", "timeout", "Timed out", None)]
    assert_matches_ground_truth(wh, simulator.runs())

    # the run completes without errors: its nested rows are gone
    simulator.advance(60)
    simulator.update_run(run_id, status="completed", result="success", runtime_ms=7, errors=None)
    wh.sync()
    assert run_id not in wh.errors()
    assert_matches_ground_truth(wh, simulator.runs())


def test_runtime_ms_is_bigint_and_timestamps_have_a_time_zone(wh, simulator):
    ints = simulator.add_runs(2, status="completed", result="success", runtime_ms=1234)
    strings = simulator.add_runs(2, status="completed", result="success", runtime_ms="98765")
    big = simulator.add_runs(1, status="completed", result="success", runtime_ms=2**40)
    wh.sync()

    columns = wh.columns("task_runs")
    native = NATIVE_TYPES[wh.kind]
    assert columns["runtime_ms"] == native["bigint"]
    for name in ("created_at", "updated_at"):
        assert columns[name] == native["timestamptz"], (name, columns[name])
        assert canonical_type(columns[name]) == "timestamptz"
    runs = wh.runs()
    assert {runs[i]["runtime_ms"] for i in ints} == {1234}
    assert {runs[i]["runtime_ms"] for i in strings} == {98765}
    assert runs[big[0]]["runtime_ms"] == 2**40
    created = runs[ints[0]]["created_at"]
    assert created.tzinfo is not None and created == ts(simulator.run(ints[0])["created_at"])
    assert_matches_ground_truth(wh, simulator.runs())


def test_fields_of_newer_api_versions_become_columns(wh, simulator):
    simulator.advance(60, new_runs=20)
    wh.sync()
    [run_id] = simulator.add_runs(
        1,
        status="canceled",
        workflow_id="wflo_0123456789abcdef01234567",
        canceled_at="2026-01-01T00:05:00.000Z",
        input={"account": "acme", "month": 11},
        storage=[{"id": "stor_1", "name": "invoice.pdf", "size": 1234}],
        brand_new_field="hello",
    )
    wh.sync()

    row = wh.runs()[run_id]
    assert row["workflow_id"] == "wflo_0123456789abcdef01234567"
    assert row["brand_new_field"] == "hello"
    assert row["input__account"] == "acme"
    assert row["canceled_at"] == ts("2026-01-01T00:05:00.000Z")
    storage = wh.child_rows("task_runs__storage")[run_id]
    assert [s["name"] for s in storage] == ["invoice.pdf"]
    assert_matches_ground_truth(wh, simulator.runs())


def test_output_shapes_that_drift_never_fail_a_load(wh, simulator):
    shapes = [
        {"amount": 12, "currency": "EUR"},
        {"amount": "12.50", "currency": "EUR"},
        {"deep": {"deeper": {"deepest": {"x": 1}}}},
        [{"sku": "A", "qty": 1}, {"sku": "B", "qty": "2"}],
        ["a", "b"],
        "plain text",
        42,
        True,
        None,
    ]
    ids = [
        simulator.add_runs(1, status="completed", result="success", runtime_ms=1, output=o)[0]
        for o in shapes
    ]
    wh.sync()

    runs = wh.runs()
    assert set(ids) <= set(runs)
    columns = wh.columns("task_runs")
    assert "output__currency" in columns
    assert any(c.startswith("output__amount") for c in columns)
    assert runs[ids[0]]["output__currency"] == "EUR"
    assert "task_runs__output" in wh.tables()
    skus = wh.child_rows("task_runs__output")[ids[3]]
    assert [s["sku"] for s in skus] == ["A", "B"]
    assert_matches_ground_truth(wh, simulator.runs())


# ---- the same tables everywhere ----------------------------------------------------------------


def _normalize(value: Any) -> Any:
    """One spelling per value whatever the driver returned (JSON text or objects, Decimals...)."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return value


def _contents(wh: DestinationWarehouse) -> Dict[str, List[Tuple[Any, ...]]]:
    """Every table as sorted tuples of its data columns, nested rows keyed by their run's id."""
    runs = wh.runs()
    by_row_id = {row["_dlt_id"]: run_id for run_id, row in runs.items()}
    out: Dict[str, List[Tuple[Any, ...]]] = {}
    for table in wh.tables():
        rows = wh.rows(table)
        if not rows:
            continue
        names = sorted({n for r in rows for n in r if not n.startswith("_dlt")})
        data = []
        for row in rows:
            key = by_row_id.get(row.get("_dlt_root_id")) if table != "task_runs" else row["id"]
            values = tuple((n, _normalize(row.get(n))) for n in names)
            data.append((key, row.get("_dlt_list_idx"), values))
        # a column that only ever held NULL is an artifact of one loader, not data
        out[table] = sorted(
            data, key=lambda t: (str(t[0]), t[1] if t[1] is not None else -1, repr(t[2]))
        )
        out[table] = [
            (k, i, tuple((n, v) for n, v in vals if v is not None)) for k, i, vals in out[table]
        ]
    return out


def test_every_destination_holds_the_same_tables(tmp_path, simulator, postgres_server):
    warehouses = [
        make_warehouse(kind, tmp_path / kind, simulator, postgres_server)
        for kind in DESTINATIONS
    ]
    simulator.advance(3600 * 24, new_runs=300)
    [changing] = simulator.add_runs(1, status="interaction_required", output=[{"sku": "A"}])
    simulator.update_run(changing, errors=[
        {"type": "interaction", "code": "mfa_required", "message": "Code needed", "field": "code"},
        {"type": "source", "code": "source_error", "message": "Flaky", "field": None},
    ])
    simulator.add_runs(1, status="completed", result="success", runtime_ms="5",
                       output={"deep": {"deeper": {"deepest": {"x": 1}}}, "amount": "1.5"})
    for wh in warehouses:
        wh.sync()
    simulator.advance(3600 * 6, new_runs=50)
    simulator.update_run(changing, status="failed", result="failure", output=None, errors=[
        {"type": "interaction", "code": "interaction_timeout", "message": "No answer",
         "field": None},
    ])
    for wh in warehouses:
        wh.sync()

    contents = {wh.kind: _contents(wh) for wh in warehouses}
    reference = contents["duckdb"]
    assert reference["task_runs"] and reference["task_runs__errors"]
    for kind, tables in contents.items():
        assert sorted(tables) == sorted(reference), kind
        for table, rows in reference.items():
            assert tables[table] == rows, f"{kind}.{table} differs from duckdb.{table}"
    for wh in warehouses:
        assert_matches_ground_truth(wh, simulator.runs())


# ---- why the runner adapts the source on Delta ---------------------------------------------------


def _delta_pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(
        pipeline_name="deck_delta_probe",
        pipelines_dir=str(tmp_path / "dlt"),
        destination=dlt.destinations.filesystem((tmp_path / "lake").as_uri()),
        dataset_name="deck",
    )


def _source(simulator: DeckSimulator) -> Any:
    return deck(api_key=DEMO_API_KEY, base_url=simulator.base_url, **FAST_RETRIES)


def test_delta_refuses_the_sources_delete_insert_strategy(tmp_path, simulator):
    simulator.advance(60, new_runs=5)
    source = _source(simulator)
    source.task_runs.apply_hints(table_format="delta")

    with pytest.raises(PipelineStepFailed, match="delete-insert"):
        _delta_pipeline(tmp_path).run(source)


def test_delta_upsert_alone_keeps_stale_nested_rows_until_pruned(tmp_path, simulator):
    pipeline = _delta_pipeline(tmp_path)
    wh = DestinationWarehouse("delta", pipeline.destination, tmp_path / "dlt", simulator,
                              pipeline_name="deck_delta_probe")
    [run_id] = simulator.add_runs(1, status="interaction_required")
    simulator.update_run(run_id, errors=[
        {"type": "interaction", "code": "mfa_required", "message": "Code needed", "field": "code"},
        {"type": "source", "code": "source_error", "message": "Flaky", "field": None},
    ])
    pipeline.run(prepare_for_destination(_source(simulator), DestinationTraits.of(pipeline)))
    simulator.advance(60)
    simulator.update_run(run_id, status="failed", errors=[
        {"type": "interaction", "code": "interaction_timeout", "message": "No answer",
         "field": None},
    ])
    pipeline.run(prepare_for_destination(_source(simulator), DestinationTraits.of(pipeline)))

    # dlt's Delta upsert updated error 0 in place but left error 1 of the old version
    assert [e[1] for e in wh.errors()[run_id]] == ["interaction_timeout", "source_error"]
    assert prune_orphaned_nested_rows(pipeline, DestinationTraits.of(pipeline)) == 1
    assert wh.errors()[run_id] == [("interaction", "interaction_timeout", "No answer", None)]
    assert prune_orphaned_nested_rows(pipeline, DestinationTraits.of(pipeline)) == 0


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_sql_destinations_keep_delete_insert(kind, tmp_path, simulator, request):
    server = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    pipeline = make_warehouse(kind, tmp_path, simulator, server).pipeline()
    source = prepare_for_destination(_source(simulator), DestinationTraits.of(pipeline))

    table = source.task_runs.compute_table_schema()
    assert table["write_disposition"] == "merge"
    assert table.get("x-merge-strategy") == "delete-insert"
    assert "table_format" not in table


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_filtered_syncs_events_find_the_runs_earlier_syncs_loaded(
    kind, tmp_path, simulator, request
):
    """`loaded_run_ids`, what a filtered sync asks the warehouse for the runs of its events: the
    ids that have a task_runs row, none before the table exists, in chunks of bound parameters."""
    server = request.getfixturevalue("postgres_server") if kind == "postgres" else None
    wh = make_warehouse(kind, tmp_path, simulator, server)
    simulator.advance(3600, new_runs=30)
    assert loaded_run_ids(wh.pipeline(), ["trun_x"]) == set()  # no dataset yet

    wh.sync()

    loaded = sorted(wh.runs())
    asked = [*loaded[:3], "trun_never_loaded", *(f"trun_{n}" for n in range(IDS_PER_QUERY))]
    assert loaded_run_ids(wh.pipeline(), asked) == set(loaded[:3])


# ---- a machine without PostgreSQL fails loudly -------------------------------------------------


@pytest.mark.unit
def test_missing_postgres_binaries_fail_with_a_clear_message(monkeypatch):
    from support import postgres

    monkeypatch.delenv("DECK_PG_BIN", raising=False)
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)
    monkeypatch.setattr(postgres.glob, "glob", lambda pattern: [])

    with pytest.raises(PostgresUnavailable, match=r"initdb.*setup-postgres\.sh"):
        PostgresServer.start()


@pytest.mark.unit
def test_root_without_a_postgres_user_fails_with_a_clear_message(monkeypatch):
    from support import postgres

    def no_user(name: str) -> Any:
        raise KeyError(name)

    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.pwd, "getpwnam", no_user)
    monkeypatch.setattr(postgres, "find_postgres_bin", lambda: Path("/usr/bin"))

    with pytest.raises(PostgresUnavailable, match="no `postgres`.*setup-postgres"):
        PostgresServer.start()


def test_the_destinations_capabilities_are_worked_out_once_a_sync_not_once_a_load(
    tmp_path, simulator, monkeypatch
):
    """dlt would resolve the destination's configuration for its capabilities ~8 times a load."""
    partial_resolutions: list[str] = []  # the kind `Destination.capabilities()` makes
    duckdb_factory = type(dlt.destinations.duckdb())
    configuration = duckdb_factory.configuration

    def counted(self: Any, initial_config: Any, accept_partial: bool = False) -> Any:
        if accept_partial:
            partial_resolutions.append(self.config_params["credentials"])
        return configuration(self, initial_config, accept_partial)

    monkeypatch.setattr(duckdb_factory, "configuration", counted)
    simulator.advance(3600 * 24, new_runs=700)
    results = {}
    for name, max_runs_per_load in (("one", 1000), ("several", 200)):
        destination = dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb"))
        pipeline = make_pipeline(name, tmp_path / "dlt", destination)
        results[name] = sync_from(simulator, pipeline, max_runs_per_load=max_runs_per_load)
        assert "configuration" not in vars(destination)  # the pipeline is the caller's again
        warehouse = Warehouse(tmp_path / f"{name}.duckdb", tmp_path / "dlt", simulator)
        assert_matches_ground_truth(warehouse, simulator.runs())

    assert results["one"].loads == 1 and results["several"].loads >= 3
    made = {name: partial_resolutions.count(str(tmp_path / f"{name}.duckdb")) for name in results}
    assert made["several"] == made["one"]
