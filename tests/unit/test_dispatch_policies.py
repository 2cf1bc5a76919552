"""serve/dispatch: latency prediction and the dispatch policies, table-driven."""

from __future__ import annotations

import dataclasses

import pytest
from pydantic import ValidationError

from serve.config.dispatch import DispatchConfig
from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.dispatch.policies import (
    POLICIES,
    CheapestOnly,
    CheapestWithinSlo,
    FastestOnly,
    RoundRobin,
    make_policy,
)
from serve.dispatch.predict import predict
from serve.dispatch.types import LatencyTarget, PoolState, RequestEstimate

# One replica: 10 ms per token alone, 20 ms per token at its batch limit of 8 streams.
PROFILE = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=100.0, ttft_ms=50.0),
        ProfilePoint(concurrency=8, output_tokens_per_s=400.0, ttft_ms=100.0),
    ]
)
# Twice as fast everywhere.
FAST_PROFILE = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=200.0, ttft_ms=25.0),
        ProfilePoint(concurrency=8, output_tokens_per_s=800.0, ttft_ms=50.0),
    ]
)
TARGET = LatencyTarget(ttft_ms=500.0, tpot_ms=15.0)
REQUEST = RequestEstimate(model="m", prompt_tokens=20, max_output_tokens=100)


def pool(name: str, price: float, **fields: object) -> PoolState:
    state = PoolState(name=name, model="m", price_usd_per_hour=price, profile=PROFILE, target=TARGET)
    return dataclasses.replace(state, **fields)


CHEAP = pool("cheap", 1.0)
PRICEY = pool("pricey", 4.0)
MID = pool("mid", 2.0)


CHEAPEST_WITHIN_SLO_CASES = [
    ("cheap pool under target", [PRICEY, CHEAP], ("cheap", "pricey"), "cheapest-within-slo", ()),
    (
        "cheap pool saturated: spill to the next cheapest",
        [dataclasses.replace(CHEAP, running=7), MID, PRICEY],
        ("mid", "pricey", "cheap"),
        "spill",
        (),
    ),
    (
        "cheap pool's queue counts too",
        [dataclasses.replace(CHEAP, running=3, waiting=4), PRICEY],
        ("pricey", "cheap"),
        "spill",
        (),
    ),
    (
        "two replicas halve the per-replica load",
        [dataclasses.replace(CHEAP, running=3, replicas=2), PRICEY],
        ("cheap", "pricey"),
        "cheapest-within-slo",
        (),
    ),
    (
        "cold cheap pool, warm pricier pool meets target: warm chosen, cheap woken",
        [dataclasses.replace(CHEAP, replicas=0), PRICEY],
        ("pricey", "cheap"),
        "cheapest-within-slo",
        ("cheap",),
    ),
    (
        "cold pool pricier than the warm one is not woken",
        [CHEAP, dataclasses.replace(PRICEY, replicas=0)],
        ("cheap", "pricey"),
        "cheapest-within-slo",
        (),
    ),
    (
        "cold cheap pool that would miss its target even warm is not woken",
        [dataclasses.replace(CHEAP, replicas=0, target=LatencyTarget(ttft_ms=500.0, tpot_ms=5.0)), PRICEY],
        ("pricey", "cheap"),
        "cheapest-within-slo",
        (),
    ),
    (
        "no warm pool: the cheapest cold pool, woken",
        [dataclasses.replace(PRICEY, replicas=0), dataclasses.replace(CHEAP, replicas=0, starting=1)],
        ("cheap", "pricey"),
        "cold-start",
        ("cheap",),
    ),
    (
        "nothing meets its target: the lowest predicted latency",
        [
            dataclasses.replace(CHEAP, running=7, target=LatencyTarget(ttft_ms=10.0, tpot_ms=5.0)),
            dataclasses.replace(PRICEY, running=3, target=LatencyTarget(ttft_ms=10.0, tpot_ms=5.0)),
        ],
        ("pricey", "cheap"),
        "no-pool-meets-slo",
        (),
    ),
    (
        "nothing meets: a cold pool that would meet once warm is woken",
        [dataclasses.replace(CHEAP, running=7), dataclasses.replace(MID, replicas=0)],
        ("cheap", "mid"),
        "no-pool-meets-slo",
        ("mid",),
    ),
    ("unhealthy pool skipped", [dataclasses.replace(CHEAP, healthy=False), PRICEY], ("pricey",), "cheapest-within-slo", ()),
    ("no healthy pool", [dataclasses.replace(CHEAP, healthy=False)], (), "no-healthy-pool", ()),
    ("no pool at all", [], (), "no-healthy-pool", ()),
    (
        "a pool without a target always meets it",
        [dataclasses.replace(CHEAP, running=50, target=None), PRICEY],
        ("cheap", "pricey"),
        "cheapest-within-slo",
        (),
    ),
    (
        "cold pool dearer alone than a loaded warm one, without autoscaling target: not woken",
        [dataclasses.replace(PRICEY, running=1), pool("mid", 3.5, replicas=0, max_replicas=4)],
        ("pricey", "mid"),
        "cheapest-within-slo",
        (),
    ),
    (
        "...with one: priced at the load the autoscaler would give it, cheaper, so woken",
        [dataclasses.replace(PRICEY, running=1), pool("mid", 3.5, replicas=0, max_replicas=4, target_ongoing_requests=8)],
        ("pricey", "mid"),
        "cheapest-within-slo",
        ("mid",),
    ),
    (
        "a warm autoscaled pool that can grow is priced at its target: chosen over a loaded fixed one",
        [dataclasses.replace(PRICEY, running=1), pool("mid", 3.5, max_replicas=4, target_ongoing_requests=8)],
        ("mid", "pricey"),
        "cheapest-within-slo",
        (),
    ),
    (
        "...but at its maximum replicas it is priced at its current load",
        [dataclasses.replace(PRICEY, running=1), pool("mid", 3.5, replicas=4, max_replicas=4, target_ongoing_requests=8)],
        ("pricey", "mid"),
        "cheapest-within-slo",
        (),
    ),
    (
        "bad observed latency spills a pool the profile thinks is fine",
        [dataclasses.replace(CHEAP, observed_tpot_ms=40.0), PRICEY],
        ("pricey", "cheap"),
        "spill",
        (),
    ),
]


@pytest.mark.parametrize(
    ("case", "pools", "expected_pools", "reason", "wake"),
    CHEAPEST_WITHIN_SLO_CASES,
    ids=[case[0] for case in CHEAPEST_WITHIN_SLO_CASES],
)
def test_cheapest_within_slo(
    case: str, pools: list[PoolState], expected_pools: tuple[str, ...], reason: str, wake: tuple[str, ...]
) -> None:
    decision = CheapestWithinSlo().choose(REQUEST, pools)
    assert (decision.pools, decision.reason, decision.wake) == (expected_pools, reason, wake), case


def test_decision_carries_the_chosen_pools_prediction() -> None:
    decision = CheapestWithinSlo().choose(REQUEST, [CHEAP, PRICEY])
    expected = predict(CHEAP, REQUEST)
    assert decision.estimated_cost_usd == pytest.approx(expected.cost_usd)
    assert decision.estimated_cost_usd > 0
    assert (decision.predicted_ttft_ms, decision.predicted_tpot_ms) == (expected.ttft_ms, expected.tpot_ms)


def test_load_packs_onto_the_cheap_pool_until_its_target_breaks() -> None:
    # tpot(c) = 1000 c / T(c) with T from 100 to 400 tok/s over c = 1..8: 14.0 ms at c = 2,
    # 16.2 ms at c = 3, so the 15 ms target holds up to two requests per replica.
    policy = CheapestWithinSlo()
    chosen = [policy.choose(REQUEST, [dataclasses.replace(CHEAP, running=n), PRICEY]).pools[0] for n in range(8)]
    assert chosen == ["cheap"] * 2 + ["pricey"] * 6


# --- prediction ----------------------------------------------------------------------------


def test_prediction_follows_the_profile() -> None:
    p = predict(dataclasses.replace(CHEAP, running=3), REQUEST)
    assert p.concurrency == 4
    assert p.tpot_ms == pytest.approx(PROFILE.tpot_ms(4))
    assert p.ttft_ms == pytest.approx(PROFILE.ttft_ms(4, 20))
    assert p.latency_ms(100) == pytest.approx(p.ttft_ms + 99 * p.tpot_ms)


def test_queueing_beyond_the_batch_adds_to_ttft() -> None:
    at_limit = predict(dataclasses.replace(CHEAP, running=7), REQUEST, typical_output_tokens=100)
    queued = predict(dataclasses.replace(CHEAP, running=8, waiting=4), REQUEST, typical_output_tokens=100)
    # 5 requests beyond the batch of 8; slots free at 400 tok/s / 100 tokens = 4 per second.
    assert queued.ttft_ms - at_limit.ttft_ms == pytest.approx(5 / 4 * 1000)
    assert queued.tpot_ms == at_limit.tpot_ms


def test_observed_latency_is_blended_with_the_model() -> None:
    observed = dataclasses.replace(CHEAP, observed_ttft_ms=450.0, observed_tpot_ms=30.0)
    half = predict(observed, REQUEST, observed_weight=0.5)
    assert half.ttft_ms == pytest.approx((PROFILE.ttft_ms(1, 20) + 450.0) / 2)
    assert half.tpot_ms == pytest.approx((10.0 + 30.0) / 2)
    assert predict(observed, REQUEST, observed_weight=0.0).tpot_ms == pytest.approx(10.0)
    assert predict(observed, REQUEST, observed_weight=1.0).tpot_ms == pytest.approx(30.0)


def test_cold_pool_prediction_includes_start_up() -> None:
    p = predict(dataclasses.replace(CHEAP, replicas=0, cold_start_s=60.0), REQUEST)
    assert p.ttft_ms == pytest.approx(60_000 + PROFILE.ttft_ms(1, 20))
    assert not p.meets_target


# --- baselines -----------------------------------------------------------------------------


def test_round_robin_rotates_over_warm_pools() -> None:
    policy = RoundRobin()
    pools = [CHEAP, MID, dataclasses.replace(PRICEY, replicas=0)]
    firsts = [policy.choose(REQUEST, pools) for _ in range(4)]
    assert [d.pools[0] for d in firsts] == ["cheap", "mid", "cheap", "mid"]
    assert firsts[1].pools == ("mid", "cheap", "pricey")
    assert {d.reason for d in firsts} == {"round-robin"}
    cold_only = policy.choose(REQUEST, [dataclasses.replace(CHEAP, replicas=0)])
    assert (cold_only.pools, cold_only.reason, cold_only.wake) == (("cheap",), "cold-start", ("cheap",))


def test_cheapest_ignores_latency_targets() -> None:
    saturated = dataclasses.replace(CHEAP, running=30)
    decision = CheapestOnly().choose(REQUEST, [PRICEY, saturated])
    assert (decision.pools, decision.reason) == (("cheap", "pricey"), "cheapest")


def test_fastest_ignores_cost() -> None:
    fast = dataclasses.replace(PRICEY, profile=FAST_PROFILE)
    decision = FastestOnly().choose(REQUEST, [CHEAP, fast])
    assert (decision.pools, decision.reason) == (("pricey", "cheap"), "fastest")
    cold = FastestOnly().choose(REQUEST, [dataclasses.replace(CHEAP, replicas=0)])
    assert (cold.reason, cold.wake) == ("cold-start", ("cheap",))


@pytest.mark.parametrize("policy_cls", [CheapestOnly, FastestOnly, RoundRobin, CheapestWithinSlo])
def test_every_policy_skips_unhealthy_pools(policy_cls: type) -> None:
    decision = policy_cls().choose(REQUEST, [dataclasses.replace(CHEAP, healthy=False), PRICEY])
    assert decision.pools == ("pricey",)
    assert policy_cls().choose(REQUEST, [dataclasses.replace(CHEAP, healthy=False)]).reason == "no-healthy-pool"


# --- registry and config -------------------------------------------------------------------


def test_registry() -> None:
    assert POLICIES == {"cost": CheapestWithinSlo, "round_robin": RoundRobin, "cheapest": CheapestOnly, "fastest": FastestOnly}
    for name, cls in POLICIES.items():
        policy = cls()
        assert policy.name == name
        assert policy.choose(REQUEST, [CHEAP]).pools == ("cheap",)


def test_make_policy_passes_options_and_names_bad_ones() -> None:
    policy = make_policy("cost", {"observed_weight": 0.2})
    assert isinstance(policy, CheapestWithinSlo) and policy.observed_weight == 0.2
    with pytest.raises(ValueError, match="unexpected keyword"):
        make_policy("cost", {"bogus": 1})
    with pytest.raises(ValueError, match="observed_weight"):
        make_policy("fastest", {"observed_weight": 2})
    with pytest.raises(ValueError, match="unknown dispatch policy 'nope'"):
        make_policy("nope")


def test_dispatch_config_validates_the_policy() -> None:
    assert DispatchConfig().policy == "cost"
    assert DispatchConfig(policy="round_robin", options={"typical_output_tokens": 64}).options == {
        "typical_output_tokens": 64
    }
    with pytest.raises(ValidationError, match="unknown dispatch policy 'nope'"):
        DispatchConfig(policy="nope")
    with pytest.raises(ValidationError, match="unexpected keyword"):
        DispatchConfig(options={"bogus": 1})
    with pytest.raises(ValidationError, match="greater than 0"):
        DispatchConfig(load_poll_interval_s=0)
