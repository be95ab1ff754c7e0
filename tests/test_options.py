"""Unit tests of the options: each concept declared once, checked before any request."""

import inspect
import re
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from deck import deck
from deck.core.errors import DeckConfigError, DeckOptionError
from deck.core.filters import (
    FILTERS,
    Filters,
)
from deck.core.options import (
    OPTION_SPECS,
    SourceOptions,
    check_option,
    unknown_option,
)
from deck.runtime.cli import build_parser, source_options

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

ROOT = Path(__file__).resolve().parents[1]
DECK_PARAMETERS = inspect.signature(deck).parameters


def parse(**overrides):
    options = {
        "start_date": None, "end_date": None, "filters": {}, "lookback_s": 600,
        "max_runs_per_load": 10, "pages_per_window": 2, "max_workers": 1, "max_table_nesting": 2,
    }
    return SourceOptions.parse(**{**options, **overrides})


def test_every_filter_is_a_parameter_of_the_source_and_a_flag_of_the_cli():
    flags = {a.dest for a in build_parser()._actions}
    for spec in FILTERS:
        assert DECK_PARAMETERS[spec.name].default is None, spec.name
        assert spec.name in flags, spec.name


def test_config_toml_documents_the_sources_own_defaults():
    config = tomllib.loads((ROOT / ".dlt" / "config.toml").read_text())["sources"]["deck"]
    text = (ROOT / ".dlt" / "config.toml").read_text()
    for name, value in config.items():
        assert DECK_PARAMETERS[name].default == value, name
    for spec in FILTERS:
        assert f"{spec.name} = " in text, f"{spec.name} is not documented in .dlt/config.toml"


def test_cli_filters_become_source_options_lists_flattened():
    args = build_parser().parse_args(
        ["--status", "failed,canceled", "--status", "completed", "--agent-id", "agt_1"]
    )

    assert source_options(args) == {
        "status": ["failed", "canceled", "completed"], "agent_id": "agt_1"
    }


def test_filters_split_scope_from_state_and_keep_their_old_fingerprint():
    filters = Filters.from_options(
        {"status": "failed,completed", "source_id": ["src_1"], "search": "invoice"}
    )

    assert filters.scope_params() == {"source_id": ["src_1"], "search": "invoice"}
    assert filters.params() == {
        "source_id": ["src_1"], "search": "invoice", "status": ["failed", "completed"]
    }
    assert filters.selects_by_state
    assert filters.matches({"status": "failed"}) and not filters.matches({"status": "running"})
    # the layout state kept before this module existed: a changed string would reset every sync
    assert filters.fingerprint() == (
        "[('search', 'invoice'), ('source_id', ('src_1',)), ('status', ('failed', 'completed'))]"
    )


def test_outcome_filter_compares_the_runs_result():
    filters = Filters.from_options({"outcome": ["failure"]})

    assert filters.matches({"result": "failure"}) and not filters.matches({"result": "success"})


def test_an_unknown_status_is_refused_naming_deck_values():
    with pytest.raises(DeckConfigError) as caught:
        Filters.from_options({"status": ["done"]})

    assert str(caught.value) == (
        "status 'done' is not one of Deck's values: queued, running, canceling,"
        " interaction_required, review_required, completed, canceled, failed."
    )


def test_dates_are_parsed_and_must_be_ordered():
    options = parse(start_date="2026-01-01", end_date="2026-02-01T08:00:00+02:00")

    assert options.start == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert options.end == datetime(2026, 2, 1, 6, tzinfo=timezone.utc)
    with pytest.raises(DeckConfigError, match="is not before end_date"):
        parse(start_date="2026-02-01", end_date="2026-01-01")


def test_lookback_becomes_a_duration():
    assert parse(lookback_s=90).lookback == timedelta(seconds=90)


# ---- every option's range, and the one line that refuses a value outside it -----------------

NAN, INF = float("nan"), float("inf")
DATES = (
    "an ISO 8601 date or timestamp (e.g. 2026-01-31 or 2026-01-31T08:00:00Z) from 2000-01-01"
    " to 2100-01-01"
)
# What each option accepts, as its refusal says it: the specification, written out.
ACCEPTS = {
    "start_date": f"{DATES} (default all history)",
    "end_date": f"{DATES} (default up to now)",
    "max_table_nesting": (
        "a whole number from 1 to 100 (default 2); below 1 each run's `errors` would be stored"
        " as JSON in task_runs instead of the task_runs__errors table, and the SQL models would"
        " report no errors"
    ),
    "page_size": "a whole number from 1 to 100 (default 100)",
    "max_runs_per_load": "a whole number from 1 to 10000000 (default 50000)",
    "pages_per_window": "a whole number from 1 to 10000 (default 25)",
    "max_workers": "a whole number from 1 to 64 (default 6)",
    "rate_limit_requests": (
        "a whole number from 0 to 100000 (default 200); 0 turns the client-side limit off"
    ),
    "rate_limit_period_s": "a number of seconds above 0, up to 3600 (default 10)",
    "request_max_attempts": "a whole number from 1 to 100 (default 8)",
    "backoff_base_s": "a number of seconds above 0, up to 3600 (default 1)",
    "backoff_cap_s": "a number of seconds above 0, up to 3600 (default 30)",
    "connect_timeout_s": "a number of seconds above 0, up to 3600 (default 10)",
    "read_timeout_s": "a number of seconds above 0, up to 3600 (default 60)",
    "request_deadline_s": (
        "a number of seconds above 0, up to 7200 (default twice read_timeout_s)"
    ),
    "lookback_s": "a number of seconds from 0 to 2592000 (default 600)",
    "events": "true or false (default true)",
    "lock_wait_s": (
        "a number of seconds from 0 to 86400 (default 300); 0 fails at once when another"
        " process has the DuckDB file open"
    ),
}
# Odd values (as dlt hands them over from .dlt/config.toml, the environment or an argument):
# not finite, negative, huge, of another type; zero and fractions where a kind refuses them.
ODD_NUMBERS = [NAN, INF, -INF, -1, 1e12, "ten", True, [1]]
ODD_BY_OPTION = {
    name: (
        ["0001-01-01", "2999-01-01", "last tuesday", True, 20260101]
        if name in ("start_date", "end_date")
        else ["yes", 1, None]
        if name == "events"
        else ODD_NUMBERS
        + ([] if name in ("lookback_s", "rate_limit_requests", "lock_wait_s") else [0])
        + ([2.5] if ACCEPTS[name].startswith("a whole number") else [])
    )
    for name in ACCEPTS
}
ODD_CASES = [(name, value) for name, values in ODD_BY_OPTION.items() for value in values]


def test_the_table_covers_every_option_of_the_source():
    filters = {spec.name for spec in FILTERS}
    # the key and base_url have checks of their own; lock_wait_s is deck.sync()'s
    elsewhere = {"api_key", "base_url"}
    assert set(ACCEPTS) == set(OPTION_SPECS)
    assert set(ACCEPTS) == set(DECK_PARAMETERS) - filters - elsewhere | {"lock_wait_s"}


# The defaults a user gets, as docs/operations.md states them: written out, not read from the
# settings both the spec and deck()'s signature take them from.
DEFAULTS = {
    "start_date": None, "end_date": None, "max_table_nesting": 2, "page_size": 100,
    "max_runs_per_load": 50_000, "pages_per_window": 25, "max_workers": 6,
    "rate_limit_requests": 200, "rate_limit_period_s": 10, "request_max_attempts": 8,
    "backoff_base_s": 1, "backoff_cap_s": 30, "connect_timeout_s": 10, "read_timeout_s": 60,
    "request_deadline_s": None, "lookback_s": 600, "events": True, "lock_wait_s": 300,
}


@pytest.mark.parametrize("name", sorted(OPTION_SPECS))
def test_each_options_default_is_the_documented_one_and_lies_in_its_range(name):
    assert set(DEFAULTS) == set(OPTION_SPECS)
    assert OPTION_SPECS[name].default == DEFAULTS[name]
    if name in DECK_PARAMETERS:  # lock_wait_s is deck.sync()'s, not the source's
        assert DECK_PARAMETERS[name].default == DEFAULTS[name]
    assert check_option(name, DEFAULTS[name]) == DEFAULTS[name]


@pytest.mark.parametrize("name, value", ODD_CASES, ids=[f"{n}={v!r}" for n, v in ODD_CASES])
def test_an_odd_value_is_refused_in_one_line_naming_the_option_value_and_range(name, value):
    with pytest.raises(DeckOptionError) as caught:
        check_option(name, value)

    shown = repr(value)
    assert str(caught.value) == f"{name} = {shown} is not valid: use {ACCEPTS[name]}."


@pytest.mark.parametrize("name, value, expected", [
    ("lookback_s", 0, 0.0), ("lookback_s", 600, 600.0), ("lookback_s", 2_592_000, 2_592_000.0),
    ("rate_limit_requests", 0, 0), ("rate_limit_requests", 100_000, 100_000),
    ("max_runs_per_load", 50_000.0, 50_000), ("max_runs_per_load", 10_000_000, 10_000_000),
    ("max_runs_per_load", 1, 1), ("max_workers", 1, 1), ("max_workers", 64, 64),
    ("page_size", 100, 100), ("request_deadline_s", 7200, 7200.0),
    ("request_deadline_s", None, None), ("lock_wait_s", 0, 0.0), ("lock_wait_s", 86400, 86400.0),
    ("events", False, False),
    ("start_date", "2000-01-01", datetime(2000, 1, 1, tzinfo=timezone.utc)),
    ("end_date", "2100-01-01", datetime(2100, 1, 1, tzinfo=timezone.utc)),
    ("end_date", None, None),
])
def test_values_at_the_edges_of_a_range_are_accepted(name, value, expected):
    got = check_option(name, value)

    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("options, expected", [
    ({"status": 5}, "status = 5 is not valid: use a list of texts or a comma-separated text"
                    " (default none)."),
    ({"source_id": ["src_1", 2]}, "source_id = ['src_1', 2] is not valid: use a list of texts or"
                                  " a comma-separated text (default none)."),
    ({"agent_id": ["agt_1"]}, "agent_id = ['agt_1'] is not valid: use a text (default none)."),
    ({"outcome": "ok"}, "outcome 'ok' is not one of Deck's values: success, failure, unknown."),
])
def test_an_odd_filter_is_refused_naming_it(options, expected):
    with pytest.raises(DeckConfigError) as caught:
        Filters.from_options(options)

    assert str(caught.value) == expected


@pytest.mark.parametrize("text", [
    "completed,failed", " completed , failed ", '["completed", "failed"]', ["completed", "failed"],
])
def test_a_list_filter_takes_the_comma_form_the_environment_gives(text):
    assert Filters.from_options({"status": text}).values == {"status": ("completed", "failed")}


def test_a_misspelled_option_names_the_closest_valid_one():
    error = unknown_option("lookbak_s", "environment variable SOURCES__DECK__LOOKBAK_S")

    assert str(error) == (
        "lookbak_s in environment variable SOURCES__DECK__LOOKBAK_S is not an option of"
        " [sources.deck]: did you mean lookback_s?"
    )
    assert str(unknown_option("colour")) == (
        "colour is not an option of [sources.deck]: the options are api_key, base_url, status,"
        " outcome, source_id, agent_id, credential_id, task_id, workflow_id, search, start_date,"
        " end_date, max_table_nesting, page_size, max_runs_per_load, pages_per_window,"
        " max_workers, rate_limit_requests, rate_limit_period_s, request_max_attempts,"
        " backoff_base_s, backoff_cap_s, connect_timeout_s, read_timeout_s, request_deadline_s,"
        " lookback_s, events, lock_wait_s."
    )


def test_the_operations_guide_lists_each_options_range():
    """docs/operations.md, "Options", holds the one table of every option's range: each row's
    range is the one the spec checks (written out here, as a reader sees it)."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    ranges = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in guide.splitlines() if line.startswith("| `")
    }
    assert {name: ranges[name] for name in GUIDE_RANGES} == GUIDE_RANGES
    for spec in OPTION_SPECS.values():  # and each is the range the spec checks
        [cell] = [cell for name, cell in GUIDE_RANGES.items() if f"`{spec.name}`" in name]
        if spec.kind == "flag":
            continue
        low, high = (
            (spec.low.strftime("%Y-%m-%d"), spec.high.strftime("%Y-%m-%d"))
            if spec.kind == "date" else (f"{spec.low:.0f}", f"{spec.high:.0f}")
        )
        assert re.search(rf"(?<![\d-]){low}(?![\d-]).*(?<![\d-]){high}(?![\d-])", cell), (
            spec.name, cell,
        )


GUIDE_RANGES = {
    "`start_date`, `end_date`": "an ISO 8601 date or timestamp from 2000-01-01 to 2100-01-01",
    "`lookback_s`": "seconds, 0 to 2592000 (30 days)",
    "`max_runs_per_load`": "a whole number, 1 to 10000000",
    "`pages_per_window`": "a whole number, 1 to 10000",
    "`max_workers`": "a whole number, 1 to 64",
    "`page_size`": "a whole number, 1 to 100",
    "`max_table_nesting`": "a whole number, 1 to 100",
    "`rate_limit_requests`": "a whole number, 0 (no client-side limit) to 100000",
    "`rate_limit_period_s`": "seconds, above 0 up to 3600",
    "`request_max_attempts`": "a whole number, 1 to 100",
    "`backoff_base_s`, `backoff_cap_s`": "seconds, above 0 up to 3600",
    "`connect_timeout_s`, `read_timeout_s`": "seconds, above 0 up to 3600",
    "`request_deadline_s`": "seconds, above 0 up to 7200",
    "`lock_wait_s`": "seconds, 0 (fail at once) to 86400",
    "`events`": "true or false",
}


def test_the_line_named_for_an_option_is_the_one_under_sources_deck(tmp_path, monkeypatch):
    """A same-named key of another section comes first in the file; dlt gave the source the one
    under [sources.deck], so that is the line a refusal names."""
    from deck.core import configured

    config = tmp_path / "config.toml"
    config.write_text(
        '[destination.postgres]\npage_size = 3\n\n[sources.deck]\nstatus = "completed"\n'
        "page_size = 500\n\n[sources.deck.data_writer]\npage_size = 7\n"
    )
    monkeypatch.setattr(configured, "settings_files", lambda: [str(config)])

    assert configured.toml_line("page_size").endswith("config.toml, line 6")
    assert configured.toml_line("lookback_s") is None
