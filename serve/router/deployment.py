"""The router as a Ray Serve deployment: the HTTP ingress of the application."""

from __future__ import annotations

import logging
from typing import Any

from ray import serve

from serve.config.schema import FrugalConfig
from serve.router.app import RouterService, build_router_app
from serve.router.engines import EngineClient, HandleEngineClient

logger = logging.getLogger(__name__)


@serve.ingress()
class RouterDeployment:
    """Holds the engine handles; the FastAPI app is built on the replica."""

    def __init__(self, config: FrugalConfig, handles: dict[str, dict[str, Any]]) -> None:
        clients: dict[str, list[EngineClient]] = {
            model: [HandleEngineClient(pool, handle) for pool, handle in pools.items()]
            for model, pools in handles.items()
        }
        self.service = RouterService(config, clients)
        for model in config.models:
            for pool in model.pools:
                logger.info("pool %s: model=%s accelerator=%s", pool.name, model.name, pool.accelerator_type)

    def __serve_build_asgi_app__(self) -> Any:
        return build_router_app(self.service)
