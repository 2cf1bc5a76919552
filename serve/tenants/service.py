"""The tenants facade the router calls, and its builder.

Per request::

    ctx = await tenants.authenticate(request.headers.get("authorization"))   # 401
    ticket = await tenants.admit(ctx, model, reserve_tokens)                 # 403 / 429 / 503
    async with tenants.gate.slot(ctx.priority, model):                       # priority order
        ...dispatch...
    billed_usd = await tenants.finish(ticket, request_id=..., ...)           # settle + ledger

``ticket.headers`` (x-ratelimit-*) belong on the response; a refusal's FrugalError carries
them too, with Retry-After. Every admitted ticket must be finished (or settled) exactly once,
whatever happened to the request: that is what returns its unused token reservation and
what puts it in the ledger. A ticket never finished still leaves the rate window after 60 s.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from redis.asyncio import Redis

from serve.router.errors import permission_denied, store_unavailable
from serve.tenants.alerts import AlertClaims, Alerts, LocalAlertClaims, RedisAlertClaims
from serve.tenants.auth import Authenticator, TenantContext
from serve.tenants.config import TenantsConfig
from serve.tenants.directory import Directory, LocalDirectory
from serve.tenants.directory_redis import RedisDirectory
from serve.tenants.keyadmin import KeyAdmin
from serve.tenants.ledger import Ledger
from serve.tenants.ledger_record import LedgerRecord, RequestStatus
from serve.tenants.ledger_redis import RedisLedgerStore
from serve.tenants.ledger_store import LedgerStore, LocalLedgerStore
from serve.tenants.limits import Limiter, LimitSpec, LocalLimiter
from serve.tenants.limits_redis import RedisLimiter
from serve.tenants.priority import PriorityGate
from serve.tenants.redis_client import STORE_ERRORS, build_redis, describe
from serve.tenants.refusals import ratelimit_headers, refusal
from serve.tenants.reports import UsageReports
from serve.tenants.units import billed_nano_usd, period_of, to_nano_usd, to_usd
from serve.tenants.webhook import WebhookNotifier

logger = logging.getLogger(__name__)


@dataclass
class Admission:
    """An admitted request's ticket: what was reserved, and the headers for its response."""

    context: TenantContext
    model: str
    reservation_id: str
    reserved_tokens: int
    headers: dict[str, str]
    metered: bool = True  # False: admitted unmetered while the store was down (fail_open)
    billed_usd: float | None = field(default=None, init=False)  # set by settle


class Tenants:
    def __init__(
        self,
        config: TenantsConfig,
        directory: Directory,
        limiter: Limiter,
        ledger_store: LedgerStore,
        claims: AlertClaims,
        notifier: WebhookNotifier | None = None,
        redis: Redis | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.directory = directory
        self.limiter = limiter
        self.auth = Authenticator(config, directory)
        self.keys = KeyAdmin(config, directory, self.auth, clock)
        self.gate = PriorityGate(config.priority)
        self.alerts = Alerts(config.alerts, claims, notifier)
        self.notifier = notifier
        self.ledger = Ledger(ledger_store, config.ledger.buffer_size)
        self.reports = UsageReports(ledger_store, limiter, self.auth, self.keys, clock)
        self.redis = redis
        self.clock = clock
        self.num_unmetered = 0
        self.num_settle_errors = 0

    async def start(self) -> None:
        await self.directory.start()
        await self.limiter.start()
        await self.ledger.start()
        if self.notifier is not None:
            await self.notifier.start()
        where = self.config.local_state_dir or "memory (lost at restart)"
        if self.redis is not None:
            where = f"Redis at {redact_url(self.config.redis_url or '')}"
            try:
                await self.redis.ping()
            except STORE_ERRORS as exc:
                # Not fatal: every store call degrades on its own and recovers when Redis is back.
                logger.warning("tenants: %s unreachable at start (%s)", where, describe(exc))
        if self.config.auth_enabled:
            logger.info("tenants: auth enabled, %d config tenants, state in %s", len(self.config.tenants), where)
        else:
            logger.warning(
                "tenants: AUTH DISABLED: requests without a Frugal key run as tenant %r (tier %s); state in %s",
                self.config.anonymous_tenant, self.config.anonymous_tier, where,
            )
        if self.auth.admin_sha256 is None:
            logger.info("tenants: no admin key configured: the admin API answers 403")

    async def close(self) -> None:
        await self.ledger.close()
        if self.notifier is not None:
            await self.notifier.close()
        await self.limiter.close()
        await self.directory.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def authenticate(self, authorization: str | None) -> TenantContext:
        """The caller's tenant; FrugalError 401 (bad key) or 503 (store down, key not cached)."""
        return await self.auth.authenticate(authorization)

    def authenticate_admin(self, authorization: str | None) -> None:
        """FrugalError 401 unless the header carries the admin key, 403 if none is configured."""
        self.auth.authenticate_admin(authorization)

    async def admit(self, context: TenantContext, model: str, reserve_tokens: int) -> Admission:
        """Admit one request to ``model`` reserving ``reserve_tokens`` (max_tokens + prompt estimate).

        Raises FrugalError 403 (model not allowed for the tier), 429 ``rate_limit_exceeded``
        (RPM, TPM, request too large for the TPM limit, monthly request quota), 429
        ``insufficient_quota`` (budget spent) -- each with x-ratelimit-* headers and, when
        waiting helps, Retry-After -- or 503 when the store is down (unless ``fail_open``).
        """
        allowed = context.allowed_models
        if allowed is not None and model not in allowed:
            raise permission_denied(
                f"The tier '{context.tier_name}' does not include the model '{model}'.", param="model",
                code="model_not_allowed",
            )
        reservation_id = uuid.uuid4().hex
        spec = self.limit_spec(context)
        # A billed budget reserves the most this request can be billed; a cost budget cannot.
        tier = context.tier
        reserve_nano = 0
        if spec.budget_basis == "billed":
            reserve_nano = billed_nano_usd(reserve_tokens, tier.price_usd_per_1k_tokens)
        now = self.clock()
        try:
            result = await self.limiter.admit(
                context.tenant_id, reservation_id, reserve_tokens, spec, period_of(now), reserve_nano
            )
        except STORE_ERRORS as exc:
            self.num_unmetered += 1
            if not self.config.fail_open:
                logger.warning("limiter store unavailable (%s): refusing %s", describe(exc), context.tenant_id)
                raise store_unavailable(type(exc).__name__) from None
            logger.warning(
                "limiter store unavailable (%s): admitting %s unmetered", describe(exc), context.tenant_id
            )
            return Admission(context, model, reservation_id, reserve_tokens, {}, metered=False)
        headers = ratelimit_headers(result)
        if not result.admitted:
            raise refusal(context, spec, result, reserve_tokens, headers, now)
        await self.alerts.check(
            "quota", context.tenant_id, period_of(now), result.monthly_requests, spec.monthly_requests
        )
        return Admission(context, model, reservation_id, reserve_tokens, headers)

    async def settle(
        self, ticket: Admission, prompt_tokens: int, completion_tokens: int, cost_usd: float, cache_hit: bool = False
    ) -> float:
        """Settle a ticket with what the request actually used; the amount billed (USD).

        Replaces the token reservation by the actual tokens, adds the billed amount and GPU
        cost to the period's spend and fires budget alerts. Idempotent per ticket (a second
        call returns the first amount). Store down: the spend is not counted (warning,
        ``num_settle_errors``); the ledger still records the request.
        """
        if ticket.billed_usd is not None:
            return ticket.billed_usd
        context = ticket.context
        tier = context.tier
        tokens = prompt_tokens + completion_tokens
        factor = tier.cache_hit_price_factor if cache_hit else 1.0
        billed = billed_nano_usd(tokens, tier.price_usd_per_1k_tokens, factor)
        ticket.billed_usd = to_usd(billed)
        period = period_of(self.clock())
        try:
            spend = await self.limiter.settle(
                context.tenant_id, ticket.reservation_id, tokens, period, billed, to_nano_usd(cost_usd)
            )
        except STORE_ERRORS as exc:
            self.num_settle_errors += 1
            logger.warning("limiter store unavailable (%s): spend of %s not counted", describe(exc), context.tenant_id)
            return ticket.billed_usd
        basis = tier.budget_basis
        await self.alerts.check(
            "budget", context.tenant_id, period, to_usd(spend.on_basis(basis)), context.monthly_budget_usd, basis
        )
        return ticket.billed_usd

    async def finish(
        self,
        ticket: Admission,
        *,
        request_id: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        latency_ms: float,
        status: RequestStatus = "ok",
        cache_hit: bool = False,
        pool: str | None = None,
        avoided_cost_usd: float = 0.0,
        error_code: str | None = None,
    ) -> float:
        """``settle`` and record the request in the ledger; the amount billed (USD).
        For failed and cancelled requests pass what was consumed (tokens, cost)."""
        billed = await self.settle(ticket, prompt_tokens, completion_tokens, cost_usd, cache_hit)
        await self.ledger.record(
            LedgerRecord(
                request_id=request_id,
                time_s=self.clock(),
                tenant_id=ticket.context.tenant_id,
                key_id=ticket.context.key_id,
                model=ticket.model,
                pool=pool,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cache_hit=cache_hit,
                cost_usd=cost_usd,
                avoided_cost_usd=avoided_cost_usd,
                billed_usd=billed,
                latency_ms=latency_ms,
                status=status,
                error_code=error_code,
                metered=ticket.metered,
            )
        )
        return billed

    def limit_spec(self, context: TenantContext) -> LimitSpec:
        tier = context.tier
        budget = context.monthly_budget_usd
        return LimitSpec(
            requests_per_minute=tier.requests_per_minute,
            tokens_per_minute=tier.tokens_per_minute,
            monthly_requests=tier.monthly_requests,
            budget_nano_usd=None if budget is None else to_nano_usd(budget),
            budget_basis=tier.budget_basis,
        )

    def counters(self) -> dict[str, int]:
        """Degraded-path and activity counters, for the router's metrics."""
        out = {
            "auth_stale": self.auth.num_stale_auth,
            "admit_unmetered": self.num_unmetered,
            "settle_errors": self.num_settle_errors,
            "gate_rejected": self.gate.num_rejected,
            "alerts_fired": self.alerts.num_fired,
            "alert_claim_errors": self.alerts.num_claim_errors,
            "ledger_written": self.ledger.num_written,
            "ledger_dropped": self.ledger.num_dropped,
            "ledger_write_errors": self.ledger.num_write_errors,
            "ledger_buffered": len(self.ledger.buffer),
        }
        if self.notifier is not None:
            out |= {"webhook_sent": self.notifier.num_sent, "webhook_failed": self.notifier.num_failed,
                    "webhook_dropped": self.notifier.num_dropped}
        return out


def redact_url(url: str) -> str:
    """A URL without its credentials, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def build_tenants(
    config: TenantsConfig,
    *,
    clock: Callable[[], float] = time.time,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Tenants:
    """Wire the stores the config asks for: Redis when ``redis_url`` is set, else local files
    under ``local_state_dir`` (or memory). No I/O here; ``await tenants.start()`` does it."""
    notifier = None
    if config.alerts.webhook_url:
        a = config.alerts
        notifier = WebhookNotifier(a.webhook_url, a.timeout_s, a.max_attempts, a.queue_size, webhook_transport)
    if config.redis_url:
        redis = build_redis(config.redis_url)
        prefix = config.redis_prefix
        return Tenants(
            config,
            directory=RedisDirectory(redis, prefix),
            limiter=RedisLimiter(redis, prefix),
            ledger_store=RedisLedgerStore(redis, prefix, config.ledger.stream, config.ledger.stream_max_len),
            claims=RedisAlertClaims(redis, prefix),
            notifier=notifier,
            redis=redis,
            clock=clock,
        )
    state_dir = Path(config.local_state_dir).expanduser() if config.local_state_dir else None
    return Tenants(
        config,
        directory=LocalDirectory(state_dir),
        limiter=LocalLimiter(state_dir, clock),
        ledger_store=LocalLedgerStore(state_dir / config.ledger.file_name if state_dir else None),
        claims=LocalAlertClaims(state_dir),
        notifier=notifier,
        clock=clock,
    )
