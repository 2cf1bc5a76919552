"""serve/tenants/limits.py + limits_redis.py: the sliding window log, quotas and budgets.

Every behaviour runs against both implementations (in-process and Redis, with an injected
clock); the concurrency tests run two RedisLimiter instances with their own connection pools,
as two router replicas would.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from serve.tenants.limits import LimitSpec, LocalLimiter
from serve.tenants.limits_redis import RedisLimiter
from serve.tenants.redis_client import build_redis

PERIOD = "2025-06"


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "redis"])
async def make_limiter(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[Clock], object]]:
    clients: list[Redis] = []

    def make(clock: Clock) -> object:
        if request.param == "local":
            return LocalLimiter(None, clock)
        redis = build_redis(request.getfixturevalue("redis_url"))
        clients.append(redis)
        return RedisLimiter(redis, "t", clock)

    yield make
    for client in clients:
        await client.aclose()


def rid() -> str:
    return uuid.uuid4().hex


async def test_rpm_window_slides(make_limiter: Callable[[Clock], object]) -> None:
    clock = Clock()
    limiter = make_limiter(clock)
    spec = LimitSpec(requests_per_minute=3)
    results = []
    for _ in range(3):
        results.append(await limiter.admit("a", rid(), 1, spec, PERIOD))
        clock.now += 10
    assert [r.verdict for r in results] == ["admitted"] * 3
    assert [r.requests.remaining for r in results] == [2, 1, 0]
    refused = await limiter.admit("a", rid(), 1, spec, PERIOD)
    assert refused.verdict == "requests"
    # the first admission (at t=0) leaves the window at t=60; now is t=30
    assert refused.retry_after_s == pytest.approx(30.0)
    assert refused.requests.reset_s == pytest.approx(50.0)  # the newest (t=20) leaves at t=80
    clock.now += 30  # t=60: the first entry has expired, exactly at its 60 s
    assert (await limiter.admit("a", rid(), 1, spec, PERIOD)).verdict == "admitted"
    assert (await limiter.admit("a", rid(), 1, spec, PERIOD)).verdict == "requests"
    # another tenant has its own window
    assert (await limiter.admit("b", rid(), 1, spec, PERIOD)).verdict == "admitted"


async def test_no_minute_ever_holds_more_than_the_limit(make_limiter: Callable[[Clock], object]) -> None:
    """Offered at a steady 5/s for 3 minutes with RPM 50, any 60 s span holds <= 50 admissions
    (a fixed window would allow 100 across a boundary)."""
    clock = Clock()
    limiter = make_limiter(clock)
    spec = LimitSpec(requests_per_minute=50)
    admitted: list[float] = []
    for i in range(900):
        clock.now = 1_750_000_000.0 + i * 0.2
        if (await limiter.admit("a", rid(), 1, spec, PERIOD)).admitted:
            admitted.append(clock.now)
    worst = max(sum(1 for t in admitted if start <= t < start + 60) for start in admitted)
    assert worst == 50
    assert len(admitted) == 150  # 50 per minute, exactly


async def test_tokens_reserved_then_settled(make_limiter: Callable[[Clock], object]) -> None:
    clock = Clock()
    limiter = make_limiter(clock)
    spec = LimitSpec(tokens_per_minute=1000)
    first, second = rid(), rid()
    assert (await limiter.admit("a", first, 600, spec, PERIOD)).tokens.remaining == 400
    refused = await limiter.admit("a", second, 500, spec, PERIOD)
    assert refused.verdict == "tokens"
    assert refused.retry_after_s == pytest.approx(60.0)
    # the first request used 100 of its 600: the rest returns at once
    await limiter.settle("a", first, 100, PERIOD, 0, 0)
    admitted = await limiter.admit("a", second, 500, spec, PERIOD)
    assert admitted.verdict == "admitted"
    assert admitted.tokens.remaining == 400
    # usage above the reservation counts in full
    await limiter.settle("a", second, 850, PERIOD, 0, 0)
    assert (await limiter.admit("a", rid(), 60, spec, PERIOD)).verdict == "tokens"
    clock.now += 60
    assert (await limiter.admit("a", rid(), 1000, spec, PERIOD)).verdict == "admitted"


async def test_request_larger_than_tpm_is_refused_without_retry(make_limiter: Callable[[Clock], object]) -> None:
    limiter = make_limiter(Clock())
    result = await limiter.admit("a", rid(), 1001, LimitSpec(tokens_per_minute=1000), PERIOD)
    assert result.verdict == "too_large"
    assert result.retry_after_s is None


async def test_monthly_quota_counts_admissions_only(make_limiter: Callable[[Clock], object]) -> None:
    clock = Clock()
    limiter = make_limiter(clock)
    spec = LimitSpec(requests_per_minute=2, monthly_requests=3)
    verdicts = []
    for _ in range(3):
        verdicts.append((await limiter.admit("a", rid(), 1, spec, PERIOD)).verdict)
    clock.now += 61
    for _ in range(2):
        verdicts.append((await limiter.admit("a", rid(), 1, spec, PERIOD)).verdict)
    assert verdicts == ["admitted", "admitted", "requests", "admitted", "quota"]
    assert (await limiter.spend("a", PERIOD)).requests == 3
    # a new period starts from zero
    assert (await limiter.admit("a", rid(), 1, spec, "2025-07")).verdict == "admitted"


async def test_budget_refuses_once_spent(make_limiter: Callable[[Clock], object]) -> None:
    limiter = make_limiter(Clock())
    spec = LimitSpec(budget_nano_usd=1_000, budget_basis="billed")
    first = rid()
    assert (await limiter.admit("a", first, 10, spec, PERIOD)).admitted
    spend = await limiter.settle("a", first, 10, PERIOD, billed_nano_usd=999, cost_nano_usd=5_000)
    assert (spend.requests, spend.billed_nano_usd, spend.cost_nano_usd) == (1, 999, 5_000)
    second = rid()
    assert (await limiter.admit("a", second, 10, spec, PERIOD)).admitted  # 999 < 1000
    await limiter.settle("a", second, 10, PERIOD, 1, 0)
    refused = await limiter.admit("a", rid(), 10, spec, PERIOD)
    assert refused.verdict == "budget"
    assert refused.spent_nano_usd == 1_000
    # on the cost basis the same tenant is far over
    cost_spec = LimitSpec(budget_nano_usd=5_000, budget_basis="cost")
    assert (await limiter.admit("a", rid(), 10, cost_spec, PERIOD)).verdict == "budget"


async def test_unlimited_spec_still_counts_the_month(make_limiter: Callable[[Clock], object]) -> None:
    limiter = make_limiter(Clock())
    for _ in range(5):
        result = await limiter.admit("vip", rid(), 10**6, LimitSpec(), PERIOD)
        assert result.admitted and result.requests is None and result.tokens is None
    assert (await limiter.spend("vip", PERIOD)).requests == 5


async def test_local_counters_survive_restart(tmp_path) -> None:
    clock = Clock()
    limiter = LocalLimiter(tmp_path, clock)
    await limiter.start()
    r = rid()
    await limiter.admit("a", r, 5, LimitSpec(), PERIOD)
    await limiter.settle("a", r, 5, PERIOD, 123, 45)
    await limiter.close()
    again = LocalLimiter(tmp_path, clock)
    await again.start()
    spend = await again.spend("a", PERIOD)
    await again.close()
    assert (spend.requests, spend.billed_nano_usd, spend.cost_nano_usd) == (1, 123, 45)


async def _offer(
    limiters: list[RedisLimiter], spec: LimitSpec, num_requests: int, rate_per_s: float
) -> tuple[int, float]:
    """Offer ``num_requests`` admissions spread over the limiters, paced at ``rate_per_s``;
    (admitted, the rate at which they were actually sent)."""
    sent_at: list[float] = []

    async def one(i: int) -> bool:
        await asyncio.sleep(i / rate_per_s)
        sent_at.append(time.perf_counter())
        result = await limiters[i % len(limiters)].admit("hot", rid(), 10, spec, PERIOD)
        return result.admitted

    results = await asyncio.gather(*(one(i) for i in range(num_requests)))
    return sum(results), (num_requests - 1) / (max(sent_at) - min(sent_at))


async def test_two_replicas_never_admit_more_than_the_limit(redis_url: str) -> None:
    """Two limiters (two connection pools, as two router replicas) against one Redis."""
    clients = [build_redis(redis_url), build_redis(redis_url)]
    limiters = [RedisLimiter(c, "t") for c in clients]
    try:
        spec = LimitSpec(requests_per_minute=150, tokens_per_minute=10**6)
        admitted, rate = await _offer(limiters, spec, num_requests=600, rate_per_s=400)
        print(f"\nRPM 150, 2 limiters, 600 requests offered at {rate:.0f}/s: {admitted} admitted")
        assert admitted == 150
        assert rate >= 200

        # tokens: 40 requests of 10 tokens fit a TPM of 400, whatever the interleaving
        spec = LimitSpec(tokens_per_minute=400)
        await clients[0].flushdb()
        admitted, rate = await _offer(limiters, spec, num_requests=300, rate_per_s=400)
        print(f"TPM 400 (10 tokens each), 300 requests offered at {rate:.0f}/s: {admitted} admitted")
        assert admitted == 40

        # monthly quota, burst with no spacing at all
        spec = LimitSpec(monthly_requests=77)
        await clients[0].flushdb()
        results = await asyncio.gather(
            *(limiters[i % 2].admit("hot", rid(), 1, spec, PERIOD) for i in range(400))
        )
        print(f"monthly quota 77, 400 simultaneous requests: {sum(r.admitted for r in results)} admitted")
        assert sum(r.admitted for r in results) == 77
    finally:
        for client in clients:
            await client.aclose()


async def test_facade_when_redis_is_down(redis_server, redis_url: str) -> None:  # type: ignore[no-untyped-def]
    """Fail closed by default (503), or admit unmetered with fail_open; both counted."""
    from serve.router.errors import FrugalError
    from serve.tenants.config import TenantsConfig
    from serve.tenants.service import build_tenants

    results = {}
    for fail_open in (False, True):
        tenants = build_tenants(TenantsConfig(redis_url=redis_url, fail_open=fail_open))
        await tenants.start()
        ctx = tenants.auth.context("acme", None, None)
        redis_server.stop()
        try:
            try:
                ticket = await tenants.admit(ctx, "m", 10)
                results[fail_open] = ("admitted", ticket.metered, ticket.headers)
                assert await tenants.settle(ticket, 5, 5, 0.0) == 0.0  # spend not counted, not raised
            except FrugalError as err:
                results[fail_open] = (err.body.status_code, err.body.code, err.headers)
            assert tenants.counters()["admit_unmetered"] == 1
        finally:
            redis_server.start()
            await tenants.close()
    assert results[False] == (503, "store_unavailable", {"Retry-After": "1"})
    assert results[True] == ("admitted", False, {})
