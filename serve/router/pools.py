"""Live pool state as the router sees it: replicas, load, recent latencies, health.

Each pool's ``PoolState`` (serve.dispatch.types) is kept current from three sources:

- the router's own count of requests it has in flight on the pool (exact for this router,
  updated before and after every call, on every exit path);
- the engine's reported load (``EngineClient.load``: running and waiting requests on the
  replica that answered), polled every ``poll_interval_s`` for pools with ready replicas only
  (a call to a pool scaled to zero would start it);
- Ray Serve's replica counts (``ReplicaCounter``), so a pool scaled to zero is seen as cold.

The in-flight figure dispatch sees is the larger of the router's own count and the engine's
report scaled by the replica count: with several routers, the engines' figure includes the
others' traffic. A report older than ``ENGINE_REPORT_MAX_AGE_S`` is dropped (its polls are
failing or timing out, e.g. on a saturated machine): a stale "busy" must not keep dispatch
away from a pool that has since drained.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from serve.constants import (
    ENGINE_REPORT_MAX_AGE_S,
    POOL_FAILURE_COOLDOWN_S,
    POOL_LOAD_TIMEOUT_S,
    REPLICA_COUNT_INTERVAL_S,
)
from serve.dispatch.types import PoolState
from serve.router.engines import EngineClient

logger = logging.getLogger(__name__)


class ReplicaCounter(Protocol):
    """Ready and starting replicas per pool (by pool name)."""

    async def counts(self) -> dict[str, tuple[int, int]]: ...


class StaticReplicaCounter:
    """Fixed counts: unit tests, and single-process use without Ray."""

    def __init__(self, counts: dict[str, tuple[int, int]] | None = None) -> None:
        self._counts = counts or {}

    async def counts(self) -> dict[str, tuple[int, int]]:
        return dict(self._counts)


class PoolRuntime:
    """One pool: its engine client, its static state template and its live figures."""

    def __init__(self, client: EngineClient, template: PoolState, accelerator: str = "CPU") -> None:
        self.client = client
        self.template = template
        self.accelerator = accelerator
        self.replicas = template.replicas or template.min_replicas
        self.starting = template.starting
        self.reported_in_flight_per_replica = 0.0
        self.reported_at_s = float("-inf")  # monotonic time of the last engine report
        self.local_in_flight = 0
        self.failed_until_s = 0.0
        self.waking: asyncio.Task | None = None

    @property
    def name(self) -> str:
        return self.template.name

    def snapshot(self, latency: tuple[float, float] | None) -> PoolState:
        fresh = time.monotonic() - self.reported_at_s <= ENGINE_REPORT_MAX_AGE_S
        reported = round(self.reported_in_flight_per_replica * self.replicas) if fresh else 0
        in_flight = max(self.local_in_flight, reported)
        running = min(in_flight, self.template.profile.max_concurrency * max(self.replicas, 1))
        return dataclasses.replace(
            self.template,
            replicas=self.replicas,
            starting=self.starting,
            running=running,
            waiting=in_flight - running,
            observed_ttft_ms=latency[0] if latency else None,
            observed_tpot_ms=latency[1] if latency else None,
            healthy=time.monotonic() >= self.failed_until_s,
        )


class PoolMetrics(Protocol):
    def pool_state(self, **figures: object) -> None: ...


class LatencySource(Protocol):
    def percentile(self, pool: str, p: float) -> tuple[float, float] | None: ...


class PoolMonitor:
    """Keeps every pool's runtime figures current; hands dispatch consistent snapshots."""

    def __init__(
        self,
        pools: Sequence[PoolRuntime],
        replica_counter: ReplicaCounter,
        latency: LatencySource,
        poll_interval_s: float,
        metrics: PoolMetrics | None = None,
    ) -> None:
        self.pools = {p.name: p for p in pools}
        self.replica_counter = replica_counter
        self.latency = latency
        self.poll_interval_s = poll_interval_s
        self.metrics = metrics
        self._task: asyncio.Task | None = None

    def states(self, names: Sequence[str]) -> list[PoolState]:
        out = []
        for name in names:
            pool = self.pools[name]
            target = pool.template.target
            out.append(pool.snapshot(self.latency.percentile(name, target.percentile if target else 95.0)))
        return out

    def mark_failed(self, name: str) -> None:
        """Keep dispatch away from a pool that just failed a call, for a short cooldown."""
        self.pools[name].failed_until_s = time.monotonic() + POOL_FAILURE_COOLDOWN_S

    def wake(self, name: str) -> None:
        """Ask Ray Serve to start a pool scaled to zero, without sending it a request.

        A call through the pool's handle is queued until a replica exists, and queued calls
        are what Ray Serve's autoscaler scales from zero on. The call is a cheap ``load()``.
        """
        pool = self.pools[name]
        if pool.waking is not None and not pool.waking.done():
            return
        logger.info("waking pool %s (scaled to zero)", name)
        pool.waking = asyncio.get_running_loop().create_task(self._wake(pool))

    async def _wake(self, pool: PoolRuntime) -> None:
        try:
            await pool.client.load()
        except Exception as exc:  # the next wake retries; dispatch keeps spilling meanwhile
            logger.warning("waking pool %s failed: %r", pool.name, exc)

    async def refresh(self, count_replicas: bool = True) -> None:
        """One poll: replica counts (when asked: Ray's controller is slower to ask), then the
        load of every pool with ready replicas."""
        counts: dict[str, tuple[int, int]] = {}
        if count_replicas:
            try:
                counts = await self.replica_counter.counts()
            except Exception as exc:
                logger.warning("reading replica counts failed: %r", exc)
        for name, (ready, starting) in counts.items():
            if name in self.pools:
                self.pools[name].replicas, self.pools[name].starting = ready, starting
        warm = [p for p in self.pools.values() if p.replicas > 0]
        results = await asyncio.gather(*(self._load(p) for p in warm), return_exceptions=True)
        kv_usage: dict[str, float] = {}
        for pool, result in zip(warm, results):
            if isinstance(result, BaseException):
                logger.debug("load of pool %s unavailable: %r", pool.name, result)
                continue
            pool.reported_in_flight_per_replica = float(result.num_running + result.num_waiting)
            pool.reported_at_s = time.monotonic()
            kv_usage[pool.name] = result.kv_cache_usage
        if self.metrics is not None:
            for state in self.states(list(self.pools)):
                self.metrics.pool_state(
                    pool=state.name,
                    model=state.model,
                    accelerator=self.pools[state.name].accelerator,
                    replicas=state.replicas,
                    starting=state.starting,
                    running=state.running,
                    waiting=state.waiting,
                    kv_cache_usage=kv_usage.get(state.name),
                    price_usd_per_hour=state.price_usd_per_hour,
                )

    @staticmethod
    async def _load(pool: PoolRuntime):
        # The engine call is made here, not by the caller: a task cancelled before it starts
        # (the monitor stopping) then leaves no un-awaited coroutine behind.
        return await asyncio.wait_for(pool.client.load(), POOL_LOAD_TIMEOUT_S)

    async def start(self) -> None:
        """Start polling in the background; until the first poll answers, each pool is taken
        to have its configured minimum of replicas."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        polls_per_count = max(1, round(REPLICA_COUNT_INTERVAL_S / self.poll_interval_s))
        num_polls = 0
        while True:
            try:
                await self.refresh(count_replicas=num_polls % polls_per_count == 0)
            except Exception as exc:  # never let the monitor die: dispatch would go blind
                logger.warning("pool monitor poll failed: %r", exc)
            num_polls += 1
            await asyncio.sleep(self.poll_interval_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
