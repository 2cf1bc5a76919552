"""The response cache on the router's request path, over fake engines: hits, misses, replay
of a stream, tenant isolation, semantic hits, and what a hit costs."""

from __future__ import annotations

import json
from typing import Any

import httpx

from serve.config.schema import FrugalConfig
from serve.engine.fake import FakeEngine, fake_embedding
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.engines import LocalEngineClient
from serve.router.pools import StaticReplicaCounter
from serve.tenants.keys import generate_key

ASK = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "what is two plus two"}]


def _router(extra: dict[str, Any] | None = None):
    config = FrugalConfig.model_validate({
        "models": [
            {"name": "m", "pools": [{"name": "p", "params_b": 0.1, "engine": {"model": "/models/m"}}]},
            {"name": "e", "task": "embed", "pools": [{"name": "pe", "params_b": 0.1, "engine": {"model": "/models/e"}}]},
        ],
        "cache": {"enabled": True},
        **(extra or {}),
    })
    engines = {"p": FakeEngine("m"), "pe": FakeEngine("e")}
    clients = {name: LocalEngineClient(name, engine) for name, engine in engines.items()}
    service = build_router_service(config, clients, StaticReplicaCounter({n: (1, 0) for n in clients}))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_router_app(service)), base_url="http://t")
    return engines["p"], client


def _events(r: httpx.Response) -> list[str]:
    return [e[len("data: "):] for e in r.text.split("\n\n") if e]


async def test_a_repeated_deterministic_request_is_a_hit_with_the_same_answer_at_no_cost() -> None:
    engine, client = _router()
    body = {"model": "m", "messages": ASK, "temperature": 0}
    async with client:
        first = await client.post("/v1/chat/completions", json=body)
        second = await client.post("/v1/chat/completions", json=body)
        changed = await client.post("/v1/chat/completions", json={**body, "top_p": 0.5})
        system = await client.post("/v1/chat/completions", json={**body, "messages": [{**ASK[0], "content": "be long"}, ASK[1]]})
        sampled = await client.post("/v1/chat/completions", json={"model": "m", "messages": ASK})
    assert first.headers["x-frugal-cache"] == "miss" and second.headers["x-frugal-cache"] == "hit"
    answer = [(c["index"], c["message"], c["finish_reason"]) for c in first.json()["choices"]]
    assert [(c["index"], c["message"], c["finish_reason"]) for c in second.json()["choices"]] == answer
    assert second.json()["usage"]["completion_tokens"] == first.json()["usage"]["completion_tokens"]
    assert second.json()["usage"]["cost_usd"] == 0.0 and second.headers["x-frugal-pool"] == "cache"
    assert float(second.headers["x-frugal-cost-avoided-usd"]) > 0
    assert changed.headers["x-frugal-cache"] == "miss" and system.headers["x-frugal-cache"] == "miss"
    assert sampled.headers["x-frugal-cache"] == "bypass"  # not deterministic: never cached by default
    assert engine.num_requests == 4


async def test_a_streamed_miss_is_stored_and_replayed_as_a_well_formed_stream() -> None:
    engine, client = _router()
    body = {"model": "m", "messages": ASK, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    async with client:
        miss = await client.post("/v1/chat/completions", json=body)
        hit = await client.post("/v1/chat/completions", json=body)
        plain = await client.post("/v1/chat/completions", json={**body, "stream": False, "stream_options": None})
        bad = await client.post("/v1/chat/completions", json={**body, "stream": False})
    assert (miss.headers["x-frugal-cache"], hit.headers["x-frugal-cache"]) == ("miss", "hit")
    events = _events(hit)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: what is two plus two"
    assert chunks[-1]["usage"]["cost_usd"] == 0.0 and chunks[-1]["choices"] == []
    assert plain.headers["x-frugal-cache"] == "hit"  # stream and plain requests share entries
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "stream_options"
    assert engine.num_requests == 1


async def test_one_tenant_never_gets_another_tenants_entry() -> None:
    a, b = generate_key(), generate_key()
    tenants = {"tenants": [
        {"id": "alpha", "tier": "paid", "keys": [{"id": a.key_id, "sha256": a.sha256}]},
        {"id": "beta", "tier": "paid", "keys": [{"id": b.key_id, "sha256": b.sha256}]},
    ]}
    engine, client = _router({"tenants": tenants})
    body = {"model": "m", "messages": ASK, "temperature": 0}
    async with client:
        r1 = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {a.key}"})
        r2 = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {b.key}"})
        r3 = await client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {a.key}"})
    assert [r.headers["x-frugal-cache"] for r in (r1, r2, r3)] == ["miss", "miss", "hit"]


async def test_cache_controls_and_bad_controls() -> None:
    engine, client = _router()
    body = {"model": "m", "messages": ASK, "temperature": 0}
    async with client:
        await client.post("/v1/chat/completions", json={**body, "cache": {"no-store": True}})
        skipped = await client.post("/v1/chat/completions", json=body)
        forced = await client.post("/v1/chat/completions", json={**body, "cache": {"no-cache": True}})
        bad = await client.post("/v1/chat/completions", json={**body, "cache": {"ttl": "soon"}})
    assert skipped.headers["x-frugal-cache"] == "miss"  # the first answer was not stored
    assert forced.headers["x-frugal-cache"] == "bypass"
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "cache"


async def test_a_paraphrase_is_a_semantic_hit_through_the_embedding_model(monkeypatch) -> None:
    # The fake embedding depends only on the text: make two phrasings embed the same.
    import serve.engine.fake as fake

    monkeypatch.setattr(fake, "fake_embedding", lambda text, dim=fake.FAKE_EMBEDDING_DIM: fake_embedding("same", dim))
    extra = {"cache": {"enabled": True, "semantic": {"embedding_model": "e", "models": {"m": {"threshold": 0.9, "guard": False}}}}}
    engine, client = _router(extra)
    async with client:
        one = await client.post("/v1/chat/completions", json={"model": "m", "temperature": 0,
                                "messages": [{"role": "user", "content": "what is two plus two"}]})
        two = await client.post("/v1/chat/completions", json={"model": "m", "temperature": 0,
                                "messages": [{"role": "user", "content": "how much is two and two"}]})
    assert one.headers["x-frugal-cache"] == "miss"
    assert two.headers["x-frugal-cache"] == "hit" and float(two.headers["x-frugal-cache-similarity"]) > 0.99
