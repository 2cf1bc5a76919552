"""Scheduled capacity: weekly windows during which a pool keeps its minimum replicas, and
what a schedule saves.

Outside every window a pool's minimum drops to 0, so an idle pool scales to zero off-hours.
Ray Serve applies this through ``serve.dispatch.scheduled_autoscaling``, which also holds the
window arithmetic (it must unpickle in Ray's controller without Frugal); this module is its
typed face for config objects. Window semantics are in ``ScheduleWindowConfig``: ``days`` are
the days a window starts on, in its own time zone; a window ending before it starts runs
overnight; windows are half-open [start, end).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from serve.config.dispatch import ScheduleWindowConfig
from serve.dispatch.scheduled_autoscaling import scheduled_floor, window_contains

MINUTES_PER_WEEK = 7 * 24 * 60
# A Monday, 00:00 UTC: the default week over which savings are counted.
REFERENCE_WEEK_START = datetime(2026, 1, 5, tzinfo=timezone.utc)


def in_window(window: ScheduleWindowConfig, when: datetime) -> bool:
    """Whether the aware datetime ``when`` falls inside ``window`` (in the window's zone).

    Raises ``ValueError`` for a naive datetime, whose instant is ambiguous."""
    return window_contains(window.days, window.start, window.end, window.timezone, when)


def scheduled_min_replicas(windows: Sequence[ScheduleWindowConfig], min_replicas: int, when: datetime) -> int:
    """``min_replicas`` inside any window (or always, without windows), else 0."""
    return scheduled_floor([w.model_dump() for w in windows], min_replicas, when)


@dataclass(frozen=True)
class ScheduleSavings:
    """Minimum-replica hours over one week, always on versus on the schedule."""

    always_on_replica_hours: float
    scheduled_replica_hours: float

    @property
    def saved_replica_hours(self) -> float:
        return self.always_on_replica_hours - self.scheduled_replica_hours

    @property
    def saved_fraction(self) -> float:
        if self.always_on_replica_hours == 0:
            return 0.0
        return self.saved_replica_hours / self.always_on_replica_hours


def replica_hours_saved(
    windows: Sequence[ScheduleWindowConfig],
    min_replicas: int,
    week_start: datetime = REFERENCE_WEEK_START,
) -> ScheduleSavings:
    """The replica-hours a schedule saves over the week from ``week_start``, counting the
    minimum replicas only (replicas added for load cost the same either way). Counted
    minute by minute, so time zones and their daylight-saving shifts in that week apply."""
    dumped = [w.model_dump() for w in windows]
    minutes_on = sum(scheduled_floor(dumped, 1, week_start + timedelta(minutes=m)) for m in range(MINUTES_PER_WEEK))
    return ScheduleSavings(
        always_on_replica_hours=min_replicas * MINUTES_PER_WEEK / 60,
        scheduled_replica_hours=min_replicas * minutes_on / 60,
    )
