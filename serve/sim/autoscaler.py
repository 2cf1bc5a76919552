"""Ray Serve's default autoscaling policy, for one simulated pool.

Mirrors ``ray.serve.autoscaling_policy.replica_queue_length_autoscaling_policy`` with its
default wrapper (Ray 2.60), so a simulated pool scales the way a deployed one would:

- the signal is the pool's ongoing requests (running + queued at replicas + queued at the
  router), averaged over ``look_back_s`` (Ray's ``look_back_period_s``, default 30 s);
- desired replicas = average ongoing / ``target_ongoing_requests``, moved towards by
  ``upscaling_factor`` / ``downscaling_factor`` of the gap (Ray's
  ``ceil(current + factor * (desired - current))``, at least one step down when the gap is
  a whole replica; 1.0, Ray's default, jumps straight there), within
  ``[min_replicas, max_replicas]``;
- a change is applied only after it has been wanted continuously for ``upscale_delay_s``
  (up) or ``downscale_delay_s`` (down; going from 1 to 0 uses the same delay);
- scale from zero is immediate: a pool with no running replica and a request waiting gets one.

Ray's control loop runs every 0.1 s; the simulator calls ``decide`` once per control period
(1 s by default), which changes when a decision lands by at most that period.

Frugal's ``AutoscalingConfig`` carries the settings a pool's config gives; the look-back
window and the scaling factors, which Ray has but Frugal's schema does not expose, are
``RayScalingOptions``.

``signal="work"`` replaces the queue-length signal with a work-rate one, the kind of policy
Ray accepts as a custom ``autoscaling_config.policy``: each request routed to the pool adds
the replica-seconds it costs at the pool's target operating point (``WorkModel``: its
prefill, plus its share of a replica decoding ``target_ongoing_requests`` streams), and the
raw replica count is that work per second over the look-back window, but never less than the
average ongoing requests over ``max_ongoing_requests`` (more means requests are waiting at
the router: the pool is saturated and the work routed to it understates the demand, the rest
having spilled to other pools). Everything after the raw count (factors, bounds, delays,
scale from zero) is the same. Queue length grows steeply
as a batching replica nears saturation, so the default signal overshoots and undershoots
around the target; the work rate does not depend on how many replicas run, so it does not.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from serve.config.schema import AutoscalingConfig

RAY_LOOK_BACK_PERIOD_S = 30.0


class RayScalingOptions(BaseModel):
    """Ray Serve autoscaling fields beyond Frugal's ``AutoscalingConfig`` (Ray's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    signal: Literal["ongoing", "work"] = Field(
        default="ongoing", description="ongoing: Ray's default queue-length policy; work: work-rate (module docstring)"
    )
    look_back_period_s: float = Field(default=RAY_LOOK_BACK_PERIOD_S, gt=0)
    upscaling_factor: float = Field(default=1.0, gt=0)
    downscaling_factor: float = Field(default=1.0, gt=0)


@dataclass(frozen=True)
class WorkModel:
    """Replica-seconds one request costs at a pool's target operating point:
    ``prompt_tokens * prefill_s_per_token + decode_s_per_request``."""

    prefill_s_per_token: float
    decode_s_per_request: float

    def work_s(self, prompt_tokens: int) -> float:
        return prompt_tokens * self.prefill_s_per_token + self.decode_s_per_request


class PoolAutoscaler:
    """Feed ``observe`` one sample per control period (and ``record_arrival`` per request
    routed to the pool), then ask ``decide`` for the target number of replicas."""

    def __init__(
        self,
        config: AutoscalingConfig,
        options: RayScalingOptions | None = None,
        work: WorkModel | None = None,
        max_ongoing_requests: float | None = None,
    ) -> None:
        self.config = config
        self.options = options or RayScalingOptions()
        if self.options.signal == "work" and work is None:
            raise ValueError('signal "work" needs a WorkModel')
        self.work = work
        self.max_ongoing_requests = max_ongoing_requests
        self.look_back_s = self.options.look_back_period_s
        self._samples: deque[tuple[float, float]] = deque()
        self._sum = 0.0
        self._arrivals: deque[tuple[float, float]] = deque()
        self._work_sum = 0.0
        self._wanted_since_s: float | None = None
        self._direction = 0  # +1 wanting up, -1 wanting down, 0 neither

    def observe(self, now_s: float, ongoing_requests: float) -> None:
        self._samples.append((now_s, ongoing_requests))
        self._sum += ongoing_requests
        while self._samples and self._samples[0][0] <= now_s - self.look_back_s:
            self._sum -= self._samples.popleft()[1]

    def record_arrival(self, now_s: float, prompt_tokens: int) -> None:
        """A request was routed to the pool (counted by the work signal only)."""
        if self.work is None or self.options.signal != "work":
            return
        w = self.work.work_s(prompt_tokens)
        self._arrivals.append((now_s, w))
        self._work_sum += w

    @property
    def average_ongoing(self) -> float:
        return self._sum / len(self._samples) if self._samples else 0.0

    def work_replicas(self, now_s: float) -> float:
        """Replica-seconds of work routed per second over the look-back window."""
        while self._arrivals and self._arrivals[0][0] <= now_s - self.look_back_s:
            self._work_sum -= self._arrivals.popleft()[1]
        return max(self._work_sum, 0.0) / self.look_back_s

    def _raw(self, now_s: float) -> float:
        if self.options.signal == "work":
            saturated = self.average_ongoing / self.max_ongoing_requests if self.max_ongoing_requests else 0.0
            return max(self.work_replicas(now_s), saturated)
        return self.average_ongoing / self.config.target_ongoing_requests

    def desired(self, running_replicas: int, target_replicas: int, waiting_now: int, now_s: float = 0.0) -> int:
        """What the policy asks for before delays: Ray's rule on the raw count, within bounds."""
        cfg = self.config
        if running_replicas == 0:
            if waiting_now > 0:
                return max(1, target_replicas, cfg.min_replicas)
            return max(target_replicas, cfg.min_replicas)
        raw = self._raw(now_s)
        opts = self.options
        factor = opts.upscaling_factor if raw > running_replicas else opts.downscaling_factor
        want = math.ceil(running_replicas + factor * (raw - running_replicas) - 1e-9)
        if math.ceil(raw - 1e-9) < running_replicas and want == running_replicas:
            want -= 1
        return min(max(want, cfg.min_replicas), cfg.max_replicas)

    def decide(self, now_s: float, running_replicas: int, target_replicas: int, waiting_now: int) -> int:
        """The new target number of replicas (running + starting) for this pool."""
        cfg = self.config
        desired = self.desired(running_replicas, target_replicas, waiting_now, now_s)
        if running_replicas == 0 and desired > target_replicas:
            self._reset()
            return min(desired, cfg.max_replicas)  # scale from zero: no delay
        if desired > target_replicas:
            delay_s = cfg.upscale_delay_s
            direction = 1
        elif desired < target_replicas:
            delay_s = cfg.downscale_delay_s
            direction = -1
            if target_replicas > 1:
                desired = max(1, desired)
        else:
            self._reset()
            return target_replicas
        if direction != self._direction or self._wanted_since_s is None:
            self._direction = direction
            self._wanted_since_s = now_s
        if now_s - self._wanted_since_s + 1e-6 >= delay_s:
            self._reset()
            return desired
        return target_replicas

    def _reset(self) -> None:
        self._direction = 0
        self._wanted_since_s = None
