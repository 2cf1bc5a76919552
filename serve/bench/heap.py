"""The router's own Python heap per request: Frugal's router app in process (no Ray), its full
request path on (auth, Redis limits, Redis cache miss and store, Redis ledger, against a
redis-server started here) in front of the instant fake engine, with ``tracemalloc``
snapshots before and after a run of requests. What grows between them, by allocation site,
is what the router's code keeps per request; growth outside the Python heap (Ray's core
worker, the allocator) does not show here and does in the soak's RSS."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
import uuid

import httpx
from pydantic import BaseModel

from serve.bench.noop import MODEL
from serve.bench.overhead import POOL, base_config
from serve.bench.targets import full_stack_config

BATCH = 16  # concurrent requests


class Site(BaseModel):
    kib: float
    blocks: int
    where: list[str]  # innermost frames in this project or its libraries


class HeapReport(BaseModel):
    requests: int
    stream: bool
    net_kib: float
    bytes_per_request: float
    top: list[Site]


async def _measure(redis_url: str, warmup: int, requests: int, stream: bool, top: int) -> HeapReport:
    from serve.engine.fake import FakeEngine
    from serve.router.app import build_router_app
    from serve.router.assembly import build_router_service
    from serve.router.engines import LocalEngineClient
    from serve.router.pools import StaticReplicaCounter
    from serve.tenants.keys import generate_key

    key = generate_key()
    config = full_stack_config(base_config(), redis_url, key.key_id, key.sha256)
    clients = {POOL: LocalEngineClient(POOL, FakeEngine(MODEL))}
    app = build_router_app(build_router_service(config, clients, StaticReplicaCounter({POOL: (1, 0)})))
    headers = {"authorization": f"Bearer {key.key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router") as client:

        async def one() -> None:
            body = {"model": MODEL, "messages": [{"role": "user", "content": f"hello {uuid.uuid4().hex}"}],
                    "max_tokens": 16, "temperature": 0, "stream": stream}
            r = await client.post("/v1/chat/completions", json=body, headers=headers)
            r.raise_for_status()

        async def run(n: int) -> None:
            for _ in range(0, n, BATCH):
                await asyncio.gather(*(one() for _ in range(BATCH)))

        await run(warmup)
        gc.collect()
        tracemalloc.start(25)
        try:
            before = tracemalloc.take_snapshot()
            await run(requests)
            await asyncio.sleep(1)  # let background ledger and cache writes finish
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
    stats = after.compare_to(before, "traceback")
    net = sum(s.size_diff for s in stats)
    sites = [
        Site(kib=s.size_diff / 1024, blocks=s.count_diff,
             where=[line.strip() for line in s.traceback.format() if "site-packages" in line or "/serve/" in line][-4:])
        for s in stats[:top]
    ]
    return HeapReport(requests=requests, stream=stream, net_kib=net / 1024, bytes_per_request=net / requests, top=sites)


def measure(warmup: int = 500, requests: int = 4000, stream: bool = True, top: int = 8) -> HeapReport:
    """Start a redis-server, run ``warmup`` requests, then ``requests`` between two snapshots."""
    from serve.bench.redis_server import RedisServer

    redis = RedisServer()
    redis.start()
    try:
        return asyncio.run(_measure(redis.url, warmup, requests, stream, top))
    finally:
        redis.close()
