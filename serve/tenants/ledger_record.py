"""What the ledger records about one finished request."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from serve.tenants.config import TENANT_ID_PATTERN

RequestStatus = Literal["ok", "failed", "cancelled"]
NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class LedgerRecord(BaseModel):
    """One finished request: what it used, cost, avoided and was billed (USD)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: str = Field(min_length=1, max_length=200)
    time_s: float = Field(default_factory=time.time, description="when the request finished, epoch seconds")
    tenant_id: str = Field(pattern=TENANT_ID_PATTERN)
    key_id: str | None = None
    model: str = Field(min_length=1)
    pool: str | None = None
    prompt_tokens: NonNegativeInt
    completion_tokens: NonNegativeInt
    cache_hit: bool = False
    cost_usd: NonNegativeFloat  # GPU cost of serving it
    avoided_cost_usd: float = 0.0  # e.g. the GPU cost a cache hit saved
    billed_usd: NonNegativeFloat
    latency_ms: NonNegativeFloat
    status: RequestStatus = "ok"
    error_code: str | None = None
    metered: bool = True  # False: admitted unmetered while the limits store was down (fail_open)
