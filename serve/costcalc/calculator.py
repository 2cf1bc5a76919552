"""What a workload costs on each GPU type of the catalogue, and on the cheapest mix.

For each type, one replica (one device) of the workload's model is modelled exactly as the
fleet simulator models it: a roofline throughput profile from the catalogue
(``serve.sim.pools.catalogue_pool``) and the steady-state capacity within the latency target
(``serve.sim.capacity``). From that:

- **cost per query, source formula**: inference seconds / 3600 x hourly price, with the
  inference seconds of one request running alone (the source documents' formula; their
  example: an A10 at $0.75/h and 2 s per query = $0.0004);
- **cost per query, batched**: the same replica-hour shared by the requests it completes at
  the highest load that still meets the target (price / 3600 / requests per second);
- **monthly cost**: enough replicas for the peak rate, all month; and per query of that fleet;
- **SPI** (the source documents' cost-performance index) = QPS / (cost per hour x latency):
  one replica's requests/s within the target / (its price per hour x the request's
  end-to-end seconds at that load). Higher is better.

The cheapest mix is Mélange's integer program from ``serve.sim.optimal`` (``cheapest_fleet``), over
the types that meet the target. Figures are fluid steady-state estimates: no queueing
headroom beyond ``peak_to_mean``, no scaling delays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from serve.catalog.gpus import gpu_spec
from serve.constants import SECONDS_PER_HOUR
from serve.costcalc.workload import Workload
from serve.sim.capacity import OperatingPoint, best_operating_point, operating_point
from serve.sim.optimal import Buckets, cheapest_fleet
from serve.sim.pools import SimPoolSpec, catalogue_pool


class NoGpuMeetsTarget(ValueError):
    """No GPU type considered can meet the latency target, even serving one request at a time."""


def cost_per_query_usd(inference_s: float, price_usd_per_hour: float) -> float:
    """The source documents' formula: inference seconds / 3600 x the GPU's hourly price."""
    if inference_s < 0 or price_usd_per_hour < 0:
        raise ValueError("inference_s and price_usd_per_hour must not be negative")
    return inference_s / SECONDS_PER_HOUR * price_usd_per_hour


def spi(requests_per_s: float, price_usd_per_hour: float, latency_s: float) -> float:
    """SPI = QPS / (cost per hour x latency in seconds)."""
    if price_usd_per_hour <= 0 or latency_s <= 0:
        raise ValueError("SPI needs a positive price and latency")
    return requests_per_s / (price_usd_per_hour * latency_s)


def request_latency_s(point: OperatingPoint, output_tokens: int) -> float:
    """End-to-end seconds of one request at an operating point: TTFT + (O - 1) x TPOT."""
    return (point.ttft_ms + max(output_tokens - 1, 0) * point.tpot_ms) / 1000.0


class GpuOption(BaseModel):
    """The workload on one GPU type. ``reason`` says why a type is out (None if it serves)."""

    model_config = ConfigDict(extra="forbid")

    gpu: str
    price_usd_per_hour: float
    reason: str | None = None
    single_ttft_ms: float | None = None  # one request at a time
    single_tpot_ms: float | None = None
    single_latency_s: float | None = None
    concurrency: int | None = None  # at the best point within the target
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    latency_s: float | None = None
    requests_per_s_per_replica: float | None = None
    cost_per_query_usd: float | None = None  # source formula
    cost_per_query_batched_usd: float | None = None
    usd_per_million_output_tokens: float | None = None
    replicas: int | None = None
    monthly_cost_usd: float | None = None
    cost_per_query_fleet_usd: float | None = None
    spi: float | None = None

    @property
    def meets_target(self) -> bool:
        return self.reason is None


class MixPlan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replicas: dict[str, int]
    cost_usd_per_hour: float
    monthly_cost_usd: float
    cost_per_query_usd: float
    source: str


class CalculatorResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workload: Workload
    options: list[GpuOption]
    cheapest_single: str
    mix: MixPlan

    def option(self, gpu: str) -> GpuOption:
        return next(o for o in self.options if o.gpu == gpu)


def workload_pool(workload: Workload, gpu: str) -> SimPoolSpec:
    """One replica of the workload's model on ``gpu`` at the workload's price for it.
    Raises ``ValueError`` when the model does not fit the device."""
    pool = catalogue_pool(
        gpu,
        target=workload.target,
        context_tokens=max(1, round(workload.prompt_tokens + workload.output_tokens / 2)),
        typical_prompt_tokens=workload.prompt_tokens,
        typical_output_tokens=workload.output_tokens,
        model_id=workload.model,
        quantization=workload.quantization,
    )
    price = workload.price_usd_per_hour.get(gpu, gpu_spec(gpu).price_usd_per_hour(workload.capacity))
    return pool.model_copy(update={"price_usd_per_hour": price})


def evaluate_gpu(workload: Workload, gpu: str) -> tuple[GpuOption, SimPoolSpec | None]:
    """The workload on one GPU type, and its pool if the type meets the target."""
    price = workload.price_usd_per_hour.get(gpu, gpu_spec(gpu).price_usd_per_hour(workload.capacity))
    try:
        pool = workload_pool(workload, gpu)
    except ValueError as e:
        return GpuOption(gpu=gpu, price_usd_per_hour=price, reason=f"does not fit: {e}"), None
    p, o = workload.prompt_tokens, workload.output_tokens
    single = operating_point(pool.profile, p, o, 1)
    option = GpuOption(
        gpu=gpu,
        price_usd_per_hour=price,
        single_ttft_ms=single.ttft_ms,
        single_tpot_ms=single.tpot_ms,
        single_latency_s=request_latency_s(single, o),
        cost_per_query_usd=cost_per_query_usd(request_latency_s(single, o), price),
    )
    point = best_operating_point(pool.profile, pool.kv_capacity_tokens, p, o, workload.target)
    if point is None:
        option.reason = (
            f"misses the target even alone: TTFT {single.ttft_ms:.0f} ms, TPOT {single.tpot_ms:.1f} ms "
            f"(target {workload.ttft_ms:g} / {workload.tpot_ms:g} ms)"
        )
        return option, None
    latency_s = request_latency_s(point, o)
    replicas = max(1, math.ceil(workload.peak_requests_per_s / point.requests_per_s - 1e-9))
    monthly = replicas * price * workload.hours_per_month
    option.concurrency = point.concurrency
    option.ttft_ms, option.tpot_ms, option.latency_s = point.ttft_ms, point.tpot_ms, latency_s
    option.requests_per_s_per_replica = point.requests_per_s
    option.cost_per_query_batched_usd = price / SECONDS_PER_HOUR / point.requests_per_s
    option.usd_per_million_output_tokens = price / SECONDS_PER_HOUR / (point.requests_per_s * o) * 1e6
    option.replicas = replicas
    option.monthly_cost_usd = monthly
    option.cost_per_query_fleet_usd = monthly / workload.requests_per_month
    option.spi = spi(point.requests_per_s, price, latency_s) if price > 0 else None
    return option, pool


def cheapest_mix(workload: Workload, pools: Sequence[SimPoolSpec]) -> MixPlan:
    """The cheapest fleet for the peak rate over ``pools`` (Mélange's program, solved exactly
    by ``serve.sim.optimal.cheapest_fleet``)."""
    buckets = Buckets(
        prompt_tokens=np.array([float(workload.prompt_tokens)]),
        output_tokens=np.array([float(workload.output_tokens)]),
        rate_per_s=np.array([workload.peak_requests_per_s]),
    )
    plan = cheapest_fleet(buckets, pools)
    monthly = plan.cost_usd_per_hour * workload.hours_per_month
    return MixPlan(
        replicas={name: round(n) for name, n in plan.replicas_by_pool().items()},
        cost_usd_per_hour=plan.cost_usd_per_hour,
        monthly_cost_usd=monthly,
        cost_per_query_usd=monthly / workload.requests_per_month,
        source="serve.sim.optimal.cheapest_fleet (integer program, scipy.optimize.milp)",
    )


def calculate(workload: Workload) -> CalculatorResult:
    """Every considered GPU type, the cheapest single type and the cheapest mix.

    Raises ``NoGpuMeetsTarget`` (a ``ValueError``) naming each type's best figures when no
    type meets the target."""
    options, pools = [], []
    for gpu in workload.gpus:
        option, pool = evaluate_gpu(workload, gpu)
        options.append(option)
        if pool is not None:
            pools.append(pool)
    feasible = [o for o in options if o.meets_target]
    if not feasible:
        details = "".join(f"\n  {o.gpu}: {o.reason}" for o in options)
        raise NoGpuMeetsTarget(
            f"no GPU type meets TTFT <= {workload.ttft_ms:g} ms and TPOT <= {workload.tpot_ms:g} ms for "
            f"{workload.model} at {workload.prompt_tokens} prompt / {workload.output_tokens} output tokens; "
            f"relax the target or add faster types:{details}"
        )
    cheapest = min(feasible, key=lambda o: (o.monthly_cost_usd, o.gpu))
    return CalculatorResult(
        workload=workload, options=options, cheapest_single=cheapest.gpu, mix=cheapest_mix(workload, pools),
    )
