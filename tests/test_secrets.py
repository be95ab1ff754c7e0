"""The API key appears nowhere but in the Authorization header sent to base_url's host."""


from deck_simulator import DeckSimulator
from support.cli import files_containing, run_cli

CANARY = "sk_live_CANARY_7f3a9c1e5b2d4f60"


def test_key_never_leaks_from_a_failing_or_a_succeeding_sync(tmp_path):
    good = DeckSimulator(seed=4, runs=400, history_days=3, api_key=CANARY).start()
    wrong = DeckSimulator(seed=4, runs=10, history_days=3).start()
    try:
        env = {"SOURCES__DECK__API_KEY": CANARY, "RUNTIME__LOG_LEVEL": "DEBUG"}
        failing = run_cli(tmp_path, "--debug",
                          env={**env, "SOURCES__DECK__BASE_URL": wrong.base_url})
        good.inject("503", path="/task-runs")
        succeeding = run_cli(tmp_path, "--debug",
                             env={**env, "SOURCES__DECK__BASE_URL": good.base_url})
    finally:
        good.stop()
        wrong.stop()

    assert failing.returncode == 1 and "The API key was rejected" in failing.stderr
    assert succeeding.returncode == 0, succeeding.stderr
    assert "retry 1 of 7" in succeeding.stderr
    for output in (failing.stdout, failing.stderr, succeeding.stdout, succeeding.stderr):
        assert CANARY not in output
        assert CANARY[8:] not in output
    # pipeline state, schemas, load packages, traces and the DuckDB warehouse itself
    assert (tmp_path / "dlt-data").exists() and (tmp_path / "deck_task_runs.duckdb").exists()
    assert files_containing(tmp_path, CANARY.encode()) == []
    # the key was sent, as a bearer token, only to the simulator serving base_url
    assert {r.authorization for r in good.requests} == {f"Bearer {CANARY}"}
