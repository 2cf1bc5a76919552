"""The cost report: a period of the ledger as spend per day by model and pool, cache savings,
tenants' spend against their budgets and the what-if fleets (``serve.costcalc.whatif``).

Money is summed in integer nano-dollars, as the ledger's own aggregates are
(``serve.tenants.units``), so the report's totals equal the ledger's. Budgets are monthly:
a tenant's spend is reported per calendar month (UTC) of the period, on its budget's basis
(billed or GPU cost).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from serve.catalog.models import model_spec
from serve.config.schema import FrugalConfig
from serve.constants import METRICS_NO_LABEL
from serve.cost.pricing import pool_num_devices
from serve.cost.profile import ThroughputProfile
from serve.costcalc.whatif import WhatIf, WhatIfModel
from serve.dispatch.types import LatencyTarget
from serve.tenants.config import TenantsConfig
from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.units import day_of, days_between, period_of, to_nano_usd, to_usd


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: str
    monthly_usd: float | None  # None: unlimited
    basis: str  # "billed" or "cost"


class DaySpend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: str
    model: str
    pool: str  # "-": no pool (cache hits, failures before dispatch)
    requests: int
    cost_usd: float


class DayCache(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: str
    requests: int
    cache_hits: int
    avoided_cost_usd: float
    cost_usd: float


class TenantSpend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenant: str
    month: str
    tier: str | None
    basis: str
    requests: int
    cost_usd: float
    billed_usd: float
    spent_usd: float  # on the basis
    budget_usd: float | None
    used_pct: float | None


class Totals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: int
    ok: int
    failed: int
    cancelled: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    billed_usd: float
    avoided_cost_usd: float


class CostReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: date
    end: date
    totals: Totals
    spend_by_day: list[DaySpend]
    cache_by_day: list[DayCache]
    tenants: list[TenantSpend]
    what_if: WhatIf | None


def tenant_budgets(config: TenantsConfig) -> dict[str, Budget]:
    """Each configured tenant's budget (its override, else its tier's) and the anonymous
    tenant's. Tenants created at run time through the admin API are not in the config: the
    report shows their spend without a budget."""
    out = {}
    for tenant in config.tenants:
        tier = config.tiers[tenant.tier]
        budget = tenant.monthly_budget_usd if tenant.monthly_budget_usd is not None else tier.monthly_budget_usd
        out[tenant.id] = Budget(tier=tenant.tier, monthly_usd=budget, basis=tier.budget_basis)
    anonymous = config.tiers[config.anonymous_tier]
    out.setdefault(config.anonymous_tenant, Budget(
        tier=config.anonymous_tier, monthly_usd=anonymous.monthly_budget_usd, basis=anonymous.budget_basis))
    return out


def what_if_specs(config: FrugalConfig, default_target: LatencyTarget) -> dict[str, WhatIfModel]:
    """For each chat model of the config: its catalogue entry (from its pools' engine model,
    else its name), its latency target (the model's, else its first pool's, else
    ``default_target``) and the measured single-device profiles of its pools by GPU type."""
    specs = {}
    for model in config.models:
        if model.task != "chat":
            continue
        catalogue = next((p.engine.model for p in model.pools if model_spec(p.engine.model) is not None), model.name)
        target_config = model.latency_target or next((p.latency_target for p in model.pools if p.latency_target), None)
        measured = {
            p.accelerator_type: p.profile for p in model.pools
            if isinstance(p.profile, ThroughputProfile) and pool_num_devices(p) == 1
        }
        specs[model.name] = WhatIfModel(
            catalogue_model=catalogue,
            target=target_config.to_target() if target_config else default_target,
            measured=measured,
        )
    return specs


def build_report(
    records: Sequence[LedgerRecord], start: date, end: date, budgets: dict[str, Budget], what_if: WhatIf | None = None
) -> CostReport:
    """Aggregate ``records`` (the period's ledger) into the report's tables."""
    spend: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    cache: dict[str, list[int]] = {d: [0, 0, 0, 0] for d in days_between(start, end)}
    tenants: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    totals = defaultdict(int)
    for r in records:
        day = day_of(r.time_s)
        cost, billed, avoided = to_nano_usd(r.cost_usd), to_nano_usd(r.billed_usd), to_nano_usd(r.avoided_cost_usd)
        row = spend[(day, r.model, r.pool or METRICS_NO_LABEL)]
        row[0] += 1
        row[1] += cost
        c = cache.setdefault(day, [0, 0, 0, 0])
        c[0] += 1
        c[1] += int(r.cache_hit)
        c[2] += avoided
        c[3] += cost
        t = tenants[(r.tenant_id, period_of(r.time_s))]
        t[0] += 1
        t[1] += cost
        t[2] += billed
        counts = {
            "requests": 1, r.status: 1, "cache_hits": int(r.cache_hit), "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens, "cost": cost, "billed": billed, "avoided": avoided,
        }
        for key, value in counts.items():
            totals[key] += value
    tenant_rows = []
    for (tenant, month), (requests, cost, billed) in sorted(tenants.items()):
        budget = budgets.get(tenant)
        basis = budget.basis if budget else "billed"
        spent = to_usd(billed if basis == "billed" else cost)
        limit = budget.monthly_usd if budget else None
        tenant_rows.append(TenantSpend(
            tenant=tenant, month=month, tier=budget.tier if budget else None, basis=basis, requests=requests,
            cost_usd=to_usd(cost), billed_usd=to_usd(billed), spent_usd=spent, budget_usd=limit,
            used_pct=100.0 * spent / limit if limit else None,
        ))
    return CostReport(
        start=start, end=end,
        totals=Totals(
            requests=totals["requests"], ok=totals["ok"], failed=totals["failed"], cancelled=totals["cancelled"],
            cache_hits=totals["cache_hits"], prompt_tokens=totals["prompt_tokens"],
            completion_tokens=totals["completion_tokens"], cost_usd=to_usd(totals["cost"]),
            billed_usd=to_usd(totals["billed"]), avoided_cost_usd=to_usd(totals["avoided"]),
        ),
        spend_by_day=[
            DaySpend(day=d, model=m, pool=p, requests=n, cost_usd=to_usd(c)) for (d, m, p), (n, c) in sorted(spend.items())
        ],
        cache_by_day=[
            DayCache(day=d, requests=n, cache_hits=h, avoided_cost_usd=to_usd(a), cost_usd=to_usd(c))
            for d, (n, h, a, c) in sorted(cache.items())
        ],
        tenants=tenant_rows,
        what_if=what_if,
    )
