"""Unit tests of the progress bookkeeping (estimate, rate, ETA, text) and of where a window listed
only in part is cut: pure functions, no HTTP, no clock (every time is an argument)."""

import os
import shlex
import sys
from datetime import datetime, timedelta, timezone

import pytest
from deck.cli import try_command
from deck.planning import cut_listed_part
from deck.progress import (
    ListingProgress,
    RateMeter,
    Snapshot,
    SyncProgress,
    describe,
    describe_ranges,
    format_duration,
    merge_windows,
    window_seconds,
)
from deck.stats import SyncStats
from deck.windows import ONE_MS as MS
from deck.windows import ONE_US as US
from deck.windows import Window

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
HOUR = timedelta(hours=1)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def records(*hours: float) -> list[dict]:
    return [{"id": f"trun_{i}", "created_at": at(h).isoformat()} for i, h in enumerate(hours)]


NOW = at(100)


def following(windows, in_flight=None, now=NOW):
    """A ListingProgress that follows a fixed outlook (what a walker would report)."""
    listing = ListingProgress("runs")
    listing.follow(lambda: (list(windows), dict(in_flight or {})), lambda: now, page_size=100)
    return listing


# ---- rate --------------------------------------------------------------------------------------


def test_the_rate_is_requests_per_second_over_the_samples():
    meter = RateMeter(window_s=60)
    meter.add(0.0, 0)
    meter.add(10.0, 50)

    assert meter.rate() == 5.0


def test_the_rate_follows_the_last_minute_not_the_whole_sync():
    meter = RateMeter(window_s=60)
    meter.add(0.0, 0)
    meter.add(100.0, 2000)  # 20/s for 100 s
    meter.add(160.0, 2060)  # then 1/s

    assert meter.rate() == 1.0


def test_the_rate_is_unknown_before_a_second_has_passed():
    meter = RateMeter()
    assert meter.rate() is None
    meter.add(0.0, 0)
    meter.add(0.5, 10)
    assert meter.rate() is None


# ---- windows and their time ------------------------------------------------------------------


def test_a_window_without_start_has_no_size_and_an_open_end_stops_at_decks_clock():
    assert window_seconds(Window(None, at(5)), at(10)) is None
    assert window_seconds(Window(at(2), None), at(10)) == 8 * 3600
    assert window_seconds(Window(at(2), at(50)), at(10)) == 8 * 3600


def test_listed_windows_merge_into_ranges_oldest_first():
    windows = [Window(at(5), at(6)), Window(None, at(1)), Window(at(1), at(2)), Window(at(6), None)]

    assert merge_windows(windows) == [Window(None, at(2)), Window(at(5), None)]


def test_ranges_are_named_oldest_first_and_many_by_their_ends():
    assert describe_ranges([Window(None, at(2)), Window(at(5), None)]) == (
        "start..2026-03-01 02:00, 2026-03-01 05:00..now"
    )
    many = [Window(at(i), at(i + 0.5)) for i in range(5)]
    assert describe_ranges(many) == (
        "2026-03-01 00:00..2026-03-01 00:30 ... 2026-03-01 04:00..2026-03-01 04:30 (5 ranges)"
    )


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0:00:00"),
        (65, "0:01:05"),
        (3600 * 12, "12:00:00"),
        (86_400 * 2 + 3845, "2 days 1:04:05"),
    ],
)
def test_durations_read_like_a_clock(seconds, text):
    assert format_duration(seconds) == text


# ---- the estimate ------------------------------------------------------------------------------


def test_the_work_left_is_the_windows_left_times_the_density_seen():
    listing = following([Window(at(10), at(20)), Window(at(20), at(40))])
    listing.listed(Window(at(0), at(10)), records=1000)  # 100 per hour

    assert listing.remaining_records() == pytest.approx(3000)


def test_a_first_page_gives_a_density_before_any_window_is_listed():
    listing = following([Window(at(0), at(99))])
    listing.probed(records(*[i * 0.01 for i in range(100)]))  # 100 records over 0.99 h

    assert listing.remaining_records() == pytest.approx(100 / 0.99 * 99)


def test_records_already_fetched_of_a_window_in_flight_are_not_left():
    listing = following([], in_flight={Window(at(0), at(10)): 400})
    listing.listed(Window(at(20), at(30)), records=1000)

    assert listing.remaining_records() == pytest.approx(600)


def test_the_work_left_is_unknown_while_a_window_has_no_start():
    listing = following([Window(None, at(5)), Window(at(5), at(10))])
    listing.listed(Window(at(10), at(20)), records=1000)

    assert listing.remaining_records() is None


def test_the_work_left_is_unknown_without_any_density():
    assert following([Window(at(0), at(10))]).remaining_records() is None


def test_a_finished_listing_has_nothing_left():
    listing = following([Window(None, at(5))])
    listing.finish()

    assert listing.remaining_records() == 0


def test_a_snapshot_adds_the_pages_left_to_the_requests_made_and_counts_across_loads():
    stats = SyncStats()
    stats.new_runs, stats.updated_runs = 1200, 34
    stats.requests.requests, stats.requests.retries, stats.requests.throttled = 40, 3, 2
    progress = SyncProgress()
    runs = progress.listing("runs")
    runs.follow(lambda: ([Window(at(10), at(20))], {}), lambda: at(100), page_size=100)
    runs.listed(Window(at(0), at(10)), records=1234)  # 123.4 per hour -> 1234 left, 13 pages
    progress.loads = 2

    progress.snapshot(stats, elapsed_s=0.0)
    stats.requests.requests = 60
    snapshot = progress.snapshot(stats, elapsed_s=10.0)

    assert snapshot.runs == 1234 and snapshot.loads == 2
    assert snapshot.requests_total == 60 + 13
    assert snapshot.rate == 2.0
    assert snapshot.eta_s == 6.5


def test_the_log_line_says_everything_cumulative_with_the_eta():
    snapshot = Snapshot(
        runs=1234, events=50, requests=60, retries=3, throttled=2, loads=2, elapsed_s=10.0,
        runs_left=1234.0, events_left=0.0, requests_left=13.0, rate=2.0,
        coverage=(("runs", "2026-03-01 00:00..2026-03-01 10:00"),),
    )

    assert describe(snapshot) == (
        "runs 1,234 of ~2,468, events 50; requests 60 of ~73 at 2.0/s, 3 retries, 2 answered 429;"
        " 2 loads committed; listed runs 2026-03-01 00:00..2026-03-01 10:00; ETA 0:00:06"
    )


def test_the_log_line_says_when_the_eta_is_not_known():
    snapshot = Snapshot(runs=10, events=0, requests=2, retries=0, throttled=0, loads=0,
                        elapsed_s=1.0, with_events=False)

    assert describe(snapshot, loads=False) == (
        "runs 10; requests 2, 0 retries, 0 answered 429;"
        " ETA not known yet (the oldest records are still being looked for)"
    )


# ---- where a window listed only in part is cut --------------------------------------------------


def test_newest_first_keeps_what_is_newer_than_the_oldest_record_listed():
    window = Window(at(0), at(10))
    stamps = [at(9) + MS, at(8) + MS, at(7) + MS, at(7) + MS]

    listed, rest = cut_listed_part(window, stamps)

    # the runs printed 7:00:00.001 may go on, and inside Deck they may lie anywhere in that
    # millisecond: the rest ends at the next whole millisecond and lists them again
    assert listed == Window(at(7) + 2 * MS, at(10))
    assert rest == Window(at(0), at(7) + 2 * MS)


def test_a_cut_after_runs_printed_to_the_second_leaves_their_whole_second_to_the_rest():
    window = Window(at(0), at(10))
    stamps = [at(9), at(8), at(7), at(7)]  # no fraction: they may carry milliseconds in Deck

    listed, rest = cut_listed_part(window, stamps)

    assert listed == Window(at(7) + timedelta(seconds=1), at(10))
    assert rest == Window(at(0), at(7) + timedelta(seconds=1))


def test_no_cut_when_every_record_lies_in_the_oldest_printed_millisecond():
    window = Window(at(0), at(10))
    newest_first = [at(7) + MS + 500 * US, at(7) + MS, at(7) + MS]

    assert cut_listed_part(window, newest_first) is None  # the load must go on


def test_oldest_first_keeps_what_is_older_than_the_newest_record_listed():
    window = Window(None, at(10))
    stamps = [at(1), at(2), at(3), at(3)]

    assert cut_listed_part(window, stamps) == (Window(None, at(3)), Window(at(3), at(10)))


def test_records_outside_the_window_do_not_move_the_cut():
    window = Window(at(5), at(10))
    stamps = [at(9) + MS, at(8) + MS, at(4)]  # 4:00 lies below the window's start

    assert cut_listed_part(window, stamps) == (Window(at(8) + 2 * MS, at(10)),
                                              Window(at(5), at(8) + 2 * MS))


@pytest.mark.parametrize(
    "stamps",
    [[at(3), at(3), at(3)], [at(3), at(1), at(2)], []],
    ids=["one-stamp", "unordered", "none"],
)
def test_no_cut_when_the_pages_cannot_say_what_was_read(stamps):
    assert cut_listed_part(Window(at(0), at(10)), stamps) is None


def test_the_eta_waits_for_a_rate_when_the_work_left_is_known():
    snapshot = Snapshot(runs=10, events=0, requests=2, retries=0, throttled=0, loads=0,
                        elapsed_s=0.5, runs_left=500.0, requests_left=5.0, with_events=False)

    assert snapshot.eta_s is None
    assert describe(snapshot).endswith("; ETA not known yet (measuring the rate)")


def test_once_everything_is_listed_the_line_says_it_is_loading():
    snapshot = Snapshot(runs=10, events=0, requests=2, retries=0, throttled=0, loads=0,
                        elapsed_s=5.0, runs_left=0.0, requests_left=0.0, rate=1.0,
                        with_events=False)

    assert describe(snapshot).endswith("; everything listed; loading")


# ---- the summary's try line ----------------------------------------------------------------


def test_the_try_line_quotes_a_path_with_a_quote_and_a_space_for_the_shell():
    command = try_command("it's here/deck.duckdb", "deck")

    python, flag, code = shlex.split(command)  # one program, -c, one argument
    assert os.path.samefile(python, sys.executable) and flag == "-c"
    assert "duckdb.connect(\"it's here/deck.duckdb\", read_only=True)" in code
    assert "FROM deck.task_runs" in code
