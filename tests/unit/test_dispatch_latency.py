"""serve/dispatch/latency.py: the rolling window of observed latencies."""

from __future__ import annotations

import pytest

from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.dispatch.latency import LatencyTracker
from serve.dispatch.types import LatencyTarget, PoolState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_per_pool() -> None:
    tracker = LatencyTracker(window_size=100)
    for i in range(1, 101):
        tracker.observe("a", ttft_ms=float(i), tpot_ms=float(i) / 10)
    tracker.observe("b", ttft_ms=500.0, tpot_ms=None)
    assert tracker.percentile("a", 50) == pytest.approx((50.5, 5.05))
    assert tracker.percentile("a", 95) == pytest.approx((95.05, 9.505))
    assert tracker.percentile("b", 95) == (500.0, None)
    assert tracker.percentile("c", 95) is None


def test_window_is_bounded() -> None:
    tracker = LatencyTracker(window_size=3)
    for ttft in (1000.0, 1.0, 2.0, 3.0):
        tracker.observe("a", ttft, 1.0)
    assert tracker.count("a") == 3
    assert tracker.percentile("a", 100) == (3.0, 1.0)  # the 1000 ms observation fell out


def test_old_observations_expire() -> None:
    clock = Clock()
    tracker = LatencyTracker(window_size=10, max_age_s=60.0, clock=clock)
    tracker.observe("a", 900.0, 9.0)
    clock.now = 30.0
    tracker.observe("a", 100.0, 1.0)
    assert tracker.percentile("a", 100) == (900.0, 9.0)
    clock.now = 61.0
    assert tracker.percentile("a", 100) == (100.0, 1.0)
    clock.now = 100.0
    assert tracker.percentile("a", 100) is None


def test_annotate_fills_pool_states_at_their_target_percentile() -> None:
    profile = ThroughputProfile(points=[ProfilePoint(concurrency=1, output_tokens_per_s=10.0, ttft_ms=10.0)])
    with_target = PoolState("a", "m", 1.0, profile, target=LatencyTarget(ttft_ms=1.0, tpot_ms=1.0, percentile=50.0))
    without = PoolState("b", "m", 1.0, profile, observed_ttft_ms=5.0, observed_tpot_ms=5.0)
    tracker = LatencyTracker()
    for ttft in (10.0, 20.0, 30.0):
        tracker.observe("a", ttft, ttft / 10)
    tracker.annotate([with_target, without])
    assert (with_target.observed_ttft_ms, with_target.observed_tpot_ms) == (20.0, 2.0)
    assert (without.observed_ttft_ms, without.observed_tpot_ms) == (None, None)


def test_window_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        LatencyTracker(window_size=0)
