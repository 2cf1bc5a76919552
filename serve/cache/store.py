"""The storage interface of the response cache, shared by the Redis and in-process stores.

A store keeps opaque entry bytes under string keys with a TTL, and, for the semantic cache,
vectors grouped by scope. A vector belongs to an entry (its ``member`` is the entry's key):
the store may drop it whenever the entry goes, and readers must treat a vector whose entry
is missing as absent (and ``forget`` it).

Readers keep a copy of a scope and follow it through ``scope_changes``: with the version
they hold, the store answers None (unchanged), the rows added since (``reset=False``), or
every row (``reset=True``, after a compaction or when the reader's version is unknown). So a
reader pays for new vectors only, not for the whole scope on every change. Removals do not
reach readers until the next reset: they skip expired rows by their expiry and drop rows whose
entry is gone when they meet them.

Stores raise ``StoreUnavailable`` (and nothing else) when the backend cannot answer; the
cache turns that into a bypass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

UNKNOWN_VERSION = "?"  # a version no store ever reports: the next scope_changes resets


class StoreUnavailable(Exception):
    """The backend did not answer (down, slow, or refused); the operation had no effect or an
    unknown one."""


@dataclass(frozen=True)
class VectorRecord:
    """A vector to index with an entry: its ``scope``, the text it embeds, the unit vector
    (float32) and the wall-clock time it expires."""

    scope: str
    text: str
    vector: np.ndarray
    expires_at_s: float


@dataclass(frozen=True)
class VectorRow:
    member: str
    text: str
    vector: np.ndarray
    expires_at_s: float


@dataclass(frozen=True)
class ScopeDelta:
    """What changed in a scope: ``rows`` to append to the reader's copy, or to replace it with
    when ``reset``; ``version`` is the version the reader holds afterwards."""

    version: str
    reset: bool
    rows: tuple[VectorRow, ...]


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The value under ``key``, or None if absent or expired."""

    async def put(self, key: str, value: bytes, ttl_s: float, vector: VectorRecord | None = None) -> bool:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds, replacing any value, and index
        ``vector`` with it. False if the store declined it (e.g. larger than its budget)."""

    async def scope_changes(self, scope: str, known_version: str | None) -> ScopeDelta | None:
        """The changes of ``scope`` since ``known_version`` (None: nothing known, a reset);
        None if there are none. A scope that does not exist has version ``""`` and no rows."""

    async def forget(self, scope: str, members: list[str]) -> None:
        """Remove these vectors from the scope (their entries are gone)."""

    async def close(self) -> None: ...
