"""Unit tests of the progress bookkeeping (estimate, rate, ETA, text) and of where a window listed
only in part is cut: pure functions, no HTTP, no clock (every time is an argument)."""

import json
import os
import shlex
import sys
from datetime import datetime, timedelta, timezone

import pytest
from deck.core.stats import SyncStats
from deck.core.windows import ONE_MS as MS
from deck.core.windows import ONE_US as US
from deck.core.windows import Window
from deck.listing.planning import cut_listed_part
from deck.progress.estimate import (
    ListingProgress,
    RateMeter,
    SyncProgress,
    merge_windows,
)
from deck.progress.snapshot import (
    Snapshot,
    describe,
    describe_ranges,
    format_duration,
)
from deck.runtime.summary import try_command
from support.deck_model import Contract, DeckModel, LoadOptions, run_load
from support.histories import END, SHAPES, last_two_days

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


def left(listing: ListingProgress) -> float:
    remaining = listing.remaining()
    assert remaining is not None
    return remaining.records


def test_a_window_not_listed_is_judged_by_the_windows_listed_around_it():
    listing = following([Window(at(10), at(20))])
    listing.listed(Window(at(0), at(10)), records=1000)  # 100 per hour
    listing.listed(Window(at(20), at(30)), records=3000)  # 300 per hour

    assert left(listing) == pytest.approx(2000)  # 10 h at the 200 per hour seen around it


def test_a_window_is_judged_by_the_time_around_it_not_by_the_whole_history():
    listing = following([Window(at(50), at(60))])
    listing.listed(Window(at(0), at(40)), records=40)  # quiet months long ago
    listing.listed(Window(at(60), at(70)), records=5000)  # the busy last week

    assert left(listing) == pytest.approx(5000)


def test_a_short_burst_beside_a_window_does_not_speak_for_all_of_it():
    listing = following([Window(at(10), at(20))])
    listing.listed(Window(at(9), at(10)), records=1000)  # a burst, listed whole
    listing.listed(Window(at(20), at(29)), records=90)  # 10 per hour

    # the 1,090 records seen in the 10 h each side, not 10 h at the burst's 1,000 per hour
    assert left(listing) == pytest.approx(1090)


def test_a_first_page_newest_first_says_its_window_holds_nothing_newer():
    listing = following([Window(at(50), at(99))])
    listing.probed(Window(at(0), at(99)), records(*[40 - i * 0.01 for i in range(100)]))

    assert left(listing) == 0


def test_below_a_first_page_the_time_seen_empty_above_it_counts_too():
    listing = following([Window(at(0), at(39))])
    listing.probed(Window(at(0), at(99)), records(*[40 - i * 0.01 for i in range(100)]))

    # 1 h holding 100 records, then 59 h holding none: not 39 h at the page's density
    assert 0 < left(listing) < 100 / 0.99 * 39 / 4


def test_just_below_a_first_page_its_density_carries_on_for_two_of_its_spans():
    listing = following([Window(at(38), at(39))])  # the page spans 39.01 h..40 h
    listing.probed(Window(at(0), at(99)), records(*[40 - i * 0.01 for i in range(100)]))

    assert left(listing) == pytest.approx(100 / 0.99)  # 1 h at the page's 100 per 0.99 h


def test_a_first_page_oldest_first_says_its_window_holds_nothing_older():
    listing = following([Window(at(0), at(20))])
    listing.probed(Window(at(0), at(99)), records(*[20 + i * 0.01 for i in range(100)]))

    assert left(listing) == 0


def test_records_already_fetched_of_a_window_in_flight_are_listed_not_left():
    listing = following([], in_flight={Window(at(0), at(10)): 400})
    listing.listed(Window(at(20), at(30)), records=1000)

    assert left(listing) == pytest.approx(600)
    assert listing.listed_records() == 1400


def test_while_a_window_has_no_start_the_total_is_marked_at_least():
    listing = following([Window(None, at(5)), Window(at(5), at(10))])
    listing.listed(Window(at(10), at(20)), records=1000)

    remaining = listing.remaining()
    assert remaining is not None and remaining.at_least
    assert remaining.records == pytest.approx(500)  # the window with a start only


def test_the_work_left_is_unknown_before_anything_was_seen():
    assert following([Window(at(0), at(10))]).remaining() is None


def test_a_finished_listing_has_nothing_left():
    listing = following([Window(None, at(5))])
    listing.finish()

    assert left(listing) == 0


def test_every_window_left_costs_at_least_one_request():
    listing = following([Window(at(10), at(11)), Window(at(11), at(12)), Window(at(12), at(13))])
    listing.listed(Window(at(0), at(10)), records=10)  # one record per hour

    remaining = listing.remaining()
    assert remaining is not None and remaining.pages == 3


def test_a_snapshot_counts_listed_and_left_in_records_and_the_requests_left_in_pages():
    stats = SyncStats()
    stats.new_runs, stats.updated_runs = 1200, 34
    stats.requests.requests, stats.requests.retries, stats.requests.throttled = 40, 3, 2
    progress = SyncProgress()
    runs = progress.listing("runs")
    runs.follow(lambda: ([Window(at(10), at(20))], {}), lambda: at(100), page_size=100)
    runs.listed(Window(at(0), at(10)), records=1300)  # 130 per hour -> 1300 left, 13 pages
    progress.loads = 2

    progress.snapshot(stats, elapsed_s=0.0)
    stats.requests.requests = 60
    snapshot = progress.snapshot(stats, elapsed_s=10.0)

    assert (snapshot.runs, snapshot.runs_listed, snapshot.loads) == (1234, 1300, 2)
    assert snapshot.runs_left == pytest.approx(1300)
    assert snapshot.requests_total == 60 + 13
    assert snapshot.rate == 2.0
    assert snapshot.eta_s == 6.5


def test_the_log_line_says_everything_cumulative_with_the_eta():
    snapshot = Snapshot(
        runs=1234, events=50, requests=60, retries=3, throttled=2, loads=2, elapsed_s=10.0,
        runs_listed=1300, runs_left=1168.0, events_listed=50, events_left=0.0,
        requests_left=13.0, rate=2.0,
        coverage=(("runs", "2026-03-01 00:00..2026-03-01 10:00"),),
    )

    assert describe(snapshot) == (
        "runs 1,234 (1,300 of ~2,468 listed), events 50; requests 60 of ~73 at 2.0/s, 3 retries,"
        " 2 answered 429; 2 loads committed; listed runs 2026-03-01 00:00..2026-03-01 10:00;"
        " ETA 0:00:06"
    )


def test_while_the_oldest_runs_are_looked_for_the_total_is_at_least_and_there_is_no_eta():
    snapshot = Snapshot(runs=900, events=0, requests=12, retries=0, throttled=0, loads=0,
                        elapsed_s=10.0, runs_listed=1000, runs_left=500.0, runs_at_least=True,
                        rate=1.2, with_events=False)

    assert describe(snapshot, loads=False) == (
        "runs 900 (1,000 of at least ~1,500 listed); requests 12 at 1.2/s, 0 retries,"
        " 0 answered 429; ETA not known yet (the oldest records are still being looked for)"
    )


def test_the_log_line_says_when_the_eta_is_not_known():
    snapshot = Snapshot(runs=10, events=0, requests=2, retries=0, throttled=0, loads=0,
                        elapsed_s=1.0, with_events=False)

    assert describe(snapshot, loads=False) == (
        "runs 10; requests 2, 0 retries, 0 answered 429;"
        " ETA not known yet (the oldest records are still being looked for)"
    )


def test_the_eta_never_reads_zero_while_a_request_is_left():
    snapshot = Snapshot(runs=10, events=0, requests=200, retries=0, throttled=0, loads=1,
                        elapsed_s=60.0, runs_listed=10, runs_left=40.0, requests_left=1.0,
                        rate=20.0, with_events=False)

    assert describe(snapshot).endswith("; ETA 0:00:01")


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


# ---- the estimate on synthetic histories ---------------------------------------------------------
#
# A backfill of 20,000 runs over several loads, played by the model of Deck and the real walker
# (`support.deck_model`), newest first as Deck lists; the estimate read where a user reads it, at
# each committed load. The target is ±25% on every shape (docs/operations.md, "Watching a long
# sync", has the table over five seeds).

ESTIMATE_BANDS = {  # shape: (lowest, highest) total estimated / true total, from the first load
    # seed 1 of each shape; over five seeds and 1,000-5,000 runs per load the estimate stays in
    # these bands but on bursts (0.79-1.55: records between the pages seen nothing hints at)
    "uniform": (0.9, 1.1),
    # a long gap at 2,000 runs per load and an open start: 0.72 at the first load (windows of
    # `pages_per_window` pages whatever the load size, so fewer first pages sample the history)
    "long_gap": (0.7, 1.25),
    "last_week": (0.75, 1.25),
    "bursty": (0.75, 1.25),
}


def estimated_totals(
    history: list[int], max_runs_per_load: int, start_known: bool
) -> list[float | None]:
    """The estimated total (records listed + left) over the true total at each committed load
    but the last; None where only a lower bound is known. Asserts that work is shown left (at
    least a request) after every load but the last, and none after it."""
    deck = DeckModel(Contract(page_size=100), history)
    progress = ListingProgress("runs")
    options = LoadOptions(
        page_size=100, pages_per_window=40, max_runs_per_load=max_runs_per_load,
        lookback=timedelta(minutes=10), start=END - timedelta(days=61) if start_known else None,
    )
    committed, totals = json.dumps({}), []
    for _ in range(HISTORY_RUNS // max_runs_per_load + 5):
        load = run_load(deck, committed, END, options, progress=progress)
        committed = load.committed
        remaining = progress.remaining(END)
        assert remaining is not None
        if not load.more_to_load:
            assert remaining.records == 0
            break
        assert remaining.pages >= 1  # work left: never "ETA 0:00:00", never "loading"
        total = progress.listed_records() + remaining.records
        totals.append(None if remaining.at_least else total / HISTORY_RUNS)
    else:
        pytest.fail("the backfill did not end")
    return totals


HISTORY_RUNS = 20_000


@pytest.mark.parametrize("start_known", [False, True], ids=["open_start", "start_date"])
@pytest.mark.parametrize("max_runs_per_load", [2_000, 5_000])
@pytest.mark.parametrize("shape", sorted(ESTIMATE_BANDS))
def test_the_estimated_total_stays_in_its_band_and_never_jumps_twofold(
    shape, max_runs_per_load, start_known
):
    history = SHAPES[shape](HISTORY_RUNS)
    totals = [t for t in estimated_totals(history, max_runs_per_load, start_known) if t]
    lowest, highest = ESTIMATE_BANDS[shape]

    assert totals
    assert all(lowest <= total <= highest for total in totals), totals
    assert all(max(a / b, b / a) <= 2 for a, b in zip(totals, totals[1:], strict=False)), totals


@pytest.mark.parametrize("start_known", [False, True], ids=["open_start", "start_date"])
def test_a_history_crowded_into_its_last_two_days_shows_work_left_until_the_end(start_known):
    totals = estimated_totals(last_two_days(HISTORY_RUNS), 2_000, start_known)

    assert len(totals) >= 6  # every load from ~15% done on (loads of ~2,900) showed work left
    assert all(total is None or 0.7 <= total <= 1.3 for total in totals), totals
