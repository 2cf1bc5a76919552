"""What one replica sustains within a latency target, in steady state: the fluid version of
the replica model in ``serve.sim.replica``, used by the integer program (``optimal``) and to
derive a pool's autoscaling target the way a user would from a profile.

For requests of ``P`` prompt and ``O`` output tokens at ``c`` admitted per replica:

- prefill takes ``a = P / prefill_tokens_per_s`` seconds of the replica, decode pauses;
- decoding alone would take ``d = (O - 1) * c / tokens_per_s(c)`` seconds;
- a request stays ``R = a + D`` and the replica completes ``X = c / R`` requests/s (Little's
  law). While it decodes (``D``), the other ``c - 1`` slots turn over ``D / R`` times each, and
  each turnover's prefill pauses it for ``a``: ``D = d + (c - 1) a D / R``. Eliminating ``D``:
  ``R^2 - (c a + d) R + (c - 1) a^2 = 0``, the larger root (one request at a time: ``a + d``);
- TPOT = ``D / (O - 1)``; TTFT = ``a`` + the wait behind other prefills (M/D/1 at the others'
  prefill load ``f = (c - 1) a / R``: ``f a / (2 (1 - f))``) + the profile's short-prompt TTFT
  at ``c``.

``c`` ranges over 1..``max_concurrency`` with ``c * (P + O)`` within the KV cache (one request
always fits). The capacity is the best ``X`` whose TTFT and TPOT meet the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serve.cost.profile import ThroughputProfile
from serve.dispatch.types import LatencyTarget


@dataclass(frozen=True)
class OperatingPoint:
    """One replica serving one request size at ``concurrency`` admitted requests."""

    concurrency: int
    requests_per_s: float
    ttft_ms: float
    tpot_ms: float
    prefill_fraction: float


def operating_point(
    profile: ThroughputProfile, prompt_tokens: float, output_tokens: float, concurrency: int
) -> OperatingPoint:
    """Steady state of one replica at ``concurrency`` admitted requests of one size."""
    c = concurrency
    tps = profile.tokens_per_s(c)
    a = prompt_tokens / profile.prefill_tokens_per_s if profile.prefill_tokens_per_s else 0.0
    steps = max(output_tokens - 1.0, 0.0)
    d = steps * c / tps
    s = c * a + d
    residence_s = max((s + math.sqrt(max(s * s - 4.0 * (c - 1) * a * a, 0.0))) / 2.0, 1e-9)
    decode_s = residence_s - a
    others = min((c - 1) * a / residence_s, 1.0 - 1e-12)  # share of time prefilling others
    tpot_ms = 1000.0 * (decode_s / steps if steps > 0 else c / tps)
    wait_s = others * a / (2.0 * (1.0 - others))
    ttft_ms = 1000.0 * (a + wait_s) + profile.ttft_ms(c)
    f = c * a / residence_s
    return OperatingPoint(c, c / residence_s, ttft_ms, tpot_ms, f)


def max_admitted(
    profile: ThroughputProfile, kv_capacity_tokens: float, prompt_tokens: float, output_tokens: float
) -> int:
    """The most requests of this size a replica admits at once (slots and KV cache)."""
    by_kv = int(kv_capacity_tokens // max(prompt_tokens + output_tokens, 1.0))
    return max(1, min(profile.max_concurrency, by_kv))


def best_operating_point(
    profile: ThroughputProfile,
    kv_capacity_tokens: float,
    prompt_tokens: float,
    output_tokens: float,
    target: LatencyTarget | None,
    tpot_margin: float = 1.0,
) -> OperatingPoint | None:
    """The highest-throughput point meeting ``target`` (TPOT scaled by ``tpot_margin``), or
    None if even one request at a time misses it. Without a target: the saturated point."""
    best: OperatingPoint | None = None
    for c in range(1, max_admitted(profile, kv_capacity_tokens, prompt_tokens, output_tokens) + 1):
        point = operating_point(profile, prompt_tokens, output_tokens, c)
        if target is not None and (
            point.tpot_ms > target.tpot_ms * tpot_margin or point.ttft_ms > target.ttft_ms
        ):
            continue
        if best is None or point.requests_per_s > best.requests_per_s:
            best = point
    return best
