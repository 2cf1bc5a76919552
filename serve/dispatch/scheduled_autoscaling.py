"""A Ray Serve autoscaling policy that keeps a pool's minimum replicas only inside its
schedule windows, and the window arithmetic it needs.

Ray Serve (2.60) clips a policy's decision to the deployment's ``min_replicas`` and
``max_replicas``, so a scheduled pool is deployed with ``min_replicas: 0`` and this policy
raises Ray's default decision (``replica_queue_length_autoscaling_policy``) to the scheduled
minimum: the configured minimum inside a window, 0 outside. Ray's wrapper around custom
policies still applies the upscale/downscale delays and the cold-start fast path (and scales
to zero only from one replica, so an idle pool steps down to 1, then 0).

Ray imports the policy by path, pickles it by value, instantiates the class once in the
Serve controller with ``AutoscalingPolicy.policy_kwargs`` (JSON values) and calls it on every
control-loop tick with an ``AutoscalingContext`` (``ctx.current_time`` is the tick's wall
clock). Because the controller may not have Frugal installed, this module imports only the
standard library and Ray: the policy unpickles wherever Ray runs.

Windows are mappings with the fields of ``ScheduleWindowConfig`` (validated there): ``days``
(the days a window starts on, "mon".."sun"), ``start`` and ``end`` ("HH:MM", end may be
"24:00"; end before start runs overnight into the next day) and ``timezone`` (IANA). Windows
are half-open, [start, end).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingContext

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def clock_minutes(clock: str) -> int:
    """Minutes since midnight of an "HH:MM" time ("24:00" is 1440)."""
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def window_contains(days: Collection[str], start: str, end: str, tz: str, when: datetime) -> bool:
    """Whether the aware datetime ``when`` falls in the weekly window (see the module
    docstring). Raises ``ValueError`` for a naive datetime, whose instant is ambiguous."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("when must be timezone-aware")
    local = when.astimezone(ZoneInfo(tz))
    day = local.weekday()
    minute = local.hour * 60 + local.minute + local.second / 60
    day_numbers = {WEEKDAYS.index(d) for d in days}
    start_min, end_min = clock_minutes(start), clock_minutes(end)
    if start_min < end_min:
        return day in day_numbers and start_min <= minute < end_min
    # Overnight: from start to midnight on a listed day, then until end on the next day.
    return (day in day_numbers and minute >= start_min) or ((day - 1) % 7 in day_numbers and minute < end_min)


def scheduled_floor(windows: Sequence[Mapping[str, Any]], min_replicas: int, when: datetime) -> int:
    """``min_replicas`` inside any window (or always, without windows), else 0."""
    inside = not windows or any(
        window_contains(w["days"], w["start"], w["end"], w["timezone"], when) for w in windows
    )
    return min_replicas if inside else 0


class ScheduledMinimumPolicy:
    """Ray's default autoscaling decision, never below the scheduled minimum.

    ``windows`` are window mappings; ``min_replicas`` is the minimum inside them.
    """

    def __init__(self, min_replicas: int, windows: Sequence[Mapping[str, Any]]) -> None:
        if min_replicas < 0:
            raise ValueError("min_replicas must not be negative")
        self.min_replicas = min_replicas
        self.windows = [dict(w) for w in windows]
        # Fail at deployment, not on the first tick, if a window is malformed.
        for w in self.windows:
            window_contains(w["days"], w["start"], w["end"], w["timezone"], datetime.now(timezone.utc))

    def floor(self, when: datetime) -> int:
        """The scheduled minimum at ``when``."""
        return scheduled_floor(self.windows, self.min_replicas, when)

    def __call__(self, ctx: AutoscalingContext) -> tuple[float, dict[str, Any]]:
        desired, state = replica_queue_length_autoscaling_policy(ctx)
        now_s = ctx.current_time if ctx.current_time is not None else time.time()
        floor = min(self.floor(datetime.fromtimestamp(now_s, tz=timezone.utc)), ctx.capacity_adjusted_max_replicas)
        return max(desired, floor), state


POLICY_IMPORT_PATH = f"{ScheduledMinimumPolicy.__module__}:{ScheduledMinimumPolicy.__qualname__}"


def scheduled_policy_option(windows: Sequence[Mapping[str, Any]], min_replicas: int) -> dict[str, Any]:
    """The ``policy`` entry of a Ray Serve ``autoscaling_config`` for a scheduled pool;
    ``windows`` as JSON mappings (``ScheduleWindowConfig.model_dump()``)."""
    return {
        "policy_function": POLICY_IMPORT_PATH,
        "policy_kwargs": {"min_replicas": min_replicas, "windows": [dict(w) for w in windows]},
    }
