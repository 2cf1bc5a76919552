"""serve/cache/memory_store.py and serve/cache/redis_store.py: one contract, both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from serve.cache.memory_store import MemoryStore
from serve.cache.redis_store import RedisStore, pack_vector, unpack_vector
from serve.cache.store import UNKNOWN_VERSION, CacheStore, ScopeDelta, VectorRecord

MAX_VECTORS_PER_SCOPE = 8


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CacheStore]:
    """Each backend in turn, through the same interface."""
    if request.param == "memory":
        backend: CacheStore = MemoryStore(max_entries=1000, max_bytes=1 << 20, max_vectors_per_scope=MAX_VECTORS_PER_SCOPE)
    else:
        url = request.getfixturevalue("redis_url")
        backend = RedisStore(url, socket_timeout_s=1.0, max_connections=8, max_vectors_per_scope=MAX_VECTORS_PER_SCOPE)
    yield backend
    await backend.close()


def _vector(scope: str, text: str, values: list[float], ttl_s: float = 60.0) -> VectorRecord:
    v = np.asarray(values, dtype=np.float32)
    return VectorRecord(scope, text, v / np.linalg.norm(v), time.time() + ttl_s)


async def test_get_put_replace(store: CacheStore) -> None:
    assert await store.get("k") is None
    assert await store.put("k", b"one", 60)
    assert await store.get("k") == b"one"
    assert await store.put("k", b"two", 60)
    assert await store.get("k") == b"two"
    assert await store.get("other") is None


async def test_ttl_expires_entries(store: CacheStore) -> None:
    await store.put("short", b"x", 0.2)
    await store.put("long", b"y", 60)
    assert await store.get("short") == b"x"
    await asyncio.sleep(0.35)
    assert await store.get("short") is None
    assert await store.get("long") == b"y"


async def test_scope_changes_follow_additions(store: CacheStore) -> None:
    assert await store.scope_changes("s", None) == ScopeDelta("", True, ())
    assert await store.scope_changes("s", "") is None  # still nothing

    await store.put("e1", b"a", 60, _vector("s", "first", [1, 0, 0]))
    await store.put("e2", b"b", 60, _vector("s", "second", [0, 1, 0]))
    await store.put("e3", b"c", 60, _vector("other", "third", [0, 0, 1]))
    full = await store.scope_changes("s", "")
    assert full is not None and full.reset and full.version not in ("", UNKNOWN_VERSION)
    assert {r.member: r.text for r in full.rows} == {"e1": "first", "e2": "second"}
    row = next(r for r in full.rows if r.member == "e2")
    assert row.vector.dtype == np.float32 and np.allclose(row.vector, [0, 1, 0])
    assert await store.scope_changes("s", full.version) is None

    await store.put("e4", b"d", 60, _vector("s", "fourth", [1, 1, 0]))
    delta = await store.scope_changes("s", full.version)
    assert delta is not None and not delta.reset and [r.member for r in delta.rows] == ["e4"]
    assert await store.scope_changes("s", delta.version) is None

    # Removals reach readers at their next reset, not as changes.
    await store.forget("s", ["e1"])
    assert await store.scope_changes("s", delta.version) is None
    again = await store.scope_changes("s", None)
    assert again is not None and again.reset and sorted(r.member for r in again.rows) == ["e2", "e4"]
    # A version the store never gave (or from another generation) means a reset.
    bogus = await store.scope_changes("s", "nonsense:3")
    assert bogus is not None and bogus.reset


async def test_vectors_expire_with_their_entries(store: CacheStore) -> None:
    await store.put("old", b"a", 0.2, _vector("s", "old", [1, 0], ttl_s=0.2))
    await store.put("new", b"b", 60, _vector("s", "new", [0, 1]))
    await asyncio.sleep(0.35)
    assert await store.get("old") is None
    full = await store.scope_changes("s", None)
    assert full is not None
    assert [r.member for r in full.rows if r.expires_at_s > time.time()] == ["new"]


async def test_vectors_per_scope_are_bounded_and_compaction_resets_readers(store: CacheStore) -> None:
    await store.put("e0", b"v", 60, _vector("s", "t0", [1, 0]))
    first = await store.scope_changes("s", None)
    assert first is not None
    for i in range(1, 2 * MAX_VECTORS_PER_SCOPE + 1):
        await store.put(f"e{i}", b"v", 60 + i, _vector("s", f"t{i}", [1, float(i)], ttl_s=60 + i))
    changes = await store.scope_changes("s", first.version)
    assert changes is not None and changes.reset  # the log was compacted: a new generation
    newest = f"e{2 * MAX_VECTORS_PER_SCOPE}"
    assert len(changes.rows) == MAX_VECTORS_PER_SCOPE and newest in {r.member for r in changes.rows}
    assert "e0" not in {r.member for r in changes.rows}
    assert await store.get("e0") == b"v"  # the entry stays; only its vector went
    settled = await store.scope_changes("s", changes.version)
    if settled is not None:  # Redis hands out an unknown version after compacting: one more load
        assert settled.reset and {r.member for r in settled.rows} == {r.member for r in changes.rows}
        assert await store.scope_changes("s", settled.version) is None


def test_vector_record_round_trip() -> None:
    record = _vector("s", "héllo wörld", [3, 4])
    text, vector, expires = unpack_vector(pack_vector(record))
    assert text == "héllo wörld" and np.allclose(vector, [0.6, 0.8]) and expires == record.expires_at_s
    with pytest.raises(ValueError):
        unpack_vector(b"\x00" * 5)
    with pytest.raises(ValueError):
        unpack_vector(pack_vector(record)[:-1])


async def test_memory_lru_bounded_by_entries() -> None:
    store = MemoryStore(max_entries=3, max_bytes=1 << 20, max_vectors_per_scope=4)
    for k in "abc":
        await store.put(k, b"x", 60)
    assert await store.get("a") == b"x"  # a is now the most recently used
    await store.put("d", b"x", 60)
    assert len(store) == 3
    assert await store.get("b") is None
    assert [await store.get(k) for k in "acd"] == [b"x"] * 3


async def test_memory_lru_bounded_by_bytes() -> None:
    store = MemoryStore(max_entries=100, max_bytes=100, max_vectors_per_scope=4)
    await store.put("a", b"x" * 39, 60)  # 40 bytes with its key
    await store.put("b", b"x" * 39, 60)
    await store.put("c", b"x" * 39, 60)  # 120 > 100: "a" goes
    assert store.num_bytes == 80
    assert await store.get("a") is None and await store.get("c") is not None
    assert not await store.put("huge", b"x" * 200, 60)  # larger than the whole budget
    assert await store.get("huge") is None and store.num_bytes == 80


async def test_memory_eviction_drops_vectors() -> None:
    store = MemoryStore(max_entries=2, max_bytes=1 << 20, max_vectors_per_scope=4)
    await store.put("a", b"x", 60, _vector("s", "a", [1, 0]))
    await store.put("b", b"x", 60, _vector("s", "b", [0, 1]))
    await store.put("c", b"x", 60)  # evicts "a" and its vector
    full = await store.scope_changes("s", None)
    assert full is not None and [r.member for r in full.rows] == ["b"]
    await store.put("d", b"x", 60)  # evicts "b": the scope is empty and goes
    assert await store.scope_changes("s", full.version) == ScopeDelta("", True, ())


async def test_redis_scope_version_survives_expiry(redis_url: str) -> None:
    """A scope that expires and is created again never repeats a version a replica holds."""
    store = RedisStore(redis_url, 1.0, 4, 8)
    try:
        await store.put("e1", b"a", 0.2, _vector("s", "a", [1, 0], ttl_s=0.2))
        first = await store.scope_changes("s", None)
        await asyncio.sleep(0.35)
        await store.put("e2", b"b", 60, _vector("s", "b", [0, 1]))
        assert first is not None
        second = await store.scope_changes("s", first.version)
        assert second is not None and second.reset and [r.member for r in second.rows] == ["e2"]
    finally:
        await store.close()
