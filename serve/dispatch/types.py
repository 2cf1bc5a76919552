"""What dispatch policies see and decide. Router and fleet simulator build the same objects,
so the policy code they run is the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

from serve.constants import DEFAULT_COLD_START_S
from serve.cost.profile import ThroughputProfile


@dataclass(frozen=True)
class LatencyTarget:
    """A pool's latency objective, at a percentile of requests (e.g. p95)."""

    ttft_ms: float
    tpot_ms: float
    percentile: float = 95.0


@dataclass(frozen=True)
class RequestEstimate:
    """What is known about a request before dispatch."""

    model: str
    prompt_tokens: int
    max_output_tokens: int
    stream: bool = False


@dataclass
class PoolState:
    """A pool as dispatch sees it at one instant.

    ``running`` and ``waiting`` are summed over the pool's ready replicas (as engines report
    them, plus requests this router has sent that engines have not reported yet).
    ``observed_*`` are recent latencies at the target's percentile, None until measured.
    ``target_ongoing_requests`` is the autoscaler's per-replica target (None without
    autoscaling): a pool that can still grow is priced at it (``serve.dispatch.predict``).
    """

    name: str
    model: str
    price_usd_per_hour: float  # per replica (all its devices)
    profile: ThroughputProfile
    target: LatencyTarget | None = None
    replicas: int = 1  # ready replicas
    starting: int = 0  # replicas being started (scale-up or scale from zero)
    min_replicas: int = 1
    max_replicas: int = 1
    running: int = 0
    waiting: int = 0
    observed_ttft_ms: float | None = None
    observed_tpot_ms: float | None = None
    healthy: bool = True
    cold_start_s: float = DEFAULT_COLD_START_S  # from scale-up to serving, when cold
    target_ongoing_requests: float | None = None

    @property
    def can_grow(self) -> bool:
        """The autoscaler may still add a replica."""
        return self.replicas + self.starting < self.max_replicas

    @property
    def in_flight(self) -> int:
        return self.running + self.waiting

    @property
    def cold(self) -> bool:
        """No replica can take a request now."""
        return self.replicas == 0


@dataclass(frozen=True)
class Decision:
    """A policy's answer: pools in order of preference (the first is used; the rest are the
    spill and retry order), why, and what the policy predicted for the chosen pool."""

    pools: tuple[str, ...]
    reason: str
    estimated_cost_usd: float = 0.0
    predicted_ttft_ms: float | None = None
    predicted_tpot_ms: float | None = None
    wake: tuple[str, ...] = field(default=())  # cold pools to start through Ray's autoscaler


class DispatchPolicy(Protocol):
    """Chooses where one request runs. Must be cheap: it runs on every request."""

    name: str

    def choose(self, request: RequestEstimate, pools: Sequence[PoolState]) -> Decision: ...
