"""serve/tenants/priority.py: the priority gate in front of dispatch."""

from __future__ import annotations

import asyncio

import pytest

from serve.router.errors import FrugalError
from serve.tenants.config import PRIORITY_LEVELS, PriorityConfig
from serve.tenants.priority import PriorityGate

HIGH, MEDIUM, LOW = PRIORITY_LEVELS["high"], PRIORITY_LEVELS["medium"], PRIORITY_LEVELS["low"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_higher_priority_dispatched_first() -> None:
    clock = Clock()
    gate = PriorityGate(PriorityConfig(max_concurrent_per_model=1, aging_s_per_level=10), clock)
    order: list[str] = []
    release = asyncio.Event()

    async def request(name: str, priority: int) -> None:
        async with gate.slot(priority, "m"):
            order.append(name)
            if name == "first":
                await release.wait()

    first = asyncio.create_task(request("first", LOW))
    await settle()
    tasks = []
    arrivals = [("low-1", LOW), ("medium-1", MEDIUM), ("low-2", LOW), ("high-1", HIGH), ("medium-2", MEDIUM)]
    for name, priority in arrivals:
        clock.now += 1
        tasks.append(asyncio.create_task(request(name, priority)))
        await settle()
    assert gate.waiting("m") == 5 and gate.running("m") == 1
    release.set()
    await asyncio.gather(first, *tasks)
    assert order == ["first", "high-1", "medium-1", "medium-2", "low-1", "low-2"]
    assert gate.running("m") == 0 and gate.waiting("m") == 0


async def test_aging_prevents_starvation() -> None:
    """A low request that waited longer than 2 levels x aging goes before newly arriving highs."""
    clock = Clock()
    gate = PriorityGate(PriorityConfig(max_concurrent_per_model=1, aging_s_per_level=5), clock)
    order: list[str] = []
    holder_release = asyncio.Event()

    async def request(name: str, priority: int, hold: asyncio.Event | None = None) -> None:
        async with gate.slot(priority, "m"):
            order.append(name)
            if hold is not None:
                await hold.wait()

    holder = asyncio.create_task(request("holder", HIGH, holder_release))
    await settle()
    low = asyncio.create_task(request("low", LOW))
    await settle()
    highs = []
    # a stream of high-priority arrivals, one per second, for 15 s
    for i in range(15):
        clock.now += 1
        highs.append(asyncio.create_task(request(f"high-{i}", HIGH)))
        await settle()
    holder_release.set()
    await asyncio.gather(holder, low, *highs)
    # low arrived at t=0 (effective 0); high-i at t=i+1 (effective i+1-10): the highs that
    # arrived less than 10 s after it go first (high-0..8), all later ones after it
    assert order.index("low") == 1 + 9
    assert order[1:10] == [f"high-{i}" for i in range(9)]
    assert order[11:] == [f"high-{i}" for i in range(9, 15)]


async def test_cancelled_waiter_leaves_no_trace() -> None:
    gate = PriorityGate(PriorityConfig(max_concurrent_per_model=1), Clock())
    hold = asyncio.Event()
    entered: list[str] = []

    async def request(name: str) -> None:
        async with gate.slot(LOW, "m"):
            entered.append(name)
            if name == "holder":
                await hold.wait()

    holder = asyncio.create_task(request("holder"))
    await settle()
    gone = asyncio.create_task(request("gone"))
    stays = asyncio.create_task(request("stays"))
    await settle()
    assert gate.waiting("m") == 2
    gone.cancel()
    await settle()
    assert gate.waiting("m") == 1
    hold.set()
    await asyncio.gather(holder, stays)
    assert gone.cancelled()
    assert entered == ["holder", "stays"]
    assert gate.running("m") == 0 and gate.waiting("m") == 0


async def test_slot_granted_during_cancellation_is_passed_on() -> None:
    gate = PriorityGate(PriorityConfig(max_concurrent_per_model=1), Clock())
    entered: list[str] = []
    hold = asyncio.Event()

    async def request(name: str) -> None:
        async with gate.slot(LOW, "m"):
            entered.append(name)
            if name == "holder":
                await hold.wait()

    holder = asyncio.create_task(request("holder"))
    await settle()
    unlucky = asyncio.create_task(request("unlucky"))
    after = asyncio.create_task(request("after"))
    await settle()
    hold.set()
    while gate.waiting("m") != 1:  # holder exits and hands its slot to "unlucky" ...
        await asyncio.sleep(0)
    assert "unlucky" not in entered
    unlucky.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(holder, after, unlucky, return_exceptions=True)
    assert unlucky.cancelled()
    assert entered == ["holder", "after"]
    assert gate.running("m") == 0 and gate.waiting("m") == 0


async def test_bound_holds_under_errors_and_load() -> None:
    gate = PriorityGate(PriorityConfig(max_concurrent_per_model=3), Clock())
    running = peak = 0

    async def request(i: int) -> None:
        nonlocal running, peak
        async with gate.slot(i % 3, "m"):
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.001)
            running -= 1
            if i % 7 == 0:
                raise ValueError("engine failed")

    results = await asyncio.gather(*(request(i) for i in range(100)), return_exceptions=True)
    assert peak == 3
    assert sum(isinstance(r, ValueError) for r in results) == 15
    assert gate.running("m") == 0 and gate.waiting("m") == 0


async def test_unbounded_model_passes_through_and_full_queue_is_503() -> None:
    gate = PriorityGate(PriorityConfig(per_model={"small": 1}, max_waiting_per_model=2), Clock())
    async with gate.slot(LOW, "other"):  # no bound: no bookkeeping
        assert gate.running("other") == 0
    hold = asyncio.Event()

    async def request() -> None:
        async with gate.slot(LOW, "small"):
            await hold.wait()

    tasks = [asyncio.create_task(request()) for _ in range(3)]
    await settle()
    with pytest.raises(FrugalError) as refused:
        async with gate.slot(HIGH, "small"):
            pass
    assert refused.value.body.status_code == 503 and refused.value.body.code == "overloaded"
    hold.set()
    await asyncio.gather(*tasks)
    assert gate.num_rejected == 1
