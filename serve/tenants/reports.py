"""Usage reports: a tenant's own usage, the admin's grouped usage, and invoices.

All of them read the ledger's daily aggregates (see ``serve.tenants.usage``); a tenant's
current limits and spend come from the limiter's counters. A tenant sees what it was billed,
never the GPU cost; the admin views add cost, avoided cost and margin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime

from pydantic import BaseModel, ConfigDict

from serve.constants import USAGE_MAX_DAYS
from serve.router.errors import bad_request
from serve.tenants.auth import Authenticator, TenantContext
from serve.tenants.keyadmin import KeyAdmin
from serve.tenants.ledger_store import LedgerStore
from serve.tenants.limits import Limiter
from serve.tenants.units import days_between, period_bounds, period_of, to_usd
from serve.tenants.usage import GroupKey, Invoice, UsageGroup, group, invoice


class LimitsView(BaseModel):
    """A tenant's limits and where it stands in the current period. None: unlimited."""

    model_config = ConfigDict(extra="forbid")

    period: str
    requests_per_minute: int | None
    tokens_per_minute: int | None
    monthly_requests: int | None
    monthly_requests_used: int
    monthly_budget_usd: float | None
    budget_basis: str
    spent_usd: float


class TenantUsage(BaseModel):
    """The body of GET /v1/usage."""

    model_config = ConfigDict(extra="forbid")

    object: str = "usage"
    tenant_id: str
    tier: str
    start: date
    end: date
    totals: UsageGroup
    by_model: list[UsageGroup]
    by_day: list[UsageGroup]
    limits: LimitsView


class UsageReports:
    def __init__(
        self,
        store: LedgerStore,
        limiter: Limiter,
        auth: Authenticator,
        keys: KeyAdmin,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limiter = limiter
        self.auth = auth
        self.keys = keys
        self.clock = clock

    def days(self, start: date | None, end: date | None) -> list[str]:
        """The days of [start, end] (default: this month to today). 400 if reversed or too long."""
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        start = start or today.replace(day=1)
        end = end or today
        if end < start:
            raise bad_request("end must not be before start.", param="end")
        if (end - start).days + 1 > USAGE_MAX_DAYS:
            raise bad_request(f"A usage query spans at most {USAGE_MAX_DAYS} days.", param="start")
        return days_between(start, end)

    async def tenant_usage(self, context: TenantContext, start: date | None, end: date | None) -> TenantUsage:
        days = self.days(start, end)
        rows = await self.store.usage(days, context.tenant_id)
        period = period_of(self.clock())
        spend = await self.limiter.spend(context.tenant_id, period)
        tier = context.tier
        return TenantUsage(
            tenant_id=context.tenant_id,
            tier=context.tier_name,
            start=date.fromisoformat(days[0]),
            end=date.fromisoformat(days[-1]),
            totals=group(rows, (), internal=False)[0],
            by_model=group(rows, ("model",), internal=False),
            by_day=group(rows, ("day",), internal=False),
            limits=LimitsView(
                period=period,
                requests_per_minute=tier.requests_per_minute,
                tokens_per_minute=tier.tokens_per_minute,
                monthly_requests=tier.monthly_requests,
                monthly_requests_used=spend.requests,
                monthly_budget_usd=context.monthly_budget_usd,
                budget_basis=tier.budget_basis,
                spent_usd=to_usd(spend.on_basis(tier.budget_basis)),
            ),
        )

    async def usage(
        self, start: date | None, end: date | None, by: Sequence[GroupKey], tenant_id: str | None = None
    ) -> list[UsageGroup]:
        rows = await self.store.usage(self.days(start, end), tenant_id)
        return group(rows, by, internal=True)

    async def invoices(self, period: str | None = None, tenant_id: str | None = None) -> list[Invoice]:
        """One invoice per tenant with usage in the period or a flat fee (at its current tier)."""
        period = period or period_of(self.clock())
        try:
            first, last = period_bounds(period)
        except ValueError:
            raise bad_request("period must read YYYY-MM.", param="period") from None
        rows = await self.store.usage(days_between(first, last), tenant_id)
        tiers = {t.tenant_id: t.tier for t in await self.keys.list_tenants()}
        tenants = {r.tenant_id for r in rows} | {t for t, tier in tiers.items() if self._flat_fee(tier) > 0}
        out = []
        for tenant in sorted(t for t in tenants if tenant_id is None or t == tenant_id):
            tier = tiers.get(tenant) or self.auth.context(tenant, None, None).tier_name
            out.append(invoice(tenant, period, tier, self._flat_fee(tier), (r for r in rows if r.tenant_id == tenant)))
        return out

    def _flat_fee(self, tier: str) -> float:
        config = self.auth.config.tiers.get(tier)
        return config.flat_monthly_fee_usd if config else 0.0
