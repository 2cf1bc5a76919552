"""Usage alerts: a tenant crossing 50/80/100% (configurable) of its budget or request quota.

Each (tenant, period, kind, threshold) fires once across all replicas: whoever first sees the
threshold crossed claims it (Redis ``SET NX``, or a local file), and only the claimer logs
and posts it. Claims already known are remembered in process, so after a crossing the
request path pays no further round trip. A claim that fails (store down) is logged, counted
(``num_claim_errors``) and tried again on the next settlement.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict
from redis.asyncio import Redis

from serve.constants import MONTHLY_COUNTER_RETENTION_S
from serve.tenants.config import AlertsConfig
from serve.tenants.files import write_atomically
from serve.tenants.redis_client import STORE_ERRORS, describe
from serve.tenants.webhook import WebhookNotifier

logger = logging.getLogger(__name__)

CLAIMS_FILE_NAME = "alerts.json"
AlertKind = Literal["budget", "quota"]


class Alert(BaseModel):
    """The webhook's JSON body."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["frugal.usage_alert"] = "frugal.usage_alert"
    kind: AlertKind
    tenant_id: str
    period: str
    threshold_pct: int
    used: float  # USD for budgets, requests for quotas
    limit: float
    unit: Literal["usd", "requests"]
    basis: Literal["billed", "cost"] | None = None  # budgets: what counts as spend
    time_s: float


class AlertClaims(Protocol):
    async def claim(self, tenant_id: str, period: str, kind: AlertKind, threshold_pct: int) -> bool:
        """True for exactly one caller per (tenant, period, kind, threshold), across replicas."""

    async def close(self) -> None: ...


class RedisAlertClaims:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def claim(self, tenant_id: str, period: str, kind: AlertKind, threshold_pct: int) -> bool:
        key = f"{self.prefix}:alert:{{{tenant_id}}}:{period}:{kind}:{threshold_pct}"
        return bool(await self.redis.set(key, str(time.time()), nx=True, ex=MONTHLY_COUNTER_RETENTION_S))

    async def close(self) -> None:
        return None


class LocalAlertClaims:
    """Claims of the embedded default, in ``<state_dir>/alerts.json`` (memory without a dir)."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / CLAIMS_FILE_NAME if state_dir else None
        self.claimed: set[str] | None = None

    async def claim(self, tenant_id: str, period: str, kind: AlertKind, threshold_pct: int) -> bool:
        if self.claimed is None:
            exists = self.path is not None and self.path.exists()
            self.claimed = set(json.loads(self.path.read_text())) if exists and self.path else set()
        name = f"{tenant_id}:{period}:{kind}:{threshold_pct}"
        if name in self.claimed:
            return False
        self.claimed.add(name)
        if self.path is not None:
            write_atomically(self.path, json.dumps(sorted(self.claimed)))
        return True

    async def close(self) -> None:
        return None


class Alerts:
    def __init__(self, config: AlertsConfig, claims: AlertClaims, notifier: WebhookNotifier | None) -> None:
        self.config = config
        self.claims = claims
        self.notifier = notifier
        self._known: set[tuple[str, str, str, int]] = set()
        self._known_period = ""
        self.num_fired = 0
        self.num_claim_errors = 0

    async def check(
        self,
        kind: AlertKind,
        tenant_id: str,
        period: str,
        used: float,
        limit: float | None,
        basis: Literal["billed", "cost"] | None = None,
    ) -> list[Alert]:
        """Fire the thresholds ``used / limit`` has reached that nobody fired yet; the alerts fired here."""
        if not limit or (kind == "quota" and not self.config.quota_alerts):
            return []
        if period != self._known_period:
            self._known, self._known_period = set(), period
        fired = []
        for pct in self.config.thresholds_pct:
            name = (tenant_id, period, kind, pct)
            if used * 100 < pct * limit or name in self._known:
                continue
            try:
                won = await self.claims.claim(tenant_id, period, kind, pct)
            except STORE_ERRORS as exc:  # retried at the next settlement
                self.num_claim_errors += 1
                logger.warning("alert claim %s failed: %s", name, describe(exc))
                continue
            self._known.add(name)
            if won:
                alert = Alert(
                    kind=kind,
                    tenant_id=tenant_id,
                    period=period,
                    threshold_pct=pct,
                    used=used,
                    limit=limit,
                    unit="usd" if kind == "budget" else "requests",
                    basis=basis,
                    time_s=time.time(),
                )
                self._fire(alert)
                fired.append(alert)
        return fired

    def _fire(self, alert: Alert) -> None:
        self.num_fired += 1
        logger.warning(
            "tenant %s reached %d%% of its %s %s for %s (%s of %s)",
            alert.tenant_id, alert.threshold_pct, "monthly", alert.kind, alert.period, alert.used, alert.limit,
        )
        if self.notifier is not None:
            self.notifier.notify(alert)
