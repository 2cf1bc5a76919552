"""The cheapest GPU mix that serves a workload within its latency target: Mélange's integer
program, solved exactly with ``scipy.optimize.milp``. It is the yardstick the policies are
measured against.

Requests are grouped into size buckets ``b`` (prompt x output length, ``BUCKET_EDGES``), each
arriving at ``rate_b`` requests/s. For each bucket and pool (GPU type) ``g``, ``mu[b, g]`` is
the request rate one replica sustains while meeting the target (``capacity``; 0 when it
cannot meet it even alone). The program:

    minimise    sum_g price_g * n_g
    subject to  sum_g x[b, g] = 1                          every bucket is fully served
                sum_b x[b, g] * rate_b / mu[b, g] <= n_g   replicas carry their share
                x[b, g] = 0 where mu[b, g] = 0
                n_g integer >= 0, 0 <= x <= 1              buckets may be split across types

The best single-GPU-type fleet is the same program restricted to one pool. Both are fluid
steady-state answers at a constant rate: no queueing headroom, no scaling delays, which is
why a real (simulated) fleet can approach but not beat them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from serve.sim.capacity import best_operating_point
from serve.sim.pools import SimPoolSpec

# Bucket edges in tokens: [edge_i, edge_{i+1}).
PROMPT_BUCKET_EDGES: tuple[int, ...] = (1, 64, 128, 256, 512, 1024, 2048, 3072, 4096, 6144, 8192, 12288, 1 << 30)
OUTPUT_BUCKET_EDGES: tuple[int, ...] = (1, 32, 64, 128, 256, 384, 512, 768, 1 << 30)


@dataclass(frozen=True)
class Buckets:
    """Request-size buckets of a workload: mean sizes and arrival rates."""

    prompt_tokens: np.ndarray  # mean per bucket
    output_tokens: np.ndarray
    rate_per_s: np.ndarray

    @property
    def output_tokens_per_s(self) -> float:
        return float((self.rate_per_s * self.output_tokens).sum())

    def scaled(self, factor: float) -> Buckets:
        return Buckets(self.prompt_tokens, self.output_tokens, self.rate_per_s * factor)


def bucketize(prompt_tokens: np.ndarray, output_tokens: np.ndarray, duration_s: float) -> Buckets:
    """Group requests observed over ``duration_s`` seconds into non-empty buckets."""
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    p = np.asarray(prompt_tokens, dtype=np.float64)
    o = np.asarray(output_tokens, dtype=np.float64)
    pi = np.searchsorted(PROMPT_BUCKET_EDGES, p, side="right") - 1
    oi = np.searchsorted(OUTPUT_BUCKET_EDGES, o, side="right") - 1
    key = pi * len(OUTPUT_BUCKET_EDGES) + oi
    keys, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    mean_p = np.bincount(inverse, weights=p) / counts
    mean_o = np.bincount(inverse, weights=o) / counts
    return Buckets(mean_p, mean_o, counts / duration_s)


def capacity_matrix(buckets: Buckets, pools: Sequence[SimPoolSpec]) -> np.ndarray:
    """``mu[b, g]``: requests/s one replica of pool ``g`` sustains for bucket ``b`` within the
    pool's target (0 where it cannot)."""
    mu = np.zeros((len(buckets.rate_per_s), len(pools)))
    for g, pool in enumerate(pools):
        for b, (p, o) in enumerate(zip(buckets.prompt_tokens, buckets.output_tokens)):
            point = best_operating_point(pool.profile, pool.kv_capacity_tokens, p, o, pool.target)
            mu[b, g] = point.requests_per_s if point is not None else 0.0
    return mu


@dataclass(frozen=True)
class FleetPlan:
    """A solved program: replicas per pool, the share of each bucket per pool, the hourly
    cost, and the cost per million output tokens at the buckets' rates."""

    pools: tuple[str, ...]
    replicas: tuple[float, ...]  # whole numbers unless the LP relaxation
    cost_usd_per_hour: float
    usd_per_million_output_tokens: float
    share: np.ndarray  # [bucket, pool]
    feasible: bool

    def replicas_by_pool(self) -> dict[str, float]:
        return {p: n for p, n in zip(self.pools, self.replicas) if n > 1e-9}


def solve(
    buckets: Buckets,
    mu: np.ndarray,
    prices_usd_per_hour: Sequence[float],
    names: Sequence[str],
    *,
    integral: bool = True,
) -> FleetPlan:
    """The cheapest fleet for ``buckets`` given capacities ``mu[b, g]`` and per-replica prices
    (``integral=False``: the LP relaxation, fractional replicas). When some bucket no pool
    can serve, the plan has ``feasible=False`` and infinite cost."""
    num_b, num_g = mu.shape
    names = tuple(names)
    prices = np.asarray(prices_usd_per_hour, dtype=np.float64)
    if prices.shape != (num_g,) or len(names) != num_g:
        raise ValueError("need one price and one name per column of mu")
    tokens_per_hour = buckets.output_tokens_per_s * 3600.0
    if num_b == 0:
        return FleetPlan(names, (0.0,) * num_g, 0.0, 0.0, np.zeros((0, num_g)), True)
    if np.any(mu.max(axis=1) <= 0):
        return FleetPlan(names, (0.0,) * num_g, float("inf"), float("inf"), np.zeros_like(mu), False)
    # Variables: n_g (num_g), then x[b, g] row-major (num_b * num_g).
    num_x = num_b * num_g
    c = np.concatenate([prices, np.zeros(num_x)])
    served = np.zeros((num_b, num_g + num_x))
    for b in range(num_b):
        served[b, num_g + b * num_g : num_g + (b + 1) * num_g] = 1.0
    load = np.zeros((num_g, num_g + num_x))
    with np.errstate(divide="ignore", invalid="ignore"):
        replicas_per_share = np.where(mu > 0, buckets.rate_per_s[:, None] / mu, 0.0)
    for g in range(num_g):
        load[g, g] = -1.0
        load[g, num_g + g : num_g + num_x : num_g] = replicas_per_share[:, g]
    upper = np.concatenate([np.full(num_g, np.inf), np.where(mu > 0, 1.0, 0.0).ravel()])
    result = milp(
        c,
        constraints=[LinearConstraint(served, 1.0, 1.0), LinearConstraint(load, -np.inf, 0.0)],
        integrality=np.concatenate([np.full(num_g, 1 if integral else 0), np.zeros(num_x)]),
        bounds=Bounds(np.zeros(num_g + num_x), upper),
    )
    if not result.success:
        raise RuntimeError(f"milp failed: {result.message}")
    n = np.round(result.x[:num_g]) if integral else result.x[:num_g]
    cost = float(prices @ n)
    return FleetPlan(
        pools=names,
        replicas=tuple(float(v) for v in n),
        cost_usd_per_hour=cost,
        usd_per_million_output_tokens=cost / tokens_per_hour * 1e6 if tokens_per_hour else 0.0,
        share=result.x[num_g:].reshape(num_b, num_g),
        feasible=True,
    )


def cheapest_fleet(buckets: Buckets, pools: Sequence[SimPoolSpec], mu: np.ndarray | None = None) -> FleetPlan:
    """``solve`` over the simulated pools (capacities from ``capacity_matrix`` unless given)."""
    if mu is None:
        mu = capacity_matrix(buckets, pools)
    return solve(buckets, mu, [p.price_usd_per_hour for p in pools], [p.name for p in pools])


def single_type_fleets(
    buckets: Buckets, mu: np.ndarray, prices_usd_per_hour: Sequence[float], names: Sequence[str]
) -> list[FleetPlan]:
    """For each pool, the cheapest fleet of that pool alone (infeasible plans included)."""
    return [
        solve(buckets, mu[:, [g]], [prices_usd_per_hour[g]], [names[g]]) for g in range(len(names))
    ]


def best_single_type(
    buckets: Buckets, mu: np.ndarray, prices_usd_per_hour: Sequence[float], names: Sequence[str]
) -> FleetPlan | None:
    """The cheapest single-pool fleet; None if no single pool can serve every bucket."""
    feasible = [p for p in single_type_fleets(buckets, mu, prices_usd_per_hour, names) if p.feasible]
    return min(feasible, key=lambda p: p.cost_usd_per_hour) if feasible else None
