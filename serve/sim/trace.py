"""Request traces: who asks what, and when.

A trace is three things per request: an arrival time, a prompt length and an output length
(plus the ``max_tokens`` cap the client sent, which is all the router knows of the output
before the answer ends). Lengths come from a *workload* (a mix of request classes, each a
pair of clipped log-normal length distributions); arrival times from an *arrival process*
(Poisson, or bursty on/off-modulated Poisson), optionally ramped up from zero so that an
autoscaled fleet can follow. Everything is vectorised with numpy and seeded, so a trace is a
pure function of its arguments.

The built-in workloads (``WORKLOADS``), lengths in tokens:

- ``chat`` (short chat): prompt median 200 (log-normal sigma 0.9, clipped to 8..2048),
  output median 180 (sigma 0.8, clipped to 4..1024), ``max_tokens`` 1024. Shaped like public
  chat traces (ShareGPT, Chatbot Arena): short questions, answers of a few hundred tokens.
- ``docs`` (long documents): prompt median 5000 (sigma 0.5, clipped to 1000..14000), output
  median 250 (sigma 0.6, clipped to 16..1024), ``max_tokens`` 1024. Summaries of and
  questions over papers and reports (Mélange's long-context set is arXiv summarisation).
- ``mix``: 80% of requests from ``chat`` and 20% from ``docs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class LengthDist(BaseModel):
    """A clipped log-normal token count: ``clip(round(median * exp(sigma * N(0,1))), lo, hi)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    median: float = Field(gt=0)
    sigma: float = Field(ge=0)
    lo: int = Field(ge=1)
    hi: int = Field(ge=1)

    @model_validator(mode="after")
    def _bounds(self) -> LengthDist:
        if self.lo > self.hi:
            raise ValueError("lo must not exceed hi")
        return self

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        raw = self.median * np.exp(self.sigma * rng.standard_normal(size))
        return np.clip(np.rint(raw), self.lo, self.hi).astype(np.int32)


class RequestClass(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    share: float = Field(gt=0, le=1, description="fraction of the workload's requests")
    prompt: LengthDist
    output: LengthDist
    max_output_tokens: int = Field(gt=0, description="the max_tokens clients send")


class Workload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    classes: list[RequestClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _shares(self) -> Workload:
        total = sum(c.share for c in self.classes)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"class shares must sum to 1, got {total}")
        return self


SHORT_CHAT = RequestClass(
    name="chat",
    share=1.0,
    prompt=LengthDist(median=200, sigma=0.9, lo=8, hi=2048),
    output=LengthDist(median=180, sigma=0.8, lo=4, hi=1024),
    max_output_tokens=1024,
)
LONG_DOCS = RequestClass(
    name="docs",
    share=1.0,
    prompt=LengthDist(median=5000, sigma=0.5, lo=1000, hi=14000),
    output=LengthDist(median=250, sigma=0.6, lo=16, hi=1024),
    max_output_tokens=1024,
)
MIX_DOCS_SHARE = 0.2

WORKLOADS: dict[str, Workload] = {
    "chat": Workload(name="chat", classes=[SHORT_CHAT]),
    "docs": Workload(name="docs", classes=[LONG_DOCS]),
    "mix": Workload(
        name="mix",
        classes=[
            SHORT_CHAT.model_copy(update={"share": 1 - MIX_DOCS_SHARE}),
            LONG_DOCS.model_copy(update={"share": MIX_DOCS_SHARE}),
        ],
    ),
}


class ArrivalProcess(BaseModel):
    """Arrivals at ``rate_per_s`` on average.

    ``poisson``: a Poisson process. ``bursty``: on/off-modulated Poisson; "on" periods
    (exponential, mean ``on_s``) run at ``burst_factor * rate``, "off" periods (mean
    ``off_s``) at the rate that keeps the long-run mean at ``rate_per_s``. With ``ramp_s`` > 0
    the rate rises linearly from zero over the first ``ramp_s`` seconds (traffic arriving in
    the morning), which lets an autoscaled fleet grow with it instead of starting overloaded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["poisson", "bursty"] = "poisson"
    rate_per_s: float = Field(gt=0)
    burst_factor: float = Field(default=2.0, ge=1)
    on_s: float = Field(default=120.0, gt=0)
    off_s: float = Field(default=240.0, gt=0)
    ramp_s: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _feasible(self) -> ArrivalProcess:
        if self.kind == "bursty" and self.burst_factor * self.on_fraction > 1 + 1e-9:
            raise ValueError("burst_factor * on_s / (on_s + off_s) must be <= 1 (the off rate would be negative)")
        return self

    @property
    def on_fraction(self) -> float:
        return self.on_s / (self.on_s + self.off_s)

    @property
    def off_rate_per_s(self) -> float:
        return self.rate_per_s * (1 - self.burst_factor * self.on_fraction) / (1 - self.on_fraction)

    @property
    def peak_rate_per_s(self) -> float:
        return self.rate_per_s * (self.burst_factor if self.kind == "bursty" else 1.0)

    def expected_count(self, duration_s: float) -> float:
        """Expected arrivals in [0, duration_s) (bursts average out)."""
        ramp = min(self.ramp_s, duration_s)
        ramp_area = ramp * ramp / (2 * self.ramp_s) if self.ramp_s > 0 else 0.0
        return self.rate_per_s * (ramp_area + max(duration_s - self.ramp_s, 0.0))

    def duration_for(self, num_requests: int) -> float:
        """The duration whose expected count is ``num_requests``."""
        steady_s = num_requests / self.rate_per_s
        if steady_s >= self.ramp_s / 2:
            return steady_s + self.ramp_s / 2
        return float(np.sqrt(2 * self.ramp_s * steady_s))

    def sample(self, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """Sorted arrival times in [0, duration_s), by thinning a Poisson process at the peak rate."""
        peak = self.peak_rate_per_s
        count = rng.poisson(peak * duration_s)
        times = np.sort(rng.uniform(0.0, duration_s, count))
        keep = rng.uniform(0.0, peak, count) < self.rate_at(times, rng, duration_s)
        return times[keep]

    def rate_at(self, times: np.ndarray, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        """The instantaneous rate at sorted ``times``; bursty periods are drawn from ``rng``."""
        rate = np.full(times.shape, self.rate_per_s)
        if self.kind == "bursty":
            on = self._on_mask(times, rng, duration_s)
            rate = np.where(on, self.rate_per_s * self.burst_factor, self.off_rate_per_s)
        if self.ramp_s > 0:
            rate = rate * np.minimum(times / self.ramp_s, 1.0)
        return rate

    def _on_mask(self, times: np.ndarray, rng: np.random.Generator, duration_s: float) -> np.ndarray:
        mean_cycle_s = self.on_s + self.off_s
        num_cycles = int(duration_s / mean_cycle_s * 2) + 8
        on = rng.exponential(self.on_s, num_cycles)
        off = rng.exponential(self.off_s, num_cycles)
        # Start at a random phase: an off period of random length, then on, off, on, ...
        lengths = np.empty(2 * num_cycles + 1)
        lengths[0] = rng.uniform(0, self.off_s)
        lengths[1::2] = on
        lengths[2::2] = off
        edges = np.cumsum(lengths)
        period = np.searchsorted(edges, times, side="right")
        return period % 2 == 1


@dataclass(frozen=True)
class Trace:
    """One request per index, sorted by arrival. Arrays are numpy (float64 seconds, int32 tokens)."""

    workload: str
    arrivals: ArrivalProcess
    duration_s: float
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray
    max_output_tokens: np.ndarray
    request_class: np.ndarray  # index into the workload's classes
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def make_trace(
    workload: Workload,
    arrivals: ArrivalProcess,
    *,
    duration_s: float | None = None,
    num_requests: int | None = None,
    seed: int = 0,
) -> Trace:
    """A seeded trace over ``duration_s`` seconds, or of exactly ``num_requests`` requests
    (the duration is then the expected time to that many arrivals, extended if the draw falls
    short). Exactly one of the two must be given."""
    if (duration_s is None) == (num_requests is None):
        raise ValueError("give exactly one of duration_s and num_requests")
    rng = np.random.default_rng(seed)
    if num_requests is not None:
        duration_s = arrivals.duration_for(num_requests)
        times = arrivals.sample(rng, duration_s * 1.05 + 60.0)
        while len(times) < num_requests:
            duration_s *= 1.5
            times = arrivals.sample(rng, duration_s)
        times = times[:num_requests]
        duration_s = float(times[-1]) if num_requests else 0.0
    else:
        assert duration_s is not None
        times = arrivals.sample(rng, duration_s)
    n = len(times)
    shares = np.array([c.share for c in workload.classes])
    cls = rng.choice(len(shares), size=n, p=shares / shares.sum()).astype(np.int8)
    prompt = np.empty(n, dtype=np.int32)
    output = np.empty(n, dtype=np.int32)
    cap = np.empty(n, dtype=np.int32)
    for i, rc in enumerate(workload.classes):
        idx = np.flatnonzero(cls == i)
        prompt[idx] = rc.prompt.sample(rng, idx.size)
        output[idx] = np.minimum(rc.output.sample(rng, idx.size), rc.max_output_tokens)
        cap[idx] = rc.max_output_tokens
    return Trace(
        workload=workload.name,
        arrivals=arrivals,
        duration_s=float(duration_s),
        arrival_s=times.astype(np.float64),
        prompt_tokens=prompt,
        output_tokens=output,
        max_output_tokens=cap,
        request_class=cls,
        class_names=tuple(c.name for c in workload.classes),
    )
