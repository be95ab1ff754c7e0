"""What a user sees when something is wrong: one paragraph, the request_id, what to do; exit != 0.

Each test runs the CLI's `main` as a user's command line does (in process: `support.cli.run_main`,
the same environment and captured output) and asserts the exact text on stderr.
"""

import re

import pytest
from deck_simulator import DeckSimulator
from support.cli import run_main
from support.scripted import ScriptedAPI

KEY_HELP = (
    "Check SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml: it must be"
    " a live secret key (sk_live_...) of the organization whose runs you sync."
)


@pytest.fixture
def sim():
    simulator = DeckSimulator(seed=1, runs=50, history_days=2).start()
    yield simulator
    simulator.stop()


def env_for(base_url: str, key: str = "sk_test_deck_simulator") -> dict:
    return {"SOURCES__DECK__API_KEY": key, "SOURCES__DECK__BASE_URL": base_url}


def test_wrong_key_says_the_key_was_rejected_and_a_first_sync_leaves_nothing(tmp_path, sim):
    result = run_main(tmp_path, env=env_for(sim.base_url, "sk_live_wrong"))

    assert result.returncode == 1
    assert re.fullmatch(
        r"Deck sync failed: The API key was rejected \(HTTP 401 for GET /v2/test\)\. Deck said:"
        r" Invalid API key provided\. \[auth/unauthorized\]\. " + re.escape(KEY_HELP)
        + r" \(request_id req_[0-9a-f]+\)\n",
        result.stderr,
    ), result.stderr
    assert "Traceback" not in result.stderr
    assert [r.path for r in sim.requests] == ["/v2/test"]
    # a first sync that failed leaves no empty DuckDB file and no pipeline state behind
    assert not (tmp_path / "deck_task_runs.duckdb").exists()
    assert not (tmp_path / "dlt-data" / "pipelines" / "deck_task_runs").exists()


def test_wrong_base_url_path_says_base_url_is_probably_wrong(tmp_path, sim):
    result = run_main(tmp_path, env=env_for(sim.base_url + "/v9"))

    assert result.returncode == 1
    assert result.stderr.startswith(
        "Deck sync failed: Deck API refused GET /v2/v9/test with HTTP 404."
    )
    assert "most likely base_url is wrong (default https://api.deck.co/v2)." in result.stderr
    assert re.search(r"\(request_id req_[0-9a-f]+\)\n$", result.stderr)


@pytest.mark.parametrize(
    "status, body, expected",
    [
        (400, {"type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
               "title": "One or more validation errors occurred.", "status": 400,
               "errors": {"created_after": ["The value 'x' is not valid."]}, "traceId": "00-abc"},
         "Deck API refused GET /v2/task-runs with HTTP 400. Deck said: created_after: The value"
         " 'x' is not valid.. The request was invalid: check the filters and dates you passed."
         " (request_id 00-abc)"),
        (403, {"errors": [{"type": "auth", "code": "forbidden", "message": "Not allowed.",
                           "field": None}], "request_id": "req_403"},
         "Deck API refused GET /v2/task-runs with HTTP 403. Deck said: Not allowed."
         " [auth/forbidden]. The key is valid but not allowed to read task runs: check its"
         " permissions in Deck. (request_id req_403)"),
        (409, {"errors": [{"type": "api", "code": "conflict", "message": "Busy.", "field": None}],
               "request_id": "req_409"},
         "Deck API refused GET /v2/task-runs with HTTP 409. Deck said: Busy. [api/conflict]. Deck"
         " reports a conflict with the current state; retry later or contact Deck support with"
         " the request_id. (request_id req_409)"),
        (422, {"errors": [{"type": "request", "code": "invalid", "message": "Bad value.",
                           "field": "agent_id"}], "request_id": "req_422"},
         "Deck API refused GET /v2/task-runs with HTTP 422. Deck said: agent_id: Bad value."
         " [request/invalid]. Deck could not process a value in the request: check the filters"
         " and dates. (request_id req_422)"),
    ],
)
def test_permanent_errors_fail_fast_with_one_paragraph(tmp_path, status, body, expected):
    api = ScriptedAPI(lambda params: (status, body))
    try:
        result = run_main(tmp_path, env=env_for(api.base_url))
    finally:
        api.close()
    assert result.returncode == 1
    assert result.stderr == f"Deck sync failed: {expected}\n"
    assert len(api.requests) == 2  # the key check, then one refused listing: no retries


def test_debug_shows_the_traceback(tmp_path, sim):
    result = run_main(tmp_path, "--debug", env=env_for(sim.base_url, "sk_live_wrong"))
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "The API key was rejected" in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--start-date", "yesterday"],
         "start_date = 'yesterday' is not valid: use an ISO 8601 date or timestamp (e.g."
         " 2026-01-31 or 2026-01-31T08:00:00Z) from 2000-01-01 to 2100-01-01 (default all"
         " history)."),
        (["--end-date", "2026-13-45"],
         "end_date = '2026-13-45' is not valid: use an ISO 8601 date or timestamp (e.g."
         " 2026-01-31 or 2026-01-31T08:00:00Z) from 2000-01-01 to 2100-01-01 (default up to"
         " now)."),
        (["--start-date", "2026-02-01", "--end-date", "2026-01-01"],
         "start_date 2026-02-01 is not before end_date 2026-01-01: swap them or widen the range."),
        (["--status", "done"],
         "status 'done' is not one of Deck's values: queued, running, canceling,"
         " interaction_required, review_required, completed, canceled, failed."),
        (["--outcome", "ok"],
         "outcome 'ok' is not one of Deck's values: success, failure, unknown."),
    ],
)
def test_bad_options_are_rejected_before_any_request(tmp_path, sim, args, expected):
    result = run_main(tmp_path, *args, env=env_for(sim.base_url))
    assert result.returncode == 2
    assert result.stderr == f"Deck sync failed: {expected}\n"
    assert sim.requests == []


def test_plain_http_base_url_is_refused_for_remote_hosts(tmp_path):
    result = run_main(tmp_path, env=env_for("http://api.deck.co/v2"))
    assert result.returncode == 2
    assert result.stderr == (
        "Deck sync failed: base_url 'http://api.deck.co/v2' uses plain http: the API key would"
        " travel unencrypted. Use https (plain http is accepted only for loopback hosts such as"
        " 127.0.0.1).\n"
    )


def test_empty_key_is_refused(tmp_path, sim):
    result = run_main(tmp_path, env=env_for(sim.base_url, "  "))
    assert result.returncode == 2
    assert result.stderr == (
        "Deck sync failed: api_key is empty: set SOURCES__DECK__API_KEY or api_key under"
        " [sources.deck] in .dlt/secrets.toml (see .dlt/secrets.toml.example).\n"
    )
    assert sim.requests == []


def test_missing_key_says_where_to_put_it(tmp_path):
    result = run_main(tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "Deck sync failed: no API key. Set SOURCES__DECK__API_KEY, or api_key under"
        " [sources.deck] in .dlt/secrets.toml (copy .dlt/secrets.toml.example), or try --demo.\n"
    )


def test_a_redirect_is_not_followed_and_the_key_stays_home(tmp_path, sim):
    other = DeckSimulator(seed=2, runs=5).start()
    try:
        sim.inject("redirect", location=other.base_url + "/task-runs", path="/task-runs")
        result = run_main(tmp_path, env=env_for(sim.base_url))
    finally:
        other.stop()
    assert result.returncode == 1
    assert "Deck answered GET /v2/task-runs with a redirect (HTTP 302 to" in result.stderr
    assert other.requests == []
