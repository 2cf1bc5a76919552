"""How the router reaches engines: one ``EngineClient`` per pool.

In a Ray Serve application each client wraps a ``DeploymentHandle`` to the pool's engine
deployment; unit tests wrap an in-process engine. The router knows nothing else about
engines: it never imports vLLM's engine, and the engine never imports FastAPI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from serve.engine.protocol import Endpoint, EngineLoad, EngineReply
from serve.engine.stats import run_with_stats


class EngineClient(Protocol):
    pool: str

    def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]: ...

    async def load(self) -> EngineLoad: ...


class HandleEngineClient:
    """An engine deployment reached through a Ray Serve ``DeploymentHandle``.

    Cancelling the iteration (the HTTP client went away) cancels the call in the engine
    replica, which aborts the request inside vLLM.
    """

    def __init__(self, pool: str, handle: Any) -> None:
        self.pool = pool
        self._stream = handle.options(stream=True)
        self._handle = handle

    async def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
        gen = self._stream.generate.remote(endpoint, request, request_id)
        finished = False
        try:
            async for item in gen:
                yield item
            finished = True
        finally:
            if not finished:
                gen.cancel()

    async def load(self) -> EngineLoad:
        return await self._handle.load.remote()


class LocalEngineClient:
    """An engine in this process (unit tests, single-process tools)."""

    def __init__(self, pool: str, engine: Any) -> None:
        self.pool = pool
        self.engine = engine

    def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
        return run_with_stats(self.engine, endpoint, request, request_id)

    async def load(self) -> EngineLoad:
        return self.engine.load()
