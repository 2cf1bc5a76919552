"""What the cache reports as it works, for metrics: a small sink the router can wire to
Prometheus counters. The default sink does nothing."""

from __future__ import annotations

from collections import Counter
from typing import Literal, Protocol

CacheStatus = Literal["hit", "miss", "bypass"]
MatchKind = Literal["exact", "semantic", "coalesced"]


class CacheEvents(Protocol):
    def on_lookup(self, status: CacheStatus, match: MatchKind | None) -> None:
        """One lookup ended; ``match`` says how a hit was found (None unless a hit)."""

    def on_store(self) -> None:
        """An entry was written."""

    def on_degraded(self, operation: str) -> None:
        """An operation was skipped or failed because a backend (the store: ``get``,
        ``put``, ``vectors``, ``forget``; the embedder: ``embed``) was unavailable, or a stored
        value was unreadable (``decode``)."""


class NullEvents:
    def on_lookup(self, status: CacheStatus, match: MatchKind | None) -> None:
        pass

    def on_store(self) -> None:
        pass

    def on_degraded(self, operation: str) -> None:
        pass


class CountingEvents:
    """Counts events in process: ``lookups[(status, match)]``, ``stores``, ``degraded[op]``."""

    def __init__(self) -> None:
        self.lookups: Counter[tuple[str, str | None]] = Counter()
        self.stores = 0
        self.degraded: Counter[str] = Counter()

    def on_lookup(self, status: CacheStatus, match: MatchKind | None) -> None:
        self.lookups[(status, match)] += 1

    def on_store(self) -> None:
        self.stores += 1

    def on_degraded(self, operation: str) -> None:
        self.degraded[operation] += 1
