"""How a limiter's verdict reaches the client: OpenAI-shaped 429s and x-ratelimit-* headers."""

from __future__ import annotations

import math

from serve.router.errors import FrugalError, insufficient_quota, rate_limited
from serve.tenants.auth import TenantContext
from serve.tenants.limits import AdmitResult, LimitSpec
from serve.tenants.units import format_duration, period_of, seconds_to_period_end, to_usd


def ratelimit_headers(result: AdmitResult) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits a tenant has (none for unlimited ones)."""
    headers = {}
    for suffix, state in (("requests", result.requests), ("tokens", result.tokens)):
        if state is not None:
            headers[f"x-ratelimit-limit-{suffix}"] = str(state.limit)
            headers[f"x-ratelimit-remaining-{suffix}"] = str(state.remaining)
            headers[f"x-ratelimit-reset-{suffix}"] = format_duration(state.reset_s)
    return headers


def refusal(
    context: TenantContext, spec: LimitSpec, result: AdmitResult, tokens: int, headers: dict[str, str], now: float
) -> FrugalError:
    """The error for a refused admission: OpenAI's 429 shapes, naming the limit, with the
    x-ratelimit-* ``headers`` and, when waiting helps, retry-after / retry-after-ms."""
    tenant = context.tenant_id
    if result.verdict in ("quota", "budget"):
        retry_s = seconds_to_period_end(now)
    else:
        retry_s = result.retry_after_s
    if retry_s is not None:
        headers = {**headers, "retry-after": str(max(1, math.ceil(retry_s))),
                   "retry-after-ms": str(max(1, math.ceil(retry_s * 1000)))}
    wait = f" Please try again in {format_duration(retry_s)}." if retry_s is not None else ""
    if result.verdict == "budget":
        in_flight = f" (+${to_usd(result.pending_nano_usd):.6f} in flight)" if result.pending_nano_usd else ""
        return insufficient_quota(
            f"Tenant {tenant} has spent ${to_usd(result.spent_nano_usd):.6f}{in_flight} of its monthly budget "
            f"of ${context.monthly_budget_usd} ({spec.budget_basis}) for {period_of(now)}: requests are refused "
            f"until the period resets or the budget is raised.{wait}",
            headers,
        )
    if result.verdict == "quota":
        return rate_limited(
            f"Monthly request quota reached for tenant {tenant} (tier {context.tier_name}): "
            f"Limit {spec.monthly_requests}, Used {result.monthly_requests}.{wait}",
            "requests", "monthly_requests", headers,
        )
    if result.verdict == "too_large":
        return rate_limited(
            f"Request too large for tenant {tenant} on tokens per minute (TPM): Limit "
            f"{spec.tokens_per_minute}, Requested {tokens}. Lower max_tokens or shorten the prompt.",
            "tokens", "max_tokens", headers,
        )
    if result.verdict == "requests" and result.requests is not None:
        limit = result.requests.limit
        return rate_limited(
            f"Rate limit reached for tenant {tenant} on requests per minute (RPM): Limit {limit}, "
            f"Used {limit - result.requests.remaining}, Requested 1.{wait}",
            "requests", "requests_per_minute", headers,
        )
    assert result.tokens is not None
    limit = result.tokens.limit
    return rate_limited(
        f"Rate limit reached for tenant {tenant} on tokens per minute (TPM): Limit {limit}, "
        f"Used {limit - result.tokens.remaining}, Requested {tokens}.{wait}",
        "tokens", "tokens_per_minute", headers,
    )
