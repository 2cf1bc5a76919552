"""The priority gate in front of dispatch: ``async with gate.slot(priority, model): ...``.

Per model at most ``max_concurrent`` requests are dispatched at once (per router replica);
the others wait in a priority queue. Waiters are served by *effective arrival time*
``arrival - priority * aging_s_per_level``: a high-priority request overtakes lower ones
that have waited less than ``aging_s_per_level`` per level between them, and a low one that
has waited longer than that is served before any newcomer, so low tiers are delayed, never
starved. (Aging all waiters at the same rate keeps their relative order fixed, so a heap
on that one number is exact.)

Contracts: a slot is released when the ``async with`` block exits, however it exits; a
waiter cancelled (client gone) leaves the queue and never holds a slot; a waiter granted a
slot while being cancelled hands it on. More than ``max_waiting_per_model`` waiters: 503
``overloaded``. Models without a bound pass straight through.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from serve.router.errors import overloaded
from serve.tenants.config import PriorityConfig


@dataclass(order=True)
class _Waiter:
    key: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


@dataclass
class _ModelQueue:
    max_concurrent: int
    running: int = 0
    heap: list[_Waiter] = field(default_factory=list)
    num_waiting: int = 0  # live waiters in the heap (cancelled ones are removed lazily)


class PriorityGate:
    def __init__(self, config: PriorityConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.queues: dict[str, _ModelQueue] = {}
        self._seq = itertools.count()
        self.num_rejected = 0

    def bound(self, model: str) -> int | None:
        return self.config.per_model.get(model, self.config.max_concurrent_per_model)

    def running(self, model: str) -> int:
        queue = self.queues.get(model)
        return queue.running if queue else 0

    def waiting(self, model: str) -> int:
        queue = self.queues.get(model)
        return queue.num_waiting if queue else 0

    @asynccontextmanager
    async def slot(self, priority: int, model: str) -> AsyncIterator[None]:
        """Hold one of ``model``'s dispatch slots for the duration of the block."""
        bound = self.bound(model)
        if bound is None:
            yield
            return
        queue = self.queues.get(model)
        if queue is None:
            queue = self.queues[model] = _ModelQueue(bound)
        await self._acquire(queue, priority, model)
        try:
            yield
        finally:
            self._release(queue)

    async def _acquire(self, queue: _ModelQueue, priority: int, model: str) -> None:
        if queue.running < queue.max_concurrent and queue.num_waiting == 0:
            queue.running += 1
            return
        if queue.num_waiting >= self.config.max_waiting_per_model:
            self.num_rejected += 1
            raise overloaded(f"Too many requests are waiting for {model}; retry shortly.")
        waiter = _Waiter(
            self.clock() - priority * self.config.aging_s_per_level,
            next(self._seq),
            asyncio.get_running_loop().create_future(),
        )
        heapq.heappush(queue.heap, waiter)
        queue.num_waiting += 1
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Granted the slot as the cancellation arrived: pass it on.
                self._release(queue)
            else:
                waiter.future.cancel()
                queue.num_waiting -= 1
            raise

    def _release(self, queue: _ModelQueue) -> None:
        """Give the slot to the best live waiter, or free it."""
        while queue.heap:
            waiter = heapq.heappop(queue.heap)
            if waiter.future.done():  # cancelled while waiting, already uncounted
                continue
            queue.num_waiting -= 1
            waiter.future.set_result(None)  # the slot moves to it; running is unchanged
            return
        queue.running -= 1
