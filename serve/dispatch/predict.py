"""Predicted latency and cost of one request on one pool, from the pool's state.

Per-replica concurrency is ``c = (in_flight + 1) / replicas`` (this request included, load
spread evenly, as Ray's router does). From the pool's profile:

- TPOT = ``profile.tpot_ms(c)`` (at most ``max_concurrency`` streams decode at once);
- TTFT = ``profile.ttft_ms(c, prompt_tokens)`` plus queueing: the ``c - max_concurrency``
  requests beyond the batch wait for slots, which free at ``tokens_per_s(max) /
  typical_output_tokens`` per second.

When the tracker has observed the pool's recent latencies (``PoolState.observed_*``, at the
target's percentile), each prediction is blended linearly with the observation:
``(1 - w) * model + w * observed`` with ``w = observed_weight``. The observation corrects a
profile that is off for this workload (prompt lengths, hardware); the model keeps the
prediction responsive to load changes the observation window has not seen yet.

A cold pool (no ready replica) is predicted as one request on a fresh replica, plus
``cold_start_s`` before its first token.

Cost is the request's share of a replica at concurrency ``c`` (``serve.cost.estimate``),
except on a pool that autoscales and can still grow: there it is priced at ``max(c, t)``,
``t`` being the pool's ``target_ongoing_requests`` (capped at ``max_concurrency``). The
autoscaler adds and removes replicas until each carries ``t``, so that is the share a request
pays once the pool follows its traffic. Priced at its current load instead, an idle or cold
pool looks dear and a busy one cheap, and whichever pool warmed first keeps the traffic even
when another is cheaper at its operating point (the fleet simulator showed this lock-in:
docs/simulator.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from serve.constants import DEFAULT_OBSERVED_LATENCY_WEIGHT, DEFAULT_TYPICAL_OUTPUT_TOKENS
from serve.cost.estimate import estimate_cost_usd
from serve.dispatch.types import PoolState, RequestEstimate


@dataclass(frozen=True)
class Prediction:
    """What one request would see on one pool."""

    pool: str
    concurrency: float  # per replica, this request included
    ttft_ms: float
    tpot_ms: float
    cost_usd: float
    meets_target: bool  # True when the pool has no target

    def latency_ms(self, output_tokens: int) -> float:
        """End-to-end: first token plus one TPOT per further token."""
        return self.ttft_ms + max(output_tokens - 1, 0) * self.tpot_ms


def _blend(model_ms: float, observed_ms: float | None, weight: float) -> float:
    if observed_ms is None:
        return model_ms
    return (1.0 - weight) * model_ms + weight * observed_ms


def predict(
    pool: PoolState,
    request: RequestEstimate,
    *,
    observed_weight: float = DEFAULT_OBSERVED_LATENCY_WEIGHT,
    typical_output_tokens: int = DEFAULT_TYPICAL_OUTPUT_TOKENS,
) -> Prediction:
    """The request's predicted TTFT, TPOT and cost on ``pool`` (formulas in the module
    docstring); ``meets_target`` compares them with ``pool.target``."""
    profile = pool.profile
    if pool.cold:
        concurrency = 1.0
        ttft_ms = pool.cold_start_s * 1000.0 + profile.ttft_ms(1, request.prompt_tokens)
        tpot_ms = profile.tpot_ms(1)
    else:
        concurrency = (pool.in_flight + 1) / pool.replicas
        ttft_ms = profile.ttft_ms(concurrency, request.prompt_tokens)
        queued = concurrency - profile.max_concurrency
        if queued > 0:
            slots_per_s = profile.tokens_per_s(profile.max_concurrency) / typical_output_tokens
            ttft_ms += 1000.0 * queued / slots_per_s
        tpot_ms = _blend(profile.tpot_ms(concurrency), pool.observed_tpot_ms, observed_weight)
        ttft_ms = _blend(ttft_ms, pool.observed_ttft_ms, observed_weight)
    priced_at = concurrency
    if pool.target_ongoing_requests is not None and pool.can_grow:
        priced_at = max(concurrency, min(pool.target_ongoing_requests, profile.max_concurrency))
    cost = estimate_cost_usd(
        pool.price_usd_per_hour, profile, priced_at, request.prompt_tokens, request.max_output_tokens
    )
    target = pool.target
    meets = target is None or (ttft_ms <= target.ttft_ms and tpot_ms <= target.tpot_ms)
    return Prediction(pool.name, concurrency, ttft_ms, tpot_ms, cost, meets)
