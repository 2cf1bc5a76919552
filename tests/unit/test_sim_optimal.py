"""serve/sim/optimal.py and capacity.py: the integer program on toy problems solved by hand."""

from __future__ import annotations

import numpy as np
import pytest

from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.dispatch.types import LatencyTarget
from serve.sim.capacity import best_operating_point, operating_point
from serve.sim.optimal import Buckets, best_single_type, bucketize, single_type_fleets, solve

ONE_BUCKET = Buckets(np.array([100.0]), np.array([101.0]), np.array([5.0]))


def test_two_types_mix_beats_either_alone() -> None:
    # A: $1/h, 1 request/s per replica; B: $3/h, 4 requests/s. 5 requests/s:
    # 5 A = $5, 2 B = $6, 1 A + 1 B = $4.
    mu = np.array([[1.0, 4.0]])
    plan = solve(ONE_BUCKET, mu, [1.0, 3.0], ["A", "B"])
    assert plan.replicas == (1.0, 1.0)
    assert plan.cost_usd_per_hour == pytest.approx(4.0)
    assert plan.usd_per_million_output_tokens == pytest.approx(4.0 / (5 * 101 * 3600) * 1e6)
    single = best_single_type(ONE_BUCKET, mu, [1.0, 3.0], ["A", "B"])
    assert single is not None and single.pools == ("A",) and single.cost_usd_per_hour == pytest.approx(5.0)
    relaxed = solve(ONE_BUCKET, mu, [1.0, 3.0], ["A", "B"], integral=False)
    assert relaxed.cost_usd_per_hour == pytest.approx(3.75)  # 1.25 B replicas


def test_buckets_go_where_they_are_cheapest_and_feasible() -> None:
    # Bucket 0 only A can serve (2 replicas); bucket 1 is cheaper on one B ($2) than on 3 A ($3).
    buckets = Buckets(np.array([100.0, 5000.0]), np.array([100.0, 300.0]), np.array([4.0, 3.0]))
    mu = np.array([[2.0, 0.0], [1.0, 3.0]])
    plan = solve(buckets, mu, [1.0, 2.0], ["A", "B"])
    assert plan.replicas == (2.0, 1.0) and plan.cost_usd_per_hour == pytest.approx(4.0)
    assert plan.share[0].tolist() == pytest.approx([1.0, 0.0])
    assert plan.share[1].tolist() == pytest.approx([0.0, 1.0])
    alone = single_type_fleets(buckets, mu, [1.0, 2.0], ["A", "B"])
    assert alone[0].cost_usd_per_hour == pytest.approx(5.0)
    assert not alone[1].feasible and alone[1].cost_usd_per_hour == float("inf")


def test_infeasible_bucket() -> None:
    plan = solve(ONE_BUCKET, np.array([[0.0, 0.0]]), [1.0, 2.0], ["A", "B"])
    assert not plan.feasible
    assert best_single_type(ONE_BUCKET, np.array([[0.0, 0.0]]), [1.0, 2.0], ["A", "B"]) is None


def test_bucketize_rates_and_means() -> None:
    prompt = np.array([10, 20, 5000, 5000])
    output = np.array([100, 100, 200, 300])
    b = bucketize(prompt, output, duration_s=2.0)
    assert len(b.rate_per_s) == 3
    assert sorted(zip(b.prompt_tokens.tolist(), b.output_tokens.tolist(), b.rate_per_s.tolist())) == [
        (15.0, 100.0, 1.0),
        (5000.0, 200.0, 0.5),
        (5000.0, 300.0, 0.5),
    ]
    assert b.output_tokens_per_s == pytest.approx(350.0)


PROFILE = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=10, ttft_ms=100),
        ProfilePoint(concurrency=4, output_tokens_per_s=20, ttft_ms=100),
    ],
    prefill_tokens_per_s=1000,
)


def test_operating_point_without_prefill_is_littles_law() -> None:
    no_prefill = PROFILE.model_copy(update={"prefill_tokens_per_s": None})
    point = operating_point(no_prefill, 0, 101, 4)
    assert point.requests_per_s == pytest.approx(20 / 100)  # 20 tok/s over 100 decode tokens each
    assert point.tpot_ms == pytest.approx(200.0)
    assert point.ttft_ms == pytest.approx(100.0)


def test_operating_point_with_prefill_solves_the_fixed_point() -> None:
    point = operating_point(PROFILE, 500, 11, 1)
    # One at a time: 0.5 s prefill + 10 tokens at 10 tok/s = 1.5 s per request.
    assert point.requests_per_s == pytest.approx(1 / 1.5)
    assert point.prefill_fraction == pytest.approx(0.5 / 1.5)
    assert point.tpot_ms == pytest.approx(100.0)  # nothing else prefills while it decodes
    two = operating_point(PROFILE, 500, 11, 2)
    # R^2 - (c a + d) R + (c - 1) a^2 = 0 with a = 0.5 s, d = 10 tokens * 2 / 13.33 tok/s = 1.5 s.
    r = 2 / two.requests_per_s
    assert r * r - 2.5 * r + 0.25 == pytest.approx(0.0, abs=1e-9)
    assert two.tpot_ms == pytest.approx(1000 * (r - 0.5) / 10)


def test_best_point_respects_target_and_kv() -> None:
    no_prefill = PROFILE.model_copy(update={"prefill_tokens_per_s": None})
    # TPOT at c: 1000 c / tps(c); c=2 -> 2000/13.33 = 150 ms, c=3 -> 3000/16.67 = 180 ms.
    best = best_operating_point(no_prefill, 1e6, 0, 101, LatencyTarget(ttft_ms=1000, tpot_ms=160))
    assert best is not None and best.concurrency == 2
    assert best_operating_point(no_prefill, 250, 0, 101, None).concurrency == 2  # KV: 2 x 101 tokens
    assert best_operating_point(no_prefill, 1e6, 0, 101, LatencyTarget(ttft_ms=1000, tpot_ms=50)) is None
