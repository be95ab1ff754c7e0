"""A damaged working folder: every sync fails with one paragraph naming the file and the way
out, `--reset-state`; after it the warehouse holds exactly Deck's runs and events, one row each,
and the syncs after it are incremental again.

The damages are those a disk fault, a careless edit or a half-copied backup leave: `state.json`
cut in half or overwritten, the schema file deleted, a watermark that is not a timestamp inside
an otherwise valid state. dlt keeps the state in two places, the working folder and the
warehouse's `_dlt_pipeline_state` (restored from there when the folder is missing), so the last
damage is also made in the warehouse's copy, with the folder deleted.
"""

import json
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from dlt.common.versioned_state import compress_state, decompress_state
from support import Warehouse, assert_events_match, assert_matches_ground_truth, make_simulator
from support.cli import cli_env, run_main

FOLDER = Path("dlt-data", "pipelines", "deck_task_runs")
WAY_OUT = (
    " The warehouse's tables are not affected. Run the sync once with --reset-state: it empties"
    " the working folder and takes the saved state back from the warehouse; the state of a"
    " resource that cannot be read there either is forgotten, and that resource lists"
    " everything again and merges it (still one row per run). Every table is kept.\n"
)
IN_FOLDER = f"Deck sync failed: the pipeline's working folder {FOLDER} is damaged: "


def cut_state_in_half(checkout: Path) -> None:
    path = checkout / FOLDER / "state.json"
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])


def overwrite_state(checkout: Path) -> None:
    (checkout / FOLDER / "state.json").write_bytes(b"garbage\x00\xff")


def delete_schema(checkout: Path) -> None:
    (checkout / FOLDER / "schemas" / "deck.schema.json").unlink()


def garbage_watermark(state: dict) -> None:
    state["sources"]["deck"]["resources"]["task_runs"]["watermark"] = "garbage"


def garble_watermark_in_folder(checkout: Path) -> None:
    path = checkout / FOLDER / "state.json"
    state = json.loads(path.read_text())
    garbage_watermark(state)
    path.write_text(json.dumps(state))


def garble_watermark_in_warehouse(checkout: Path) -> None:
    """The warehouse's copy of the state damaged the same way, and the folder deleted: dlt
    restores the state from the warehouse."""
    with duckdb.connect(str(checkout / "deck_task_runs.duckdb")) as con:
        rows = con.execute("SELECT _dlt_id, state FROM deck._dlt_pipeline_state").fetchall()
        for row_id, blob in rows:
            state = decompress_state(blob)
            if "task_runs" in state.get("sources", {}).get("deck", {}).get("resources", {}):
                garbage_watermark(state)
            con.execute(
                "UPDATE deck._dlt_pipeline_state SET state = ? WHERE _dlt_id = ?",
                [compress_state(state), row_id],
            )
    for path in sorted((checkout / FOLDER).rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (checkout / FOLDER).rmdir()


WATERMARK = "watermark = 'garbage' is not an ISO 8601 timestamp"
DAMAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "state-cut-in-half": (
        cut_state_in_half, IN_FOLDER + "state.json is not a pipeline state dlt can read."
    ),
    "state-overwritten": (
        overwrite_state, IN_FOLDER + "state.json is not a pipeline state dlt can read."
    ),
    "schema-deleted": (
        delete_schema,
        IN_FOLDER + "schemas/deck.schema.json is missing (state.json names the schema 'deck').",
    ),
    "garbage-watermark": (
        garble_watermark_in_folder,
        IN_FOLDER + f"the saved state of task_runs in state.json cannot be read: {WATERMARK}.",
    ),
    "garbage-watermark-in-the-warehouse": (
        garble_watermark_in_warehouse,
        "Deck sync failed: the pipeline's saved state that dlt restored from the warehouse"
        " (table _dlt_pipeline_state) is damaged: its state of task_runs cannot be read:"
        f" {WATERMARK}.",
    ),
}


@pytest.fixture
def sim():
    simulator = make_simulator(seed=4, runs=300, history_days=3)
    yield simulator
    simulator.stop()


@pytest.fixture
def env(tmp_path, sim) -> dict[str, str]:
    """A checkout that synced Deck once (runs and events), as a user's does: in one load, as
    the default `max_runs_per_load` has it (none of these damages depends on the number of
    loads, and each load costs most of a CPU second of dlt's own work)."""
    environment = cli_env(tmp_path, sim, max_runs_per_load=50_000, events=True)
    first = run_main(tmp_path, env=environment)
    assert first.returncode == 0, first.stderr
    return environment


def warehouse(tmp_path: Path, sim) -> Warehouse:
    return Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", sim)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_sync_of_a_damaged_working_folder_names_the_file_and_the_way_out(
    tmp_path, sim, env, damage
):
    make_damage, paragraph = DAMAGES[damage]
    make_damage(tmp_path)

    first = run_main(tmp_path, env=env)
    second = run_main(tmp_path, env=env)

    for failed in (first, second):
        assert failed.returncode == 1
        assert failed.stderr == paragraph + WAY_OUT


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_after_reset_state_the_warehouse_holds_exactly_decks_runs_and_events(
    tmp_path, sim, env, damage
):
    sim.advance(3600, new_runs=150)  # runs created and finished while the folder was damaged
    DAMAGES[damage][0](tmp_path)

    reset = run_main(tmp_path, "--reset-state", env=env)

    assert reset.returncode == 0, reset.stderr
    assert_matches_ground_truth(warehouse(tmp_path, sim), sim.runs())
    assert_events_match(warehouse(tmp_path, sim), sim.events())


def test_the_syncs_after_a_reset_are_incremental_again(tmp_path, sim, env):
    sim.clear_requests()
    assert run_main(tmp_path, env=env).returncode == 0
    no_change_requests = len(sim.requests)
    cut_state_in_half(tmp_path)
    assert run_main(tmp_path, "--reset-state", env=env).returncode == 0
    sim.clear_requests()

    after = run_main(tmp_path, env=env)

    assert after.returncode == 0, after.stderr
    assert "  runs:     0 new, 0 updated (300 in the warehouse)\n" in after.stdout
    assert len(sim.requests) == no_change_requests


def test_a_reset_takes_the_state_back_from_the_warehouse_and_lists_nothing_again(
    tmp_path, sim, env
):
    sim.clear_requests()
    assert run_main(tmp_path, env=env).returncode == 0
    no_change_requests = len(sim.requests)
    cut_state_in_half(tmp_path)
    sim.clear_requests()

    reset = run_main(tmp_path, "--reset-state", env=env)

    assert reset.returncode == 0, reset.stderr
    assert "  runs:     0 new, 0 updated (300 in the warehouse)\n" in reset.stdout
    assert len(sim.requests) == no_change_requests


def test_a_reset_forgets_only_the_state_the_warehouse_cannot_give_back(tmp_path, sim, env):
    garble_watermark_in_warehouse(tmp_path)

    reset = run_main(tmp_path, "--reset-state", env=env)

    assert reset.returncode == 0, reset.stderr
    assert (
        "Forgot the saved state of pipeline 'deck_task_runs' (task_runs): it could not be read in"
        " the warehouse either. The tables are kept, and this sync lists those again and merges"
        " them" in reset.stderr
    )
    # listed again: counted as new (nothing is known of them), still one row per run
    assert "  runs:     300 new, 0 updated (300 in the warehouse)\n" in reset.stdout
    assert_matches_ground_truth(warehouse(tmp_path, sim), sim.runs())
