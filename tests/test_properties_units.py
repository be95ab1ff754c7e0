"""Properties of the connector's small pure parts: how a window is split, how state is saved and
read back, what the record checks let through, and what the rate limiter lets out.

(`Window` has no merge: the only operation that joins windows is `planning.clip_windows`, which
test_planning covers by example; there is nothing to state a merge law about.)
"""

import copy
import dataclasses
import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from deck.api import ratelimit
from deck.api.ratelimit import RateLimiter
from deck.core import record_values, records
from deck.core.state import ListingState, OpenRun, Plan, SeenRun, TaskRunState
from deck.core.windows import Window
from dlt.common import json as dlt_json
from hypothesis import given
from hypothesis import strategies as st
from support.deck_model import MS_US, from_us, to_us

pytestmark = pytest.mark.unit  # pure logic: `pytest -m unit` runs these alone

Y2000 = to_us(datetime(2000, 1, 1, tzinfo=timezone.utc))
Y2099 = to_us(datetime(2099, 12, 31, tzinfo=timezone.utc))

# Instants Deck can print (whole milliseconds), and any instant at all (microseconds).
MS_INSTANTS = st.integers(Y2000 // MS_US, Y2099 // MS_US).map(lambda ms: from_us(ms * MS_US))
SPANS_US = st.one_of(
    st.integers(1, 5_000),  # shorter than the parts asked for: a few microseconds or ms
    st.integers(1, 10_000_000),
    st.integers(1, 40 * 86_400_000_000),
)


# ---- Window.split ------------------------------------------------------------------------------


@st.composite
def windows_to_split(draw: st.DrawFn, whole_ms: bool = False) -> tuple[Window, int]:
    """A bounded window (at any microsecond, or on whole milliseconds) and a number of parts."""
    start = to_us(draw(MS_INSTANTS)) + (0 if whole_ms else draw(st.integers(0, MS_US - 1)))
    span = draw(SPANS_US)
    if whole_ms:
        span = max(1, span // MS_US) * MS_US
    return Window(from_us(start), from_us(start + span)), draw(st.integers(1, 16))


@given(windows_to_split())
def test_split_parts_are_ordered_adjacent_and_cover_the_window_exactly(
    case: tuple[Window, int],
) -> None:
    window, parts = case
    pieces = window.split(parts)

    assert pieces, "a window splits into at least one part"
    assert pieces[0].start == window.start and pieces[-1].end == window.end
    assert all(p.start < p.end for p in pieces), f"an empty or reversed part: {pieces}"
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False)), pieces


@given(windows_to_split(), st.floats(-0.5, 1.5))
def test_every_instant_lies_in_exactly_one_part_of_a_split(
    case: tuple[Window, int], where: float
) -> None:
    window, parts = case
    span_us = to_us(window.end) - to_us(window.start)
    instant = from_us(to_us(window.start) + math.floor(span_us * where))

    holding = [p for p in window.split(parts) if p.contains(instant)]

    assert len(holding) == (1 if window.contains(instant) else 0), (instant, holding)


@given(windows_to_split())
def test_split_makes_no_more_parts_than_asked(case: tuple[Window, int]) -> None:
    window, parts = case

    assert len(window.split(parts)) <= parts


@given(windows_to_split(whole_ms=True))
def test_split_edges_of_a_window_on_whole_milliseconds_are_whole_milliseconds(
    case: tuple[Window, int],
) -> None:
    """Deck may read a bound only to the millisecond: an edge inside one would leave the runs of
    that millisecond to neither side."""
    window, parts = case
    edges = [p.start for p in window.split(parts)[1:]]

    finer = [edge for edge in edges if edge.microsecond % MS_US]
    assert not finer, f"edges finer than a millisecond: {finer}"


# ---- state round trips -------------------------------------------------------------------------

RUN_IDS = st.text("abcdef0123456789", min_size=1, max_size=6).map(lambda s: f"trun_{s}")
DIGESTS = st.text("0123456789abcdef", max_size=16)
OPTIONAL_INSTANTS = st.none() | MS_INSTANTS
WINDOWS = st.builds(Window, OPTIONAL_INSTANTS, OPTIONAL_INSTANTS)
SEEN = st.builds(SeenRun, MS_INSTANTS, DIGESTS)
JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    """Any `Plan`, with whatever fields this version of it has."""
    values: dict[str, Any] = {
        "windows": draw(st.lists(WINDOWS, max_size=4)),
        "extends_coverage": draw(st.booleans()),
        "new_covered_from": draw(OPTIONAL_INSTANTS),
        "max_seen": draw(OPTIONAL_INSTANTS),
        "recent": draw(st.dictionaries(RUN_IDS, SEEN, max_size=3)),
    }
    extra = {
        "deferred": st.dictionaries(
            RUN_IDS, MS_INSTANTS.map(lambda dt: dt.isoformat().replace("+00:00", "Z")),
            max_size=3,
        ),
        "top_relisted": st.booleans(),
        "reread_from": OPTIONAL_INSTANTS,
    }
    for f in dataclasses.fields(Plan):
        if f.name not in values:
            values[f.name] = draw(extra[f.name])
    return Plan(**values)


@st.composite
def task_run_states(draw: st.DrawFn) -> TaskRunState:
    return TaskRunState(
        filters=draw(st.none() | st.just("[('agent_id', 'agt_1')]")),
        watermark=draw(OPTIONAL_INSTANTS),
        covered_from=draw(OPTIONAL_INSTANTS),
        recent=draw(st.dictionaries(RUN_IDS, SEEN, max_size=3)),
        plan=draw(st.none() | plans()),
        reread_from=draw(OPTIONAL_INSTANTS),
        open_runs=draw(st.dictionaries(
            RUN_IDS, st.builds(OpenRun, MS_INSTANTS, DIGESTS, st.booleans()), max_size=3
        )),
        rejected=draw(st.dictionaries(
            DIGESTS, st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3), max_size=2
        )),
    )


def through_json(value: Any) -> Any:
    """What dlt keeps of a state value: its JSON text, read back."""
    return json.loads(json.dumps(value))


@given(plans())
def test_a_plan_reads_back_equal_from_its_saved_state(plan: Plan) -> None:
    assert Plan.from_state(through_json(plan.to_state())) == plan


@given(task_run_states())
def test_a_task_run_state_reads_back_equal_from_its_saved_state(state: TaskRunState) -> None:
    raw: dict[str, Any] = {}
    state.save(raw)

    assert TaskRunState.load(through_json(raw)) == state


@given(task_run_states())
def test_a_listing_state_reads_back_equal_from_its_saved_state(state: TaskRunState) -> None:
    listing = ListingState(state.filters, state.watermark, state.covered_from, state.recent,
                           state.plan)
    raw: dict[str, Any] = {}
    listing.save(raw)

    assert ListingState.load(through_json(raw)) == listing


@given(task_run_states())
def test_a_saved_state_is_saved_again_unchanged_once_read(state: TaskRunState) -> None:
    raw: dict[str, Any] = {}
    state.save(raw)
    saved = through_json(raw)

    again: dict[str, Any] = {}
    TaskRunState.load(copy.deepcopy(saved)).save(again)

    assert through_json(again) == saved


# ---- record checks -----------------------------------------------------------------------------

WIDE_INTS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.integers(2**63, 2**64 - 1),  # an unsigned 64-bit value: not a BIGINT
    st.integers(2**64, 2**80),
    st.integers(-(2**80), -(2**63) - 1),
)
ODD_TEXT = st.text(
    st.characters(codec=None, categories=None, exclude_categories=()), max_size=6
) | st.sampled_from(["caf\ud83d", "\udc00x", "ok"])
FLOATS = st.floats(allow_nan=True, allow_infinity=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | WIDE_INTS | FLOATS | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=8,
)
TIMESTAMPS = st.one_of(
    MS_INSTANTS.map(lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"),
    MS_INSTANTS.map(lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%SZ")),
    MS_INSTANTS.map(lambda dt: dt.isoformat()),  # +00:00, and microseconds when not zero
    MS_INSTANTS.map(lambda dt: dt.strftime("%Y-%m-%d %H:%M:%S,%f+0000")),
    MS_INSTANTS.map(lambda dt: (dt + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")),
    st.sampled_from(["yesterday", "2026-13-01T00:00:00Z", "", "2026-03-01"]),
    JSON_VALUES,
)
DECK_TIMESTAMPS = MS_INSTANTS.map(lambda dt: dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
FIELDS = {
    "object": st.just("task_run") | JSON_VALUES,
    "status": st.sampled_from(["completed", "running"]) | JSON_VALUES,
    "result": JSON_VALUES,
    "agent_id": JSON_VALUES,
    "runtime_ms": JSON_VALUES | st.integers(0, 10**6).map(str),
    "updated_at": TIMESTAMPS,
    "canceled_at": TIMESTAMPS,
    "output": JSON_VALUES | st.fixed_dictionaries({"account_number": WIDE_INTS}),
    "errors": JSON_VALUES,
    "input": JSON_VALUES,
    "caf\ud83d": JSON_VALUES,
}
RECORDS = st.one_of(
    # a run Deck could send: its id and created_at are usable, any other field may be odd
    st.fixed_dictionaries({"id": RUN_IDS, "created_at": DECK_TIMESTAMPS}, optional=FIELDS),
    # anything in the two fields that place a run
    st.fixed_dictionaries(
        {
            "id": st.one_of(RUN_IDS, WIDE_INTS, st.sampled_from(["", " ", "trun_\ud83d"]),
                            st.none()),
            "created_at": TIMESTAMPS,
        },
        optional=FIELDS,
    ),
    JSON_VALUES,  # not an object at all
)


def strings_and_ints(value: Any) -> tuple[list[str], list[int]]:
    """Every string (keys too) and every integer anywhere in `value`."""
    texts: list[str] = []
    ints: list[int] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            texts.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            texts.append(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            ints.append(item)
    return texts, ints


@given(st.lists(RECORDS, max_size=4))
def test_check_page_places_every_record_it_is_given(page: list[Any]) -> None:
    checked = records.check_page(copy.deepcopy(page))

    assert len(checked.runs) + len(checked.rejected) == len(page)


@given(st.lists(RECORDS, max_size=4))
def test_check_page_is_idempotent_on_its_own_output(page: list[Any]) -> None:
    first = records.check_page(copy.deepcopy(page))
    output = repr(first.runs)  # repr: NaN is equal to itself there

    second = records.check_page(copy.deepcopy(first.runs))

    assert not second.rejected, [r.reason for r in second.rejected]
    assert repr(second.runs) == output


@given(st.lists(RECORDS, max_size=4))
def test_every_run_check_page_accepts_is_json_dlt_can_write(page: list[Any]) -> None:
    runs = records.check_page(copy.deepcopy(page)).runs

    dlt_json.dumps(runs)  # dlt's own encoder (orjson): raises on what dlt cannot write
    texts, _ = strings_and_ints(runs)
    for text in texts:
        text.encode("utf-8")  # no lone surrogate, in a value or a key


NUMBERS = st.recursive(
    WIDE_INTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=6,
)
RUNS_WITH_NUMBERS = st.fixed_dictionaries(
    {"id": RUN_IDS, "created_at": DECK_TIMESTAMPS, "output": NUMBERS},
    optional={"runtime_ms": WIDE_INTS, "input": NUMBERS, "status": WIDE_INTS},
)


@given(st.lists(RUNS_WITH_NUMBERS, min_size=1, max_size=3))
def test_every_integer_of_an_accepted_run_fits_a_bigint_once_prepared(page: list[Any]) -> None:
    """records.py: a wide integer (outside signed 64 bits) becomes its text, `<key>__v_text`,
    by the time the run reaches dlt (`check_page`, then `prepare`)."""
    runs = [records.prepare(run, []) for run in records.check_page(copy.deepcopy(page)).runs]

    _, ints = strings_and_ints(runs)
    wide = [i for i in ints if not record_values.INT64_MIN <= i <= record_values.INT64_MAX]
    assert not wide, f"integers outside signed 64 bits reach dlt: {wide}"


@given(st.lists(RECORDS, max_size=4))
def test_every_run_check_page_accepts_has_an_id_and_a_created_at(page: list[Any]) -> None:
    for run in records.check_page(copy.deepcopy(page)).runs:
        assert isinstance(run["id"], str) and run["id"].strip(), run
        assert record_values.parse_api_timestamp(run["created_at"]) is not None, run


# ---- RateLimiter -------------------------------------------------------------------------------


class FakeTime:
    """`time` for the limiter: `monotonic()` reads a clock the simulation moves."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class FakeCondition:
    """The limiter's condition in a single-threaded simulation: waiting moves the clock."""

    def __init__(self, time: FakeTime) -> None:
        self.time = time

    def __enter__(self) -> "FakeCondition":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None, "the simulation never waits with every slot in flight"
        self.time.now += timeout
        return False

    def notify_all(self) -> None:
        return None


@dataclasses.dataclass(frozen=True)
class Traffic:
    max_requests: int
    period_s: float
    workers: int  # requests a client keeps in flight at most
    requests: list[tuple[float, float]]  # (pause before sending, time to the answer), seconds


TRAFFIC = st.builds(
    Traffic,
    max_requests=st.integers(1, 6),
    period_s=st.sampled_from([0.5, 1.0, 10.0]),
    workers=st.integers(1, 8),
    requests=st.lists(
        st.tuples(st.floats(0, 3, allow_nan=False), st.floats(0, 3, allow_nan=False)),
        max_size=40,
    ),
)


def simulate(traffic: Traffic) -> list[tuple[float, float]]:
    """(slot taken, answer in and slot released) of each request, on a fake clock."""
    fake = FakeTime()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ratelimit, "time", fake)
        limiter = RateLimiter(traffic.max_requests, traffic.period_s)
        limiter._changed = FakeCondition(fake)  # type: ignore[assignment]
        in_flight: list[tuple[float, int, float]] = []  # (answer due, token, taken)
        done: list[tuple[float, float]] = []

        def answer_first() -> None:
            due, token, taken = min(in_flight)
            in_flight.remove((due, token, taken))
            fake.now = max(fake.now, due)
            limiter.release(token)
            done.append((taken, fake.now))

        for pause, duration in traffic.requests:
            fake.now += pause
            while in_flight and min(in_flight)[0] <= fake.now:
                answer_first()
            while len(in_flight) >= min(traffic.workers, traffic.max_requests):
                answer_first()  # else every slot is in flight: acquire would wait for ever
            token = limiter.acquire()
            in_flight.append((fake.now + duration, token, fake.now))
        while in_flight:
            answer_first()
    return done


@given(TRAFFIC)
def test_no_period_of_deck_can_count_more_than_max_requests(traffic: Traffic) -> None:
    """Deck counts a request at some moment between its slot being taken and its answer: any
    `period_s` window of Deck's can only hold requests that overlap it."""
    done = simulate(traffic)

    for t in [released for _, released in done]:
        overlapping = [r for r in done if r[0] < t + traffic.period_s and r[1] >= t]
        assert len(overlapping) <= traffic.max_requests, (t, overlapping)


@given(TRAFFIC)
def test_at_most_max_requests_answers_finish_within_any_period(traffic: Traffic) -> None:
    answers = sorted(released for _, released in simulate(traffic))

    for i, t in enumerate(answers):
        within = [a for a in answers[i:] if a < t + traffic.period_s]
        assert len(within) <= traffic.max_requests, (t, within)
