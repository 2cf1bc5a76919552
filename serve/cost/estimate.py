"""What a request costs: an estimate before it runs, and the actual cost after.

The source documents price a request as (inference seconds / 3600) x hourly price, which
holds for a replica serving one request at a time. A batching engine serves many at once, so
a request pays its share of the replica's time: while it ran, the replica's hourly price
bought every token the replica produced, and the request owns its fraction of them. Alone on
the replica its share is 1 and the documents' formula comes back exactly.
"""

from __future__ import annotations

from serve.constants import COST_USD_DECIMALS, SECONDS_PER_HOUR
from serve.cost.profile import ThroughputProfile


def request_duration_s(
    profile: ThroughputProfile, concurrency: float, prompt_tokens: int, max_output_tokens: int
) -> float:
    """Predicted wall time of a request on one replica running ``concurrency`` streams
    (this request included): TTFT plus one TPOT per further output token."""
    ttft_ms = profile.ttft_ms(concurrency, prompt_tokens)
    return (ttft_ms + max(max_output_tokens - 1, 0) * profile.tpot_ms(concurrency)) / 1000.0


def estimate_cost_usd(
    price_usd_per_hour: float,
    profile: ThroughputProfile,
    concurrency: float,
    prompt_tokens: int,
    max_output_tokens: int,
) -> float:
    """The request's share of replica time, priced: duration x price / 3600 / c, where
    ``c`` = ``concurrency`` clamped to [1, profile.max_concurrency] (the streams decoding
    together, which share the replica equally). ``concurrency`` is per replica and counts
    this request."""
    streams = min(max(float(concurrency), 1.0), float(profile.max_concurrency))
    duration_s = request_duration_s(profile, concurrency, prompt_tokens, max_output_tokens)
    return duration_s / SECONDS_PER_HOUR * price_usd_per_hour / streams


def actual_cost_usd(price_usd_per_hour: float, wall_s: float, own_tokens: int, replica_tokens: int) -> float:
    """wall_s / 3600 x price x own_tokens / max(replica_tokens, own_tokens).

    ``replica_tokens`` are the tokens the replica produced while the request ran (its own
    included); a replica that produced none (e.g. the request failed before its first
    token) charges the request the whole wall time.
    """
    if wall_s < 0 or own_tokens < 0 or replica_tokens < 0:
        raise ValueError("wall_s and token counts must not be negative")
    denominator = max(replica_tokens, own_tokens)
    share = own_tokens / denominator if denominator > 0 else 1.0
    return wall_s / SECONDS_PER_HOUR * price_usd_per_hour * share


def format_usd(value: float) -> str:
    """A cost as a header value: ``COST_USD_DECIMALS`` decimals, as ``usage.cost_usd`` is
    rounded, so the headers and the body of one answer agree (``"0"`` for nothing)."""
    return f"{value:.{COST_USD_DECIMALS}f}".rstrip("0").rstrip(".") or "0"
