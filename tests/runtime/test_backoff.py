"""The one backoff: ceilings, floor, jitter from a seeded RNG, and the reset rule."""

from __future__ import annotations

import random

import pytest

from devices.runtime.backoff import Backoff


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _same_draws(seed: int, ceilings: list[tuple[float, float]]) -> list[float]:
    """What a fresh RNG with ``seed`` draws for these (low, high) bounds."""
    rng = random.Random(seed)
    return [rng.uniform(lo, hi) for lo, hi in ceilings]


def test_ceiling_doubles_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(first_s=0.5, max_s=3.0, rng=random.Random(7))
    delays = [backoff.failed() for _ in range(6)]
    expected = _same_draws(7, [(0, 0.5), (0, 1.0), (0, 2.0), (0, 3.0), (0, 3.0), (0, 3.0)])
    assert delays == expected
    assert all(0 <= d <= 3.0 for d in delays)


def test_floor_bounds_every_delay_and_the_first_is_the_floor_when_equal() -> None:
    backoff = Backoff(first_s=0.2, max_s=2.0, floor_s=0.2, rng=random.Random(1))
    delays = [backoff.failed() for _ in range(5)]
    assert delays[0] == 0.2
    assert delays == _same_draws(1, [(0.2, 0.2), (0.2, 0.4), (0.2, 0.8), (0.2, 1.6), (0.2, 2.0)])


def test_an_attempt_that_got_up_resets_when_stable_s_is_zero() -> None:
    clock = _Clock()
    backoff = Backoff(first_s=0.1, max_s=30.0, rng=random.Random(3), clock=clock)
    for _ in range(8):
        backoff.failed()
    backoff.up()
    # Up for no time at all still counts with stable_s=0: the ceiling is the first again.
    assert backoff.failed() == _same_draws(3, [(0, 0.1 * 2**i) for i in range(8)] + [(0, 0.1)])[-1]


def test_a_short_run_continues_the_doubling_a_stable_one_resets() -> None:
    clock = _Clock()
    backoff = Backoff(first_s=1.0, max_s=64.0, stable_s=10.0, rng=random.Random(5), clock=clock)
    bounds: list[tuple[float, float]] = []
    got = []
    for ceiling in (1.0, 2.0):
        got.append(backoff.failed())
        bounds.append((0, ceiling))
    backoff.up()
    clock.now += 9.9  # up, but not for stable_s: the ceiling keeps doubling
    got.append(backoff.failed())
    bounds.append((0, 4.0))
    got.append(backoff.failed())  # no up() since the last failure: doubling again
    bounds.append((0, 8.0))
    backoff.up()
    clock.now += 10.0  # stable: start over
    got.append(backoff.failed())
    bounds.append((0, 1.0))
    assert got == _same_draws(5, bounds)


def test_same_seed_same_delays() -> None:
    one = Backoff(first_s=0.5, max_s=60.0, rng=random.Random(42))
    two = Backoff(first_s=0.5, max_s=60.0, rng=random.Random(42))
    assert [one.failed() for _ in range(20)] == [two.failed() for _ in range(20)]


@pytest.mark.parametrize(
    ("first", "maximum", "floor", "stable"),
    [(0.0, 1.0, 0.0, 0.0), (2.0, 1.0, 0.0, 0.0), (1.0, 2.0, 1.5, 0.0), (1.0, 2.0, 0.0, -1.0)],
)
def test_bad_bounds_are_refused(first: float, maximum: float, floor: float, stable: float) -> None:
    with pytest.raises(ValueError, match="backoff needs"):
        Backoff(first_s=first, max_s=maximum, floor_s=floor, stable_s=stable)
