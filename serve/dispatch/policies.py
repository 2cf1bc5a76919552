"""Dispatch policies: which pool serves a request. Each is a plain object behind
``DispatchPolicy`` (``serve.dispatch.types``), picked from ``POLICIES`` by name and
constructible with no arguments.

Every policy ignores unhealthy pools, and returns in ``Decision.pools`` the healthy pools in
its order of preference: the first serves the request, the rest are the spill and retry
order. ``pools`` are the candidate pools of the request's model; the policy does not filter
by model. ``Decision.wake`` names cold pools (no ready replica) the router should scale up
through Ray's autoscaler; asking again for a pool already starting is harmless.

``Decision.reason`` is one of these short, stable strings (the router sends it in the
``x-frugal-route-reason`` header):

- ``cheapest-within-slo``: the cheapest warm pool, and it meets its latency target;
- ``spill``: a cheaper warm pool was skipped because it would break its target;
- ``no-pool-meets-slo``: no pool meets its target; the lowest predicted latency was chosen;
- ``cold-start``: no warm pool could take the request; the chosen pool is cold and the
  request waits for it to start;
- ``round-robin``, ``cheapest``, ``fastest``: the baseline policies' choices;
- ``no-healthy-pool``: nothing to choose (``pools`` is empty).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from serve.constants import DEFAULT_OBSERVED_LATENCY_WEIGHT, DEFAULT_TYPICAL_OUTPUT_TOKENS
from serve.dispatch.predict import Prediction, predict
from serve.dispatch.types import Decision, DispatchPolicy, PoolState, RequestEstimate

REASON_CHEAPEST_WITHIN_SLO = "cheapest-within-slo"
REASON_SPILL = "spill"
REASON_NO_POOL_MEETS_SLO = "no-pool-meets-slo"
REASON_COLD_START = "cold-start"
REASON_ROUND_ROBIN = "round-robin"
REASON_CHEAPEST = "cheapest"
REASON_FASTEST = "fastest"
REASON_NO_HEALTHY_POOL = "no-healthy-pool"

NO_HEALTHY_POOL = Decision(pools=(), reason=REASON_NO_HEALTHY_POOL)


def _by_cost(p: Prediction) -> tuple[float, float, str]:
    return (p.cost_usd, p.ttft_ms, p.pool)


def _by_latency(output_tokens: int) -> Callable[[Prediction], tuple[float, float, str]]:
    """Sort key: predicted end-to-end latency for ``output_tokens``, then cost, then name."""

    def key(p: Prediction) -> tuple[float, float, str]:
        return (p.latency_ms(output_tokens), p.cost_usd, p.pool)

    return key


def _decision(order: Sequence[Prediction], reason: str, wake: Sequence[str] = ()) -> Decision:
    chosen = order[0]
    return Decision(
        pools=tuple(p.pool for p in order),
        reason=reason,
        estimated_cost_usd=chosen.cost_usd,
        predicted_ttft_ms=chosen.ttft_ms,
        predicted_tpot_ms=chosen.tpot_ms,
        wake=tuple(wake),
    )


class _Predicting:
    """Shared options: how latency is predicted (``serve.dispatch.predict``)."""

    name = ""

    def __init__(
        self,
        *,
        observed_weight: float = DEFAULT_OBSERVED_LATENCY_WEIGHT,
        typical_output_tokens: int = DEFAULT_TYPICAL_OUTPUT_TOKENS,
    ) -> None:
        if not 0.0 <= observed_weight <= 1.0:
            raise ValueError("observed_weight must be between 0 and 1")
        if typical_output_tokens < 1:
            raise ValueError("typical_output_tokens must be at least 1")
        self.observed_weight = observed_weight
        self.typical_output_tokens = typical_output_tokens

    def _predict(self, pool: PoolState, request: RequestEstimate) -> Prediction:
        return predict(
            pool,
            request,
            observed_weight=self.observed_weight,
            typical_output_tokens=self.typical_output_tokens,
        )

    def _split(
        self, request: RequestEstimate, pools: Sequence[PoolState]
    ) -> tuple[list[Prediction], list[Prediction]]:
        """Predictions for the healthy warm pools and the healthy cold pools, input order."""
        warm = [self._predict(p, request) for p in pools if p.healthy and not p.cold]
        cold = [self._predict(p, request) for p in pools if p.healthy and p.cold]
        return warm, cold


class CheapestWithinSlo(_Predicting):
    """The cheapest pool whose predicted latency meets its target.

    Among healthy warm pools meeting their targets, the lowest estimated cost per request
    wins (cost falls as a pool's replicas fill, so load packs onto cheap pools until their
    latency would break the target, then spills to the next). Cold pools are never chosen
    while a warm pool meets its target; a cold pool that would be cheaper even serving one
    request alone, and would meet its target once warm, goes in ``wake``. With no warm pool,
    the cheapest cold pool is chosen. When no pool meets its target, the lowest predicted
    end-to-end latency wins (cold pools included, start-up counted), and cold pools that
    would meet their targets once warm are woken.
    """

    name = "cost"

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision:
        warm, cold = self._split(request, pools)
        if not warm and not cold:
            return NO_HEALTHY_POOL
        cold.sort(key=_by_cost)
        if not warm:
            return _decision(cold, REASON_COLD_START, wake=[cold[0].pool])

        states = {p.name: p for p in pools}
        meeting = sorted((p for p in warm if p.meets_target), key=_by_cost)
        if meeting:
            chosen = meeting[0]
            reason = REASON_CHEAPEST_WITHIN_SLO if chosen == min(warm, key=_by_cost) else REASON_SPILL
            missing = sorted((p for p in warm if not p.meets_target), key=_by_latency(request.max_output_tokens))
            wake = [
                p.pool
                for p in cold
                if p.cost_usd < chosen.cost_usd and self._meets_when_warm(states[p.pool], request)
            ]
            return _decision([*meeting, *missing, *cold], reason, wake)

        everything = sorted([*warm, *cold], key=_by_latency(request.max_output_tokens))
        wake = [p.pool for p in cold if self._meets_when_warm(states[p.pool], request)]
        if everything[0] in cold and everything[0].pool not in wake:
            wake.insert(0, everything[0].pool)
        return _decision(everything, REASON_NO_POOL_MEETS_SLO, wake)

    def _meets_when_warm(self, pool: PoolState, request: RequestEstimate) -> bool:
        """Whether a request alone on one fresh replica of the pool would meet its target."""
        warm = dataclasses.replace(pool, replicas=1, running=0, waiting=0)
        return self._predict(warm, request).meets_target


class RoundRobin(_Predicting):
    """Healthy warm pools in turn, ignoring cost and latency (a baseline); cold pools only
    when no pool is warm."""

    name = "round_robin"

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._turn = 0

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision:
        warm, cold = self._split(request, pools)
        candidates = warm or cold
        if not candidates:
            return NO_HEALTHY_POOL
        i = self._turn % len(candidates)
        self._turn += 1
        order = [*candidates[i:], *candidates[:i]]
        if not warm:
            return _decision(order, REASON_COLD_START, wake=[order[0].pool])
        return _decision([*order, *cold], REASON_ROUND_ROBIN)


class CheapestOnly(_Predicting):
    """The warm pool with the lowest estimated cost per request at its current load,
    ignoring latency targets (a baseline); cold pools only when no pool is warm."""

    name = "cheapest"

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision:
        warm, cold = self._split(request, pools)
        warm.sort(key=_by_cost)
        cold.sort(key=_by_cost)
        if warm:
            return _decision([*warm, *cold], REASON_CHEAPEST)
        if cold:
            return _decision(cold, REASON_COLD_START, wake=[cold[0].pool])
        return NO_HEALTHY_POOL


class FastestOnly(_Predicting):
    """The warm pool with the lowest predicted end-to-end latency, ignoring cost (a
    baseline); cold pools only when no pool is warm."""

    name = "fastest"

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision:
        warm, cold = self._split(request, pools)
        key = _by_latency(request.max_output_tokens)
        warm.sort(key=key)
        cold.sort(key=key)
        if warm:
            return _decision([*warm, *cold], REASON_FASTEST)
        if cold:
            return _decision(cold, REASON_COLD_START, wake=[cold[0].pool])
        return NO_HEALTHY_POOL


POLICIES: dict[str, type[DispatchPolicy]] = {
    "cost": CheapestWithinSlo,
    "round_robin": RoundRobin,
    "cheapest": CheapestOnly,
    "fastest": FastestOnly,
}


def make_policy(name: str, options: Mapping[str, Any] | None = None) -> DispatchPolicy:
    """A new policy ``POLICIES[name](**options)``; raises ``ValueError`` for an unknown name
    or a bad option."""
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown dispatch policy {name!r}; known: {sorted(POLICIES)}") from None
    try:
        return cls(**dict(options or {}))
    except TypeError as e:
        raise ValueError(f"dispatch policy {name!r}: {e}") from e
