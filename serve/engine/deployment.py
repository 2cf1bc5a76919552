"""The engine as a Ray Serve deployment: one replica hosts one engine of one pool."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from serve.config.schema import ModelConfig, PoolConfig
from serve.engine.protocol import Endpoint, Engine, EngineLoad, EngineReply
from serve.engine.stats import run_with_stats

logger = logging.getLogger(__name__)


def make_engine(model: ModelConfig, pool: PoolConfig) -> Engine:
    from serve.engine.vllm_engine import VLLMEngine

    return VLLMEngine(model.name, model.task, pool.engine, on_cpu=pool.accelerator_type == "CPU")


class EngineDeployment:
    """Ray Serve calls ``check_health`` periodically; a failing engine gets its replica
    restarted. ``generate`` is a streaming method (call it with ``stream=True``)."""

    async def __init__(self, model: ModelConfig, pool: PoolConfig, engine_factory: Any = make_engine) -> None:
        self.pool = pool.name
        self.engine = engine_factory(model, pool)
        await self.engine.start()
        logger.info("pool %s: engine for %s started", pool.name, model.name)

    async def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
        """The engine's replies, then ``RunStats`` (see ``serve.engine.stats``)."""
        async for reply in run_with_stats(self.engine, endpoint, request, request_id):
            yield reply

    def load(self) -> EngineLoad:
        return self.engine.load()

    def describe(self) -> dict[str, str | int]:
        """Which replica this is: its pool, the name of its Ray actor and its process id (for
        operators, and for fault tests that kill a specific replica)."""
        import os

        from ray import serve

        return {
            "pool": self.pool,
            "replica_actor": serve.get_replica_context().replica_id.to_full_id_str(),
            "pid": os.getpid(),
        }

    async def check_health(self) -> None:
        await self.engine.check_health()

    async def __del__(self) -> None:
        await self.engine.shutdown()
