"""serve/cache/service.py: the facade the router calls, on both backends, with a fake embedder."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from serve.cache import (
    CacheConfig,
    CacheControls,
    CountingEvents,
    ResponseCache,
    build_cache,
    entry_from_body,
    render_body,
    take_cache_controls,
)
from serve.cache.entry import CachedChoice, CachedUsage, CacheEntry
from serve.cache.service import HEADER_COST_AVOIDED, HEADER_SIMILARITY, HEADER_STATUS
from serve.bench.redis_server import RedisServer

QUESTION = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"
UNRELATED = "How do I bake sourdough bread?"
NEAR_MISS = "What is the capital of Germany?"


class FakeEmbedder:
    """Vectors chosen by the test: ``QUESTION`` and ``PARAPHRASE`` at cosine 0.95, ``NEAR_MISS``
    at 0.97 (what MiniLM does with an entity swap), anything else orthogonal."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: Exception | None = None
        self.delay_s = 0.0
        base = np.array([1.0, 0.0, 0.0, 0.0])
        self.vectors = {
            QUESTION: base,
            PARAPHRASE: np.array([0.95, np.sqrt(1 - 0.95**2), 0.0, 0.0]),
            NEAR_MISS: np.array([0.97, 0.0, np.sqrt(1 - 0.97**2), 0.0]),
        }

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls += texts
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return [list(self.vectors.get(t, np.array([0.0, 0.0, 0.0, 1.0]))) for t in texts]


def _config(backend: str, url: str | None, **changes: Any) -> CacheConfig:
    # A generous socket timeout: the machine running the tests may be busy. The slow-Redis test sets its own.
    base: dict[str, Any] = {"enabled": True, "socket_timeout_s": 1.0, "retry_interval_s": 0.2, "warning_interval_s": 60}
    base["semantic"] = {"models": {"m": {"threshold": 0.9}}}
    if backend == "redis":
        base["redis_url"] = url
    return CacheConfig.model_validate(base | changes)


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return request.param, url


@pytest.fixture
def embedder() -> FakeEmbedder:
    return FakeEmbedder()


@pytest.fixture
async def cache(backend: tuple[str, str | None], embedder: FakeEmbedder) -> AsyncIterator[ResponseCache]:
    c = build_cache(_config(*backend), embedder, CountingEvents())
    yield c
    await c.close()


def _chat(text: str = QUESTION, **changes: Any) -> dict[str, Any]:
    data = {"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}], "temperature": 0}
    return data | changes


def _entry(text: str = "Paris.", cost_usd: float = 0.002) -> CacheEntry:
    return CacheEntry(
        endpoint="chat",
        choices=(CachedChoice(index=0, text=text, finish_reason="stop"),),
        usage=CachedUsage(prompt_tokens=12, completion_tokens=2, total_tokens=14),
        cost_usd=cost_usd,
        created_at_s=time.time(),
    )


NO_CONTROLS = CacheControls()


def _events(cache: ResponseCache) -> CountingEvents:
    assert isinstance(cache.events, CountingEvents)
    return cache.events


async def test_miss_store_hit(cache: ResponseCache) -> None:
    data = _chat()
    first = await cache.lookup("chat", data, "t", NO_CONTROLS)
    assert first.status == "miss" and first.entry is None and first.headers() == {HEADER_STATUS: "miss"}
    assert await cache.store(first, _entry())
    hit = await cache.lookup("chat", _chat(stream=True, stream_options={"include_usage": True}), "t", NO_CONTROLS)
    assert hit.status == "hit" and hit.match == "exact" and hit.entry is not None and hit.similarity is None
    assert hit.headers() == {HEADER_STATUS: "hit", HEADER_COST_AVOIDED: "0.002"}
    assert hit.cost_avoided_usd == 0.002
    body = json.loads(render_body(hit.entry, "chat", "r1", "m"))
    assert body["choices"][0]["message"]["content"] == "Paris." and body["usage"]["cost_usd"] == 0.0
    assert not await cache.store(hit, _entry())  # a hit is never stored again
    assert data == _chat()  # lookup does not modify the body
    events = _events(cache)
    assert events.lookups == {("miss", None): 1, ("hit", "exact"): 1} and events.stores == 1


async def test_other_parameters_namespaces_and_endpoints_miss(cache: ResponseCache) -> None:
    await cache.store(await cache.lookup("chat", _chat(), "t", NO_CONTROLS), _entry())
    for data, namespace in ((_chat(max_tokens=5), "t"), (_chat(seed=1), "t"), (_chat(), "other-tenant"), (_chat(model="n"), "t")):
        assert (await cache.lookup("chat", data, namespace, NO_CONTROLS)).status == "miss"
    system = _chat()
    system["messages"][0]["content"] = "Be verbose."
    assert (await cache.lookup("chat", system, "t", NO_CONTROLS)).status == "miss"
    completion = {"model": "m", "prompt": QUESTION, "temperature": 0}
    assert (await cache.lookup("completion", completion, "t", NO_CONTROLS)).status == "miss"
    assert (await cache.lookup("embedding", {"model": "e", "input": "x"}, "t", NO_CONTROLS)).status == "bypass"


async def test_only_deterministic_requests_by_default(backend: tuple[str, str | None], embedder: FakeEmbedder) -> None:
    sampled = _chat(temperature=0.8)
    strict = build_cache(_config(*backend), embedder)
    found = await strict.lookup("chat", sampled, "t", NO_CONTROLS)
    assert found.status == "bypass" and found.plan is None and not await strict.store(found, _entry())
    allowed = await strict.lookup("chat", sampled, "t", take_cache_controls({"cache": {"allow-nondeterministic": True}}))
    assert allowed.status == "miss" and await strict.store(allowed, _entry())
    assert (await strict.lookup("chat", sampled, "t", CacheControls(**{"allow-nondeterministic": True}))).status == "hit"
    assert (await strict.lookup("chat", _chat(temperature=0.8, logprobs=True), "t", NO_CONTROLS)).status == "bypass"
    await strict.close()
    loose = build_cache(_config(*backend, cache_nondeterministic=True), embedder)
    found = await loose.lookup("chat", _chat(temperature=0.9), "t", NO_CONTROLS)
    assert found.status == "miss" and await loose.store(found, _entry())
    assert (await loose.lookup("chat", _chat(temperature=0.9), "t", NO_CONTROLS)).status == "hit"
    await loose.close()
    disabled = build_cache(_config(*backend, enabled=False), embedder)
    assert (await disabled.lookup("chat", _chat(), "t", NO_CONTROLS)).status == "bypass"
    await disabled.close()


async def test_no_cache_no_store_ttl_and_max_age(cache: ResponseCache) -> None:
    no_store = await cache.lookup("chat", _chat(), "t", CacheControls(**{"no-store": True}))
    assert no_store.status == "miss" and not await cache.store(no_store, _entry())
    no_cache = await cache.lookup("chat", _chat(), "t", CacheControls(**{"no-cache": True, "ttl": 0.6}))
    assert no_cache.status == "bypass" and no_cache.headers() == {HEADER_STATUS: "bypass"}
    assert await cache.store(no_cache, _entry("fresh"))
    hit = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    assert hit.entry is not None and hit.entry.choices[0].text == "fresh"
    assert (await cache.lookup("chat", _chat(), "t", CacheControls(**{"no-cache": True}))).status == "bypass"
    await asyncio.sleep(0.1)
    assert (await cache.lookup("chat", _chat(), "t", CacheControls(**{"s-maxage": 0.05}))).status == "miss"
    assert (await cache.lookup("chat", _chat(), "t", CacheControls(**{"s-maxage": 60}))).status == "hit"
    await asyncio.sleep(0.65)  # the per-request ttl of 0.6 s has passed
    assert (await cache.lookup("chat", _chat(), "t", NO_CONTROLS)).status == "miss"


async def test_store_refuses_oversized_and_mismatched_entries(backend: tuple[str, str | None]) -> None:
    cache = build_cache(_config(*backend, max_entry_bytes=300, semantic={}))
    found = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    assert not await cache.store(found, _entry("x" * 400))
    assert not await cache.store(found, None)
    completion = entry_from_body("completion", json.dumps({
        "object": "text_completion", "choices": [{"index": 0, "text": "x", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1}}), 0.0)
    with pytest.raises(ValueError):
        await cache.store(found, completion)
    await cache.close()


async def test_semantic_hit_needs_similarity_scope_and_guard(cache: ResponseCache, embedder: FakeEmbedder) -> None:
    stored = await cache.lookup("chat", _chat(QUESTION), "t", NO_CONTROLS)
    assert stored.status == "miss" and embedder.calls == [QUESTION]
    assert await cache.store(stored, _entry())
    assert embedder.calls == [QUESTION]  # the lookup's vector is reused

    hit = await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)
    assert hit.status == "hit" and hit.match == "semantic" and hit.similarity == pytest.approx(0.95, abs=1e-4)
    assert hit.headers()[HEADER_SIMILARITY] == "0.9500" and hit.entry is not None and hit.entry.choices[0].text == "Paris."
    assert (await cache.lookup("chat", _chat(UNRELATED), "t", NO_CONTROLS)).status == "miss"
    # Cosine 0.97 but another entity: the guard refuses it.
    assert (await cache.lookup("chat", _chat(NEAR_MISS), "t", NO_CONTROLS)).status == "miss"
    # Same last turn, anything else different: another scope.
    system = _chat(PARAPHRASE)
    system["messages"][0]["content"] = "Be verbose."
    for data, namespace in ((system, "t"), (_chat(PARAPHRASE, max_tokens=9), "t"), (_chat(PARAPHRASE), "other")):
        assert (await cache.lookup("chat", data, namespace, NO_CONTROLS)).status == "miss"
    # A model that did not opt in gets exact matches only.
    assert (await cache.lookup("chat", _chat(PARAPHRASE, model="n"), "t", NO_CONTROLS)).status == "miss"
    assert _events(cache).lookups[("hit", "semantic")] == 1


async def test_semantic_without_guard_and_threshold(backend: tuple[str, str | None], embedder: FakeEmbedder) -> None:
    cache = build_cache(_config(*backend, semantic={"models": {"m": {"threshold": 0.96, "guard": False}}}), embedder)
    await cache.store(await cache.lookup("chat", _chat(QUESTION), "t", NO_CONTROLS), _entry())
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"  # 0.95 < 0.96
    unguarded = await cache.lookup("chat", _chat(NEAR_MISS), "t", NO_CONTROLS)
    assert unguarded.status == "hit" and unguarded.match == "semantic"  # why the guard exists
    await cache.close()


async def test_semantic_vectors_expire_with_entries(cache: ResponseCache) -> None:
    found = await cache.lookup("chat", _chat(QUESTION), "t", CacheControls(ttl=0.2))
    await cache.store(found, _entry())
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "hit"
    await asyncio.sleep(0.3)
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"


async def test_no_cache_request_still_indexes_its_answer(cache: ResponseCache, embedder: FakeEmbedder) -> None:
    found = await cache.lookup("chat", _chat(QUESTION), "t", CacheControls(**{"no-cache": True}))
    assert found.status == "bypass" and embedder.calls == []
    assert await cache.store(found, _entry())
    assert embedder.calls == [QUESTION]  # embedded at store time
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "hit"


async def test_replicas_share_a_redis_scope(redis_url: str, embedder: FakeEmbedder) -> None:
    config = _config("redis", redis_url)
    a, b = build_cache(config, embedder), build_cache(config, embedder)
    # b loads the (empty) scope first, so it holds a copy that a's store must refresh.
    assert (await b.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"
    await a.store(await a.lookup("chat", _chat(QUESTION), "t", NO_CONTROLS), _entry())
    assert (await b.lookup("chat", _chat(PARAPHRASE, max_tokens=None), "t", NO_CONTROLS)).status == "miss"  # other scope
    assert (await b.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "hit"
    # The entry disappears behind the index's back (evicted by Redis): the vector is forgotten.
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    [key] = [k async for k in client.scan_iter(match="*:e:*")]
    await client.delete(key)
    assert (await b.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"
    [scope] = [k async for k in client.scan_iter(match="*:s:*}")]  # the hash, not its log
    assert await client.hkeys(scope) == [b"~generation"]
    await client.aclose()
    await a.close()
    await b.close()


async def test_embedder_failure_and_slowness_degrade_to_exact(backend: tuple[str, str | None], embedder: FakeEmbedder) -> None:
    events = CountingEvents()
    cache = build_cache(_config(*backend, retry_interval_s=0, semantic={"embed_timeout_s": 0.05, "models": {"m": {}}}), embedder, events)
    await cache.store(await cache.lookup("chat", _chat(QUESTION), "t", NO_CONTROLS), _entry())
    embedder.fail = RuntimeError("embedding pool down")
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"
    assert (await cache.lookup("chat", _chat(QUESTION), "t", NO_CONTROLS)).status == "hit"  # exact still works
    embedder.fail, embedder.delay_s = None, 1.0
    started = time.perf_counter()
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "miss"
    assert time.perf_counter() - started < 0.5  # the 0.05 s embed timeout, not the 1 s embedder
    assert events.degraded["embed"] == 2
    embedder.delay_s = 0.0
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "hit"
    await cache.close()


def test_semantic_config_needs_an_embedder() -> None:
    with pytest.raises(ValueError, match="no embedder"):
        build_cache(_config("memory", None))
    build_cache(_config("memory", None, semantic={}))


async def test_redis_outage_bypasses_then_resumes(
    redis_server: RedisServer, redis_url: str, embedder: FakeEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    events = CountingEvents()
    cache = build_cache(_config("redis", redis_url), embedder, events)
    await cache.store(await cache.lookup("chat", _chat(), "t", NO_CONTROLS), _entry())
    assert (await cache.lookup("chat", _chat(), "t", NO_CONTROLS)).status == "hit"
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="serve.cache"):
            started = time.perf_counter()
            outcomes = [await cache.lookup("chat", _chat(), "t", NO_CONTROLS) for _ in range(20)]
            elapsed_s = time.perf_counter() - started
        assert {o.status for o in outcomes} == {"bypass"} and all(o.plan is None for o in outcomes)
        assert not await cache.store(outcomes[0], _entry())
        assert elapsed_s < 0.5  # the breaker skips Redis instead of paying a timeout per request
        assert events.degraded["get"] == 20
        warnings = [r for r in caplog.records if "unavailable" in r.getMessage() or "degraded" in r.getMessage()]
        assert len(warnings) == 1  # rate-limited, not one per request
    finally:
        redis_server.start()
    deadline = time.monotonic() + 3.0  # retry_interval_s is 0.2 s; slack for a busy machine
    found = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    while found.status == "bypass" and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        found = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    assert found.status == "miss"  # the restarted server is empty
    assert await cache.store(found, _entry())
    assert (await cache.lookup("chat", _chat(), "t", NO_CONTROLS)).status == "hit"
    assert (await cache.lookup("chat", _chat(PARAPHRASE), "t", NO_CONTROLS)).status == "hit"
    await cache.close()


async def test_slow_redis_times_out_into_a_bypass(redis_url: str) -> None:
    """A Lua script busy for 0.5 s blocks the server; lookups give up after socket_timeout_s."""
    import redis

    cache = build_cache(_config("redis", redis_url, semantic={}, socket_timeout_s=0.05))
    await cache.store(await cache.lookup("chat", _chat(), "t", NO_CONTROLS), _entry())
    busy = "local s = redis.call('TIME') local t0 = s[1] * 1e6 + s[2] " \
           "while true do local n = redis.call('TIME') if n[1] * 1e6 + n[2] - t0 > 5e5 then break end end return 1"
    blocker = redis.Redis.from_url(redis_url)
    task = asyncio.create_task(asyncio.to_thread(blocker.eval, busy, 0))
    await asyncio.sleep(0.1)
    started = time.perf_counter()
    found = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    elapsed_s = time.perf_counter() - started
    await task
    blocker.close()
    assert found.status == "bypass" and elapsed_s < 0.3
    assert await _eventually_hits(cache, _chat())
    await cache.close()


async def _eventually_hits(cache: ResponseCache, data: dict[str, Any], within_s: float = 3.0) -> bool:
    """Whether lookups of ``data`` turn into hits within ``within_s`` (the breaker's retry
    interval, and some slack for a busy machine)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if (await cache.lookup("chat", data, "t", NO_CONTROLS)).status == "hit":
            return True
        await asyncio.sleep(0.05)
    return False


async def test_corrupt_entries_are_misses(redis_url: str) -> None:
    events = CountingEvents()
    cache = build_cache(_config("redis", redis_url, semantic={}), None, events)
    found = await cache.lookup("chat", _chat(), "t", NO_CONTROLS)
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    assert found.plan is not None
    await client.set(found.plan.key, b"{not an entry")
    await client.aclose()
    assert (await cache.lookup("chat", _chat(), "t", NO_CONTROLS)).status == "miss"
    assert events.degraded["decode"] == 1
    await cache.close()


async def test_build_does_no_io() -> None:
    config = CacheConfig(enabled=True, redis_url="redis://127.0.0.1:1/0", socket_timeout_s=0.05)
    cache = build_cache(config)  # port 1 refuses connections: building must not connect
    await cache.close()
