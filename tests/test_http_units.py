"""Unit tests for the HTTP client's pure logic: retry waits, rate-limit slot accounting, run ids
as URL path segments, the API key check and exception scrubbing.

The pipeline tests (test_faults.py, test_guards.py) drive these through real HTTP; here each rule
is pinned on its own, without a server and without sleeping: clocks are replaced by a counter the
test moves, and a blocked acquire is observed from a thread through an Event.
"""

import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import pytest
from deck.api import ratelimit, session
from deck.api.client import check_api_key
from deck.api.ratelimit import RateLimiter
from deck.api.session import RetryPolicy
from deck.api.urls import path_segment
from deck.core.errors import DeckConfigError, DeckError, DeckPermanentError, scrubbed_exception
from deck.core.redact import scrub

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
# Generous upper bound on how long a woken thread may take to run on a busy machine; a test only
# waits this long when the code under test is broken (a thread that never wakes).
WAKE_S = 30.0
# How long a thread that should stay blocked is given to (wrongly) get through. A busy machine can
# only make such a check pass wrongly, never fail wrongly.
BLOCKED_S = 0.3


# ---- RetryPolicy.backoff ---------------------------------------------------------------------

def test_backoff_jitter_never_pushes_a_wait_past_the_cap():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_cap_s=9.0)

    waits = [policy.backoff(4) for _ in range(500)]  # 8 s, plus up to 2 s of jitter

    assert min(waits) >= 8.0 and max(waits) <= 9.0


def test_backoff_follows_a_custom_base_and_doubles_from_it():
    policy = RetryPolicy(backoff_base_s=0.5, backoff_cap_s=100.0)

    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)]:
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert min(waits) >= base and max(waits) <= base * 1.25, (attempt, min(waits), max(waits))


# ---- RetryPolicy.retry_after -----------------------------------------------------------------

@pytest.fixture
def frozen_clock(monkeypatch):
    """retry_after measures an HTTP date against this machine's clock: pin that clock to NOW."""
    monkeypatch.setattr(session, "time", SimpleNamespace(time=NOW.timestamp))


@pytest.mark.parametrize(
    "header, wait",
    [
        ("5", 5.0),
        (" 12 ", 12.0),
        ("0", 0.25),  # never a hot loop: at least min_wait_s
        ("60", 60.0),
        ("3600", 60.0),  # at most max_retry_after_s
    ],
)
def test_retry_after_in_seconds_is_bounded_by_the_policy(header, wait):
    assert RetryPolicy().retry_after(header) == wait


@pytest.mark.parametrize(
    "seconds_ahead, wait",
    [
        (7, 7.0),
        (45, 45.0),
        (-30, 0.25),  # a date already past: wait a little, not a negative time
        (86400, 60.0),  # a date far ahead: at most max_retry_after_s
    ],
)
def test_retry_after_as_an_http_date_counts_from_this_machines_clock(
    frozen_clock, seconds_ahead, wait
):
    header = format_datetime(NOW + timedelta(seconds=seconds_ahead), usegmt=True)

    assert RetryPolicy().retry_after(header) == wait


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "soon", "1.5", "-5", "+3", "3s", "Wed, 99 Foo 2026 07:28:00 GMT"],
)
def test_retry_after_that_is_absent_or_garbage_means_use_the_backoff(frozen_clock, header):
    assert RetryPolicy().retry_after(header) is None


def test_retry_after_bounds_follow_the_policy():
    policy = RetryPolicy(min_wait_s=1.5, max_retry_after_s=10.0)

    assert [policy.retry_after(h) for h in ("0", "1", "7", "11")] == [1.5, 1.5, 7.0, 10.0]


# ---- RateLimiter -----------------------------------------------------------------------------

class FakeClock:
    """time.monotonic for the limiter, moved by the test instead of by sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(ratelimit, "time", fake)
    return fake


class Acquirer:
    """`limiter.acquire()` in a thread of its own; `got_slot` is set once it returns."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.started = threading.Event()
        self.got_slot = threading.Event()
        self.token: int | None = None
        self.thread = threading.Thread(target=self._run, args=(limiter,), daemon=True)
        self.thread.start()
        assert self.started.wait(WAKE_S)

    def _run(self, limiter: RateLimiter) -> None:
        self.started.set()
        self.token = limiter.acquire()
        self.got_slot.set()

    def finish(self) -> int:
        assert self.got_slot.wait(WAKE_S), "acquire never returned"
        self.thread.join(WAKE_S)
        assert self.token is not None
        return self.token


def test_a_third_request_waits_until_a_slot_frees_a_period_after_its_answer(clock):
    limiter = RateLimiter(2, 1000.0)
    first, second = limiter.acquire(), limiter.acquire()

    third = Acquirer(limiter)
    assert not third.got_slot.wait(BLOCKED_S), "two slots are in flight: the third must wait"

    limiter.release(first)  # answered at t=0: its slot frees at t=1000 (+ margin), not now
    assert not third.got_slot.wait(BLOCKED_S), "an answered request still holds its slot"

    clock.now = 1001.0
    limiter.release(second)  # wakes the waiter, which now finds `first`'s slot expired

    assert third.finish() not in (first, second)


def test_releasing_a_token_twice_or_an_unknown_token_frees_no_extra_slot(clock):
    limiter = RateLimiter(2, 1000.0)
    first = limiter.acquire()
    limiter.release(first)
    limiter.release(first)
    limiter.release(12345)

    second = Acquirer(limiter).finish()  # one slot was left: `first` counts once
    third = Acquirer(limiter)

    assert not third.got_slot.wait(BLOCKED_S), "the limit is 2: a third request must wait"
    clock.now = 1001.0
    limiter.release(second)
    third.finish()


def test_a_slot_is_released_when_the_request_raises(clock):
    limiter = RateLimiter(1, 1000.0)

    with pytest.raises(RuntimeError):
        with limiter.slot():
            raise RuntimeError("connection reset")
    clock.now = 1001.0

    Acquirer(limiter).finish()  # without the release the only slot would be held forever


@pytest.mark.parametrize("max_requests, period_s", [(0, 10.0), (5, 0.0), (5, -1.0)])
def test_a_rate_limit_that_admits_nothing_is_refused(max_requests, period_s):
    with pytest.raises(DeckConfigError) as raised:
        RateLimiter(max_requests, period_s)

    assert str(raised.value) == (
        "rate limit: max_requests must be at least 1 and period_s above 0"
        f" (got {max_requests} per {period_s} s)"
    )


# ---- path_segment ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "run_id, segment",
    [
        ("trun_9d1e07", "trun_9d1e07"),
        ("trun_a/b", "trun_a%2Fb"),
        ("trun_q?x=1", "trun_q%3Fx%3D1"),
        ("trun_h#frag", "trun_h%23frag"),
        ("trun_p%2Fx", "trun_p%252Fx"),  # an escape in the id is sent as text, not decoded
        ("trun_a b", "trun_a%20b"),
        ("trun_é", "trun_%C3%A9"),
        ("trun_a;b&c", "trun_a%3Bb%26c"),
        ("..", "%2E%2E"),  # only dots: urllib3 would resolve it away as "up"
        (".", "%2E"),
        ("../test", "..%2Ftest"),  # the slash is encoded, so the dots stay a literal name
        ("v1.2.3", "v1.2.3"),
    ],
)
def test_path_segment_encodes_a_run_id_as_exactly_one_segment(run_id, segment):
    assert path_segment(run_id) == segment


# ---- check_api_key ---------------------------------------------------------------------------

EMPTY_KEY = (
    "api_key is empty: set SOURCES__DECK__API_KEY or api_key under [sources.deck] in"
    " .dlt/secrets.toml (see .dlt/secrets.toml.example)."
)
UNSENDABLE_KEY = (
    "api_key contains a line break, a space, a control or a non-ASCII character, so it cannot be"
    " sent in an HTTP header (the key is not shown here). Copy the key again into"
    " SOURCES__DECK__API_KEY or api_key under [sources.deck] in .dlt/secrets.toml; it looks like"
    " sk_live_ followed by letters and digits."
)


@pytest.mark.parametrize("key", [None, "", "   ", "\n"])
def test_an_empty_api_key_is_refused_saying_where_to_set_it(key):
    with pytest.raises(DeckConfigError) as raised:
        check_api_key(key)

    assert str(raised.value) == EMPTY_KEY


@pytest.mark.parametrize(
    "key",
    ["sk_live_AB12\r\nCD34", "sk_live_AB12 CD34", "sk_live_AB12\tCD34", "sk_live_AB12é",
     "sk_live_AB12\x00", "sk_live_AB12\x7f"],
)
def test_an_api_key_that_cannot_be_a_header_is_refused_without_echoing_it(key):
    with pytest.raises(DeckConfigError) as raised:
        check_api_key(key)

    assert str(raised.value) == UNSENDABLE_KEY
    assert "AB12" not in repr(raised.value.args)


def test_an_api_key_loses_the_whitespace_around_it():
    assert check_api_key("  sk_live_AB12cd34\n") == "sk_live_AB12cd34"


# ---- scrubbed_exception ----------------------------------------------------------------------

KEY = "sk_live_AB12cd34EF56"


def test_an_exception_without_the_key_is_left_alone():
    assert scrubbed_exception(ValueError("bad header"), KEY) is None


def test_a_checked_key_is_hidden_from_every_later_text_without_being_named():
    key = "sk_live_REMEMBERED_9d8c7b6a5f4e"
    check_api_key(key)

    assert scrub(f"Deck said: {key}") == "Deck said: [api_key hidden]"
    assert scrubbed_exception(ValueError(f"bad {key}")) is not None


def test_a_deck_error_never_holds_the_key_it_was_made_with():
    check_api_key(KEY)

    error = DeckPermanentError(f"refused {KEY}", status=404, request_id=f"req_{KEY}")

    assert str(error) == "refused [api_key hidden] (request_id req_[api_key hidden])"
    assert (error.status, error.request_id) == (404, "req_[api_key hidden]")


def test_a_deck_error_carrying_the_key_keeps_its_type_status_and_request_id():
    original = DeckPermanentError("refused", status=404, request_id="req_1")
    original.args = (f"refused Bearer {KEY} (request_id req_1)",)  # set past the scrubber

    clean = scrubbed_exception(original, KEY)

    assert type(clean) is DeckPermanentError
    assert (clean.status, clean.request_id) == (404, "req_1")
    assert str(clean) == "refused Bearer [api_key hidden] (request_id req_1)"
    assert KEY in str(original)  # the original is not changed in place


def test_a_foreign_exception_carrying_the_key_becomes_a_deck_error_naming_its_type():
    clean = scrubbed_exception(KeyError(f"Bearer {KEY}"), KEY)

    assert type(clean) is DeckError
    assert str(clean) == "KeyError: 'Bearer [api_key hidden]'"
    assert clean.__cause__ is None and clean.__context__ is None
