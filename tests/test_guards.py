"""Trust at the edges of Deck's contract: run ids in URLs, base_url as the HTTP stack reads it,
an API key that cannot be a header, answers that never finish, listings that never progress, and
a rate budget that holds however late requests reach Deck.

Real HTTP against the simulator, real DuckDB, the CLI as a subprocess where the user's view
(stderr, exit code) is the point.
"""

import logging
import re
import traceback
from pathlib import Path

import duckdb
import pytest
import requests
from deck.api.client import DeckClient
from deck.api.ratelimit import RateLimiter
from deck.api.session import RetryPolicy
from deck.api.urls import mask_url, validate_base_url
from deck.core.errors import DeckConfigError
from deck.core.redact import scrub
from deck_simulator import DEMO_API_KEY, DeckSimulator
from support import Warehouse, assert_matches_ground_truth, make_simulator
from support.cli import files_containing, run_main

FIX_BASE_URL = (
    " Set [sources.deck] base_url (or SOURCES__DECK__BASE_URL) to an address like"
    " https://api.deck.co/v2."
)


def env_for(sim: DeckSimulator, **extra: str) -> dict:
    env = {"SOURCES__DECK__API_KEY": sim.api_key, "SOURCES__DECK__BASE_URL": sim.base_url}
    env.update({f"SOURCES__DECK__{k.upper()}": v for k, v in extra.items()})
    return env


def failure_line(stderr: str) -> str:
    """The last line the CLI printed: its one-paragraph explanation of the failure."""
    return stderr.rstrip("\n").rsplit("\n", 1)[-1]


def retry_warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and r.name == "deck" and "retry" in r.getMessage()]


# ---- 7. run ids in URLs -------------------------------------------------------------------------

ODD_IDS = ["trun_a/b", "trun_q?x=1", "trun_h#frag", "trun_p%2Fx", "trun_50%off", "../test", ".."]


def test_run_ids_with_reserved_characters_are_fetched_at_their_own_url(simulator, warehouse):
    simulator.add_runs(len(ODD_IDS), status="running", ids=ODD_IDS)
    for run_id in ODD_IDS:
        simulator.update_run(run_id, status="running")  # stays running until the test says
    # a run whose id is what `trun_p%2Fx` would decode to if it were sent unencoded
    simulator.add_runs(1, status="completed", ids=["trun_p/x"])
    simulator.advance(3600, new_runs=30)  # later runs: the odd ones are below the watermark
    warehouse.sync()
    simulator.advance(60)
    for run_id in ODD_IDS:
        simulator.update_run(run_id, status="completed", result="success", runtime_ms=1234)
    simulator.clear_requests()

    warehouse.sync()

    assert_matches_ground_truth(warehouse, simulator.runs())
    fetched = sorted(r.path for r in simulator.requests if r.path.startswith("/v2/task-runs/"))
    assert fetched == sorted([
        "/v2/task-runs/trun_a%2Fb", "/v2/task-runs/trun_q%3Fx%3D1", "/v2/task-runs/trun_h%23frag",
        "/v2/task-runs/trun_p%252Fx", "/v2/task-runs/trun_50%25off", "/v2/task-runs/..%2Ftest",
        "/v2/task-runs/..",
    ])
    assert all(r.status == 200 for r in simulator.requests)
    assert [r.path for r in simulator.requests].count("/v2/test") == 1  # the key check only


# ---- 8. base_url as the HTTP stack connects ------------------------------------------------------

@pytest.mark.parametrize("url, why", [
    ("http://evil.example\\@127.0.0.1/v2", "contains a backslash"),
    ("https://api.deck.co\\@evil.example/v2", "contains a backslash"),
    ("http://user:pw@127.0.0.1/v2", "contains a user name or password"),
    ("https://evil.example@api.deck.co/v2", "contains a user name or password"),
    ("http://127.0.0.1 /v2", "contains whitespace or a control character"),
    ("https://api.deck.co/v2\r\nX-Injected: 1", "contains whitespace or a control character"),
    ("https://api.deck.co\t/v2", "contains whitespace or a control character"),
    ("https://api.deck.co/v2?limit=1", "has a query (?...) or fragment (#...)"),
    ("https://api.deck.co/v2#top", "has a query (?...) or fragment (#...)"),
    ("ftp://api.deck.co/v2", "is not an http(s) URL"),
    ("https:///v2", "is not a URL"),
    ("http://127.0.0.1:99999/v2", "is not a URL"),
    ("http://api.deck.co/v2", "uses plain http"),
    ("http://127.0.0.1.evil.example/v2", "uses plain http"),
    ("http://localhost.evil.example/v2", "uses plain http"),
])
def test_validate_base_url_refuses_what_parsers_read_differently(url, why):
    with pytest.raises(DeckConfigError) as refused:
        validate_base_url(url)
    assert why in str(refused.value)
    assert "pw@" not in str(refused.value)


@pytest.mark.parametrize("url, expected", [
    ("https://api.deck.co/v2", "https://api.deck.co/v2"),
    ("https://api.deck.co/v2/", "https://api.deck.co/v2"),
    ("  https://api.deck.co/v2\n", "https://api.deck.co/v2"),
    ("http://127.0.0.1:8765/v2", "http://127.0.0.1:8765/v2"),
    ("http://127.9.9.9:8765/v2", "http://127.9.9.9:8765/v2"),
    ("http://localhost:8765/v2", "http://localhost:8765/v2"),
    ("http://[::1]:8765/v2", "http://[::1]:8765/v2"),
])
def test_validate_base_url_accepts_https_and_loopback_http(url, expected):
    assert validate_base_url(url) == expected


@pytest.mark.unit
def test_mask_url_hides_a_password_whatever_parser_would_find_it():
    assert mask_url("http://deck:s3cret@127.0.0.1/v2") == "http://deck:***@127.0.0.1/v2"
    assert mask_url("https://u:pa/ss@host/v2") == "https://u:***@host/v2"
    assert mask_url("https://u:p@ss@host/v2") == "https://u:***@host/v2"
    assert mask_url("https://host/v2\r\n") == "https://host/v2\\r\\n"


def test_base_url_with_a_backslash_is_refused_before_any_request(tmp_path, simulator):
    url = f"http://evil.example\\@127.0.0.1:{simulator.port}/v2"
    result = run_main(tmp_path, env={**env_for(simulator, request_max_attempts="1"),
                                    "SOURCES__DECK__BASE_URL": url})

    assert result.returncode == 2
    assert result.stderr == (
        f"Deck sync failed: base_url 'http://evil.example\\@127.0.0.1:{simulator.port}/v2'"
        " contains a backslash: HTTP libraries disagree on which host such a URL names, so the"
        " API key could be sent to another host than the one you see." + FIX_BASE_URL + "\n"
    )
    assert simulator.requests == []


def test_base_url_with_a_password_is_refused_without_echoing_it(tmp_path, simulator):
    url = f"http://deck:hunter2-PASSWORD@127.0.0.1:{simulator.port}/v2"
    result = run_main(tmp_path, env={**env_for(simulator), "SOURCES__DECK__BASE_URL": url})

    assert result.returncode == 2
    assert result.stderr == (
        f"Deck sync failed: base_url 'http://deck:***@127.0.0.1:{simulator.port}/v2' contains a"
        " user name or password (user:password@): Deck authenticates with the API key alone;"
        " remove it." + FIX_BASE_URL + "\n"
    )
    assert "hunter2" not in result.stdout + result.stderr
    assert files_containing(tmp_path, b"hunter2") == []
    assert simulator.requests == []


# ---- 9. an API key with CR/LF ------------------------------------------------------------------

CANARY_CRLF = "sk_live_CANARY_9e2b4d\r\nX-Leak: CANARYTAIL_51c8"
CANARY_PARTS = ("CANARY_9e2b4d", "CANARYTAIL_51c8", "X-Leak")
KEY_REFUSED = (
    "Deck sync failed: api_key contains a line break, a space, a control or a non-ASCII"
    " character, so it cannot be sent in an HTTP header (the key is not shown here). Copy the key"
    " again into SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml; it"
    " looks like sk_live_ followed by letters and digits.\n"
)


def test_api_key_with_a_line_break_is_refused_without_echoing_it(tmp_path, simulator):
    env = {**env_for(simulator), "SOURCES__DECK__API_KEY": CANARY_CRLF}
    plain = run_main(tmp_path, env=env)
    debug = run_main(tmp_path, "--debug", env={**env, "RUNTIME__LOG_LEVEL": "DEBUG"})

    assert plain.returncode == 2 and debug.returncode == 2
    assert plain.stderr == KEY_REFUSED
    for output in (plain.stdout, plain.stderr, debug.stdout, debug.stderr):
        for part in CANARY_PARTS:
            assert part not in output
    # dlt's trace.pickle, pipeline state, schemas and the warehouse folder
    assert (tmp_path / "dlt-data").exists()
    for part in CANARY_PARTS:
        assert files_containing(tmp_path, part.encode()) == []
    assert simulator.requests == []


def test_an_exception_carrying_the_key_leaves_the_client_without_it(simulator):
    client = DeckClient(simulator.base_url, DEMO_API_KEY)
    client._rest.auth.token = CANARY_CRLF  # a key that got past the configuration check
    client.session.secret = CANARY_CRLF
    try:
        with pytest.raises(Exception) as raised:
            client.check_credentials()
    finally:
        client.close()

    text = "".join(traceback.format_exception(raised.value)) + repr(raised.value.args)
    assert "Invalid header value b'Bearer [api_key hidden]'" in text
    for part in CANARY_PARTS:
        assert part not in text
    assert raised.value.__context__ is None and raised.value.__cause__ is None


@pytest.mark.unit
def test_scrub_removes_every_form_of_the_key():
    key = "sk_live_AB12cd34\r\nEF56gh78"
    texts = [
        f"Invalid header value {('Bearer ' + key).encode()!r}",
        f"header {key!r} rejected",
        f"raw: Bearer {key}",
        "split: sk_live_AB12cd34 and EF56gh78",
    ]
    for text in texts:
        cleaned = scrub(text, key)
        assert "AB12cd34" not in cleaned and "EF56gh78" not in cleaned, cleaned
        assert "[api_key hidden]" in cleaned
    assert scrub("nothing secret here", key) == "nothing secret here"


# ---- 10. hangs: a total deadline per request, and listings that make no progress --------------

@pytest.fixture
def populated(simulator):
    simulator.advance(3600 * 24, new_runs=150)
    return simulator


def test_a_trickled_body_is_cut_at_the_request_deadline_and_retried(populated, warehouse, caplog):
    populated.inject("trickle", delay=0.05, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    result = warehouse.sync(read_timeout_s=5, request_deadline_s=0.5)

    warnings = retry_warnings(caplog)
    assert len(warnings) == 1 and result.retries == 1
    assert re.fullmatch(
        r"Deck API: GET /v2/task-runs got no complete answer within the 0\.5 s request deadline"
        r" \(request_deadline_s\); retry 1 of 7 in [\d.]+ s",
        warnings[0],
    ), warnings
    assert populated.pending_faults() == 0
    assert_matches_ground_truth(warehouse, populated.runs())


def test_trickled_headers_are_cut_at_a_deadline_that_follows_read_timeout(
    populated, warehouse, caplog
):
    populated.inject("trickle_headers", delay=0.05, path="/task-runs")
    caplog.set_level(logging.WARNING, logger="deck")

    warehouse.sync(read_timeout_s=1.5)  # no request_deadline_s: twice the read timeout

    warnings = retry_warnings(caplog)
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "Deck API: GET /v2/task-runs got no complete answer within the 3 s request deadline"
    ), warnings
    assert_matches_ground_truth(warehouse, populated.runs())


def test_a_rate_slot_frees_when_the_headers_arrive_not_when_a_slow_body_ends(
    simulator, monkeypatch
):
    # Deck counted the request before it answered: holding the slot through the body's
    # transfer (slow under a busy process) only wastes budget.
    simulator.inject("trickle", delay=0.002, path="/task-runs")
    events: list[str] = []
    limiter = RateLimiter(5, 60.0)
    release = limiter.release
    monkeypatch.setattr(limiter, "release", lambda token: (events.append("slot"), release(token)))
    read_body = requests.Response.content.fget
    monkeypatch.setattr(
        requests.Response, "content",
        property(lambda response: (read_body(response), events.append("body"))[0]),
    )
    client = DeckClient(simulator.base_url, DEMO_API_KEY, limiter=limiter)
    try:
        page = next(client.list_task_runs({}))
    finally:
        client.close()

    assert page.items == [] and events[:2] == ["slot", "body"]


@pytest.mark.unit
def test_retry_policy_deadline_defaults_to_twice_the_read_timeout_unless_set():
    assert RetryPolicy().deadline_s == 120.0
    assert RetryPolicy(read_timeout_s=5).deadline_s == 10.0
    assert RetryPolicy(read_timeout_s=5, request_deadline_s=7).deadline_s == 7.0
    with pytest.raises(DeckConfigError, match=r"request_deadline_s = 0 is not valid: use a numb"):
        RetryPolicy(request_deadline_s=0)


def test_a_server_that_never_finishes_answering_fails_naming_the_deadline(tmp_path, populated):
    populated.inject("trickle", delay=0.05, times=2, path="/task-runs")
    env = env_for(populated, request_max_attempts="2", read_timeout_s="5",
                  request_deadline_s="0.5", backoff_base_s="0.01", backoff_cap_s="0.02")

    result = run_main(tmp_path, env=env)

    assert result.returncode == 1
    assert re.search(
        r"WARNING Deck API: GET /v2/task-runs got no complete answer within the 0\.5 s request"
        r" deadline \(request_deadline_s\); retry 1 of 1 in [\d.]+ s\n",
        result.stderr,
    ), result.stderr
    assert re.fullmatch(
        r"Deck sync failed: Deck API kept failing for GET /v2/task-runs: 2 attempts, the last one"
        r" got no complete answer within the 0\.5 s request deadline \(request_deadline_s\)\."
        r" This is usually temporary \(rate limit or an outage\): run the sync again later;"
        r" nothing was lost, it resumes where the last successful load stopped\."
        r" \(request_id req_[0-9a-f]{24}\)",
        failure_line(result.stderr),
    ), result.stderr
    assert populated.pending_faults() == 0
    assert not (tmp_path / "deck_task_runs.duckdb").exists() or _runs_in(tmp_path) == set()


def _runs_in(tmp_path: Path) -> set:
    with duckdb.connect(str(tmp_path / "deck_task_runs.duckdb"), read_only=True) as con:
        tables = {r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'deck'"
        ).fetchall()}
        if "task_runs" not in tables:
            return set()
        return {r[0] for r in con.execute("SELECT id FROM deck.task_runs").fetchall()}


def _state_rows(tmp_path: Path) -> list:
    with duckdb.connect(str(tmp_path / "deck_task_runs.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT version, state FROM deck._dlt_pipeline_state ORDER BY version"
        ).fetchall()


def test_empty_pages_that_say_has_more_stop_the_walk_with_a_contract_message(
    tmp_path, populated
):
    env = env_for(populated, max_workers="1")
    assert run_main(tmp_path, env=env).returncode == 0
    before_runs, before_state = _runs_in(tmp_path), _state_rows(tmp_path)
    assert before_runs == {r["id"] for r in populated.runs()}
    populated.advance(3600, new_runs=20)
    populated.inject("has_more_lie", times=50, path="/task-runs")
    populated.clear_requests()

    result = run_main(tmp_path, env=env)

    assert result.returncode == 1
    assert re.fullmatch(
        r"Deck sync failed: Deck broke its contract: 3 pages in a row came back empty while"
        r" saying has_more=true, each with a new next_cursor, so the listing makes no progress"
        r" and following it could go on forever \(spending the organization's rate limit\)\."
        r" Nothing from this sync was saved; run it again, and report the request_id to Deck if"
        r" it repeats\. \(request_id req_[0-9a-f]{24}\)",
        failure_line(result.stderr),
    ), result.stderr
    assert [r.path for r in populated.requests] == ["/v2/test"] + ["/v2/task-runs"] * 3
    assert populated.pending_faults() == 47
    assert _runs_in(tmp_path) == before_runs and _state_rows(tmp_path) == before_state

    populated.clear_faults()
    assert run_main(tmp_path, env=env).returncode == 0
    assert _runs_in(tmp_path) == {r["id"] for r in populated.runs()}


# ---- the rate budget holds however late requests reach Deck ------------------------------------

def test_the_rate_budget_holds_when_a_request_reaches_deck_late(tmp_path: Path):
    """Deck counts a request when it receives it, which can be long after the client sent it (a
    starved process, a slow proxy). The simulator's `slow` fault delays the counting of the first
    request (the key check) by 0.8 s; a limiter that frees a slot `period` after *sending* then
    lets a sixth request through while Deck still counts five in its window."""
    sim = make_simulator(seed=41, runs=200, history_days=2, rate_limit=(5, 1.0))
    try:
        sim.inject("slow", delay=0.8, path="/test")
        wh = Warehouse(tmp_path / "w.duckdb", tmp_path / "dlt", sim)
        result = wh.sync(max_workers=1, page_size=20, rate_limit_requests=5,
                         rate_limit_period_s=1.0)

        assert len(sim.requests) >= 11
        assert sim.rate_limited_count == 0
        assert result.retries == 0
        assert_matches_ground_truth(wh, sim.runs())
    finally:
        sim.stop()


# ---- the simulator's new faults behave as documented ------------------------------------------

def test_simulator_trickle_faults_still_deliver_the_whole_answer(simulator):
    headers = {"Authorization": f"Bearer {simulator.api_key}"}
    simulator.inject("trickle_headers", delay=0.001, path="/test")
    simulator.inject("trickle", delay=0.001, path="/test")
    for _ in range(2):
        answer = requests.get(f"{simulator.base_url}/test", headers=headers, timeout=10)
        assert answer.status_code == 200
        assert answer.json() == {"status": "ready", "environment": "live"}
    assert simulator.pending_faults() == 0


def test_simulator_has_more_lie_answers_empty_pages_with_fresh_cursors(simulator):
    simulator.add_runs(3)
    simulator.inject("has_more_lie", times=2, path="/task-runs")
    headers = {"Authorization": f"Bearer {simulator.api_key}"}
    pages = [requests.get(f"{simulator.base_url}/task-runs", headers=headers, timeout=10).json()
             for _ in range(3)]
    assert [(p["data"], p["has_more"]) for p in pages[:2]] == [([], True), ([], True)]
    assert pages[0]["next_cursor"] != pages[1]["next_cursor"]
    assert len(pages[2]["data"]) == 3  # the fault is used up: a normal page again


def test_simulator_add_runs_takes_explicit_ids(simulator):
    assert simulator.add_runs(2, ids=["a/b", "../test"]) == ["a/b", "../test"]
    assert simulator.run("a/b")["id"] == "a/b"
    with pytest.raises(ValueError):
        simulator.add_runs(1, ids=["a/b"])
    with pytest.raises(ValueError):
        simulator.add_runs(2, ids=["x"])
