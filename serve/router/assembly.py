"""Wire the router's parts from a validated config: pools, monitor, policy, dispatcher."""

from __future__ import annotations

from pathlib import Path

from serve.cache import build_cache
from serve.config.schema import FrugalConfig
from serve.dispatch.latency import LatencyTracker
from serve.dispatch.policies import make_policy
from serve.dispatch.state import pool_state_template
from serve.observability.metrics import FrugalMetrics
from serve.router.cached import EngineEmbedder
from serve.router.dispatcher import Dispatcher
from serve.router.engines import EngineClient
from serve.router.pools import PoolMonitor, PoolRuntime, ReplicaCounter
from serve.router.service import RouterService
from serve.tenants.service import build_tenants


def build_router_service(
    config: FrugalConfig,
    clients: dict[str, EngineClient],
    replica_counter: ReplicaCounter,
    base_dir: Path | None = None,
) -> RouterService:
    """``clients`` maps every pool name to its engine client. No I/O here: the pool monitor
    starts with the first request, on the serving event loop."""
    runtimes = [
        PoolRuntime(clients[pool.name], pool_state_template(model, pool, base_dir), pool.accelerator_type)
        for model in config.models
        for pool in model.pools
    ]
    latency = LatencyTracker(
        window_size=config.dispatch.latency_window_size, max_age_s=config.dispatch.latency_max_age_s
    )
    metrics = FrugalMetrics(config.metrics)
    monitor = PoolMonitor(runtimes, replica_counter, latency, config.dispatch.load_poll_interval_s, metrics)
    pools_by_model = {model.name: [pool.name for pool in model.pools] for model in config.models}
    dispatcher = Dispatcher(monitor, make_policy(config.dispatch.policy, config.dispatch.options), pools_by_model)
    embedder = None
    if config.cache.enabled and config.cache.semantic.models:
        embed_model = config.model(config.cache.semantic.embedding_model)
        if embed_model is None or embed_model.task != "embed":
            raise ValueError(f"cache.semantic.embedding_model {config.cache.semantic.embedding_model!r} is not a served embedding model")
        embedder = EngineEmbedder(clients[embed_model.pools[0].name], embed_model.name)
    cache = build_cache(config.cache, embedder, metrics.cache_events())
    return RouterService(config, dispatcher, latency, build_tenants(config.tenants), metrics, cache)
