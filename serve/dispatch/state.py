"""A pool's dispatch state built from config, for the router and the fleet simulator to fill
with live figures."""

from __future__ import annotations

from pathlib import Path

from serve.config.schema import ModelConfig, PoolConfig
from serve.cost.pool_profile import pool_profile
from serve.cost.pricing import pool_price_usd_per_hour
from serve.dispatch.types import PoolState


def pool_state_template(model: ModelConfig, pool: PoolConfig, base_dir: Path | None = None) -> PoolState:
    """The pool's ``PoolState`` with its static facts: price per replica
    (``pool_price_usd_per_hour``), profile (``pool_profile``; ``base_dir`` resolves a relative
    profile path), latency target (the pool's, else the model's, else None) and configured
    min/max replicas and autoscaling target. Live fields are zero: ``replicas`` 0 (cold until the caller says how
    many are ready), no load, no observations, healthy.

    Raises ``ValueError`` naming the pool when its price or profile cannot be determined.
    """
    target_config = pool.latency_target or model.latency_target
    return PoolState(
        name=pool.name,
        model=model.name,
        price_usd_per_hour=pool_price_usd_per_hour(pool),
        profile=pool_profile(pool, model.name, base_dir),
        target=target_config.to_target() if target_config is not None else None,
        replicas=0,
        starting=0,
        min_replicas=pool.min_replicas,
        max_replicas=pool.max_replicas,
        target_ongoing_requests=pool.autoscaling.target_ongoing_requests if pool.autoscaling is not None else None,
    )
