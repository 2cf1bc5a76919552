"""What a run cost and how well it served, over a measurement window.

The window is ``[warmup_s, trace end)``: requests *arriving* in it are scored, and replicas
are billed for the part of their life inside it (from scale-up request to stop, idle time
included). Cost per million output tokens = billed cost / output tokens of the scored
requests. A request meets the SLO when its TTFT and its TPOT are both within the target of
the pool that served it (a one-token answer has no TPOT and is judged on TTFT alone).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from serve.sim.fleet import FleetRun

SECONDS_PER_HOUR = 3600.0


class PoolUsage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pool: str
    accelerator_type: str
    gpu_hours: float
    cost_usd: float
    requests: int
    mean_replicas: float
    peak_replicas: int


class RunSummary(BaseModel):
    """One policy on one trace, over the measurement window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: str
    workload: str
    arrivals: str
    window_s: float
    requests: int
    output_tokens: int
    cost_usd: float
    cost_usd_per_hour: float
    usd_per_million_output_tokens: float
    slo_attainment: float
    ttft_attainment: float
    tpot_attainment: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    gpu_hours_by_type: dict[str, float]
    pools: list[PoolUsage]
    reasons: dict[str, int]


def summarize(run: FleetRun, warmup_s: float = 0.0) -> RunSummary:
    """Cost and SLO attainment of ``run`` over ``[warmup_s, trace end)``."""
    trace = run.trace
    start_s, end_s = warmup_s, trace.duration_s
    if end_s <= start_s:
        raise ValueError(f"the trace ends ({end_s:.0f} s) before the warm-up does ({start_s:.0f} s)")
    window_s = end_s - start_s
    scored = (trace.arrival_s >= start_s) & (trace.arrival_s < end_s)
    out = trace.output_tokens[scored].astype(np.int64)
    pool_of = run.pool_of[scored]
    ttft_ms = 1000.0 * (run.t_first[scored] - trace.arrival_s[scored])
    tpot_ms = 1000.0 * (run.t_done[scored] - run.t_decode[scored]) / np.maximum(out - 1, 1)
    ttft_target = np.array([p.target.ttft_ms if p.target else np.inf for p in run.pools])[pool_of]
    tpot_target = np.array([p.target.tpot_ms if p.target else np.inf for p in run.pools])[pool_of]
    ttft_ok = ttft_ms <= ttft_target
    tpot_ok = (out <= 1) | (tpot_ms <= tpot_target)

    billed_s = np.clip(run.replica_stop_s, start_s, end_s) - np.clip(run.replica_start_s, start_s, end_s)
    in_window = (run.series_t >= start_s) & (run.series_t < end_s)
    usage: list[PoolUsage] = []
    by_type: dict[str, float] = {}
    total_cost = 0.0
    for g, pool in enumerate(run.pools):
        seconds = float(billed_s[run.replica_pool == g].sum())
        cost = seconds / SECONDS_PER_HOUR * pool.price_usd_per_hour
        total_cost += cost
        gpu_hours = seconds / SECONDS_PER_HOUR * pool.num_devices
        by_type[pool.accelerator_type] = by_type.get(pool.accelerator_type, 0.0) + gpu_hours
        series = run.series_replicas[in_window, g]
        usage.append(
            PoolUsage(
                pool=pool.name,
                accelerator_type=pool.accelerator_type,
                gpu_hours=gpu_hours,
                cost_usd=cost,
                requests=int((pool_of == g).sum()),
                mean_replicas=float(series.mean()) if series.size else 0.0,
                peak_replicas=int(series.max()) if series.size else 0,
            )
        )
    tokens = int(out.sum())
    n = int(scored.sum())

    def pct(values: np.ndarray, q: float) -> float:
        values = values[np.isfinite(values)]
        return float(np.percentile(values, q)) if values.size else float("nan")

    arrivals = trace.arrivals
    return RunSummary(
        policy=run.policy,
        workload=trace.workload,
        arrivals=f"{arrivals.kind} {arrivals.rate_per_s:g}/s",
        window_s=window_s,
        requests=n,
        output_tokens=tokens,
        cost_usd=total_cost,
        cost_usd_per_hour=total_cost / window_s * SECONDS_PER_HOUR,
        usd_per_million_output_tokens=total_cost / tokens * 1e6 if tokens else float("nan"),
        slo_attainment=float((ttft_ok & tpot_ok).mean()) if n else float("nan"),
        ttft_attainment=float(ttft_ok.mean()) if n else float("nan"),
        tpot_attainment=float(tpot_ok.mean()) if n else float("nan"),
        ttft_p50_ms=pct(ttft_ms, 50),
        ttft_p99_ms=pct(ttft_ms, 99),
        tpot_p50_ms=pct(tpot_ms[out > 1], 50),
        tpot_p99_ms=pct(tpot_ms[out > 1], 99),
        gpu_hours_by_type={k: v for k, v in by_type.items() if v > 0},
        pools=usage,
        reasons=run.reasons,
    )
