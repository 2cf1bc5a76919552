"""Micro-benchmark of cache lookups: latency of ``ResponseCache.lookup`` per outcome.

Measures the cache's own cost on the request path (key hashing, store round trips, decoding,
the similarity search over a scope of ``num_entries`` vectors), one lookup at a time. The
embedder is a table of precomputed vectors, so embedding time (a call to the served model)
is excluded and has to be added from its own measurement.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from serve.cache.config import CacheConfig, SemanticConfig, SemanticModelConfig
from serve.cache.controls import CacheControls
from serve.cache.entry import CachedChoice, CachedUsage, CacheEntry
from serve.cache.service import build_cache

BENCH_MODEL = "bench-model"
BENCH_TTL_S = 120.0  # entries written by a run expire on their own
ANSWER_CHARS = 600  # a typical short chat answer


class LookupLatency(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str
    outcome: str
    num_lookups: int
    num_entries: int
    p50_us: float
    p99_us: float
    mean_us: float


class TableEmbedder:
    """Returns precomputed unit vectors (one per distinct text, stable per text)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.vectors: dict[str, list[float]] = {}

    def vector(self, text: str) -> list[float]:
        if text not in self.vectors:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim)
            self.vectors[text] = (v / np.linalg.norm(v)).tolist()
        return self.vectors[text]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [self.vectors[t] for t in texts]


def _request(question: str) -> dict[str, Any]:
    return {
        "model": BENCH_MODEL,
        "messages": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": question}],
        "temperature": 0,
        "max_tokens": 128,
    }


def _entry() -> CacheEntry:
    return CacheEntry(
        endpoint="chat",
        choices=(CachedChoice(index=0, text="x" * ANSWER_CHARS, finish_reason="stop"),),
        usage=CachedUsage(prompt_tokens=40, completion_tokens=120, total_tokens=160),
        cost_usd=0.0001,
        created_at_s=time.time(),
    )


def _summary(backend: str, outcome: str, samples_ns: list[int], num_entries: int) -> LookupLatency:
    us = np.array(samples_ns, dtype=np.float64) / 1000
    return LookupLatency(
        backend=backend,
        outcome=outcome,
        num_lookups=len(samples_ns),
        num_entries=num_entries,
        p50_us=round(float(np.percentile(us, 50)), 1),
        p99_us=round(float(np.percentile(us, 99)), 1),
        mean_us=round(float(us.mean()), 1),
    )


async def measure_lookup_latency(
    config: CacheConfig, num_entries: int = 1000, num_lookups: int = 2000, dim: int = 384
) -> list[LookupLatency]:
    """Fill a cache built from ``config`` (its backend and timeouts; semantic caching is
    switched on for a bench model, under a separate key prefix) with ``num_entries`` answers
    in one semantic scope, then time ``num_lookups`` lookups of each outcome: an exact hit,
    an exact miss (exact-only request), a semantic hit and a semantic miss."""
    embedder = TableEmbedder(dim)
    bench_config = config.model_copy(
        update={
            "enabled": True,
            "ttl_s": BENCH_TTL_S,
            "key_prefix": f"{config.key_prefix}:bench:{time.time_ns()}",
            "semantic": SemanticConfig(
                max_vectors_per_scope=max(num_entries, 1), models={BENCH_MODEL: SemanticModelConfig(threshold=0.99)}
            ),
        }
    )
    backend = "redis" if config.redis_url else "memory"
    cache = build_cache(bench_config, embedder)
    controls = CacheControls()
    questions = [f"benchmark question number {i} about topic {i % 97}" for i in range(num_entries)]
    entry = _entry()
    try:
        fill = CacheControls(**{"no-cache": True})  # store without looking up first
        for q in questions:
            embedder.vector(q)
            await cache.store(await cache.lookup("chat", _request(q), "bench", fill), entry)
        cases: dict[str, list[dict[str, Any]]] = {
            # the same question: an exact hit
            "exact hit": [_request(questions[i % num_entries]) for i in range(num_lookups)],
            # a model without semantic caching, an unseen question: one GET
            "exact miss": [{**_request(f"unseen {i}"), "model": "other"} for i in range(num_lookups)],
            # same words, another key ("?" appended), same vector: search + GET
            "semantic hit": [_request(questions[i % num_entries] + "?") for i in range(num_lookups)],
            # an unseen question: GET, then a search that finds nothing
            "semantic miss": [_request(f"unseen question {i}") for i in range(num_lookups)],
        }
        for data in cases["semantic hit"]:
            text = data["messages"][-1]["content"]
            embedder.vectors[text] = embedder.vector(text[:-1])
        for data in cases["semantic miss"]:
            embedder.vector(data["messages"][-1]["content"])
        results = []
        for outcome, requests in cases.items():
            samples = []
            expected = outcome.split()[1]
            for data in requests:
                started = time.perf_counter_ns()
                found = await cache.lookup("chat", data, "bench", controls)
                samples.append(time.perf_counter_ns() - started)
                if found.status != expected:
                    raise RuntimeError(f"{outcome}: the lookup was a {found.status}")
            results.append(_summary(backend, outcome, samples, num_entries))
        return results
    finally:
        await cache.close()


def format_latency_table(rows: list[LookupLatency]) -> str:
    lines = ["| backend | outcome | entries | lookups | p50 (µs) | p99 (µs) | mean (µs) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.backend} | {r.outcome} | {r.num_entries} | {r.num_lookups} | {r.p50_us} | {r.p99_us} | {r.mean_us} |")
    return "\n".join(lines)
