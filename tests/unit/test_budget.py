"""Budgets, billing and alerts: serve/tenants/service.py (settle), alerts.py, webhook.py."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web

from serve.router.errors import FrugalError
from serve.tenants.alerts import Alert
from serve.tenants.config import TenantsConfig
from serve.tenants.keys import generate_key
from serve.tenants.service import Tenants, build_tenants
from serve.tenants.units import seconds_to_period_end
from serve.tenants.webhook import WebhookNotifier
from serve.local_ray import free_port

NOW_S = 1_750_000_000.0  # 2025-06-15 15:06 UTC
KEY = generate_key()


class Receiver:
    """An httpx MockTransport webhook receiver that can fail the first attempts."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.attempts = 0
        self.fail_first = fail_first

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return httpx.Response(503)
        self.bodies.append(json.loads(request.content))
        return httpx.Response(204)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def config(**overrides: Any) -> TenantsConfig:
    data: dict[str, Any] = {
        "auth_enabled": True,
        "admin_key_env": None,
        "tiers": {"paid": {"monthly_budget_usd": 0.01, "price_usd_per_1k_tokens": 1.0, "requests_per_minute": None,
                           "tokens_per_minute": None}},
        "tenants": [{"id": "acme", "tier": "paid", "keys": [{"id": KEY.key_id, "sha256": KEY.sha256}]}],
        "alerts": {"webhook_url": "http://alerts.test/hook"},
    }
    data.update(overrides)
    return TenantsConfig.model_validate(data)


@pytest.fixture
async def make_tenants() -> AsyncIterator[Callable[..., Any]]:
    made: list[Tenants] = []

    async def make(cfg: TenantsConfig, receiver: Receiver | None = None) -> Tenants:
        tenants = build_tenants(cfg, clock=lambda: NOW_S, webhook_transport=receiver.transport() if receiver else None)
        if tenants.notifier is not None:
            tenants.notifier.backoff_s = 0.01
        await tenants.start()
        made.append(tenants)
        return tenants

    yield make
    for tenants in made:
        await tenants.close()


async def spend(tenants: Tenants, tokens: int, **settle: Any) -> float:
    ctx = await tenants.authenticate(f"Bearer {KEY.key}")
    ticket = await tenants.admit(ctx, "m", tokens)
    return await tenants.settle(ticket, tokens, 0, settle.pop("cost_usd", 0.0), **settle)


async def test_billing_per_tier_price_and_cache_factor(make_tenants: Callable[..., Any]) -> None:
    tenants = await make_tenants(config(tiers={"paid": {"price_usd_per_1k_tokens": 0.002, "cache_hit_price_factor": 0.5,
                                                        "requests_per_minute": None}}))
    ctx = tenants.auth.context("acme", None, None)
    ticket = await tenants.admit(ctx, "m", 2000)
    assert await tenants.settle(ticket, 1000, 234, 0.0001) == pytest.approx(0.002468, abs=0)
    assert await tenants.settle(ticket, 5, 5, 1.0) == pytest.approx(0.002468, abs=0)  # settled once only
    cached = await tenants.admit(ctx, "m", 2000)
    assert await tenants.settle(cached, 1000, 234, 0.0, cache_hit=True) == pytest.approx(0.001234, abs=0)
    totals = await tenants.limiter.spend("acme", "2025-06")
    assert (totals.requests, totals.billed_nano_usd, totals.cost_nano_usd) == (2, 3_702_000, 100_000)
    # a thousand tiny bills add up exactly (integer nano-dollars, no float drift)
    for _ in range(1000):
        t = await tenants.admit(ctx, "m", 1)
        await tenants.settle(t, 1, 0, 0.0)
    assert (await tenants.limiter.spend("acme", "2025-06")).billed_nano_usd == 3_702_000 + 1000 * 2_000


@pytest.mark.parametrize("store", ["local", "redis"])
async def test_hard_budget_cuts_off_until_raised(make_tenants: Callable[..., Any], store: str,
                                                request: pytest.FixtureRequest) -> None:
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    receiver = Receiver()
    tenants = await make_tenants(config(redis_url=redis_url), receiver)
    # $1 per 1k tokens, budget $0.01 = 10 tokens
    assert await spend(tenants, 4) == pytest.approx(0.004)
    assert await spend(tenants, 4) == pytest.approx(0.004)
    assert await spend(tenants, 4) == pytest.approx(0.004)  # admitted at $0.008: 120% now
    with pytest.raises(FrugalError) as refused:
        await spend(tenants, 1)
    body = refused.value.body
    assert (body.status_code, body.type, body.code) == (429, "insufficient_quota", "insufficient_quota")
    assert "monthly budget" in body.message and "$0.012000" in body.message
    assert int(refused.value.headers["retry-after"]) == math.ceil(seconds_to_period_end(NOW_S))
    # raising the budget at run time lifts the refusal (within the key cache TTL)
    await tenants.keys.put_tenant("acme", "paid", monthly_budget_usd=1.0)
    assert await spend(tenants, 1) == pytest.approx(0.001)
    await tenants.notifier.drain()
    fired = sorted((b["kind"], b["threshold_pct"]) for b in receiver.bodies)
    assert fired == [("budget", 50), ("budget", 80), ("budget", 100)]
    assert receiver.bodies[0]["tenant_id"] == "acme" and receiver.bodies[0]["period"] == "2025-06"


async def test_alerts_fire_once_per_threshold_across_replicas(make_tenants: Callable[..., Any], redis_url: str) -> None:
    receiver = Receiver()
    cfg = config(redis_url=redis_url, tiers={"paid": {"monthly_budget_usd": 1.0, "price_usd_per_1k_tokens": 1.0}})
    replicas = [await make_tenants(cfg, receiver), await make_tenants(cfg, receiver)]

    async def one(i: int) -> bool:
        tenants = replicas[i % 2]
        ctx = await tenants.authenticate(f"Bearer {KEY.key}")
        try:
            ticket = await tenants.admit(ctx, "m", 10)
        except FrugalError as refused:
            assert refused.body.code == "insufficient_quota"
            return False
        await asyncio.sleep(0.01)  # in flight
        await tenants.settle(ticket, 10, 0, 0.0)  # $0.01 each
        return True

    # $1.50 offered concurrently against a $1 budget: reservations stop it at exactly $1
    admitted = sum(await asyncio.gather(*(one(i) for i in range(150))))
    for tenants in replicas:
        await tenants.notifier.drain()
    fired = sorted(b["threshold_pct"] for b in receiver.bodies)
    spent = (await replicas[0].limiter.spend("acme", "2025-06")).billed_nano_usd / 1e9
    print(f"\nbudget $1, 150 concurrent $0.01 requests on 2 replicas: {admitted} admitted, ${spent:.2f} spent; "
          f"webhook bodies for thresholds {fired}")
    assert admitted == 100 and spent == 1.0
    assert fired == [50, 80, 100]
    assert sum(t.alerts.num_fired for t in replicas) == 3


async def test_quota_alerts(make_tenants: Callable[..., Any]) -> None:
    receiver = Receiver()
    cfg = config(tiers={"free": {"monthly_requests": 4, "requests_per_minute": None}},
                 tenants=[{"id": "acme", "tier": "free", "keys": [{"id": KEY.key_id, "sha256": KEY.sha256}]}])
    tenants = await make_tenants(cfg, receiver)
    ctx = await tenants.authenticate(f"Bearer {KEY.key}")
    assert ctx.tier_name == "free"
    for _ in range(4):
        await tenants.settle(await tenants.admit(ctx, "m", 1), 1, 0, 0.0)
    with pytest.raises(FrugalError) as refused:
        await tenants.admit(ctx, "m", 1)
    assert refused.value.body.code == "rate_limit_exceeded" and refused.value.body.param == "monthly_requests"
    await tenants.notifier.drain()
    assert [(b["kind"], b["threshold_pct"], b["used"]) for b in receiver.bodies] == [
        ("quota", 50, 2), ("quota", 80, 4), ("quota", 100, 4)
    ]


async def test_webhook_retries_then_gives_up() -> None:
    flaky = Receiver(fail_first=2)
    notifier = WebhookNotifier("http://x/hook", 1.0, 3, 10, flaky.transport(), backoff_s=0.01)
    await notifier.start()
    alert = Alert(kind="budget", tenant_id="a", period="2025-06", threshold_pct=50, used=1, limit=2, unit="usd",
                  time_s=NOW_S)
    notifier.notify(alert)
    await notifier.drain()
    assert (flaky.attempts, len(flaky.bodies), notifier.num_sent) == (3, 1, 1)
    dead = Receiver(fail_first=100)
    notifier.transport = dead.transport()
    await notifier.close()
    notifier = WebhookNotifier("http://x/hook", 1.0, 3, 1, dead.transport(), backoff_s=0.01)
    await notifier.start()
    notifier.notify(alert)
    notifier.notify(alert)  # the queue holds one: this one is dropped, not blocking
    await notifier.drain()
    assert (dead.attempts, notifier.num_failed) == (3, 1)
    assert notifier.num_dropped in (0, 1)
    await notifier.close()


async def test_alert_reaches_a_real_http_receiver(make_tenants: Callable[..., Any]) -> None:
    port = free_port()
    received: list[dict[str, Any]] = []
    got = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        got.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        cfg = config(alerts={"webhook_url": f"http://127.0.0.1:{port}/hook", "thresholds_pct": [100]})
        tenants = await make_tenants(cfg)
        await spend(tenants, 11)
        await asyncio.wait_for(got.wait(), 5)
        assert received == [received[0]]
        assert received[0]["type"] == "frugal.usage_alert" and received[0]["threshold_pct"] == 100
        assert received[0]["used"] == pytest.approx(0.011) and received[0]["limit"] == 0.01
    finally:
        await runner.cleanup()
