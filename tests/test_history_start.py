"""`history_start`: where a history starts, found with `limit=1` requests, under every reading of
Deck's bounds (a small model of Deck, no HTTP; the sync over HTTP is in test_contract_readings)."""

from datetime import datetime, timedelta, timezone

import pytest
from deck.core.windows import page_stamps, parse_timestamp
from deck.listing.history_start import StartSearch, find_start
from hypothesis import given
from hypothesis import strategies as st
from support.deck_model import MS_US, Contract, DeckModel, to_us

pytestmark = pytest.mark.unit

END = datetime(2026, 12, 1, tzinfo=timezone.utc)
YEAR_US = 365 * 86_400 * 1_000_000


def deck_of(instants: list[int], **contract: object) -> DeckModel:
    return DeckModel(Contract(page_size=100, **contract), instants)


def start_of(deck: DeckModel, at_once: int = 1) -> datetime | None:
    """`find_start` after the first page of the open window, as the walker asks it."""
    return find_start(deck.list_pages, {}, next(deck.list_pages({})), "runs", at_once=at_once)


def oldest_printed(deck: DeckModel) -> datetime:
    return min(parse_timestamp(run.printed) for run in deck.runs)


def a_year_of_runs(n: int = 2_000) -> list[int]:
    return [to_us(END) - YEAR_US + i * (YEAR_US // n) for i in range(n)]


CONTRACTS = st.builds(
    dict,
    bounds=st.sampled_from(["us", "ms", "reject"]),
    stored=st.sampled_from(["ms", "us_printed_ms", "ms_printed_s"]),
    inclusive=st.booleans(),
    order=st.sampled_from(["newest_first", "oldest_first"]),
)
HISTORIES = st.lists(
    st.integers(to_us(END) - 2 * YEAR_US, to_us(END) - MS_US), min_size=1, max_size=300
)


@given(HISTORIES, CONTRACTS, st.sampled_from([1, 2, 5]))
def test_no_run_lies_before_the_start_found_under_any_reading(instants, contract, at_once):
    deck = deck_of(instants, **contract)

    start = start_of(deck, at_once)

    if len(deck.runs) > 100:  # else the first page holds them all: nothing to search
        assert start is not None and deck.requests <= 1 + 40 * at_once
    if start is not None:
        assert start <= oldest_printed(deck)
        assert all(run.instant >= to_us(start) for run in deck.runs)


def test_a_year_newest_first_is_found_in_about_twenty_requests_close_below_its_oldest_run():
    deck = deck_of(a_year_of_runs())

    start = start_of(deck)

    assert deck.requests <= 25
    assert oldest_printed(deck) - timedelta(days=365 / 64) <= start <= oldest_printed(deck)


def test_five_at_once_a_year_is_found_in_at_most_seven_round_trips():
    """The search asks the sync's workers' worth of instants together (pure: rounds counted)."""
    deck = deck_of(a_year_of_runs())
    opening = next(deck.list_pages({}))
    search = StartSearch.from_opening(page_stamps(opening.items), opening.has_more)
    rounds = 0

    while probes := search.next_probes(at_once=5):
        rounds += 1
        search.answer([(t, any(run.instant < to_us(t) for run in deck.runs)) for t in probes])

    assert rounds <= 7
    assert oldest_printed(deck) - timedelta(days=365 / 64) <= search.start <= oldest_printed(deck)


def test_oldest_first_the_first_page_names_the_start_and_one_request_confirms_it():
    deck = deck_of(a_year_of_runs(), order="oldest_first")

    start = start_of(deck)

    assert deck.requests <= 3
    assert oldest_printed(deck) - timedelta(seconds=2) <= start <= oldest_printed(deck)


def test_a_run_dated_before_2000_keeps_the_window_open():
    deck = deck_of([*a_year_of_runs(), to_us(datetime(1999, 12, 31, tzinfo=timezone.utc))])

    assert start_of(deck) is None


def test_a_history_of_one_page_is_not_searched():
    deck = deck_of(a_year_of_runs(100))

    assert start_of(deck) is None and deck.requests == 1
