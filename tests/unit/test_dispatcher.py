"""serve/router/dispatcher.py and pools.py: retries, leases, wake-ups, snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.dispatch.types import Decision, PoolState, RequestEstimate
from serve.engine.fake import FakeEngine
from serve.engine.protocol import EngineLoad, ErrorBody, RunStats
from serve.router.dispatcher import Dispatcher
from serve.router.engines import LocalEngineClient
from serve.router.errors import FrugalError
from serve.router.pools import PoolMonitor, PoolRuntime, StaticReplicaCounter

PROFILE = ThroughputProfile(points=[ProfilePoint(concurrency=1, output_tokens_per_s=10, ttft_ms=100)])


class FixedOrder:
    """A policy that always answers the same order (dispatch mechanics under test, not policy)."""

    name = "fixed"

    def __init__(self, order: Sequence[str], wake: Sequence[str] = ()) -> None:
        self.order = tuple(order)
        self.wake = tuple(wake)
        self.seen: list[list[PoolState]] = []

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision:
        self.seen.append(list(pools))
        return Decision(pools=self.order, reason="fixed", estimated_cost_usd=0.001, wake=self.wake)


class NoLatency:
    def percentile(self, pool: str, p: float) -> tuple[float, float] | None:
        return None


class CountingClient(LocalEngineClient):
    def __init__(self, pool: str, engine: FakeEngine) -> None:
        super().__init__(pool, engine)
        self.num_load_calls = 0

    async def load(self) -> EngineLoad:
        self.num_load_calls += 1
        return await super().load()


def _chat_request():
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest

    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi there"}]})


def _setup(engines: dict[str, FakeEngine], order: Sequence[str], replicas: dict[str, int] | None = None, wake=()):
    runtimes = [
        PoolRuntime(CountingClient(name, engine), PoolState(name=name, model="m", price_usd_per_hour=1.0, profile=PROFILE))
        for name, engine in engines.items()
    ]
    counts = {name: ((replicas or {}).get(name, 1), 0) for name in engines}
    monitor = PoolMonitor(runtimes, StaticReplicaCounter(counts), NoLatency(), poll_interval_s=60)
    policy = FixedOrder(order, wake)
    return Dispatcher(monitor, policy, {"m": list(engines)}), monitor, policy


ESTIMATE = RequestEstimate(model="m", prompt_tokens=2, max_output_tokens=16)


async def _drain(call) -> list:
    items = [call.first]
    async for item in call.replies:
        items.append(item)
    call.lease.release()
    return items


async def test_a_healthy_pool_serves_and_the_lease_is_released_once() -> None:
    dispatcher, monitor, _ = _setup({"a": FakeEngine(), "b": FakeEngine()}, ["a", "b"])
    decision = dispatcher.decide(ESTIMATE)
    call = await dispatcher.call(ESTIMATE, decision, "chat", _chat_request(), "r1")
    assert call.pool.name == "a" and call.attempts == 1 and call.retried_from is None
    assert monitor.pools["a"].local_in_flight == 1
    items = await _drain(call)
    assert isinstance(items[-1], RunStats) and items[-1].replica_tokens > 0
    call.lease.release()  # idempotent
    assert monitor.pools["a"].local_in_flight == 0


async def test_a_replica_that_dies_before_output_is_retried_on_the_next_pool() -> None:
    engines = {"a": FakeEngine(raise_after_chunks=0), "b": FakeEngine()}
    dispatcher, monitor, _ = _setup(engines, ["a", "b"])
    call = await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), "r1")
    assert call.pool.name == "b" and call.attempts == 2 and call.retried_from == "a"
    await _drain(call)
    assert monitor.pools["a"].local_in_flight == 0 and monitor.pools["b"].local_in_flight == 0
    assert not monitor.states(["a"])[0].healthy  # cooled down after the failure
    assert engines["b"].num_requests == 1


async def test_a_503_before_output_is_retried_but_a_400_is_not() -> None:
    unavailable = ErrorBody(status_code=503, message="overloaded", type="service_unavailable")
    dispatcher, _, _ = _setup({"a": FakeEngine(fail_before=unavailable), "b": FakeEngine()}, ["a", "b"])
    call = await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), "r1")
    assert call.pool.name == "b"

    bad = ErrorBody(status_code=400, message="too long", param="messages")
    dispatcher, monitor, _ = _setup({"a": FakeEngine(fail_before=bad), "b": FakeEngine()}, ["a", "b"])
    call = await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), "r1")
    assert call.pool.name == "a" and call.first == bad  # the client's mistake: no retry
    call.lease.release()


async def test_only_one_retry_then_a_503() -> None:
    engines = {"a": FakeEngine(raise_after_chunks=0), "b": FakeEngine(raise_after_chunks=0), "c": FakeEngine()}
    dispatcher, monitor, _ = _setup(engines, ["a", "b", "c"])
    with pytest.raises(FrugalError) as err:
        await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), "r1")
    assert err.value.body.status_code == 503
    assert engines["c"].num_requests == 0
    assert all(p.local_in_flight == 0 for p in monitor.pools.values())


async def test_a_single_pool_retries_on_itself() -> None:
    engine = FakeEngine(raise_after_chunks=0)
    dispatcher, _, _ = _setup({"a": engine}, ["a"])
    with pytest.raises(FrugalError):
        await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), "r1")
    assert engine.num_requests == 2


async def test_wake_calls_the_cold_pool_once_and_polls_skip_it() -> None:
    dispatcher, monitor, _ = _setup({"a": FakeEngine(), "cold": FakeEngine()}, ["a"], {"a": 1, "cold": 0}, wake=["cold"])
    await monitor.refresh()
    cold = monitor.pools["cold"].client
    assert cold.num_load_calls == 0  # a poll never touches a pool scaled to zero
    dispatcher.decide(ESTIMATE)
    dispatcher.decide(ESTIMATE)
    await asyncio.sleep(0.01)
    assert cold.num_load_calls == 1


async def test_snapshot_combines_local_and_reported_load() -> None:
    dispatcher, monitor, policy = _setup({"a": FakeEngine(delay_s=0.05)}, ["a"], {"a": 2})
    await monitor.refresh()
    calls = [await dispatcher.call(ESTIMATE, dispatcher.decide(ESTIMATE), "chat", _chat_request(), f"r{i}") for i in range(3)]
    state = monitor.states(["a"])[0]
    assert state.replicas == 2 and state.in_flight == 3
    for call in calls:
        await call.replies.aclose()
        call.lease.release()
    assert monitor.states(["a"])[0].in_flight == 0


async def test_a_stale_engine_report_stops_counting() -> None:
    """A load report whose polls have since failed is dropped after ENGINE_REPORT_MAX_AGE_S:
    a pool that was busy when its engine last answered is not taken as busy forever."""
    import time

    from serve.constants import ENGINE_REPORT_MAX_AGE_S

    _, monitor, _ = _setup({"a": FakeEngine()}, ["a"], {"a": 1})
    runtime = monitor.pools["a"]
    runtime.reported_in_flight_per_replica, runtime.reported_at_s = 5.0, time.monotonic()
    assert monitor.states(["a"])[0].in_flight == 5
    runtime.reported_at_s = time.monotonic() - ENGINE_REPORT_MAX_AGE_S - 0.1
    assert monitor.states(["a"])[0].in_flight == 0
