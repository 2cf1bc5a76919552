"""The end of an admitted request: settled with the tenant, written to the ledger and counted
in the metrics, exactly once, whatever way it ended (answered, failed, cancelled).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Literal

from serve.observability.metrics import FrugalMetrics
from serve.tenants.service import Admission, Tenants

logger = logging.getLogger(__name__)

Status = Literal["ok", "failed", "cancelled"]


@dataclass
class Outcome:
    """What an admitted request consumed; filled in as the request runs."""

    request_id: str
    model: str
    started_s: float = field(default_factory=time.monotonic)
    pool: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    avoided_cost_usd: float = 0.0
    cache_hit: bool = False
    ttft_s: float | None = None
    tpot_s: float | None = None


class Finisher:
    """Closes one admitted request once; later calls are no-ops."""

    def __init__(self, tenants: Tenants, metrics: FrugalMetrics, ticket: Admission, outcome: Outcome) -> None:
        self.tenants = tenants
        self.metrics = metrics
        self.ticket = ticket
        self.outcome = outcome
        self.done = False

    async def finish(self, status: Status, error_code: str | None = None) -> None:
        if self.done:
            return
        self.done = True
        o = self.outcome
        e2e_s = time.monotonic() - o.started_s
        billed = 0.0
        try:
            billed = await self.tenants.finish(
                self.ticket,
                request_id=o.request_id,
                prompt_tokens=o.prompt_tokens,
                completion_tokens=o.completion_tokens,
                cost_usd=o.cost_usd,
                latency_ms=e2e_s * 1000,
                status=status,
                cache_hit=o.cache_hit,
                pool=o.pool,
                avoided_cost_usd=o.avoided_cost_usd,
                error_code=error_code,
            )
        except Exception as exc:  # the ledger buffers its own writes; settling may fail alone
            logger.warning("finishing request %s with its tenant failed: %r", o.request_id, exc)
        context = self.ticket.context
        self.metrics.request_finished(
            model=o.model,
            pool=o.pool,
            tier=context.tier_name,
            tenant=context.tenant_id,
            status=status,
            prompt_tokens=o.prompt_tokens,
            completion_tokens=o.completion_tokens,
            cost_usd=o.cost_usd,
            billed_usd=billed or 0.0,
            avoided_cost_usd=o.avoided_cost_usd,
            ttft_s=o.ttft_s,
            tpot_s=o.tpot_s,
            e2e_s=e2e_s,
        )
