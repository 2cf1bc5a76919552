"""What a request cost, and how the response says so.

Actual cost: the replica's hourly price shared across the tokens it processed while the
request ran (``serve.cost.estimate.actual_cost_usd``), from the engine's ``RunStats``.
A run without stats (cancelled, or the replica failed mid-way) is priced from the tokens it
consumed at the dispatch estimate's rate, so the ledger still records what was used.

Every completion reports its cost in ``usage.cost_usd`` (an extension field the ``openai``
client keeps in ``usage.model_extra``) and in headers:

- ``x-frugal-pool``: the pool that served it;
- ``x-frugal-route-reason``: the dispatch policy's reason;
- ``x-frugal-cost-usd``: the actual cost for a complete body; for a stream, the estimate
  made before dispatch (headers leave before the answer), with ``x-frugal-cost-kind:
  estimate``; the stream's usage chunk carries the actual figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from serve.constants import COST_USD_DECIMALS
from serve.cost.estimate import actual_cost_usd, format_usd
from serve.dispatch.types import Decision, RequestEstimate
from serve.engine.protocol import RunStats


@dataclass(frozen=True)
class Pricer:
    """Prices one dispatched request on one pool."""

    price_usd_per_hour: float
    estimate: RequestEstimate
    decision: Decision

    def cost_usd(self, prompt_tokens: int, completion_tokens: int, stats: RunStats | None) -> float:
        own = prompt_tokens + completion_tokens
        if stats is not None:
            return actual_cost_usd(self.price_usd_per_hour, stats.wall_s, own, stats.replica_tokens)
        # No run stats: the estimate's cost per token for the tokens actually consumed.
        planned = self.estimate.prompt_tokens + self.estimate.max_output_tokens
        if planned <= 0:
            return 0.0
        return self.decision.estimated_cost_usd * min(own / planned, 1.0)


def usage_tokens(body: str) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of a complete response body."""
    usage = json.loads(body).get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def body_with_cost(body: str, cost_usd: float) -> str:
    obj = json.loads(body)
    usage = obj.get("usage")
    if isinstance(usage, dict):
        usage["cost_usd"] = round(cost_usd, COST_USD_DECIMALS)
    return json.dumps(obj)


def dispatch_headers(pool: str, decision: Decision) -> dict[str, str]:
    return {"x-frugal-pool": pool, "x-frugal-route-reason": decision.reason}
