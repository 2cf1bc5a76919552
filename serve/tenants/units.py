"""Money, billing periods and durations, in one place so every store counts the same way.

Money travels as USD floats at the edges (config, API, the router) and is stored and summed
as integer nano-dollars, so totals never drift. Periods are calendar months in UTC
("2025-06"), days are UTC dates ("2025-06-30").
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from serve.constants import NANO_USD_PER_USD


def to_nano_usd(usd: float) -> int:
    """USD -> integer nano-dollars, rounded half up (via the decimal text, so 0.1 is exact)."""
    return int((Decimal(repr(usd)) * NANO_USD_PER_USD).to_integral_value(ROUND_HALF_UP))


def to_usd(nano_usd: int) -> float:
    return nano_usd / NANO_USD_PER_USD


def billed_nano_usd(num_tokens: int, price_usd_per_1k_tokens: float, factor: float = 1.0) -> int:
    """What ``num_tokens`` cost at a per-1k-token price (times ``factor``), in nano-dollars."""
    exact = Decimal(num_tokens) * Decimal(repr(price_usd_per_1k_tokens)) * Decimal(repr(factor)) / 1000
    return int((exact * NANO_USD_PER_USD).to_integral_value(ROUND_HALF_UP))


def period_of(time_s: float) -> str:
    """The billing period (UTC calendar month) holding ``time_s``: "YYYY-MM"."""
    moment = datetime.fromtimestamp(time_s, UTC)
    return f"{moment.year:04d}-{moment.month:02d}"


def period_bounds(period: str) -> tuple[date, date]:
    """First and last day of a "YYYY-MM" period. ValueError if malformed."""
    start = datetime.strptime(period, "%Y-%m").date()
    following = (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start, following - timedelta(days=1)


def seconds_to_period_end(time_s: float) -> float:
    """Seconds from ``time_s`` until the next period starts (when monthly counters reset)."""
    _, last = period_bounds(period_of(time_s))
    end = datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC)
    return max(0.0, end.timestamp() - time_s)


def day_of(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).date().isoformat()


def days_between(start: date, end: date) -> list[str]:
    """Every day from ``start`` to ``end`` inclusive, as "YYYY-MM-DD"."""
    return [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def format_duration(seconds: float) -> str:
    """A duration the way OpenAI's x-ratelimit-reset-* headers write it: "20ms", "1s", "6m0s"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
