"""Config for cost-aware dispatch: per-pool prices and hardware overrides, latency targets,
capacity schedules, model tiers and the dispatch policy.

These classes are fields of ``PoolConfig``, ``ModelConfig`` and ``FrugalConfig``
(``serve.config.schema``); like them they forbid unknown keys and are frozen.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from serve.constants import (
    DEFAULT_LATENCY_TARGET_PERCENTILE,
    DEFAULT_LATENCY_MAX_AGE_S,
    DEFAULT_LATENCY_WINDOW_SIZE,
    DEFAULT_LOAD_POLL_INTERVAL_S,
)
from serve.dispatch.policies import POLICIES, make_policy
from serve.dispatch.types import LatencyTarget

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GpuOverrideConfig(_Strict):
    """Per-device figures that replace the catalogue's (``serve.catalog.gpus``) for one pool.

    Any subset may be given. ``usd_per_hour`` is the price of one device for the pool's
    ``capacity`` (on-demand or spot); a pool on an accelerator the catalogue does not list
    must give all three figures, or a whole-replica ``price_usd_per_hour`` and a measured
    ``profile``.
    """

    memory_gb: Annotated[float, Field(gt=0)] | None = None
    bandwidth_gb_s: Annotated[float, Field(gt=0)] | None = None
    dense_fp16_tflops: Annotated[float, Field(gt=0)] | None = None
    usd_per_hour: Annotated[float, Field(ge=0)] | None = None


class LatencyTargetConfig(_Strict):
    """A latency objective: at ``percentile`` of requests, time to first token at most
    ``ttft_ms`` and time per output token at most ``tpot_ms``."""

    ttft_ms: Annotated[float, Field(gt=0)]
    tpot_ms: Annotated[float, Field(gt=0)]
    percentile: Annotated[float, Field(gt=0, le=100)] = DEFAULT_LATENCY_TARGET_PERCENTILE

    def to_target(self) -> LatencyTarget:
        return LatencyTarget(ttft_ms=self.ttft_ms, tpot_ms=self.tpot_ms, percentile=self.percentile)


class ScheduleWindowConfig(_Strict):
    """A weekly window during which a pool keeps its minimum replicas.

    ``days`` are the days the window *starts* on, in ``timezone``. ``start`` and ``end`` are
    local "HH:MM" times; ``end`` may be "24:00". A window whose ``end`` is before its
    ``start`` runs overnight into the next day (e.g. fri 22:00-06:00 covers Saturday until
    06:00). Windows are half-open: [start, end).
    """

    days: list[Weekday] = Field(default_factory=lambda: list(get_args(Weekday)), min_length=1)
    start: str = Field(description='local time "HH:MM"')
    end: str = Field(description='local time "HH:MM", or "24:00"')
    timezone: str = Field(default="UTC", description="IANA time zone name, e.g. Europe/Berlin")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.match(value):
            raise ValueError(f'{value!r} is not a time "HH:MM" between 00:00 and 24:00')
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'") from None
        return value

    @model_validator(mode="after")
    def _nonempty(self) -> ScheduleWindowConfig:
        if self.start == "24:00":
            raise ValueError("start must be before 24:00")
        if self.start == self.end:  # both zero-padded "HH:MM"
            raise ValueError("start and end are equal; use 00:00-24:00 for whole days")
        return self


class DispatchConfig(_Strict):
    """How the router chooses a pool for each request."""

    policy: str = Field(default="cost", description="a name in serve.dispatch.policies.POLICIES")
    options: dict[str, JsonValue] = Field(
        default_factory=dict, description="keyword arguments of the policy's constructor"
    )
    load_poll_interval_s: Annotated[float, Field(gt=0)] = DEFAULT_LOAD_POLL_INTERVAL_S
    latency_window_size: Annotated[int, Field(ge=1)] = DEFAULT_LATENCY_WINDOW_SIZE
    latency_max_age_s: Annotated[float, Field(gt=0)] | None = Field(
        default=DEFAULT_LATENCY_MAX_AGE_S,
        description="observed latencies older than this stop correcting predictions (null: never), so a pool "
        "avoided after a slow spell is tried again",
    )

    @model_validator(mode="after")
    def _known_policy(self) -> DispatchConfig:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown dispatch policy {self.policy!r}; known: {sorted(POLICIES)}")
        make_policy(self.policy, self.options)  # raises ValueError naming a bad option
        return self


TIER_NAMES: tuple[str, str, str] = ("small", "medium", "large")


class TiersConfig(_Strict):
    """Model tiers: a request for an alias (e.g. model "auto") goes to the small, medium or
    large model by the request's complexity score (``serve.dispatch.tiers``).

    A score below ``medium_from`` picks ``small``, below ``large_from`` ``medium``, else
    ``large``. The models must be chat models of this config (checked by ``FrugalConfig``).
    """

    aliases: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=lambda: ["auto"], min_length=1)
    small: str = Field(min_length=1)
    medium: str = Field(min_length=1)
    large: str = Field(min_length=1)
    medium_from: Annotated[float, Field(gt=0, le=1)] = 0.3
    large_from: Annotated[float, Field(gt=0, le=1)] = 0.7

    @model_validator(mode="after")
    def _ordered(self) -> TiersConfig:
        if self.medium_from > self.large_from:
            raise ValueError("medium_from must not exceed large_from")
        return self

    def models(self) -> dict[str, str]:
        """Tier name -> model name."""
        return {"small": self.small, "medium": self.medium, "large": self.large}

    def pick_tier(self, score: float) -> tuple[str, str]:
        """(tier name, model name) for a complexity score in [0, 1]."""
        if score >= self.large_from:
            return "large", self.large
        if score >= self.medium_from:
            return "medium", self.medium
        return "small", self.small
