"""``tenants:`` in the Frugal config: keys, tiers, limits, budgets, alerts and the ledger.

Validated once at the edge like the rest of the config; unknown keys fail with their path.
The three tiers of the source documents ship as defaults (free, paid, vip); a ``tiers:``
entry with one of their names changes only the fields it gives, other names add tiers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve.constants import (
    ADMIN_KEY_ENV_DEFAULT,
    KEY_CACHE_TTL_S,
    PRIORITY_AGING_S_PER_LEVEL,
    PRIORITY_MAX_WAITING_PER_MODEL,
    WEBHOOK_MAX_ATTEMPTS,
    WEBHOOK_QUEUE_MAX_ALERTS,
    WEBHOOK_TIMEOUT_S,
)
from serve.tenants.keys import KEY_ID_PATTERN, SHA256_PATTERN

TENANT_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
Priority = Literal["low", "medium", "high"]
PRIORITY_LEVELS: dict[str, int] = {"low": 0, "medium": 1, "high": 2}
PositiveInt = Annotated[int, Field(gt=0)]
Usd = Annotated[float, Field(ge=0)]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TierConfig(StrictModel):
    """What a tenant of this tier may do and what it pays. ``None`` limits are unlimited."""

    requests_per_minute: PositiveInt | None = None
    tokens_per_minute: PositiveInt | None = None
    monthly_requests: PositiveInt | None = None
    monthly_budget_usd: Usd | None = Field(default=None, description="hard budget: refused at 100%")
    budget_basis: Literal["billed", "cost"] = Field(
        default="billed", description="spend counted against the budget: the billed amount or the GPU cost"
    )
    priority: Priority = "medium"
    price_usd_per_1k_tokens: Usd = Field(default=0.0, description="billed to the tenant, prompt + completion")
    cache_hit_price_factor: Annotated[float, Field(ge=0, le=1)] = Field(
        default=1.0, description="share of the price billed for an answer served from the cache"
    )
    flat_monthly_fee_usd: Usd = 0.0
    allowed_models: list[str] | None = Field(default=None, description="None: every served model")


DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "free": {"requests_per_minute": 20, "tokens_per_minute": 20_000, "monthly_requests": 1_000, "priority": "low"},
    "paid": {
        "requests_per_minute": 600,
        "tokens_per_minute": 400_000,
        "monthly_requests": 100_000,
        "priority": "medium",
        "price_usd_per_1k_tokens": 0.002,
    },
    "vip": {"priority": "high", "flat_monthly_fee_usd": 500.0},
}


class KeyConfig(StrictModel):
    """A key defined in config, by its public id and hash (``python -m serve.tenants.keys new``)."""

    id: str = Field(pattern=KEY_ID_PATTERN)
    sha256: str = Field(pattern=SHA256_PATTERN)
    name: str = ""


class TenantConfig(StrictModel):
    id: str = Field(pattern=TENANT_ID_PATTERN)
    tier: str
    keys: list[KeyConfig] = Field(default_factory=list)
    monthly_budget_usd: Usd | None = Field(default=None, description="overrides the tier's budget")
    cache_namespace: str | None = Field(default=None, description="default: the tenant id")


class PriorityConfig(StrictModel):
    """The gate in front of dispatch, per router replica. No bound: no queueing, no ordering."""

    max_concurrent_per_model: PositiveInt | None = None
    per_model: dict[str, PositiveInt] = Field(default_factory=dict, description="bounds overriding the default")
    aging_s_per_level: Annotated[float, Field(gt=0)] = Field(
        default=PRIORITY_AGING_S_PER_LEVEL,
        description="a waiter is served as if it had arrived this much earlier per priority level",
    )
    max_waiting_per_model: PositiveInt = PRIORITY_MAX_WAITING_PER_MODEL


class AlertsConfig(StrictModel):
    thresholds_pct: list[Annotated[int, Field(gt=0, le=1000)]] = Field(default_factory=lambda: [50, 80, 100])
    webhook_url: str | None = Field(default=None, pattern=r"^https?://")
    quota_alerts: bool = Field(default=True, description="also alert on the monthly request quota")
    timeout_s: Annotated[float, Field(gt=0)] = WEBHOOK_TIMEOUT_S
    max_attempts: PositiveInt = WEBHOOK_MAX_ATTEMPTS
    queue_size: PositiveInt = WEBHOOK_QUEUE_MAX_ALERTS

    @field_validator("thresholds_pct")
    @classmethod
    def _sorted(cls, thresholds: list[int]) -> list[int]:
        return sorted(set(thresholds))


class LedgerConfig(StrictModel):
    stream: str = Field(default="frugal:ledger", min_length=1, description="Redis stream name")
    file_name: str = Field(default="ledger.jsonl", description="under local_state_dir, for the embedded default")
    buffer_size: PositiveInt = Field(default=10_000, description="records held while the store is down")
    stream_max_len: PositiveInt | None = Field(default=None, description="approximate trim; None keeps all")


class TenantsConfig(StrictModel):
    auth_enabled: bool = False
    admin_key_env: str | None = Field(default=ADMIN_KEY_ENV_DEFAULT, description="env var holding the admin key")
    admin_key_sha256: str | None = Field(default=None, pattern=SHA256_PATTERN)
    anonymous_tenant: str = Field(default="anonymous", pattern=TENANT_ID_PATTERN)
    anonymous_tier: str = Field(default="vip", description="the tier of requests without a key, auth disabled")
    redis_url: str | None = Field(default=None, description="shared state for several router replicas")
    redis_prefix: str = "frugal"
    local_state_dir: str | None = Field(default=None, description="without Redis: where state persists; None: memory")
    key_cache_ttl_s: Annotated[float, Field(gt=0, le=1)] = KEY_CACHE_TTL_S
    fail_open: bool = Field(default=False, description="admit requests (unmetered) while the store is down")
    tiers: dict[str, TierConfig] = Field(default_factory=lambda: {n: TierConfig(**t) for n, t in DEFAULT_TIERS.items()})
    tenants: list[TenantConfig] = Field(default_factory=list)
    priority: PriorityConfig = Field(default_factory=PriorityConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)

    @field_validator("tiers", mode="before")
    @classmethod
    def _merge_default_tiers(cls, tiers: Any) -> Any:
        if not isinstance(tiers, dict):
            return tiers
        merged: dict[str, Any] = {name: dict(fields) for name, fields in DEFAULT_TIERS.items()}
        for name, fields in tiers.items():
            if isinstance(fields, TierConfig):
                merged[name] = fields
            elif name in merged and isinstance(fields, dict):
                merged[name] = {**merged[name], **fields}
            else:
                merged[name] = fields
        return merged

    @model_validator(mode="after")
    def _references(self) -> TenantsConfig:
        unknown = sorted({t.tier for t in self.tenants} - set(self.tiers))
        if unknown:
            raise ValueError(f"tenants refer to unknown tiers {unknown}; tiers are {sorted(self.tiers)}")
        if self.anonymous_tier not in self.tiers:
            raise ValueError(f"anonymous_tier {self.anonymous_tier!r} is not a tier")
        ids = [t.id for t in self.tenants]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate tenant ids: {dupes}")
        key_ids = [k.id for t in self.tenants for k in t.keys]
        dupes = sorted({i for i in key_ids if key_ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate key ids: {dupes}")
        return self

    def check_models(self, served: Iterable[str]) -> None:
        """Raise ValueError if a tier allows a model that is not served (call with the config's models)."""
        names = set(served)
        for tier_name, tier in self.tiers.items():
            unknown = sorted(set(tier.allowed_models or ()) - names)
            if unknown:
                raise ValueError(f"tiers.{tier_name}.allowed_models: {unknown} are not served")
