"""serve/cache/semantic.py: a replica's copies of scopes, searched and kept in step."""

from __future__ import annotations

import time

import numpy as np

from serve.cache.memory_store import MemoryStore
from serve.cache.semantic import SEMANTIC_MAX_CANDIDATES, SemanticIndex, unit_vector
from serve.cache.store import ScopeDelta, VectorRecord


def _unit(values: list[float]) -> np.ndarray:
    v = unit_vector(values)
    assert v is not None
    return v


def _record(scope: str, values: list[float], ttl_s: float = 60.0) -> VectorRecord:
    return VectorRecord(scope, f"text {values}", _unit(values), time.time() + ttl_s)


def test_unit_vector() -> None:
    assert np.allclose(_unit([3, 4]), [0.6, 0.8])
    for bad in ([], [0, 0], [float("nan"), 1], [[1, 2]], ["a"]):
        assert unit_vector(bad) is None  # type: ignore[arg-type]


async def test_candidates_best_first_above_threshold() -> None:
    store = MemoryStore(100, 1 << 20, 100)
    index = SemanticIndex(store, max_vectors=1000)
    await store.put("a", b"x", 60, _record("s", [1, 0]))
    await store.put("b", b"x", 60, _record("s", [1, 0.2]))
    await store.put("c", b"x", 60, _record("s", [0, 1]))
    await store.put("d", b"x", 0.05, _record("s", [1, 0.01], ttl_s=0.05))
    time.sleep(0.1)  # "d" expires
    found = await index.candidates("s", _unit([1, 0.1]), 0.9)
    assert [c.member for c in found] == ["b", "a"] and found[0].similarity > found[1].similarity >= 0.9
    assert found[0].text == "text [1, 0.2]"
    assert await index.candidates("other", _unit([1, 0]), 0.5) == []
    assert await index.candidates("s", _unit([1, 0, 0]), 0.5) == []  # another dimension
    index.drop("s", "b")
    assert [c.member for c in await index.candidates("s", _unit([1, 0.1]), 0.9)] == ["a"]


async def test_copies_grow_with_new_vectors_only() -> None:
    store = MemoryStore(1000, 1 << 22, 1000)
    index = SemanticIndex(store, max_vectors=1000)
    calls: list[str | None] = []
    original = store.scope_changes

    async def spy(scope: str, known: str | None) -> ScopeDelta | None:
        calls.append(known)
        delta = await original(scope, known)
        assert delta is None or not delta.reset or known is None
        return delta

    store.scope_changes = spy  # type: ignore[method-assign]
    for i in range(40):  # past the initial capacity of 16 rows, twice
        await store.put(f"k{i}", b"x", 60, _record("s", [1, i / 40]))
        found = await index.candidates("s", _unit([1, i / 40]), 0.9999)
        assert found[0].member == f"k{i}"
    # Storing the same key again replaces its row.
    await store.put("k0", b"x", 60, _record("s", [0, 1]))
    assert [c.member for c in await index.candidates("s", _unit([0, 1]), 0.99)] == ["k0"]
    assert index.num_vectors == 41  # 40 rows and the dead one
    assert len(await index.candidates("s", _unit([1, 0.5]), 0.0)) == SEMANTIC_MAX_CANDIDATES


async def test_copies_are_bounded() -> None:
    store = MemoryStore(1000, 1 << 22, 1000)
    index = SemanticIndex(store, max_vectors=5)
    for scope in ("s1", "s2"):
        for i in range(3):
            await store.put(f"{scope}-{i}", b"x", 60, _record(scope, [1, i]))
    await index.candidates("s1", _unit([1, 0]), 0.5)
    await index.candidates("s2", _unit([1, 0]), 0.5)
    assert index.num_vectors == 3  # s1 was evicted to keep 5 rows at most
    for i in range(3, 7):
        await store.put(f"s2-{i}", b"x", 60, _record("s2", [1, i]))
    assert len(await index.candidates("s2", _unit([1, 0]), 0.0)) == SEMANTIC_MAX_CANDIDATES  # searched, not kept
    assert index.num_vectors == 0
