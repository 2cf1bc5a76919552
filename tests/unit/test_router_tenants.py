"""Tenants, the ledger and metrics on the router's request path, over fake engines."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from serve.config.schema import FrugalConfig
from serve.engine.fake import FakeEngine
from serve.observability.scrape import sum_samples
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.engines import LocalEngineClient
from serve.router.pools import StaticReplicaCounter
from serve.tenants.keys import generate_key

HELLO = [{"role": "user", "content": "hello there world"}]


def _router(tenants: dict[str, Any], delay_s: float = 0.0):
    config = FrugalConfig.model_validate({
        "models": [{"name": "m", "pools": [{"name": "p", "params_b": 0.1, "engine": {"model": "/models/m"}}]}],
        "tenants": tenants,
    })
    engine = FakeEngine("m", delay_s=delay_s)
    service = build_router_service(config, {"p": LocalEngineClient("p", engine)}, StaticReplicaCounter({"p": (1, 0)}))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_router_app(service)), base_url="http://t")
    return service, engine, client


def _auth_config(rpm: int | None = None) -> tuple[dict[str, Any], str]:
    key = generate_key()
    tiers = {"paid": {"requests_per_minute": rpm}} if rpm else {}
    return {
        "auth_enabled": True,
        "tiers": tiers,
        "tenants": [{"id": "acme", "tier": "paid", "keys": [{"id": key.key_id, "sha256": key.sha256}]}],
    }, key.key


async def test_auth_limits_headers_ledger_and_metrics_agree() -> None:
    tenants, key = _auth_config(rpm=3)
    service, _, client = _router(tenants)
    auth = {"authorization": f"Bearer {key}"}
    async with client:
        missing = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO})
        wrong = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO},
                                  headers={"authorization": "Bearer frg-000000000000.nope-nope-nope-nope-nope"})
        answers = [await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=auth)
                   for _ in range(3)]
        refused = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO}, headers=auth)
        metrics_text = (await client.get("/metrics")).text
        await service.close()  # flushes the ledger
    assert missing.status_code == 401 and wrong.status_code == 401
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[-1].headers["x-ratelimit-limit-requests"] == "3"
    assert answers[-1].headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.status_code == 429 and refused.json()["error"]["param"] == "requests_per_minute"
    assert "retry-after" in refused.headers and refused.headers["x-ratelimit-remaining-requests"] == "0"

    completion_tokens = sum(a.json()["usage"]["completion_tokens"] for a in answers)
    cost = sum(a.json()["usage"]["cost_usd"] for a in answers)
    assert sum_samples(metrics_text, "frugal_completion_tokens_total") == completion_tokens
    records = await service.tenants.ledger.store.records(0, time.time() + 1)
    assert len(records) == 3 and {r.tenant_id for r in records} == {"acme"}
    assert sum(r.completion_tokens for r in records) == completion_tokens
    assert abs(sum(r.cost_usd for r in records) - cost) < 1e-9


async def test_a_cancelled_stream_is_recorded_once_with_what_it_consumed() -> None:
    service, engine, client = _router({})
    body = {"model": "m", "messages": HELLO, "stream": True, "max_tokens": 50}
    from starlette.requests import Request
    import json

    payload = json.dumps(body).encode()

    async def receive() -> dict:
        return {"type": "http.request", "body": payload, "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}, receive)
    engine.delay_s = 0.01
    response = await service.handle("chat", request)
    events = response.body_iterator
    await anext(events)
    await anext(events)
    await events.aclose()
    await asyncio.sleep(0)
    await service.close()
    records = await service.tenants.ledger.store.records(0, time.time() + 1)
    assert [r.status for r in records] == ["cancelled"]
    assert records[0].completion_tokens >= 1 and engine.num_active == 0
    await client.aclose()


async def test_a_stream_whose_engine_dies_is_recorded_as_failed_with_what_the_client_got() -> None:
    service, engine, client = _router({})
    engine.raise_after_chunks = 3
    r = await client.post("/v1/chat/completions", json={"model": "m", "messages": HELLO, "stream": True, "max_tokens": 50})
    events = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and '"engine_unavailable"' in events[-2]
    content = sum('"content"' in e for e in events[:-2])
    await service.close()
    records = await service.tenants.ledger.store.records(0, time.time() + 1)
    assert [r.status for r in records] == ["failed"]
    assert records[0].completion_tokens >= content >= 1
    await client.aclose()
