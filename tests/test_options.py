"""Unit tests of the options: each concept declared once, checked before any request."""

import inspect
import tomllib
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from deck import deck, settings
from deck.cli import build_parser, source_options
from deck.errors import DeckConfigError
from deck.options import FILTERS, Filters, SourceOptions

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
        "status 'done' is not one of Deck's values: " + ", ".join(settings.ALL_STATUSES) + "."
    )


def test_dates_are_parsed_and_must_be_ordered():
    options = parse(start_date="2026-01-01", end_date="2026-02-01T08:00:00+02:00")

    assert options.start == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert options.end == datetime(2026, 2, 1, 6, tzinfo=timezone.utc)
    with pytest.raises(DeckConfigError, match="is not before end_date"):
        parse(start_date="2026-02-01", end_date="2026-01-01")
    with pytest.raises(DeckConfigError, match="is not a date"):
        parse(start_date="last tuesday")


@pytest.mark.parametrize("name, value, message", [
    ("lookback_s", -1, "lookback_s must be 0 or more seconds"),
    ("max_workers", 0, "must be at least 1"),
    ("max_table_nesting", 0, "max_table_nesting = 0 would store each run's `errors` as JSON"),
])
def test_unusable_numbers_are_refused(name, value, message):
    with pytest.raises(DeckConfigError, match=message.replace("(", r"\(")):
        parse(**{name: value})


def test_lookback_becomes_a_duration():
    assert parse(lookback_s=90).lookback == timedelta(seconds=90)
