"""Request coalescing (single flight) within one router replica.

When identical cacheable requests miss at the same time (a burst of the same question, a
retry storm), only the first, the *leader*, goes to an engine. The others, *followers*, wait
for it and are then answered from the entry it stored. A follower waits at most a bounded
time, and it goes to an engine itself if the leader stored nothing (it failed, was
cancelled, or its answer was not cacheable). The leader's slot is released exactly once:
after its store, or when it ends without one.

Only in-process: identical requests on different router replicas each lead on their own
replica (Redis could host a cross-replica lock; not built).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Flight:
    """One request in flight for a key; ``done`` is set when it stored or gave up."""

    key: str
    started_s: float  # time.monotonic()
    owner: asyncio.Task | None  # the task that leads it: it never waits for itself
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Flights:
    """The keys in flight on this replica (one event loop). A flight older than
    ``stale_after_s`` no longer holds its key: a leader that never landed (its response
    never started, say) delays its followers by that much at most, once."""

    def __init__(self, stale_after_s: float, clock=time.monotonic) -> None:
        self.stale_after_s = stale_after_s
        self.clock = clock
        self._flights: dict[str, Flight] = {}

    def lead(self, key: str) -> Flight | None:
        """Become the leader of ``key`` (a new ``Flight``), or None if another task leads it."""
        if self.in_flight(key):
            return None
        flight = self._flights[key] = Flight(key, self.clock(), asyncio.current_task())
        return flight

    def in_flight(self, key: str) -> bool:
        """Whether another task leads ``key`` (and its flight is not stale)."""
        current = self._flights.get(key)
        return (
            current is not None
            and current.owner is not asyncio.current_task()
            and self.clock() - current.started_s < self.stale_after_s
        )

    async def wait(self, key: str, timeout_s: float) -> bool:
        """Wait until the leader of ``key`` (if any) is done; False if ``timeout_s`` passed."""
        flight = self._flights.get(key)
        if flight is None:
            return True
        try:
            await asyncio.wait_for(flight.done.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def land(self, flight: Flight | None) -> None:
        """The leader is done (stored, failed or cancelled): wake its followers. Idempotent."""
        if flight is None or flight.done.is_set():
            return
        flight.done.set()
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]

    def __len__(self) -> int:
        return len(self._flights)
