"""The response cache as the router uses it: ``lookup`` before dispatch, ``store`` after.

::

    cache = build_cache(config.cache, embedder)            # no I/O
    controls = take_cache_controls(data)                   # pops "cache"; 400 on bad input
    found = await cache.lookup(endpoint, data, namespace, controls)
    if found.entry is not None:                            # a hit: replay it
        body = render_body(found.entry, endpoint, request_id, model)   # or render_stream(...)
    ...                                                    # a miss or bypass: call the engine
    await cache.store(found, entry_from_body(...) or recorder.entry(cost_usd))

Lookup statuses: ``hit`` (``entry`` set; ``similarity`` set for a semantic hit), ``miss``
(consulted, nothing usable) and ``bypass`` (not consulted: cache disabled, request not
cacheable, ``no-cache``, or the store unavailable). ``lookup`` and ``store`` never raise for
a backend failure: they bypass, log a rate-limited warning and count ``on_degraded``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import numpy as np
from pydantic import ValidationError

from serve.cache.coalesce import Flight, Flights
from serve.cache.config import CacheConfig
from serve.cache.controls import CacheControls
from serve.cache.degrade import Breaker, RateLimitedWarning
from serve.cache.entry import CacheEntry
from serve.cache.events import CacheEvents, CacheStatus, MatchKind, NullEvents
from serve.cache.guard import allows
from serve.cache.keys import (
    CacheEndpoint,
    digest,
    entry_key,
    is_deterministic,
    request_digest,
    scope_key,
    semantic_query,
    unreplayable_field,
)
from serve.cache.memory_store import MemoryStore
from serve.cache.redis_store import RedisStore
from serve.cache.semantic import Embedder, SemanticIndex, unit_vector
from serve.cache.store import CacheStore, StoreUnavailable, VectorRecord
from serve.cost.estimate import format_usd

logger = logging.getLogger(__name__)
T = TypeVar("T")

HEADER_STATUS = "x-frugal-cache"
HEADER_SIMILARITY = "x-frugal-cache-similarity"
HEADER_COST_AVOIDED = "x-frugal-cost-avoided-usd"


@dataclass(frozen=True)
class SemanticPlan:
    scope: str  # the store key of the scope
    text: str
    threshold: float
    guard: bool
    vector: np.ndarray | None = None  # embedded during the lookup, reused by the store


@dataclass(frozen=True)
class StorePlan:
    endpoint: CacheEndpoint
    key: str
    ttl_s: float
    semantic: SemanticPlan | None


@dataclass(frozen=True)
class CacheLookup:
    """The outcome of a lookup; pass it back to ``store`` with the engine's answer."""

    status: CacheStatus
    entry: CacheEntry | None = None
    match: MatchKind | None = None
    similarity: float | None = None
    plan: StorePlan | None = None  # None: the answer to this request is not to be stored
    flight: Flight | None = None  # set when this miss leads identical requests (serve/cache/coalesce.py)

    @property
    def cost_avoided_usd(self) -> float:
        return self.entry.cost_usd if self.entry is not None else 0.0

    def headers(self) -> dict[str, str]:
        """``x-frugal-cache`` always; the similarity on a semantic hit and the avoided cost on
        any hit."""
        headers = {HEADER_STATUS: self.status}
        if self.similarity is not None:
            headers[HEADER_SIMILARITY] = f"{self.similarity:.4f}"
        if self.entry is not None:
            headers[HEADER_COST_AVOIDED] = format_usd(self.entry.cost_usd)
        return headers


class ResponseCache:
    """Exact and semantic response cache over a ``CacheStore``; see the module docstring."""

    def __init__(
        self,
        config: CacheConfig,
        store: CacheStore,
        embedder: Embedder | None,
        events: CacheEvents,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if config.semantic.models and embedder is None:
            raise ValueError(f"semantic caching is configured for {sorted(config.semantic.models)} but no embedder was given")
        self.config = config
        self.backend = store
        self.embedder = embedder
        self.events = events
        self.clock = clock
        self.index = SemanticIndex(store, config.semantic.index_max_vectors, clock)
        self.flights = Flights(config.coalesce_wait_s)
        self._store_breaker = Breaker("store", config.retry_interval_s, config.warning_interval_s, events)
        self._embed_breaker = Breaker("embedder", config.retry_interval_s, config.warning_interval_s, events)
        self._bad_entries = RateLimitedWarning("entries", config.warning_interval_s, events)

    async def lookup(self, endpoint: str, data: dict[str, Any], namespace: str, controls: CacheControls) -> CacheLookup:
        """Find a cached answer for the request body ``data`` (after ``take_cache_controls``
        and model resolution, so ``data["model"]`` is set) in ``namespace``. Does not modify
        ``data``."""
        found = await self._lookup(endpoint, data, namespace, controls)
        self.events.on_lookup(found.status, found.match)
        return found

    async def _lookup(self, endpoint: str, data: dict[str, Any], namespace: str, controls: CacheControls) -> CacheLookup:
        if not self.config.enabled or endpoint not in ("chat", "completion"):
            return CacheLookup("bypass")
        cache_endpoint: CacheEndpoint = "chat" if endpoint == "chat" else "completion"
        if unreplayable_field(data) is not None:
            return CacheLookup("bypass")
        if not (is_deterministic(data) or self.config.cache_nondeterministic or controls.allow_nondeterministic):
            return CacheLookup("bypass")
        key = entry_key(self.config.key_prefix, namespace, request_digest(cache_endpoint, data))
        ttl_s = controls.ttl_s if controls.ttl_s is not None else self.config.ttl_s

        def plan_with(semantic: SemanticPlan | None) -> StorePlan | None:
            return None if controls.no_store else StorePlan(cache_endpoint, key, ttl_s, semantic)

        if controls.no_cache:
            return CacheLookup("bypass", plan=plan_with(self._semantic_plan(cache_endpoint, data, namespace)))
        ok, raw = await self._store_call("get", lambda: self.backend.get(key))
        if not ok:
            return CacheLookup("bypass")
        entry = self._usable(raw, cache_endpoint, controls)
        if entry is not None:
            return CacheLookup("hit", entry, "exact")
        semantic = self._semantic_plan(cache_endpoint, data, namespace)  # only now: exact hits skip it
        plan = plan_with(semantic)
        if semantic is None:
            return await self._miss(key, cache_endpoint, data, controls, plan)

        vector = await self._embed(semantic.text)
        if vector is None:
            return await self._miss(key, cache_endpoint, data, controls, plan)
        semantic = replace(semantic, vector=vector)
        plan = replace(plan, semantic=semantic) if plan is not None else None
        hit = await self._semantic_hit(semantic, vector, cache_endpoint, controls)
        if hit is not None:
            return CacheLookup("hit", hit[0], "semantic", hit[1])
        return await self._miss(key, cache_endpoint, data, controls, plan)

    async def _miss(
        self, key: str, endpoint: CacheEndpoint, data: dict[str, Any], controls: CacheControls, plan: StorePlan | None
    ) -> CacheLookup:
        """A miss of ``key``: lead it (the caller goes to the engine and stores), or, while an
        identical request is in flight, wait for it and answer from what it stored."""
        if not self.config.coalesce:
            return CacheLookup("miss", plan=plan)
        follows = self.config.coalesce_streams or not data.get("stream")
        deadline = time.monotonic() + self.config.coalesce_wait_s
        while True:
            if plan is not None and (flight := self.flights.lead(key)) is not None:
                return CacheLookup("miss", plan=plan, flight=flight)
            remaining = deadline - time.monotonic()
            if not follows or not self.flights.in_flight(key) or remaining <= 0:
                return CacheLookup("miss", plan=plan)
            if not await self.flights.wait(key, remaining):
                return CacheLookup("miss", plan=plan)
            ok, raw = await self._store_call("get", lambda: self.backend.get(key))
            entry = self._usable(raw, endpoint, controls) if ok else None
            if entry is not None:
                return CacheLookup("hit", entry, "coalesced")
            if not ok:
                return CacheLookup("bypass")
            # The leader stored nothing: lead now, or follow whoever did.

    def release(self, lookup: CacheLookup | None) -> None:
        """The request of ``lookup`` ends without (another) store: wake the identical requests
        waiting for it. Idempotent; ``store`` releases too."""
        if lookup is not None:
            self.flights.land(lookup.flight)

    async def store(self, lookup: CacheLookup, entry: CacheEntry | None) -> bool:
        """Store ``entry`` as the answer to the looked-up request; True if written. A no-op
        (False) for a hit, a ``no-store`` or uncacheable request, no entry, an entry larger
        than ``max_entry_bytes``, or an unavailable store."""
        try:
            return await self._store(lookup, entry)
        finally:
            self.flights.land(lookup.flight)

    async def _store(self, lookup: CacheLookup, entry: CacheEntry | None) -> bool:
        plan = lookup.plan
        if plan is None or entry is None:
            return False
        if entry.endpoint != plan.endpoint:
            raise ValueError(f"a {entry.endpoint} entry cannot answer a {plan.endpoint} request")
        value = entry.to_bytes()
        if len(value) > self.config.max_entry_bytes:
            return False
        record = None
        if plan.semantic is not None:
            vector = plan.semantic.vector if plan.semantic.vector is not None else await self._embed(plan.semantic.text)
            if vector is not None:
                record = VectorRecord(plan.semantic.scope, plan.semantic.text, vector, self.clock() + plan.ttl_s)
        ok, stored = await self._store_call("put", lambda: self.backend.put(plan.key, value, plan.ttl_s, record))
        if ok and stored:
            self.events.on_store()
        return bool(ok and stored)

    async def close(self) -> None:
        await self.backend.close()

    def _semantic_plan(self, endpoint: CacheEndpoint, data: dict[str, Any], namespace: str) -> SemanticPlan | None:
        model = data.get("model")
        settings = self.config.semantic.models.get(model) if isinstance(model, str) else None
        query = semantic_query(endpoint, data) if settings is not None else None
        if settings is None or query is None:
            return None
        scope = digest({"scope": query.scope, "embedding_model": self.config.semantic.embedding_model})
        return SemanticPlan(scope_key(self.config.key_prefix, namespace, scope), query.text, settings.threshold, settings.guard)

    async def _semantic_hit(
        self, plan: SemanticPlan, vector: np.ndarray, endpoint: CacheEndpoint, controls: CacheControls
    ) -> tuple[CacheEntry, float] | None:
        ok, candidates = await self._store_call("vectors", lambda: self.index.candidates(plan.scope, vector, plan.threshold))
        gone: list[str] = []
        found: tuple[CacheEntry, float] | None = None
        for candidate in candidates or []:
            if plan.guard and not allows(plan.text, candidate.text):
                continue
            ok, raw = await self._store_call("get", lambda: self.backend.get(candidate.member))
            if not ok:
                break
            if raw is None:
                gone.append(candidate.member)
                continue
            entry = self._usable(raw, endpoint, controls)
            if entry is not None:
                found = (entry, candidate.similarity)
                break
        if gone:
            for member in gone:
                self.index.drop(plan.scope, member)
            await self._store_call("forget", lambda: self.backend.forget(plan.scope, gone))
        return found

    def _usable(self, raw: bytes | None, endpoint: CacheEndpoint, controls: CacheControls) -> CacheEntry | None:
        if raw is None:
            return None
        try:
            entry = CacheEntry.from_bytes(raw)
        except ValidationError as e:
            self._bad_entries.degraded("decode", f"unreadable entry: {e.error_count()} errors")
            return None
        if entry.endpoint != endpoint:
            return None
        if controls.max_age_s is not None and self.clock() - entry.created_at_s > controls.max_age_s:
            return None
        return entry

    async def _store_call(self, operation: str, call: Callable[[], Awaitable[T]]) -> tuple[bool, T | None]:
        if not self._store_breaker.allows(operation):
            return False, None
        try:
            result = await call()
        except StoreUnavailable as e:
            self._store_breaker.failed(operation, str(e))
            return False, None
        self._store_breaker.succeeded()
        return True, result

    async def _embed(self, text: str) -> np.ndarray | None:
        if self.embedder is None or not self._embed_breaker.allows("embed"):
            return None
        try:
            vectors = await asyncio.wait_for(self.embedder.embed([text]), self.config.semantic.embed_timeout_s)
        except Exception as e:  # any embedder failure (timeouts included) degrades to exact-only
            self._embed_breaker.failed("embed", f"{type(e).__name__}: {e}")
            return None
        vector = unit_vector(vectors[0]) if isinstance(vectors, list) and len(vectors) == 1 else None
        if vector is None:
            self._embed_breaker.failed("embed", "the embedder returned no usable vector")
            return None
        self._embed_breaker.succeeded()
        return vector


def build_store(config: CacheConfig) -> CacheStore:
    if config.redis_url is not None:
        return RedisStore(config.redis_url, config.socket_timeout_s, config.max_connections, config.semantic.max_vectors_per_scope)
    return MemoryStore(config.max_entries, config.max_bytes, config.semantic.max_vectors_per_scope)


def build_cache(config: CacheConfig, embedder: Embedder | None = None, events: CacheEvents | None = None) -> ResponseCache:
    """The cache ``config`` describes: on Redis if ``redis_url`` is set, else in process.
    Does no I/O (the Redis client connects on first use). Raises ``ValueError`` if a model
    opts into semantic caching and no ``embedder`` is given."""
    return ResponseCache(config, build_store(config), embedder, events or NullEvents())
