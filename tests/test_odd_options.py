"""Odd option values and misspelled options stop a sync before its first request, in one line.

Every value is checked by its option's spec (`deck.core.options.OPTIONS`; the whole table of odd
values against each option is `tests/test_options.py`, pure): here each option's check is shown
to run before anything reaches Deck, in process against the simulator over real HTTP, and a few
cases run the CLI's `main` as a user's command line does (exit code 2, the one line on stderr,
where the value was set; in process: `support.cli.run_main`).
"""

import pytest
from deck.core.errors import DeckConfigError
from support import Warehouse, assert_matches_ground_truth
from support.cli import clean_env, project_env, run_main

NAN, INF = float("nan"), float("inf")
SECONDS = "a number of seconds"

# One odd value per option (those of issue 22 first), and the line that refuses it.
ODD = {
    "lookback_s": (NAN, f"{SECONDS} from 0 to 2592000 (default 600)"),
    "start_date": ("0001-01-01", "an ISO 8601 date or timestamp (e.g. 2026-01-31 or"
                   " 2026-01-31T08:00:00Z) from 2000-01-01 to 2100-01-01 (default all history)"),
    "end_date": ("9999-12-31", "an ISO 8601 date or timestamp (e.g. 2026-01-31 or"
                 " 2026-01-31T08:00:00Z) from 2000-01-01 to 2100-01-01 (default up to now)"),
    "request_deadline_s": (INF, f"{SECONDS} above 0, up to 7200 (default twice read_timeout_s)"),
    "connect_timeout_s": (INF, f"{SECONDS} above 0, up to 3600 (default 10)"),
    "read_timeout_s": (0, f"{SECONDS} above 0, up to 3600 (default 60)"),
    "backoff_base_s": (-1, f"{SECONDS} above 0, up to 3600 (default 1)"),
    "backoff_cap_s": (NAN, f"{SECONDS} above 0, up to 3600 (default 30)"),
    "request_max_attempts": (0, "a whole number from 1 to 100 (default 8)"),
    "rate_limit_period_s": (INF, f"{SECONDS} above 0, up to 3600 (default 10)"),
    "rate_limit_requests": (-1, "a whole number from 0 to 100000 (default 200); 0 turns the"
                            " client-side limit off"),
    "max_runs_per_load": (1e12, "a whole number from 1 to 10000000 (default 50000)"),
    "pages_per_window": (0, "a whole number from 1 to 10000 (default 25)"),
    "max_workers": (-INF, "a whole number from 1 to 64 (default 6)"),
    "page_size": (101, "a whole number from 1 to 100 (default 100)"),
    "max_table_nesting": (2.5, "a whole number from 1 to 100 (default 2); below 1 each run's"
                          " `errors` would be stored as JSON in task_runs instead of the"
                          " task_runs__errors table, and the SQL models would report no errors"),
    "events": ("yes", "true or false (default true)"),
    "lock_wait_s": (INF, f"{SECONDS} from 0 to 86400 (default 300); 0 fails at once when"
                    " another process has the DuckDB file open"),
}


@pytest.mark.parametrize("name", sorted(ODD))
def test_an_odd_value_of_any_option_stops_the_sync_before_any_request(
    simulator, warehouse, name
):
    value, accepted = ODD[name]
    simulator.advance(3600, new_runs=20)

    with pytest.raises(DeckConfigError) as caught:
        warehouse.sync(**{name: value})

    assert str(caught.value) == f"{name} = {value!r} is not valid: use {accepted}."
    assert simulator.requests == []


def cli_settings(tmp_path, sim, setting: str = "", **env: str) -> dict[str, str]:
    """The CLI's environment syncing `sim` (events included, as a user's defaults), with
    `setting` added to [sources.deck] of the checkout's .dlt/config.toml (the project's)."""
    full = clean_env()
    full.update(project_env(tmp_path))
    if setting:
        path = tmp_path / ".dlt" / "config.toml"
        text = path.read_text().replace("[sources.deck]\n", f"[sources.deck]\n{setting}\n")
        path.write_text(text)
    full.update(SOURCES__DECK__API_KEY=sim.api_key, SOURCES__DECK__BASE_URL=sim.base_url)
    full.update(env)
    return full


def config_line(tmp_path, text: str) -> int:
    """The line of .dlt/config.toml that starts with `text`."""
    lines = (tmp_path / ".dlt" / "config.toml").read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if line.startswith(text))


def test_an_odd_value_in_the_environment_exits_2_naming_the_variable(tmp_path, simulator):
    env = cli_settings(tmp_path, simulator, SOURCES__DECK__LOOKBACK_S="nan")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "Deck sync failed: lookback_s = nan in environment variable SOURCES__DECK__LOOKBACK_S is"
        " not valid: use a number of seconds from 0 to 2592000 (default 600)."
    ]
    assert simulator.requests == []


def test_an_out_of_range_date_in_config_toml_exits_2_naming_its_line(tmp_path, simulator):
    env = cli_settings(tmp_path, simulator, 'start_date = "0001-01-01"')
    line = config_line(tmp_path, "start_date")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"Deck sync failed: start_date = '0001-01-01' in .dlt/config.toml, line {line} is not"
        " valid: use an ISO 8601 date or timestamp (e.g. 2026-01-31 or 2026-01-31T08:00:00Z)"
        " from 2000-01-01 to 2100-01-01 (default all history)."
    ]
    assert simulator.requests == []


def test_a_misspelled_option_in_config_toml_is_reported_with_the_closest_name(
    tmp_path, simulator
):
    env = cli_settings(tmp_path, simulator, "lookbak_s = 3600")
    line = config_line(tmp_path, "lookbak_s")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"Deck sync failed: lookbak_s in .dlt/config.toml, line {line} is not an option of"
        " [sources.deck]: did you mean lookback_s?"
    ]
    assert simulator.requests == []


def test_a_misspelled_option_in_the_environment_is_reported_with_the_closest_name(
    tmp_path, simulator
):
    env = cli_settings(tmp_path, simulator, SOURCES__DECK__MAX_RUN_PER_LOAD="1000")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "Deck sync failed: max_run_per_load in environment variable"
        " SOURCES__DECK__MAX_RUN_PER_LOAD is not an option of [sources.deck]: did you mean"
        " max_runs_per_load?"
    ]
    assert simulator.requests == []


def test_a_list_filter_in_the_environment_takes_the_comma_form(tmp_path, simulator):
    simulator.advance(3600 * 24, new_runs=150)
    env = cli_settings(
        tmp_path, simulator, SOURCES__DECK__STATUS="completed,failed",
        SOURCES__DECK__EVENTS="false",
    )

    result = run_main(tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    expected = [r for r in simulator.runs() if r["status"] in ("completed", "failed")]
    assert 0 < len(expected) < 150
    reader = Warehouse(tmp_path / "deck_task_runs.duckdb", tmp_path / "unused", simulator)
    assert_matches_ground_truth(reader, expected)
    assert simulator.requests[1].params["status"] == [  # and the open states, tracked
        "queued", "running", "canceling", "interaction_required", "review_required",
        "completed", "failed",
    ]
