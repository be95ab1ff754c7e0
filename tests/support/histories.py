"""Synthetic histories of `created_at` instants (µs since the epoch) for the progress estimate:
the four shapes issue 21 names, all ending an hour before `END`. Seeded, so each is one fixed
history."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from .deck_model import to_us

END = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAY_US = 86_400 * 1_000_000
DAYS = 60


def _span(rng: random.Random, count: int, first_day: float, last_day: float) -> list[int]:
    top = to_us(END - timedelta(hours=1))
    return [top - int(rng.uniform(DAYS - last_day, DAYS - first_day) * DAY_US)
            for _ in range(count)]


def uniform(count: int, seed: int = 1) -> list[int]:
    """Evenly over 60 days."""
    return _span(random.Random(seed), count, 0, DAYS)


def bursty(count: int, seed: int = 1) -> list[int]:
    """Two hundred bursts of about equal size (a batch job's), each within an hour or two, at
    random times, and nothing between them."""
    rng = random.Random(seed)
    weights = [rng.uniform(0.5, 1.5) for _ in range(200)]
    centres = [rng.uniform(0, DAYS) for _ in weights]
    instants = []
    for _ in range(count):
        (centre,) = rng.choices(centres, weights)
        day = min(DAYS, max(0.0, rng.gauss(centre, 1 / 24)))
        instants += _span(rng, 1, day, day)
    return instants


def heavy_bursts(count: int, seed: int = 1) -> list[int]:
    """Forty bursts whose sizes follow a heavy tail (a few hold most runs)."""
    rng = random.Random(seed)
    weights = [rng.paretovariate(1.5) for _ in range(40)]
    centres = [rng.uniform(0, DAYS) for _ in weights]
    instants = []
    for _ in range(count):
        (centre,) = rng.choices(centres, weights)
        day = min(DAYS, max(0.0, rng.gauss(centre, 1 / 24)))
        instants += _span(rng, 1, day, day)
    return instants


def long_gap(count: int, seed: int = 1) -> list[int]:
    """Half in the first ten days, nothing for forty, half in the last ten."""
    rng = random.Random(seed)
    return _span(rng, count // 2, 0, 10) + _span(rng, count - count // 2, 50, DAYS)


def last_week(count: int, seed: int = 1) -> list[int]:
    """Four in five in the last seven days, the rest over the 53 days before."""
    rng = random.Random(seed)
    recent = count * 4 // 5
    return _span(rng, count - recent, 0, DAYS - 7) + _span(rng, recent, DAYS - 7, DAYS)


def last_two_days(count: int, seed: int = 1) -> list[int]:
    """Nine in ten in the last two days."""
    rng = random.Random(seed)
    recent = count * 9 // 10
    return _span(rng, count - recent, 0, DAYS - 2) + _span(rng, recent, DAYS - 2, DAYS)


SHAPES: dict[str, Callable[..., list[int]]] = {
    "uniform": uniform, "bursty": bursty, "long_gap": long_gap, "last_week": last_week,
}
