"""serve/cost: pool pricing with overrides, and the cost formulas."""

from __future__ import annotations

import pytest

from serve.catalog.gpus import GPU_CATALOG, SPOT_FRACTION_OF_ON_DEMAND
from serve.config.schema import PoolConfig
from serve.cost.estimate import actual_cost_usd, estimate_cost_usd, request_duration_s
from serve.cost.pricing import pool_gpu_spec, pool_num_devices, pool_price_usd_per_hour
from serve.cost.profile import ProfilePoint, ThroughputProfile


def _pool(accelerator_type: str = "A10G", tp: int = 1, **fields: object) -> PoolConfig:
    engine = {"model": "meta-llama/Llama-3.1-8B-Instruct", "tensor_parallel_size": tp}
    return PoolConfig.model_validate({"name": "p", "accelerator_type": accelerator_type, "engine": engine, **fields})


# --- pricing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pool_fields", "tp", "expected"),
    [
        ({}, 1, 1.01),  # catalogue on-demand, one device
        ({}, 2, 2.02),  # x devices
        ({"capacity": "spot"}, 2, 2 * round(1.01 * SPOT_FRACTION_OF_ON_DEMAND, 4)),
        ({"gpu": {"usd_per_hour": 0.75}}, 1, 0.75),  # the source documents' A10 price
        ({"gpu": {"usd_per_hour": 0.75}}, 4, 3.0),
        ({"capacity": "spot", "gpu": {"usd_per_hour": 0.30}}, 2, 0.60),  # override sets the spot price
        ({"price_usd_per_hour": 5.0, "gpu": {"usd_per_hour": 0.75}}, 4, 5.0),  # whole replica wins
        ({"engine": {"model": "m", "tensor_parallel_size": 2, "extra": {"pipeline_parallel_size": 2}}}, 2, 4.04),
    ],
)
def test_pool_price(pool_fields: dict, tp: int, expected: float) -> None:
    assert pool_price_usd_per_hour(_pool(tp=tp, **pool_fields)) == pytest.approx(expected)


def test_cpu_pool_prices_from_the_catalogue_cpu_entry() -> None:
    pool = _pool("CPU", tp=1)
    assert pool_num_devices(pool) == 1
    assert pool_price_usd_per_hour(pool) == GPU_CATALOG["CPU"].on_demand_usd_per_hour
    assert pool_price_usd_per_hour(_pool("CPU", capacity="spot")) == GPU_CATALOG["CPU"].spot_usd_per_hour


def test_gpu_overrides_apply_per_field_and_keep_the_rest() -> None:
    spec = pool_gpu_spec(_pool("H100", gpu={"bandwidth_gb_s": 2000, "usd_per_hour": 2.0}))
    base = GPU_CATALOG["H100"]
    assert (spec.bandwidth_gb_s, spec.on_demand_usd_per_hour) == (2000, 2.0)
    assert (spec.memory_gb, spec.spot_usd_per_hour, spec.dense_fp16_tflops) == (
        base.memory_gb,
        base.spot_usd_per_hour,
        base.dense_fp16_tflops,
    )
    assert "overridden by pool p" in spec.source
    assert pool_gpu_spec(_pool("H100")) == base


def test_accelerator_outside_the_catalogue_needs_overrides() -> None:
    with pytest.raises(ValueError, match=r"pool 'p': accelerator 'V100' is not in the catalogue"):
        pool_gpu_spec(_pool("V100"))
    with pytest.raises(ValueError, match="gpu.memory_gb"):
        pool_price_usd_per_hour(_pool("V100", gpu={"usd_per_hour": 1.0}))
    spec = pool_gpu_spec(_pool("V100", gpu={"memory_gb": 16, "bandwidth_gb_s": 900, "usd_per_hour": 0.9}))
    assert (spec.name, spec.memory_gb, spec.price_usd_per_hour("spot")) == ("V100", 16, 0.9)
    # A whole-replica price needs no catalogue entry.
    assert pool_price_usd_per_hour(_pool("V100", price_usd_per_hour=3.06)) == 3.06


def test_pool_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="greater than 0"):
        _pool(gpu={"bandwidth_gb_s": 0})
    with pytest.raises(ValueError, match="Extra inputs"):
        _pool(gpu={"tflops": 1})
    with pytest.raises(ValueError, match="capacity"):
        _pool(capacity="reserved")


# --- cost formulas -------------------------------------------------------------------------


def _flat_profile(tokens_per_s: float = 100.0, ttft_ms: float = 100.0, max_concurrency: int = 8) -> ThroughputProfile:
    """Aggregate throughput grows linearly with concurrency: every stream sees the same TPOT."""
    return ThroughputProfile(
        points=[
            ProfilePoint(concurrency=c, output_tokens_per_s=tokens_per_s * c, ttft_ms=ttft_ms)
            for c in (1, max_concurrency)
        ]
    )


def test_the_source_documents_example() -> None:
    # A10 at $0.75/h, 2 s of inference per query -> $0.0004 (rounded in the documents).
    assert actual_cost_usd(0.75, 2.0, own_tokens=100, replica_tokens=100) == pytest.approx(0.75 * 2 / 3600)
    assert round(actual_cost_usd(0.75, 2.0, own_tokens=100, replica_tokens=100), 4) == 0.0004


@pytest.mark.parametrize(
    ("wall_s", "own", "replica", "expected_share"),
    [
        (2.0, 100, 100, 1.0),  # alone: seconds / 3600 x price
        (2.0, 100, 0, 1.0),  # replica count lagging behind the request's own tokens
        (2.0, 100, 400, 0.25),  # a quarter of the tokens produced meanwhile
        (2.0, 0, 300, 0.0),  # produced nothing while others did
        (2.0, 0, 0, 1.0),  # nothing produced at all: the request held the replica
        (0.0, 10, 10, 1.0),
    ],
)
def test_actual_cost_shares_replica_time_by_tokens(wall_s: float, own: int, replica: int, expected_share: float) -> None:
    price = 3.6
    assert actual_cost_usd(price, wall_s, own, replica) == pytest.approx(wall_s / 3600 * price * expected_share)


def test_actual_cost_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError):
        actual_cost_usd(1.0, -1.0, 1, 1)


def test_estimate_alone_is_duration_times_price() -> None:
    profile = _flat_profile(tokens_per_s=100.0, ttft_ms=100.0)
    # 100 ms to the first token, then 99 tokens at 10 ms each: 1.09 s.
    assert request_duration_s(profile, 1, prompt_tokens=0, max_output_tokens=100) == pytest.approx(1.09)
    assert estimate_cost_usd(3.6, profile, 1, 0, 100) == pytest.approx(1.09 / 3600 * 3.6)


def test_estimate_at_concurrency_is_a_share_of_replica_time() -> None:
    profile = _flat_profile(tokens_per_s=100.0, ttft_ms=100.0, max_concurrency=8)
    alone = estimate_cost_usd(3.6, profile, 1, 0, 100)
    # Same per-stream speed at 4 streams (linear profile), a quarter of the replica each.
    assert estimate_cost_usd(3.6, profile, 4, 0, 100) == pytest.approx(alone / 4)
    # Beyond the batch limit the share stops falling (waiting requests do not share).
    assert estimate_cost_usd(3.6, profile, 32, 0, 100) == pytest.approx(alone / 8)


def test_estimate_counts_prefill_time() -> None:
    profile = ThroughputProfile(
        points=[ProfilePoint(concurrency=1, output_tokens_per_s=100.0, ttft_ms=100.0)], prefill_tokens_per_s=1000.0
    )
    short = estimate_cost_usd(3.6, profile, 1, 0, 1)
    long = estimate_cost_usd(3.6, profile, 1, 2000, 1)
    assert short == pytest.approx(0.1 / 3600 * 3.6)
    assert long == pytest.approx(2.1 / 3600 * 3.6)


def test_estimate_matches_actual_for_a_lone_request() -> None:
    profile = _flat_profile()
    duration = request_duration_s(profile, 1, 0, 50)
    assert estimate_cost_usd(1.01, profile, 1, 0, 50) == pytest.approx(actual_cost_usd(1.01, duration, 50, 50))
