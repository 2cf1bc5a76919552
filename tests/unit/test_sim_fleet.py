"""serve/sim/fleet.py and metrics.py: small traces with answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from serve.config.schema import AutoscalingConfig
from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.dispatch.policies import CheapestOnly, CheapestWithinSlo, RoundRobin
from serve.dispatch.types import LatencyTarget
from serve.sim.autoscaler import RayScalingOptions
from serve.sim.fleet import Fleet
from serve.sim.metrics import summarize
from serve.sim.pools import SimPoolSpec
from serve.sim.trace import ArrivalProcess, Trace

PROFILE = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=10, ttft_ms=100),
        ProfilePoint(concurrency=2, output_tokens_per_s=16, ttft_ms=100),
        ProfilePoint(concurrency=8, output_tokens_per_s=40, ttft_ms=200),
    ],
    prefill_tokens_per_s=1000,
)


def _pool(
    name: str, price: float, *, lo: int = 1, hi: int = 1, target: float = 4, cold_s: float = 0.0, **scaling: float
) -> SimPoolSpec:
    return SimPoolSpec(
        name=name,
        accelerator_type=name,
        model="m",
        price_usd_per_hour=price,
        profile=PROFILE,
        kv_capacity_tokens=100_000,
        target=LatencyTarget(ttft_ms=2000, tpot_ms=500),
        autoscaling=AutoscalingConfig(
            min_replicas=lo, max_replicas=hi, initial_replicas=lo, target_ongoing_requests=target, upscale_delay_s=30
        ),
        scaling=RayScalingOptions(**scaling),
        max_ongoing_requests=8,
        cold_start_s=cold_s,
    )


def _trace(arrival_s: list[float], prompt: list[int], output: list[int], duration_s: float) -> Trace:
    n = len(arrival_s)
    return Trace(
        workload="test",
        arrivals=ArrivalProcess(rate_per_s=max(n, 1) / duration_s),
        duration_s=duration_s,
        arrival_s=np.asarray(arrival_s, dtype=np.float64),
        prompt_tokens=np.asarray(prompt, dtype=np.int32),
        output_tokens=np.asarray(output, dtype=np.int32),
        max_output_tokens=np.asarray(output, dtype=np.int32),
        request_class=np.zeros(n, dtype=np.int8),
        class_names=("test",),
    )


def test_one_replica_one_request_exact_latency_and_cost() -> None:
    run = Fleet([_pool("a", 3.6)], CheapestWithinSlo()).run(_trace([1.0], [500], [11], 10.0))
    assert run.t_first[0] - 1.0 == pytest.approx(0.6)  # 0.5 s prefill + 100 ms
    assert run.t_done[0] == pytest.approx(2.5)  # then 10 tokens at 10 tok/s
    summary = summarize(run)
    assert summary.cost_usd == pytest.approx(0.01)  # one replica for 10 s at $3.60/h
    assert summary.usd_per_million_output_tokens == pytest.approx(0.01 / 11 * 1e6)
    assert summary.slo_attainment == 1.0
    assert summary.gpu_hours_by_type == {"a": pytest.approx(10 / 3600)}


def test_cheapest_pool_gets_everything() -> None:
    # A request of 20 tokens every second: the cheap replica alone carries it easily.
    times = [float(t) for t in range(200)]
    trace = _trace(times, [100] * 200, [20] * 200, 200.0)
    for policy in (CheapestOnly(), CheapestWithinSlo()):
        run = Fleet([_pool("dear", 2.0), _pool("cheap", 1.0)], policy).run(trace)
        assert np.all(run.pool_of == 1), policy.name
        usage = {u.pool: u.requests for u in summarize(run).pools}
        assert usage == {"dear": 0, "cheap": 200}


def test_round_robin_alternates() -> None:
    trace = _trace([float(i) for i in range(10)], [10] * 10, [5] * 10, 20.0)
    run = Fleet([_pool("a", 1.0), _pool("b", 1.0)], RoundRobin()).run(trace)
    assert run.pool_of.tolist() == [0, 1] * 5


def test_autoscaler_adds_replicas_after_the_upscale_delay() -> None:
    # 2 requests/s, each decoding ~4 s at 8 in flight: ~8 ongoing against a target of 2.
    times = np.arange(0, 120, 0.5).tolist()
    trace = _trace(times, [10] * len(times), [20] * len(times), 120.0)
    pool = _pool("a", 1.0, lo=1, hi=4, target=2, cold_s=10.0, look_back_period_s=5)
    run = Fleet([pool], CheapestOnly()).run(trace)
    assert run.replica_start_s[0] == 0.0
    later = run.replica_start_s[1:]
    assert later.size == 3  # up to max_replicas
    # Load passes the target within seconds; the wish must then hold for 30 s.
    assert np.all(later >= 30.0) and np.all(later <= 45.0)
    ready_at = run.series_t[run.series_replicas[:, 0] == 4]
    assert ready_at.size and ready_at[0] <= 60.0


def test_scale_from_zero_pays_the_cold_start() -> None:
    pool = _pool("a", 3.6, lo=0, hi=1, cold_s=20.0)
    run = Fleet([pool], CheapestWithinSlo()).run(_trace([5.0], [500], [11], 100.0))
    assert run.replica_start_s.tolist() == [5.0]
    assert run.t_first[0] - 5.0 == pytest.approx(20.6)
    summary = summarize(run)
    assert summary.slo_attainment == 0.0  # a 20.6 s TTFT misses the 2 s target
    assert summary.cost_usd == pytest.approx(95 / 3600 * 3.6)  # billed from the scale-up request


def test_warmup_window_excludes_early_requests_and_billing() -> None:
    trace = _trace([1.0, 50.0], [500, 500], [11, 11], 100.0)
    summary = summarize(Fleet([_pool("a", 3.6)], CheapestWithinSlo()).run(trace), warmup_s=40.0)
    assert summary.requests == 1 and summary.output_tokens == 11
    assert summary.cost_usd == pytest.approx(60 / 3600 * 3.6)


def test_cold_start_of_initial_replicas_without_warm_start() -> None:
    pool = _pool("a", 3.6, lo=1, hi=1, cold_s=20.0)
    trace = _trace([1.0], [500], [11], 100.0)
    warm = Fleet([pool], CheapestWithinSlo()).run(trace)
    cold = Fleet([pool], CheapestWithinSlo(), warm_start=False).run(trace)
    assert warm.t_first[0] - 1.0 == pytest.approx(0.6)
    assert cold.t_first[0] - 1.0 == pytest.approx(19.6)  # waits for the replica started at t=0
    assert summarize(warm).cost_usd == pytest.approx(summarize(cold).cost_usd)
