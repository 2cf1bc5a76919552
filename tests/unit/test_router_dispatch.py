"""Cost-aware dispatch through the router's HTTP surface, over fake engines."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx

from serve.config.schema import FrugalConfig
from serve.engine.fake import FakeEngine
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.engines import LocalEngineClient
from serve.router.pools import StaticReplicaCounter

HELLO = [{"role": "user", "content": "hello there world"}]


def _profile(max_concurrency: int) -> dict[str, Any]:
    return {
        "points": [
            {"concurrency": 1, "output_tokens_per_s": 10, "ttft_ms": 100},
            {"concurrency": max_concurrency, "output_tokens_per_s": 10 * max_concurrency, "ttft_ms": 100},
        ],
        "source": "test",
    }


def _config() -> FrugalConfig:
    pool = {"params_b": 0.1, "engine": {"model": "/models/m"}}
    return FrugalConfig.model_validate({
        "models": [{
            "name": "m",
            "pools": [
                # Cheap, but only two requests fit in a batch: the third would queue past its TTFT target.
                {**pool, "name": "cheap", "price_usd_per_hour": 0.05, "profile": _profile(2),
                 "latency_target": {"ttft_ms": 1000, "tpot_ms": 500}},
                {**pool, "name": "pricey", "price_usd_per_hour": 0.5, "profile": _profile(64),
                 "latency_target": {"ttft_ms": 1000, "tpot_ms": 500}},
            ],
        }],
    })


class Router:
    def __init__(self, cheap: FakeEngine, pricey: FakeEngine, replicas: dict[str, int] | None = None) -> None:
        self.engines = {"cheap": cheap, "pricey": pricey}
        clients = {name: LocalEngineClient(name, engine) for name, engine in self.engines.items()}
        counts = {name: ((replicas or {}).get(name, 1), 0) for name in clients}
        self.service = build_router_service(_config(), clients, StaticReplicaCounter(counts))
        self.app = build_router_app(self.service)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")


async def test_the_cheap_pool_serves_while_it_meets_its_target() -> None:
    router = Router(FakeEngine("m"), FakeEngine("m"))
    async with router.client() as client:
        for _ in range(3):  # one at a time: the cheap pool is never loaded
            r = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, "max_tokens": 8})
            assert r.status_code == 200
            assert (r.headers["x-frugal-pool"], r.headers["x-frugal-route-reason"]) == ("cheap", "cheapest-within-slo")
    assert router.engines["pricey"].num_requests == 0


async def test_traffic_spills_when_the_cheap_pool_would_break_its_target() -> None:
    router = Router(FakeEngine("m", delay_s=0.1), FakeEngine("m"))
    body = {"model": "m", "messages": HELLO, "max_tokens": 64}
    async with router.client() as client:
        # Two slow requests in flight fill the cheap pool's batch of two.
        held = [asyncio.create_task(client.post("/v1/chat/completions", json=body)) for _ in range(2)]
        while router.engines["cheap"].num_active < 2:
            await asyncio.sleep(0.01)
        r = await client.post("/v1/chat/completions", json=body)
        assert (r.headers["x-frugal-pool"], r.headers["x-frugal-route-reason"]) == ("pricey", "spill")
        usage = r.json()["usage"]
        assert usage["cost_usd"] > 0 and float(r.headers["x-frugal-cost-usd"]) == usage["cost_usd"]
        for response in await asyncio.gather(*held):
            assert response.headers["x-frugal-pool"] == "cheap"
    assert router.engines["cheap"].num_active == 0
    assert router.service.dispatcher.monitor.pools["cheap"].local_in_flight == 0


async def test_a_streamed_answer_reports_its_cost_in_the_usage_chunk() -> None:
    router = Router(FakeEngine("m"), FakeEngine("m"))
    body = {"model": "m", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    async with router.client() as client:
        r = await client.post("/v1/chat/completions", json=body)
    assert r.headers["x-frugal-cost-kind"] == "estimate" and float(r.headers["x-frugal-cost-usd"]) > 0
    events = [e[len("data: "):] for e in r.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    usage = json.loads(events[-2])["usage"]
    assert usage["completion_tokens"] > 0 and usage["cost_usd"] > 0


async def test_a_cold_cheap_pool_is_woken_while_the_warm_one_serves() -> None:
    router = Router(FakeEngine("m"), FakeEngine("m"), replicas={"cheap": 0, "pricey": 1})
    await router.service.dispatcher.monitor.refresh()  # the first poll: the cheap pool has no replica
    async with router.client() as client:
        r = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
    assert r.headers["x-frugal-pool"] == "pricey"
    waking = router.service.dispatcher.monitor.pools["cheap"].waking
    assert waking is not None
    await waking
    assert router.engines["cheap"].num_requests == 0  # woken by a load() call, not a request


async def test_a_tier_alias_picks_a_model_by_complexity_and_says_so() -> None:
    config = _config().model_copy(update={"tiers": None})
    data = config.model_dump()
    small = {**data["models"][0], "name": "small"}
    data["models"].append({**small, "pools": [{**p, "name": f"small-{p['name']}"} for p in small["pools"]]})
    data["tiers"] = {"aliases": ["auto"], "small": "small", "medium": "m", "large": "m"}
    config = FrugalConfig.model_validate(data)
    engines = {pool.name: FakeEngine(model.name) for model in config.models for pool in model.pools}
    clients = {name: LocalEngineClient(name, engine) for name, engine in engines.items()}
    service = build_router_service(config, clients, StaticReplicaCounter({n: (1, 0) for n in clients}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=build_router_app(service)), base_url="http://t") as client:
        easy = await client.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        hard_text = "Prove step by step, and explain why: " + "def f(x):\n    return x\n" * 40
        hard = await client.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": hard_text}]})
        broken = await client.post("/v1/chat/completions", json={"model": "auto", "messages": [1, "x"]})
        listed = (await client.get("/v1/models")).json()
    assert (easy.headers["x-frugal-tier"], easy.headers["x-frugal-model"]) == ("small", "small")
    assert easy.json()["model"] == "small" and 0 <= float(easy.headers["x-frugal-complexity"]) < 0.3
    assert hard.headers["x-frugal-tier"] in ("medium", "large") and hard.headers["x-frugal-model"] == "m"
    assert broken.status_code == 400 and broken.json()["error"]["param"] == "messages"
    assert "auto" in {m["id"] for m in listed["data"]}
