"""A proposed change to the cost-aware policy, evaluated in the simulator before it is made in
``serve.dispatch`` (which this module does not modify).

``CheapestWithinSlo`` prices a request at the pool's *current* concurrency: a request's share
of a replica is ``1 / c`` with ``c = (in_flight + 1) / replicas``. On an autoscaled pool that
is not the share it will pay: the autoscaler adds or removes replicas until each carries
``target_ongoing_requests``, so an idle or lightly loaded pool looks expensive and a busy one
cheap, and whichever pool warms up first keeps the traffic even when another would be
cheaper at its operating point (the simulator shows the lock-in; see docs/simulator.md).

``CheapestAtTarget`` is ``CheapestWithinSlo`` with one change: a pool that can still grow
(``replicas + starting < max_replicas``) is priced at ``max(c, target)``, ``target`` being the
pool's ``target_ongoing_requests`` (capped at the profile's ``max_concurrency``). Latency
predictions, the SLO check, spill, wake and cold-start rules are unchanged. In
``serve.dispatch`` the same change is a ``target_ongoing_requests`` field on ``PoolState``
(filled from the pool's autoscaling config) and three lines in ``predict``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from serve.cost.estimate import estimate_cost_usd
from serve.dispatch.policies import CheapestWithinSlo
from serve.dispatch.predict import Prediction
from serve.dispatch.types import PoolState, RequestEstimate


class CheapestAtTarget(CheapestWithinSlo):
    """``CheapestWithinSlo`` pricing each growable pool at its autoscaling target."""

    name = "cost_at_target"

    def __init__(self, target_ongoing_requests: Mapping[str, float], **options: Any) -> None:
        super().__init__(**options)
        self.target_ongoing_requests = dict(target_ongoing_requests)

    def _predict(self, pool: PoolState, request: RequestEstimate) -> Prediction:
        prediction = super()._predict(pool, request)
        target = self.target_ongoing_requests.get(pool.name)
        if target is None or pool.replicas + pool.starting >= pool.max_replicas:
            return prediction
        concurrency = max(prediction.concurrency, min(target, pool.profile.max_concurrency))
        cost = estimate_cost_usd(
            pool.price_usd_per_hour, pool.profile, concurrency, request.prompt_tokens, request.max_output_tokens
        )
        return dataclasses.replace(prediction, cost_usd=cost)
