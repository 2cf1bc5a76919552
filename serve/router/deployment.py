"""The router as a Ray Serve deployment: the HTTP ingress of the application."""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from serve.config.schema import FrugalConfig
from serve.constants import ENGINE_DEPLOYMENT_PREFIX
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.engines import HandleEngineClient
from serve.router.replicas import ServeReplicaCounter
from serve.router.requests import load_request_models

logger = logging.getLogger(__name__)


@serve.ingress()
class RouterDeployment:
    """Holds the engine handles; the FastAPI app is built on the replica."""

    def __init__(self, config: FrugalConfig, handles: dict[str, dict[str, Any]]) -> None:
        clients = {pool: HandleEngineClient(pool, handle) for pools in handles.values() for pool, handle in pools.items()}
        counter = ServeReplicaCounter({pool: ENGINE_DEPLOYMENT_PREFIX + pool for pool in clients})
        self.service = build_router_service(config, clients, counter)
        load_request_models()
        for model in config.models:
            for pool in model.pools:
                state = self.service.dispatcher.monitor.pools[pool.name].template
                logger.info(
                    "pool %s: model=%s accelerator=%s price=$%.4f/h replicas=%d..%d target=%s profile=%s",
                    pool.name, model.name, pool.accelerator_type, state.price_usd_per_hour,
                    pool.min_replicas, pool.max_replicas, state.target, state.profile.source or "roofline",
                )

    def __serve_build_asgi_app__(self) -> Any:
        return build_router_app(self.service)

    async def __del__(self) -> None:
        # Flushes the ledger's buffer and closes store connections.
        await self.service.close()
