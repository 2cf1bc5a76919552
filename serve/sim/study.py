"""One study: a workload's trace, the pools built for it, every policy simulated on it, and the
integer-program optimum as the yardstick.

Pools are built from the trace the way a user would configure them from a measured profile:
the roofline profile at the trace's average decode context (output-weighted ``P + O/2``),
autoscaling targets from the mean request (``serve.sim.pools``). The optimum is solved for
the request-size buckets observed in the measurement window at their mean rates (for a
bursty trace, also at the peak rate: a static fleet sized for bursts).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serve.config.dispatch import LatencyTargetConfig
from serve.dispatch.policies import POLICIES, make_policy
from serve.sim.autoscaler import RayScalingOptions
from serve.sim.fleet import Fleet, FleetRun
from serve.sim.metrics import RunSummary, summarize
from serve.sim.optimal import FleetPlan, bucketize, capacity_matrix, single_type_fleets, solve
from serve.sim.pools import DEFAULT_TARGET_FRACTION, STUDY_GPUS, SimPoolSpec, study_pools
from serve.sim.trace import WORKLOADS, ArrivalProcess, Trace, make_trace

SIM_POLICY_NAMES: tuple[str, ...] = tuple(POLICIES)
DEFAULT_SLO = LatencyTargetConfig(ttft_ms=2000, tpot_ms=100, percentile=95)


class StudyConfig(BaseModel):
    """Everything one study depends on; the same config gives the same numbers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workload: str = Field(description=f"one of {sorted(WORKLOADS)}")
    arrivals: ArrivalProcess
    duration_s: float | None = Field(default=None, gt=0)
    num_requests: int | None = Field(default=None, gt=0)
    warmup_s: float = Field(default=0.0, ge=0, description="excluded from cost and SLO figures")
    seed: int = 0
    slo: LatencyTargetConfig = DEFAULT_SLO
    gpus: tuple[str, ...] = STUDY_GPUS
    policies: tuple[str, ...] = SIM_POLICY_NAMES
    target_fraction: float = Field(default=DEFAULT_TARGET_FRACTION, gt=0, le=1)
    initial_replicas: int = Field(default=1, ge=0, description="per pool at t=0 (min_replicas is 0)")
    upscale_delay_s: float = Field(default=30.0, ge=0)
    downscale_delay_s: float = Field(default=600.0, ge=0)
    scaling: RayScalingOptions = Field(default_factory=lambda: RayScalingOptions(signal="work"))


class FleetSeries(BaseModel):
    """Billed replicas per pool over time (one sample per ``SERIES_PERIOD_S``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    t_s: list[float]
    replicas: dict[str, list[int]]


class PolicyResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: RunSummary
    wall_s: float
    series: FleetSeries


class PlanSummary(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cost_usd_per_hour: float
    usd_per_million_output_tokens: float
    replicas: dict[str, float]

    @classmethod
    def of(cls, plan: FleetPlan) -> PlanSummary:
        return cls(
            cost_usd_per_hour=plan.cost_usd_per_hour,
            usd_per_million_output_tokens=plan.usd_per_million_output_tokens,
            replicas=plan.replicas_by_pool(),
        )


class OptimumSummary(BaseModel):
    """The yardstick: the cheapest mix (integer program), its LP relaxation, and each pool
    alone (None where one pool cannot serve every request size within the target)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    buckets: int
    rate_per_s: float
    optimum: PlanSummary
    relaxed: PlanSummary
    single_type: dict[str, PlanSummary | None]
    best_single_type: str | None
    saving_vs_best_single: float | None = Field(description="1 - optimum cost / best single-type cost")
    peak: PlanSummary | None = Field(
        default=None,
        description="bursty traces: the cheapest static fleet for the peak rate, $/1M on the trace's own tokens",
    )


class StudyResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: StudyConfig
    requests: int
    duration_s: float
    pools: list[SimPoolSpec]
    optimum: OptimumSummary
    runs: dict[str, PolicyResult]


def study_trace(config: StudyConfig) -> Trace:
    return make_trace(
        WORKLOADS[config.workload],
        config.arrivals,
        duration_s=config.duration_s,
        num_requests=config.num_requests,
        seed=config.seed,
    )


def pools_for(config: StudyConfig, trace: Trace) -> list[SimPoolSpec]:
    """The study's pools, profiled and tuned for ``trace`` (module docstring)."""
    prompt = trace.prompt_tokens.astype(np.float64)
    output = trace.output_tokens.astype(np.float64)
    context = int(round(float((output * (prompt + output / 2)).sum() / output.sum())))
    pools = study_pools(
        config.slo.to_target(),
        context,
        float(prompt.mean()),
        float(output.mean()),
        gpus=config.gpus,
        target_fraction=config.target_fraction,
        min_replicas=0,
        scaling=config.scaling,
    )
    return [
        p.model_copy(
            update={
                "autoscaling": p.autoscaling.model_copy(
                    update={
                        "initial_replicas": config.initial_replicas,
                        "upscale_delay_s": config.upscale_delay_s,
                        "downscale_delay_s": config.downscale_delay_s,
                    }
                )
            }
        )
        for p in pools
    ]


def optimum_for(config: StudyConfig, trace: Trace, pools: Sequence[SimPoolSpec]) -> OptimumSummary:
    """The integer program on the measurement window's requests (``serve.sim.optimal``)."""
    window = trace.arrival_s >= config.warmup_s
    duration_s = trace.duration_s - config.warmup_s
    buckets = bucketize(trace.prompt_tokens[window], trace.output_tokens[window], duration_s)
    mu = capacity_matrix(buckets, pools)
    prices = [p.price_usd_per_hour for p in pools]
    names = [p.name for p in pools]
    plan = solve(buckets, mu, prices, names)
    relaxed = solve(buckets, mu, prices, names, integral=False)
    singles = single_type_fleets(buckets, mu, prices, names)
    feasible = [s for s in singles if s.feasible]
    best = min(feasible, key=lambda s: s.cost_usd_per_hour) if feasible else None
    peak = None
    if config.arrivals.kind == "bursty":
        peak_buckets = buckets.scaled(config.arrivals.peak_rate_per_s / config.arrivals.rate_per_s)
        peak_plan = solve(peak_buckets, mu, prices, names)
        # Priced per token of this trace's traffic (the mean rate), which is what a static
        # fleet sized for the bursts would serve: per token of the peak rate it reads as cheap
        # as the optimum.
        peak = PlanSummary(
            cost_usd_per_hour=peak_plan.cost_usd_per_hour,
            usd_per_million_output_tokens=plan.usd_per_million_output_tokens
            * peak_plan.cost_usd_per_hour / plan.cost_usd_per_hour,
            replicas=peak_plan.replicas_by_pool(),
        )
    return OptimumSummary(
        buckets=len(buckets.rate_per_s),
        rate_per_s=float(buckets.rate_per_s.sum()),
        optimum=PlanSummary.of(plan),
        relaxed=PlanSummary.of(relaxed),
        single_type={s.pools[0]: (PlanSummary.of(s) if s.feasible else None) for s in singles},
        best_single_type=best.pools[0] if best else None,
        saving_vs_best_single=1 - plan.cost_usd_per_hour / best.cost_usd_per_hour if best else None,
        peak=peak,
    )


def _series(run: FleetRun) -> FleetSeries:
    return FleetSeries(
        t_s=run.series_t.tolist(),
        replicas={p.name: run.series_replicas[:, g].tolist() for g, p in enumerate(run.pools)},
    )


def run_study(
    config: StudyConfig,
    progress: Callable[[str, int], Callable[[int], None] | None] | None = None,
) -> StudyResult:
    """Simulate every policy in ``config`` on one trace and solve the optimum.

    ``progress(policy, num_requests)`` may return a callback the fleet calls with the number
    of requests dispatched so far (e.g. a tqdm bar's update)."""
    unknown = sorted(set(config.policies) - set(SIM_POLICY_NAMES))
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {list(SIM_POLICY_NAMES)}")
    if config.workload not in WORKLOADS:
        raise ValueError(f"unknown workload {config.workload!r}; known: {sorted(WORKLOADS)}")
    trace = study_trace(config)
    pools = pools_for(config, trace)
    optimum = optimum_for(config, trace, pools)
    runs: dict[str, PolicyResult] = {}
    for name in config.policies:
        callback = progress(name, len(trace)) if progress is not None else None
        started = time.perf_counter()
        run = Fleet(pools, make_policy(name), seed=config.seed).run(trace, callback)
        wall_s = time.perf_counter() - started
        runs[name] = PolicyResult(summary=summarize(run, config.warmup_s), wall_s=wall_s, series=_series(run))
    return StudyResult(
        config=config, requests=len(trace), duration_s=trace.duration_s, pools=pools, optimum=optimum, runs=runs
    )
