"""A pool's throughput profile: what one replica delivers at each concurrency.

Decode on a batching engine is shared: at concurrency ``c`` a replica produces
``tokens_per_s(c)`` output tokens per second in total, so each stream sees
``tokens_per_s(c) / c`` and its time per output token is ``1000 * c / tokens_per_s(c)`` ms.
Profiles come from measuring a live pool (``scripts/profile_pool.py``) or, before that, from
a roofline estimate (``serve.cost.roofline``). Router and simulator read the same object.
"""

from __future__ import annotations

import bisect

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ProfilePoint(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(ge=1, description="requests decoding at once on one replica")
    output_tokens_per_s: float = Field(gt=0, description="aggregate over the batch, one replica")
    ttft_ms: float = Field(gt=0, description="time to first token at this concurrency, short prompt")


class ThroughputProfile(BaseModel):
    """Measured or estimated points, interpolated linearly; flat beyond the last point."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: list[ProfilePoint] = Field(min_length=1)
    prefill_tokens_per_s: float | None = Field(
        default=None, gt=0, description="prompt tokens per second; adds prompt_tokens / rate to TTFT"
    )
    source: str = Field(default="", description="how the points were obtained (command, or 'roofline')")

    @model_validator(mode="after")
    def _sorted_unique(self) -> ThroughputProfile:
        levels = [p.concurrency for p in self.points]
        if levels != sorted(set(levels)):
            raise ValueError("points must have strictly increasing concurrency")
        return self

    @property
    def max_concurrency(self) -> int:
        """The highest measured concurrency; beyond it a replica is taken as saturated."""
        return self.points[-1].concurrency

    def _interp(self, concurrency: float, attr: str) -> float:
        pts = self.points
        c = max(float(concurrency), 1.0)
        if c <= pts[0].concurrency:
            first = getattr(pts[0], attr)
            if attr == "output_tokens_per_s" and pts[0].concurrency > 1:
                # Below the first point, assume linear scaling from zero (batching is ~free there).
                return first * c / pts[0].concurrency
            return first
        if c >= pts[-1].concurrency:
            return getattr(pts[-1], attr)
        i = bisect.bisect_left([p.concurrency for p in pts], c)
        lo, hi = pts[i - 1], pts[i]
        w = (c - lo.concurrency) / (hi.concurrency - lo.concurrency)
        return getattr(lo, attr) * (1 - w) + getattr(hi, attr) * w

    def tokens_per_s(self, concurrency: float) -> float:
        """Aggregate output tokens/s of one replica running ``concurrency`` streams."""
        return self._interp(concurrency, "output_tokens_per_s")

    def tpot_ms(self, concurrency: float) -> float:
        """Time per output token one stream sees at this concurrency (at most max_concurrency
        streams decode at once; the rest wait)."""
        c = max(min(float(concurrency), self.max_concurrency), 1.0)
        return 1000.0 * c / self.tokens_per_s(c)

    def ttft_ms(self, concurrency: float, prompt_tokens: int = 0) -> float:
        base = self._interp(concurrency, "ttft_ms")
        if self.prefill_tokens_per_s and prompt_tokens > 0:
            base += 1000.0 * prompt_tokens / self.prefill_tokens_per_s
        return base
