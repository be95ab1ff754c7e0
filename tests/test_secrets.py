"""The API key appears nowhere but in the Authorization header sent to base_url's host."""

import json
import re
import subprocess
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import duckdb
import pytest
from deck.core.redact import scrub
from deck_simulator import DeckSimulator
from support.cli import files_containing, project_env, run_cli, run_main

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


# ---- the key quoted back by Deck -----------------------------------------------------------------
#
# Deck (or a gateway before it) may quote the request back in any field of its answers: error
# messages, request_id, traceId, header values. The simulator's `echo` puts a text in all of them
# at once (over real HTTP); the text holds the key in the forms a server writes it: as is,
# URL-encoded, JSON-escaped (PHP's `\/`, .NET's `\u002B`), apart from "Bearer", cut short, and
# without its sk_live_ prefix. The key has characters that URL and JSON escaping change.

ECHOED_KEY = "sk_live_CANARY+7f3a/9c1e=5b2d4f60"
MARK = b"CANARY"  # in every form of the key the echo holds; in nothing else a sync writes
JSON_ESCAPED = ECHOED_KEY.replace("/", "\\/").replace("+", "\\u002B")
ECHO = " | ".join([
    f"Authorization: Bearer {ECHOED_KEY}",
    f"GET /v2/task-runs?api_key={quote(ECHOED_KEY, safe='')}",
    '{"Authorization":"Bearer ' + JSON_ESCAPED + '"}',
    f"Bearer%20{quote(ECHOED_KEY, safe='')}",
    f"Authorization: Bearer {ECHOED_KEY[:18]}...",
    f"token {ECHOED_KEY[len('sk_live_'):]}",
])
HIDDEN = " | ".join([
    "Authorization: Bearer [api_key hidden]",
    "GET /v2/task-runs?api_key=[api_key hidden]",
    '{"Authorization":"Bearer [api_key hidden]"}',
    "Bearer%20[api_key hidden]",
    "Authorization: Bearer [api_key hidden]",
    "token [api_key hidden]",
])
RETRIES = {
    "SOURCES__DECK__REQUEST_MAX_ATTEMPTS": "3",
    "SOURCES__DECK__BACKOFF_BASE_S": "0.01",
    "SOURCES__DECK__BACKOFF_CAP_S": "0.02",
}


@dataclass
class Echoed:
    """One CLI sync against a Deck that quotes the key back, and everything it left."""

    result: subprocess.CompletedProcess
    checkout: Path
    base_url: str  # the simulator's, stopped since

    def warehouse_rows_with(self, needle: str) -> list[tuple[str, str]]:
        """(table.column, value) of every text value in the DuckDB warehouse holding `needle`."""
        path = self.checkout / "deck_task_runs.duckdb"
        if not path.exists():
            return []
        found = []
        with duckdb.connect(str(path), read_only=True) as con:
            columns = con.execute(
                "SELECT table_schema, table_name, column_name FROM information_schema.columns"
                " WHERE data_type = 'VARCHAR'"
            ).fetchall()
            for schema, table, column in columns:
                rows = con.execute(
                    f'SELECT "{column}" FROM "{schema}"."{table}" WHERE contains("{column}", ?)',
                    [needle],
                ).fetchall()
                found += [(f"{schema}.{table}.{column}", value) for (value,) in rows]
        return found

    def assert_key_nowhere(self) -> None:
        for name, text in (("stdout", self.result.stdout), ("stderr", self.result.stderr)):
            at = text.find(MARK.decode())
            assert at < 0, f"{name}: ...{text[max(0, at - 120):at + 60]}..."
        # dlt's state, schemas, load packages and trace, and the DuckDB file itself
        assert files_containing(self.checkout, MARK) == []
        assert self.warehouse_rows_with(MARK.decode()) == []

    def lines(self, start: str) -> list[str]:
        """The stderr lines holding `start`, from where it starts (log lines lose their time)."""
        lines = self.result.stderr.splitlines()
        return [line[line.find(start):] for line in lines if start in line]


def sync_echoing(tmp_path: Path, kind: str, *, path: str = "/task-runs", times: int = 1,
                 events: bool = False, raw_record: bool = False, **env: str) -> Echoed:
    sim = DeckSimulator(seed=4, runs=20, history_days=2, api_key=ECHOED_KEY).start()
    base_url = sim.base_url
    try:
        if raw_record:  # a record without an id: quarantined, with the request_id of its page
            sim.add_raw_record({"status": "completed"}, created_at=sim.now - timedelta(hours=1))
        sim.inject(kind, echo=ECHO, path=path, times=times)
        result = run_main(tmp_path, "--debug", env={  # tracebacks and dlt's debug log too
            "RUNTIME__LOG_LEVEL": "DEBUG",
            "SOURCES__DECK__API_KEY": ECHOED_KEY,
            "SOURCES__DECK__BASE_URL": sim.base_url,
            "SOURCES__DECK__EVENTS": "true" if events else "false",
            **RETRIES,
            **env,
        })
    finally:
        sim.stop()
    assert sim.pending_faults() == 0  # every echoing answer was sent
    return Echoed(result, tmp_path, base_url)


def test_a_retried_503_quoting_the_key_is_logged_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "503")

    assert echoed.result.returncode == 0, echoed.result.stderr
    assert echoed.lines("Deck API:") == [
        "Deck API: GET /v2/task-runs got HTTP 503 (An internal error occurred. Request:"
        f" {HIDDEN} [api/api_error]) (request_id req_{HIDDEN}); retry 1 of 2 in 0.01 s"
    ]
    echoed.assert_key_nowhere()


def test_a_retried_429_quoting_the_key_in_its_request_id_is_logged_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "429")

    assert echoed.result.returncode == 0, echoed.result.stderr
    assert echoed.lines("Deck API:") == [
        "Deck API: GET /v2/task-runs got HTTP 429 (Rate limit exceeded. Retry later. Request:"
        f" {HIDDEN} [rate_limit/rate_limit_exceeded]) (request_id req_{HIDDEN}); retry 1 of 2"
        " in 0.01 s"
    ]
    echoed.assert_key_nowhere()


def test_a_retried_non_json_answer_quoting_the_key_in_its_headers_is_logged_without_it(tmp_path):
    # the body is HTML: the request_id comes from X-Request-Id, and Content-Type is shown
    echoed = sync_echoing(tmp_path, "non_json")

    assert echoed.result.returncode == 0, echoed.result.stderr
    assert echoed.lines("Deck API:") == [
        "Deck API: GET /v2/task-runs got a 200 whose body is not JSON (Content-Type text/html;"
        f" echo={HIDDEN}) (request_id req_{HIDDEN}); retry 1 of 2 in 0.01 s"
    ]
    echoed.assert_key_nowhere()


def test_retries_running_out_on_503s_quoting_the_key_fail_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "503", times=3)

    assert echoed.result.returncode == 1
    assert len(echoed.lines("Deck API: GET /v2/task-runs got HTTP 503")) == 2
    assert echoed.lines("Deck sync failed:") == [
        "Deck sync failed: Deck API kept failing for GET /v2/task-runs: 3 attempts, the last one"
        f" got HTTP 503 (An internal error occurred. Request: {HIDDEN} [api/api_error]). This is"
        " usually temporary (rate limit or an outage): run the sync again later; nothing was"
        " lost, it resumes where the last successful load stopped."
        f" (request_id req_{HIDDEN})"
    ]
    echoed.assert_key_nowhere()


def test_a_400_quoting_the_key_in_its_field_errors_fails_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "400")

    assert echoed.result.returncode == 1
    assert echoed.lines("Deck sync failed:") == [
        "Deck sync failed: Deck API refused GET /v2/task-runs with HTTP 400. Deck said:"
        f" created_after: The value is not a valid date.; Request: {HIDDEN}. The request was"
        f" invalid: check the filters and dates you passed. (request_id req_{HIDDEN})"
    ]
    echoed.assert_key_nowhere()


def test_a_401_quoting_the_key_fails_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "401", path="/test")

    assert echoed.result.returncode == 1
    assert echoed.lines("Deck sync failed:") == [
        "Deck sync failed: The API key was rejected (HTTP 401 for GET /v2/test). Deck said:"
        f" Invalid API key provided. Request: {HIDDEN} [auth/unauthorized]. Check"
        " SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml: it must"
        " be a live secret key (sk_live_...) of the organization whose runs you sync."
        f" (request_id req_{HIDDEN})"
    ]
    echoed.assert_key_nowhere()


def test_a_redirect_quoting_the_key_in_its_location_fails_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "redirect")

    assert echoed.result.returncode == 1
    (line,) = echoed.lines("Deck sync failed:")
    assert line.startswith("Deck sync failed: Deck answered GET /v2/task-runs with a redirect"
                           f" (HTTP 302 to {echoed.base_url}/task-runs?")
    assert f"?echo={HIDDEN}); redirects are not followed" in line
    assert line.endswith(f"(request_id req_{HIDDEN})")
    echoed.assert_key_nowhere()


def test_a_page_of_a_broken_shape_quoting_the_key_in_its_request_id_fails_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "bad_shape")

    assert echoed.result.returncode == 1
    assert echoed.lines("Deck sync failed:") == [
        "Deck sync failed: Deck returned a page that is not the documented shape (expected an"
        " object with a `data` list and a boolean `has_more`, got ['items', 'request_id'])."
        " Nothing from this sync was saved; run it again, and report the request_id to Deck if"
        f" it repeats. (request_id req_{HIDDEN})"
    ]
    echoed.assert_key_nowhere()


def test_a_quarantined_record_on_a_page_quoting_the_key_is_stored_and_warned_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "echo", raw_record=True)

    assert echoed.result.returncode == 3, echoed.result.stderr
    assert echoed.lines("Quarantined a task run") == [
        f"Quarantined a task run Deck returned (request_id req_{HIDDEN}): The record has no id,"
        " so it cannot be merged. It is kept whole in task_runs_rejected and retried at the"
        " next sync; the runs after it load normally."
    ]
    assert echoed.warehouse_rows_with("req_") == [
        ("deck.task_runs_rejected.request_id", f"req_{HIDDEN}")
    ]
    echoed.assert_key_nowhere()


def test_a_missing_events_endpoint_quoting_the_key_is_warned_without_it(tmp_path):
    echoed = sync_echoing(tmp_path, "404", path="/events", events=True)

    assert echoed.result.returncode == 0, echoed.result.stderr
    assert echoed.lines("Deck has no GET /events") == [
        f"Deck has no GET /events for this key (HTTP 404, request_id req_{HIDDEN}), so"
        " task_run_events was not loaded; task_runs loaded normally. Set events = false in"
        " [sources.deck] (or pass --no-events) if this organization's API has no events."
    ]
    echoed.assert_key_nowhere()


# ---- the scrubber: every form of the key --------------------------------------------------------

# Each form the scrubber missed before it knew encodings (the key as is, its repr and its pieces
# cut at control characters are in test_guards.py).
KEY_FORMS = {
    "URL-encoded": (f"?api_key={quote(ECHOED_KEY, safe='')}", "?api_key=[api_key hidden]"),
    "URL-encoded in lower case": ("k=" + re.sub("%..", lambda m: m.group().lower(),
                                                quote(ECHOED_KEY, safe="")),
                                  "k=[api_key hidden]"),
    "URL-encoded twice": (f"?next={quote(quote(ECHOED_KEY, safe=''), safe='')}",
                          "?next=[api_key hidden]"),
    "JSON-escaped": ('{"auth":"Bearer ' + JSON_ESCAPED + '"}',
                     '{"auth":"Bearer [api_key hidden]"}'),
    "JSON-escaped in JSON": (json.dumps('{"auth":"' + JSON_ESCAPED + '"}'),
                             json.dumps('{"auth":"[api_key hidden]"}')),
    "split from Bearer by a line break, cut short": (
        f"Authorization: Bearer\r\n\t{ECHOED_KEY[:14]}...",
        "Authorization: Bearer\r\n\t[api_key hidden]",
    ),
    "split from Bearer by an escaped line break, JSON-escaped": (
        f'"Bearer\\n{JSON_ESCAPED}"', '"Bearer\\n[api_key hidden]"'
    ),
    "split from Bearer by %20, URL-encoded": (f"Bearer%20{quote(ECHOED_KEY, safe='')}",
                                              "Bearer%20[api_key hidden]"),
    "split from Bearer by +, URL-encoded": (f"Bearer+{quote(ECHOED_KEY, safe='')}",
                                            "Bearer+[api_key hidden]"),
    "broken across lines": (f"key: {ECHOED_KEY[:20]}\n  {ECHOED_KEY[20:]}.",
                            "key: [api_key hidden]."),
    "cut short after Bearer": (f"Bearer {ECHOED_KEY[:14]}...", "Bearer [api_key hidden]"),
    "without its prefix": (f"token={ECHOED_KEY[8:]}", "token=[api_key hidden]"),
}


@pytest.mark.unit
@pytest.mark.parametrize("form", KEY_FORMS)
def test_scrub_hides_the_key_in_every_form_a_server_may_quote_it(form):
    text, expected = KEY_FORMS[form]

    assert scrub(text, ECHOED_KEY) == expected


BEARER_TEXTS = {
    # a word after "Bearer" is not a credential: left as it is
    "Bearer of news": "Bearer of news",
    "the Bearer token expired": "the Bearer token expired",
    "Authorization: Bearer\r\n": "Authorization: Bearer\r\n",
    # what looks like one is hidden, whoever's it is: a key's prefix, or 16 characters or more
    "Authorization: Bearer sk_live_7f3a, cut short": "Authorization: Bearer [api_key hidden],"
                                                     " cut short",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x": "Bearer [api_key hidden]",
    "Bearer%20abcdefghijklmnop": "Bearer%20[api_key hidden]",
}


@pytest.mark.unit
@pytest.mark.parametrize("text", BEARER_TEXTS)
def test_scrub_hides_a_bearer_credential_but_not_the_word_after_bearer(text):
    assert scrub(text) == BEARER_TEXTS[text]


# ---- an error no paragraph explains (review of issue 22) ----------------------------------------
#
# Anything the CLI has no paragraph for (here: DLT_DATA_DIR is a regular file, a NotADirectoryError
# from creating the working folder) is one scrubbed paragraph too, never Python's traceback; with
# --debug the traceback is logged, scrubbed, also by dlt's JSON log format, which formats the
# exception itself. The file's name is the canary: any text quoting the path quotes the key.

UNEXPLAINED = re.compile(
    r"Deck sync failed: an unexpected error: NotADirectoryError: \[Errno 20\] Not a directory:"
    r" '[^']*/\[api_key hidden\]/pipelines[^']*'\. Nothing was committed after the last load"
    r" that completed; (run again with --debug for the traceback|the traceback is above), and"
    r" report it if the message does not show the cause\."
)


def sync_into_a_file(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    data_dir = tmp_path / CANARY
    data_dir.write_text("not a folder")
    result = run_cli(tmp_path, *args, env={
        "SOURCES__DECK__API_KEY": CANARY,
        "SOURCES__DECK__BASE_URL": "http://127.0.0.1:9/v2",  # never reached
        "DLT_DATA_DIR": str(data_dir),
        **env,
    })
    for output in (result.stdout, result.stderr):
        assert CANARY[8:] not in output, output
    assert result.returncode == 1, result.stderr
    return result


@pytest.mark.parametrize("args", [("--reset-state",), ()], ids=["reset-state", "sync"])
def test_an_error_no_paragraph_explains_is_one_scrubbed_paragraph(tmp_path, args):
    result = sync_into_a_file(tmp_path, *args)

    [paragraph] = result.stderr.splitlines()
    assert UNEXPLAINED.fullmatch(paragraph), result.stderr
    assert "run again with --debug" in paragraph


# dlt's JSON log format; its default; a format dlt fails to start with ("TEXT" is no format
# string), so that the key is read from the environment, not through dlt
@pytest.mark.parametrize("log_format", ["JSON", None, "TEXT"])
def test_with_debug_its_traceback_is_logged_scrubbed_in_every_log_format(tmp_path, log_format):
    env = {"RUNTIME__LOG_FORMAT": log_format} if log_format else {}
    result = sync_into_a_file(tmp_path, "--reset-state", "--debug", **env)

    lines = result.stderr.splitlines()
    assert UNEXPLAINED.fullmatch(lines[-1]) and "the traceback is above" in lines[-1], lines[-1]
    traceback = "\n".join(lines[:-1])
    if log_format == "JSON":
        [record] = [json.loads(line) for line in lines if line.startswith("{")]
        assert record["msg"] == "Sync failed"
        traceback = record["exc_info"]
    assert "Traceback (most recent call last):" in traceback
    assert "NotADirectoryError: [Errno 20] Not a directory: '" in traceback
    assert "/[api_key hidden]/pipelines'" in traceback


# ---- the key pasted into another option ---------------------------------------------------------
#
# An option's refusal (options.OPTIONS, dlt's own for a value it cannot coerce) echoes the value,
# and is made before the client ever sees the key: the scrubber knows the key from the start
# (the CLI reads it from the configuration; deck() remembers it before checking its options).

MISPLACED = "sk_live_MISPLACED_4c8e2a6f0b1d3e57"


@pytest.mark.parametrize(
    "option, where",
    [
        ("lookback_s", "env"),  # refused by dlt: not a float
        ("events", "env"),  # refused by dlt: not a bool
        ("start_date", "env"),  # refused by its spec (DeckOptionError)
        ("start_date", "toml"),  # key in secrets.toml, the option in config.toml
    ],
)
def test_a_key_pasted_into_another_option_is_refused_without_being_shown(
    tmp_path, simulator, option, where
):
    env = {"SOURCES__DECK__BASE_URL": simulator.base_url}
    if where == "env":
        env["SOURCES__DECK__API_KEY"] = MISPLACED
        env[f"SOURCES__DECK__{option.upper()}"] = MISPLACED
    else:
        project_env(tmp_path)  # the project's config.toml, copied into tmp_path/.dlt
        settings = tmp_path / ".dlt"
        (settings / "secrets.toml").write_text(f'[sources.deck]\napi_key = "{MISPLACED}"\n')
        config = settings / "config.toml"
        line = f'[sources.deck]\n{option} = "{MISPLACED}"\n'
        config.write_text(config.read_text().replace("[sources.deck]\n", line))

    result = run_main(tmp_path, env=env)

    assert result.returncode == 2, result.stderr
    assert f"Deck sync failed: {option} = '[api_key hidden]' in " in result.stderr
    assert "is not valid: use " in result.stderr
    for output in (result.stdout, result.stderr):
        assert MISPLACED[len("sk_live_"):] not in output
    assert simulator.requests == []


def test_deck_source_refuses_the_key_as_an_option_value_without_showing_it(simulator):
    from deck import deck
    from deck.core.errors import DeckOptionError

    key = "sk_live_INPROCESS_9b7d5f3a1c2e4d68"  # this test's own: no other one remembers it
    with pytest.raises(DeckOptionError) as caught:
        deck(api_key=key, base_url=simulator.base_url, start_date=key)

    assert str(caught.value).startswith("start_date = '[api_key hidden]' is not valid: use ")
    assert key[len("sk_live_"):] not in str(caught.value)
    assert simulator.requests == []


def test_a_key_set_only_in_secrets_toml_is_hidden_when_dlt_cannot_start(tmp_path):
    """dlt fails to start ("TEXT" is no log format), so the key is read without it: from the
    settings file too, not the environment alone. No `sk_` prefix: only remembering it hides it."""
    key = "deck_TOMLONLY_5e1c9a7b3d2f4068"
    project_env(tmp_path)
    (tmp_path / ".dlt" / "secrets.toml").write_text(f'[sources.deck]\napi_key = "{key}"\n')
    data_dir = tmp_path / key
    data_dir.write_text("not a folder")

    result = run_cli(tmp_path, "--reset-state", env={
        "SOURCES__DECK__BASE_URL": "http://127.0.0.1:9/v2",  # never reached
        "DLT_DATA_DIR": str(data_dir),
        "RUNTIME__LOG_FORMAT": "TEXT",
    })

    assert result.returncode == 1, result.stderr
    assert "/[api_key hidden]/pipelines" in result.stderr
    for output in (result.stdout, result.stderr):
        assert key not in output
