"""The embedded default store: an in-process LRU bounded by entries and bytes, with TTLs.

One per router replica (replicas do not share it). A vector lives in its entry's slot, so
evicting or expiring an entry drops its vector in the same step, and the byte budget counts
keys, values, vectors and texts. Each scope keeps an append log of the members added under a
generation; the log is compacted (new generation, readers reset) once it is
``LOG_COMPACTION_FACTOR`` times the scope's vector budget.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from serve.cache.store import ScopeDelta, VectorRecord, VectorRow

LOG_COMPACTION_FACTOR = 2


@dataclass
class _Slot:
    value: bytes
    expires_at_s: float
    num_bytes: int
    vector: VectorRecord | None


@dataclass
class _Scope:
    generation: str
    vectors: dict[str, VectorRecord] = field(default_factory=dict)  # insertion-ordered: oldest first
    log: list[str] = field(default_factory=list)

    @property
    def version(self) -> str:
        return f"{self.generation}:{len(self.log)}"


class MemoryStore:
    """``CacheStore`` in process memory. ``clock`` gives wall-clock seconds (tests inject one)."""

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        max_vectors_per_scope: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_vectors_per_scope = max_vectors_per_scope
        self.clock = clock
        self.num_bytes = 0
        self._slots: OrderedDict[str, _Slot] = OrderedDict()
        self._scopes: dict[str, _Scope] = {}
        # One counter for the store: a scope dropped and created again never repeats a generation.
        self._generations = itertools.count(1)

    def __len__(self) -> int:
        return len(self._slots)

    async def get(self, key: str) -> bytes | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires_at_s <= self.clock():
            self._remove(key)
            return None
        self._slots.move_to_end(key)
        return slot.value

    async def put(self, key: str, value: bytes, ttl_s: float, vector: VectorRecord | None = None) -> bool:
        num_bytes = len(key) + len(value)
        if vector is not None:
            num_bytes += vector.vector.nbytes + len(vector.text.encode())
        if num_bytes > self.max_bytes:
            return False
        if key in self._slots:
            self._remove(key)
        self._slots[key] = _Slot(value, self.clock() + ttl_s, num_bytes, vector)
        self.num_bytes += num_bytes
        if vector is not None:
            self._index(key, vector)
        while len(self._slots) > self.max_entries or self.num_bytes > self.max_bytes:
            self._remove(next(iter(self._slots)))
        return True

    async def scope_changes(self, scope: str, known_version: str | None) -> ScopeDelta | None:
        state = self._scopes.get(scope)
        version = state.version if state is not None else ""
        if version == known_version:
            return None
        if state is None:
            return ScopeDelta("", True, ())
        generation, _, position = (known_version or "").partition(":")
        if generation == state.generation and position.isdigit() and int(position) <= len(state.log):
            added = (m for m in state.log[int(position) :] if m in state.vectors)
            return ScopeDelta(version, False, tuple(_row(m, state.vectors[m]) for m in added))
        return ScopeDelta(version, True, tuple(_row(m, v) for m, v in state.vectors.items()))

    async def forget(self, scope: str, members: list[str]) -> None:
        for member in members:
            slot = self._slots.get(member)
            if slot is not None and slot.vector is not None and slot.vector.scope == scope:
                slot.vector = None
            self._unindex(scope, member)

    async def close(self) -> None:
        self._slots.clear()
        self._scopes.clear()
        self.num_bytes = 0

    def _index(self, key: str, vector: VectorRecord) -> None:
        state = self._scopes.get(vector.scope)
        if state is None:
            state = self._scopes[vector.scope] = _Scope(str(next(self._generations)))
        state.vectors[key] = vector
        state.log.append(key)
        while len(state.vectors) > self.max_vectors_per_scope:  # the oldest vector goes; its entry stays
            oldest = next(iter(state.vectors))
            del state.vectors[oldest]
            self._slots[oldest].vector = None
        if len(state.log) > LOG_COMPACTION_FACTOR * self.max_vectors_per_scope:
            state.generation = str(next(self._generations))
            state.log = list(state.vectors)

    def _unindex(self, scope: str, member: str) -> None:
        state = self._scopes.get(scope)
        if state is not None and state.vectors.pop(member, None) is not None and not state.vectors:
            del self._scopes[scope]

    def _remove(self, key: str) -> None:
        slot = self._slots.pop(key)
        self.num_bytes -= slot.num_bytes
        if slot.vector is not None:
            self._unindex(slot.vector.scope, key)


def _row(member: str, record: VectorRecord) -> VectorRow:
    return VectorRow(member, record.text, record.vector, record.expires_at_s)
