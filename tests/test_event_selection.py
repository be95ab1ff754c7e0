"""Which events a filtered sync loads (`SelectedRuns`): pure decisions, no HTTP.

Over HTTP, tests/test_events.py checks the same against the simulator's ground truth; here the
cases a simulator makes awkward: a warehouse that cannot be asked, and the edge of the zone
where a run may not be listed yet.
"""

from datetime import datetime, timedelta, timezone

import pytest
from deck.listing.events import SelectedRuns, runs_listing_began

pytestmark = pytest.mark.unit

LISTED_TO = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)  # Deck's clock as runs were listed
LOOKBACK = timedelta(minutes=10)
DECIDED = LISTED_TO - LOOKBACK - timedelta(milliseconds=1)  # an event before the zone


def selection(in_warehouse, handled=("trun_handled",)):
    return SelectedRuns(handled=set(handled), listed_to=LISTED_TO, in_warehouse=in_warehouse)


def test_the_events_of_runs_the_sync_handled_or_the_warehouse_holds_are_loaded():
    asked = []
    runs = selection(lambda ids: asked.append(set(ids)) or {"trun_earlier"})

    runs.look_up({"trun_handled", "trun_earlier", "trun_other"})

    assert asked == [{"trun_earlier", "trun_other"}]  # the sync's own runs are not asked about
    assert runs.verdict("trun_handled", DECIDED, LOOKBACK) is True
    assert runs.verdict("trun_earlier", DECIDED, LOOKBACK) is True
    assert runs.verdict("trun_other", DECIDED, LOOKBACK) is False


def test_the_warehouse_is_asked_once_about_each_run():
    asked = []
    runs = selection(lambda ids: asked.append(set(ids)) or set())

    runs.look_up({"trun_a"})
    runs.look_up({"trun_a", "trun_b"})

    assert asked == [{"trun_a"}, {"trun_b"}]


def test_an_event_whose_run_may_not_be_listed_yet_is_left_for_the_next_sync():
    runs = selection(lambda ids: set())
    runs.look_up({"trun_new"})

    assert runs.verdict("trun_new", LISTED_TO - LOOKBACK, LOOKBACK) is None
    assert runs.verdict("trun_new", LISTED_TO + LOOKBACK, LOOKBACK) is None


def test_with_no_run_listed_at_all_every_unplaced_event_is_left_for_the_next_sync():
    runs = SelectedRuns(handled=set(), listed_to=None, in_warehouse=lambda ids: set())
    runs.look_up({"trun_a"})

    assert runs.verdict("trun_a", DECIDED, LOOKBACK) is None


def test_a_warehouse_that_cannot_be_asked_keeps_the_events_it_cannot_place():
    def no_sql(ids):
        raise LookupError("the destination has no SQL to ask")

    runs = selection(no_sql)
    runs.look_up({"trun_unknown"})

    assert runs.unreadable == "LookupError: the destination has no SQL to ask"
    assert runs.verdict("trun_unknown", DECIDED, LOOKBACK) is True
    assert runs.verdict("trun_unknown", LISTED_TO, LOOKBACK) is None


def test_the_listing_began_no_later_than_decks_agreed_clock_less_the_listings_duration():
    """A low estimate: one Deck host ahead (a `Date` alone) never moves it; the agreed clock is
    read when the listing ended, so the time it took is taken off."""
    agreed = LISTED_TO + timedelta(minutes=7)

    began = runs_listing_began(agreed, timedelta(minutes=7), LISTED_TO - timedelta(days=3))

    assert began == LISTED_TO


def test_without_agreeing_answers_the_listing_began_after_the_newest_run_it_listed():
    watermark = LISTED_TO - timedelta(days=3)

    assert runs_listing_began(None, timedelta(minutes=7), watermark) == watermark
    assert runs_listing_began(None, timedelta(minutes=7), None) is None
