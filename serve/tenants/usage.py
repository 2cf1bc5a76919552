"""Usage figures from the ledger: the per-day aggregates, grouping, CSV and invoices.

Every ledger store keeps, per (day, tenant, model), integer sums of the ``METRICS`` below,
incremented in the same atomic step that appends the record, so the aggregates always equal
the sum of the recorded requests. Money is summed in nano-dollars and becomes USD here, at the
edge.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from serve.tenants.units import to_nano_usd, to_usd

if TYPE_CHECKING:
    from serve.tenants.ledger import LedgerRecord

METRICS: tuple[str, ...] = (
    "requests",
    "ok",
    "failed",
    "cancelled",
    "cache_hits",
    "prompt_tokens",
    "completion_tokens",
    "latency_ms",
    "cost_nano_usd",
    "avoided_nano_usd",
    "billed_nano_usd",
)
GroupKey = Literal["tenant", "model", "day"]
GROUP_KEYS: tuple[GroupKey, ...] = ("tenant", "model", "day")


def increments(record: LedgerRecord) -> dict[str, int]:
    """What one record adds to its (day, tenant, model) aggregate."""
    return {
        "requests": 1,
        "ok": int(record.status == "ok"),
        "failed": int(record.status == "failed"),
        "cancelled": int(record.status == "cancelled"),
        "cache_hits": int(record.cache_hit),
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "latency_ms": round(record.latency_ms),
        "cost_nano_usd": to_nano_usd(record.cost_usd),
        "avoided_nano_usd": to_nano_usd(record.avoided_cost_usd),
        "billed_nano_usd": to_nano_usd(record.billed_usd),
    }


@dataclass
class UsageRow:
    """The sums of one (day, tenant, model)."""

    day: str
    tenant_id: str
    model: str
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRICS, 0))

    def add(self, values: dict[str, int]) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0) + value


class UsageGroup(BaseModel):
    """One row of a usage report (wire format; money in USD)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str | None = None
    model: str | None = None
    day: str | None = None
    requests: int
    ok: int
    failed: int
    cancelled: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    mean_latency_ms: float
    billed_usd: float
    cost_usd: float | None = None  # admin views only
    avoided_cost_usd: float | None = None
    margin_usd: float | None = None


def group(rows: Iterable[UsageRow], by: Sequence[GroupKey], internal: bool) -> list[UsageGroup]:
    """Sum rows by the given keys (none: one total). ``internal`` adds GPU cost and margin."""
    sums: dict[tuple[str, ...], dict[str, int]] = {}
    for row in rows:
        values = {"tenant": row.tenant_id, "model": row.model, "day": row.day}
        key = tuple(values[k] for k in by)
        target = sums.setdefault(key, dict.fromkeys(METRICS, 0))
        for name, value in row.sums.items():
            target[name] = target.get(name, 0) + value
    if not sums and not by:
        sums[()] = dict.fromkeys(METRICS, 0)
    return [_group(dict(zip(by, key, strict=True)), s, internal) for key, s in sorted(sums.items())]


def _group(keys: dict[str, str], s: dict[str, int], internal: bool) -> UsageGroup:
    requests = s["requests"]
    extra = {}
    if internal:
        extra = {
            "cost_usd": to_usd(s["cost_nano_usd"]),
            "avoided_cost_usd": to_usd(s["avoided_nano_usd"]),
            "margin_usd": to_usd(s["billed_nano_usd"] - s["cost_nano_usd"]),
        }
    return UsageGroup(
        tenant_id=keys.get("tenant"),
        model=keys.get("model"),
        day=keys.get("day"),
        requests=requests,
        ok=s["ok"],
        failed=s["failed"],
        cancelled=s["cancelled"],
        cache_hits=s["cache_hits"],
        prompt_tokens=s["prompt_tokens"],
        completion_tokens=s["completion_tokens"],
        total_tokens=s["prompt_tokens"] + s["completion_tokens"],
        mean_latency_ms=round(s["latency_ms"] / requests, 3) if requests else 0.0,
        billed_usd=to_usd(s["billed_nano_usd"]),
        **extra,
    )


def to_csv(groups: Sequence[UsageGroup], by: Sequence[GroupKey]) -> str:
    columns = [{"tenant": "tenant_id"}.get(k, k) for k in by] + [
        name for name in UsageGroup.model_fields if name not in ("tenant_id", "model", "day")
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for g in groups:
        writer.writerow(g.model_dump())
    return out.getvalue()


class Invoice(BaseModel):
    """A tenant's bill for one period: usage billed plus the tier's flat fee, against GPU cost."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: str
    period: str
    tier: str
    requests: int
    total_tokens: int
    usage_billed_usd: float
    flat_fee_usd: float
    total_billed_usd: float
    gpu_cost_usd: float
    avoided_cost_usd: float
    margin_usd: float
    margin_pct: float | None  # of the total billed; None when nothing is billed


def invoice(tenant_id: str, period: str, tier: str, flat_fee_usd: float, rows: Iterable[UsageRow]) -> Invoice:
    s = dict.fromkeys(METRICS, 0)
    for row in rows:
        for name, value in row.sums.items():
            s[name] += value
    flat = to_nano_usd(flat_fee_usd)
    total = s["billed_nano_usd"] + flat
    margin = total - s["cost_nano_usd"]
    return Invoice(
        tenant_id=tenant_id,
        period=period,
        tier=tier,
        requests=s["requests"],
        total_tokens=s["prompt_tokens"] + s["completion_tokens"],
        usage_billed_usd=to_usd(s["billed_nano_usd"]),
        flat_fee_usd=to_usd(flat),
        total_billed_usd=to_usd(total),
        gpu_cost_usd=to_usd(s["cost_nano_usd"]),
        avoided_cost_usd=to_usd(s["avoided_nano_usd"]),
        margin_usd=to_usd(margin),
        margin_pct=round(100 * margin / total, 2) if total else None,
    )
