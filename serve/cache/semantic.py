"""Similarity search over a scope's vectors, with per-replica copies kept in step with the store.

A scope holds the vectors of the entries that share everything but the last user turn
(tenant, model, system prompt and earlier turns, sampling parameters). Each router replica
keeps a numpy copy of the scopes it recently searched and asks the store for the scope's
changes before every search (``CacheStore.scope_changes``): one round trip when nothing
changed, the new vectors only when another replica (or this one) added some, everything after
a compaction. Expired vectors are skipped by their own expiry time, vectors whose entry is
gone are dropped when met. The copies are bounded by ``max_vectors`` rows over all scopes
(least recently used scopes go first); a scope larger than that is searched without being
kept.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from serve.cache.store import CacheStore, ScopeDelta, VectorRow

SEMANTIC_MAX_CANDIDATES = 4  # candidates above the threshold tried in order (guard, entry present)


class Embedder(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order, all of one dimension. The router's embedder calls the
        served embedding model; failures and slowness are the cache's to absorb."""


@dataclass(frozen=True)
class SemanticCandidate:
    member: str
    text: str
    similarity: float


def unit_vector(values: Sequence[float]) -> np.ndarray | None:
    """``values`` as a float32 unit vector, or None if empty, non-finite or zero."""
    try:
        vector = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if vector.ndim != 1 or vector.size == 0 or not np.all(np.isfinite(vector)):
        return None
    norm = float(np.linalg.norm(vector))
    if norm == 0 or not math.isfinite(norm):
        return None
    return vector / norm


class _ScopeCopy:
    """A replica's copy of one scope: rows in arrays grown by doubling, dead rows masked."""

    def __init__(self) -> None:
        self.version: str | None = None
        self._clear()

    def _clear(self) -> None:
        self.members: list[str] = []
        self.texts: list[str] = []
        self.row_of: dict[str, int] = {}
        self.matrix = np.zeros((0, 0), np.float32)
        self.expires_at_s = np.zeros(0)
        self.alive = np.zeros(0, bool)

    @property
    def num_rows(self) -> int:
        return len(self.members)

    def apply(self, delta: ScopeDelta) -> None:
        if delta.reset:
            self._clear()
        for row in delta.rows:
            self._append(row)
        self.version = delta.version

    def drop(self, member: str) -> None:
        row = self.row_of.pop(member, None)
        if row is not None:
            self.alive[row] = False

    def _append(self, row: VectorRow) -> None:
        if self.num_rows and row.vector.shape[0] != self.matrix.shape[1]:
            return  # another embedding dimension: unusable here
        self.drop(row.member)  # a re-stored entry: its new row replaces the old one
        n = self.num_rows
        if n == self.matrix.shape[0]:
            capacity = max(16, 2 * n)
            matrix = np.zeros((capacity, row.vector.shape[0]), np.float32)
            if n:
                matrix[:n] = self.matrix[:n]
            self.matrix = matrix
            self.expires_at_s = np.resize(self.expires_at_s, capacity)
            self.alive = np.resize(self.alive, capacity)
        self.matrix[n] = row.vector
        self.expires_at_s[n] = row.expires_at_s
        self.alive[n] = True
        self.members.append(row.member)
        self.texts.append(row.text)
        self.row_of[row.member] = n


class SemanticIndex:
    """Per-replica copies of scopes; ``candidates`` may raise ``StoreUnavailable``."""

    def __init__(self, store: CacheStore, max_vectors: int, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.max_vectors = max_vectors
        self.clock = clock
        self._scopes: OrderedDict[str, _ScopeCopy] = OrderedDict()

    @property
    def num_vectors(self) -> int:
        return sum(c.num_rows for c in self._scopes.values())

    async def candidates(self, scope: str, vector: np.ndarray, threshold: float) -> list[SemanticCandidate]:
        """Live vectors of ``scope`` with cosine similarity to ``vector`` (a unit vector) of at
        least ``threshold``, best first, at most ``SEMANTIC_MAX_CANDIDATES``."""
        copy = await self._refresh(scope)
        n = copy.num_rows
        if n == 0 or copy.matrix.shape[1] != vector.shape[0]:
            return []
        similarities = copy.matrix[:n] @ vector
        live = copy.alive[:n] & (copy.expires_at_s[:n] > self.clock())
        eligible = np.nonzero(live & (similarities >= threshold))[0]
        best = eligible[np.argsort(-similarities[eligible], kind="stable")][:SEMANTIC_MAX_CANDIDATES]
        return [SemanticCandidate(copy.members[i], copy.texts[i], float(similarities[i])) for i in best]

    def drop(self, scope: str, member: str) -> None:
        """Stop offering ``member`` from this replica's copy (its entry is gone)."""
        copy = self._scopes.get(scope)
        if copy is not None:
            copy.drop(member)

    async def _refresh(self, scope: str) -> _ScopeCopy:
        copy = self._scopes.pop(scope, None) or _ScopeCopy()
        delta = await self.store.scope_changes(scope, copy.version)
        if delta is not None:
            copy.apply(delta)
        if copy.num_rows <= self.max_vectors:
            self._scopes[scope] = copy  # most recently used last
            total = self.num_vectors
            while total > self.max_vectors:
                _, evicted = self._scopes.popitem(last=False)
                total -= evicted.num_rows
        return copy
