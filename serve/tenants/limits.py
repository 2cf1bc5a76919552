"""Per-tenant limits: requests and tokens per minute, monthly requests, monthly budget.

The window algorithm is a **sliding window log**: every admitted request leaves an entry
(time, reservation id, tokens) that counts for exactly ``RATE_WINDOW_S`` after its
admission. A request is admitted iff, counting the entries of the last 60 s, one more request
stays within the RPM limit and its tokens within the TPM limit. So no 60-second interval ever
holds more admissions than the limit, at any alignment (a fixed window admits up to twice
the limit across a boundary; GCRA with a one-minute burst allows up to twice the limit in
one minute). The log costs one entry per request in the last minute, which is what exactness
costs; entries expire by themselves.

Tokens are reserved at admission (``max_tokens`` + the prompt estimate) and the entry's
weight is replaced by the actual usage at settlement, so unused reservations return to the
tenant; a request never settled (a crashed replica) still leaves the window after 60 s.

Monthly requests count at admission; spend (billed and GPU cost, integer nano-dollars) at
settlement. Budgets count requests in flight too: admission may reserve the most a request
can be billed (``reserve_nano_usd``: its reserved tokens at the tier's price) and a tenant is
refused once settled spend plus reservations reach the budget, so concurrent requests cannot
overrun it together: spend passes a billed budget by at most one request's charge. (A GPU-cost
budget is not known before the request runs, so it counts settled spend only.) Reservations
are leases: one never settled expires after ``BUDGET_RESERVATION_LEASE_S``.

Each check-and-count is atomic: ``LocalLimiter`` runs it without awaiting (one event loop,
one replica); ``serve.tenants.limits_redis.RedisLimiter`` runs it as one Lua script, so any
number of replicas never admit more than the limit together.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from serve.constants import BUDGET_RESERVATION_LEASE_S, LOCAL_SNAPSHOT_PERIOD_S, RATE_WINDOW_S
from serve.tenants.files import write_atomically

logger = logging.getLogger(__name__)

COUNTERS_FILE_NAME = "counters.json"
Verdict = Literal["admitted", "requests", "tokens", "too_large", "quota", "budget"]
UNLIMITED = -1  # how an absent limit travels to the Lua script


@dataclass(frozen=True)
class LimitSpec:
    """The limits of one tenant, resolved from its tier and overrides. None: unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    monthly_requests: int | None = None
    budget_nano_usd: int | None = None
    budget_basis: Literal["billed", "cost"] = "billed"


@dataclass(frozen=True)
class WindowState:
    """One per-minute limit as seen after the decision, for the x-ratelimit-* headers."""

    limit: int
    remaining: int
    reset_s: float  # until the window is empty again


@dataclass(frozen=True)
class AdmitResult:
    verdict: Verdict
    requests: WindowState | None  # None: no RPM limit
    tokens: WindowState | None  # None: no TPM limit
    monthly_requests: int  # admitted this period, this one included if admitted
    spent_nano_usd: int  # settled this period, on the budget's basis
    pending_nano_usd: int  # reserved by requests in flight
    retry_after_s: float | None = None  # for "requests" and "tokens" refusals

    @property
    def admitted(self) -> bool:
        return self.verdict == "admitted"


@dataclass(frozen=True)
class Spend:
    """A tenant's counters for one period."""

    requests: int = 0
    billed_nano_usd: int = 0
    cost_nano_usd: int = 0

    def on_basis(self, basis: Literal["billed", "cost"]) -> int:
        return self.billed_nano_usd if basis == "billed" else self.cost_nano_usd


class Limiter(Protocol):
    async def start(self) -> None: ...

    async def admit(
        self, tenant_id: str, reservation_id: str, tokens: int, spec: LimitSpec, period: str, reserve_nano_usd: int = 0
    ) -> AdmitResult:
        """Check every limit and, only if all pass, count the request and reserve ``tokens``
        (and ``reserve_nano_usd`` of the budget, if it has one). Atomic: concurrent calls on
        any replica never admit more than a limit."""

    async def settle(
        self,
        tenant_id: str,
        reservation_id: str,
        actual_tokens: int,
        period: str,
        billed_nano_usd: int,
        cost_nano_usd: int,
    ) -> Spend:
        """Replace the token reservation by ``actual_tokens``, release the budget reservation
        and add the spend; the period's totals after."""

    async def spend(self, tenant_id: str, period: str) -> Spend: ...

    async def close(self) -> None: ...


@dataclass
class _Window:
    """One tenant's sliding window log: admission times, ids and token weights."""

    entries: deque[tuple[float, str]] = field(default_factory=deque)
    weights: dict[str, int] = field(default_factory=dict)
    tokens: int = 0

    def expire(self, cutoff: float) -> None:
        while self.entries and self.entries[0][0] <= cutoff:
            _, rid = self.entries.popleft()
            self.tokens -= self.weights.pop(rid, 0)

    def retry_after_requests(self, limit: int, now: float, window: float) -> float:
        # the entry whose expiry leaves limit - 1 entries
        return self.entries[len(self.entries) - limit][0] + window - now

    def retry_after_tokens(self, need: int, limit: int, now: float, window: float) -> float:
        freed = 0
        for ts, rid in self.entries:
            freed += self.weights.get(rid, 0)
            if self.tokens - freed + need <= limit:
                return ts + window - now
        return window

    def reset_s(self, now: float, window: float) -> float:
        return self.entries[-1][0] + window - now if self.entries else 0.0


class LocalLimiter:
    """The limiter of the embedded default (one router replica), in process.

    Monthly counters are saved to ``<state_dir>/counters.json`` every ``LOCAL_SNAPSHOT_PERIOD_S``
    when they changed, and at close; a crash loses at most that much counting. The per-minute
    windows live in memory only.
    """

    def __init__(
        self, state_dir: Path | None, clock: Callable[[], float] = time.time, window_s: float = RATE_WINDOW_S
    ) -> None:
        self.path = state_dir / COUNTERS_FILE_NAME if state_dir else None
        self.clock = clock
        self.window_s = window_s
        self.windows: dict[str, _Window] = {}
        self.monthly: dict[str, dict[str, list[int]]] = {}  # period -> tenant -> [requests, billed, cost]
        self.pending: dict[str, dict[str, tuple[float, int]]] = {}  # tenant -> id -> (lease end, nano-USD)
        self._dirty = False
        self._saver: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.path is not None and self.path.exists():
            self.monthly = json.loads(self.path.read_text())
        if self.path is not None:
            self._saver = asyncio.create_task(self._save_periodically(), name="frugal-counters-saver")

    async def admit(
        self, tenant_id: str, reservation_id: str, tokens: int, spec: LimitSpec, period: str, reserve_nano_usd: int = 0
    ) -> AdmitResult:
        now = self.clock()
        window = self.windows.setdefault(tenant_id, _Window())
        window.expire(now - self.window_s)
        counters = self._counters(tenant_id, period)
        spent = counters[1] if spec.budget_basis == "billed" else counters[2]
        leases = self.pending.get(tenant_id, {})
        for rid in [rid for rid, (end, _) in leases.items() if end <= now]:
            del leases[rid]
        pending = sum(amount for _, amount in leases.values())
        count = len(window.entries)
        verdict: Verdict = "admitted"
        retry: float | None = None
        if spec.budget_nano_usd is not None and spent + pending >= spec.budget_nano_usd:
            verdict = "budget"
        elif spec.monthly_requests is not None and counters[0] >= spec.monthly_requests:
            verdict = "quota"
        elif spec.tokens_per_minute is not None and tokens > spec.tokens_per_minute:
            verdict = "too_large"
        elif spec.requests_per_minute is not None and count >= spec.requests_per_minute:
            verdict, retry = "requests", window.retry_after_requests(spec.requests_per_minute, now, self.window_s)
        elif spec.tokens_per_minute is not None and window.tokens + tokens > spec.tokens_per_minute:
            verdict = "tokens"
            retry = window.retry_after_tokens(tokens, spec.tokens_per_minute, now, self.window_s)
        if verdict == "admitted":
            window.entries.append((now, reservation_id))
            window.weights[reservation_id] = tokens
            window.tokens += tokens
            counters[0] += 1
            self._dirty = True
            if spec.budget_nano_usd is not None and reserve_nano_usd > 0:
                lease_end = now + BUDGET_RESERVATION_LEASE_S
                self.pending.setdefault(tenant_id, {})[reservation_id] = (lease_end, reserve_nano_usd)
                pending += reserve_nano_usd
        if not window.entries:
            del self.windows[tenant_id]
        reset = window.reset_s(now, self.window_s)
        return AdmitResult(
            verdict=verdict,
            requests=_state(spec.requests_per_minute, len(window.entries), reset),
            tokens=_state(spec.tokens_per_minute, window.tokens, reset),
            monthly_requests=counters[0],
            spent_nano_usd=spent,
            pending_nano_usd=pending,
            retry_after_s=retry,
        )

    async def settle(
        self,
        tenant_id: str,
        reservation_id: str,
        actual_tokens: int,
        period: str,
        billed_nano_usd: int,
        cost_nano_usd: int,
    ) -> Spend:
        window = self.windows.get(tenant_id)
        if window is not None and reservation_id in window.weights:
            window.tokens += actual_tokens - window.weights[reservation_id]
            window.weights[reservation_id] = actual_tokens
        self.pending.get(tenant_id, {}).pop(reservation_id, None)
        counters = self._counters(tenant_id, period)
        counters[1] += billed_nano_usd
        counters[2] += cost_nano_usd
        self._dirty = True
        return Spend(*counters)

    async def spend(self, tenant_id: str, period: str) -> Spend:
        counters = self.monthly.get(period, {}).get(tenant_id)
        return Spend(*counters) if counters else Spend()

    async def close(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            await asyncio.gather(self._saver, return_exceptions=True)
            self._saver = None
        self._save()

    def _counters(self, tenant_id: str, period: str) -> list[int]:
        return self.monthly.setdefault(period, {}).setdefault(tenant_id, [0, 0, 0])

    def _save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self._dirty = False
        write_atomically(self.path, json.dumps(self.monthly))

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(LOCAL_SNAPSHOT_PERIOD_S)
            try:
                self._save()
            except OSError as exc:
                self._dirty = True
                logger.warning("could not save the monthly counters to %s: %r", self.path, exc)


def _state(limit: int | None, used: int, reset_s: float) -> WindowState | None:
    if limit is None:
        return None
    return WindowState(limit=limit, remaining=max(0, limit - used), reset_s=max(0.0, reset_s))
