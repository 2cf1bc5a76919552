"""serve/dispatch/schedule.py and scheduled_autoscaling.py: schedule windows, the Ray Serve
policy that applies them, and what a schedule saves."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from ray.serve._private.autoscaling_state import _resolve_policy_callable
from ray.serve._private.common import DeploymentID
from ray.serve._private.config import DeploymentConfig
from ray.serve.autoscaling_policy import _apply_autoscaling_config
from ray.serve.config import AutoscalingConfig as RayAutoscalingConfig
from ray.serve.config import AutoscalingContext

from serve.builder import engine_deployment_options
from serve.config.dispatch import ScheduleWindowConfig
from serve.config.schema import PoolConfig
from serve.dispatch.schedule import in_window, replica_hours_saved, scheduled_min_replicas
from serve.dispatch.scheduled_autoscaling import POLICY_IMPORT_PATH, ScheduledMinimumPolicy

BERLIN = ZoneInfo("Europe/Berlin")
WORKING_HOURS = ScheduleWindowConfig(days=["mon", "tue", "wed", "thu", "fri"], start="09:00", end="18:00")
OVERNIGHT = ScheduleWindowConfig(days=["fri"], start="22:00", end="06:00", timezone="America/New_York")


def _at(text: str, tz: ZoneInfo | timezone = timezone.utc) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


# 2026-01-05 is a Monday, 2026-01-09 a Friday.
@pytest.mark.parametrize(
    ("window", "when", "inside"),
    [
        (WORKING_HOURS, _at("2026-01-05T09:00"), True),  # start is inside
        (WORKING_HOURS, _at("2026-01-05T08:59:59"), False),
        (WORKING_HOURS, _at("2026-01-05T17:59"), True),
        (WORKING_HOURS, _at("2026-01-05T18:00"), False),  # end is outside
        (WORKING_HOURS, _at("2026-01-10T12:00"), False),  # Saturday
        # The window is in its own zone: 09:00 UTC is 10:00 in Berlin (winter, UTC+1).
        (WORKING_HOURS.model_copy(update={"timezone": "Europe/Berlin"}), _at("2026-01-05T08:30"), True),
        (WORKING_HOURS.model_copy(update={"timezone": "Europe/Berlin"}), _at("2026-01-05T17:30"), False),
        (WORKING_HOURS.model_copy(update={"timezone": "Europe/Berlin"}), _at("2026-01-05T09:30", BERLIN), True),
        # Summer time: 09:00 Berlin is 07:00 UTC.
        (WORKING_HOURS.model_copy(update={"timezone": "Europe/Berlin"}), _at("2026-07-06T07:00"), True),
        # Overnight, Friday 22:00 to Saturday 06:00 New York (UTC-5 in January).
        (OVERNIGHT, _at("2026-01-09T22:00", ZoneInfo("America/New_York")), True),
        (OVERNIGHT, _at("2026-01-10T03:00"), True),  # Friday 22:00 NY
        (OVERNIGHT, _at("2026-01-10T10:59"), True),  # Saturday 05:59 NY
        (OVERNIGHT, _at("2026-01-10T11:00"), False),  # Saturday 06:00 NY
        (OVERNIGHT, _at("2026-01-09T02:00"), False),  # Thursday 21:00 NY
        (OVERNIGHT, _at("2026-01-08T04:00"), False),  # Wednesday 23:00 NY: not a listed day
        (ScheduleWindowConfig(days=["sun"], start="00:00", end="24:00"), _at("2026-01-11T23:59"), True),
        (ScheduleWindowConfig(days=["sun"], start="00:00", end="24:00"), _at("2026-01-12T00:00"), False),
        # Sunday overnight wraps into Monday.
        (ScheduleWindowConfig(days=["sun"], start="20:00", end="02:00"), _at("2026-01-12T01:00"), True),
    ],
)
def test_in_window(window: ScheduleWindowConfig, when: datetime, inside: bool) -> None:
    assert in_window(window, when) is inside


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_window(WORKING_HOURS, datetime(2026, 1, 5, 10))


def test_scheduled_minimum() -> None:
    assert scheduled_min_replicas([WORKING_HOURS, OVERNIGHT], 3, _at("2026-01-05T10:00")) == 3
    assert scheduled_min_replicas([WORKING_HOURS, OVERNIGHT], 3, _at("2026-01-10T04:00")) == 3
    assert scheduled_min_replicas([WORKING_HOURS, OVERNIGHT], 3, _at("2026-01-05T20:00")) == 0
    assert scheduled_min_replicas([], 3, _at("2026-01-05T20:00")) == 3


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"start": "9:00", "end": "18:00"}, "HH:MM"),
        ({"start": "09:00", "end": "24:01"}, "HH:MM"),
        ({"start": "24:00", "end": "06:00"}, "before 24:00"),
        ({"start": "09:00", "end": "09:00"}, "equal"),
        ({"start": "09:00", "end": "18:00", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"start": "09:00", "end": "18:00", "days": ["monday"]}, "days"),
        ({"start": "09:00", "end": "18:00", "days": []}, "days"),
    ],
)
def test_bad_windows_are_rejected(window: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScheduleWindowConfig.model_validate(window)


# --- replica-hours saved -------------------------------------------------------------------


def test_working_hours_savings() -> None:
    savings = replica_hours_saved([WORKING_HOURS], min_replicas=2)
    assert savings.always_on_replica_hours == 2 * 168
    assert savings.scheduled_replica_hours == 2 * 45  # 5 days x 9 hours
    assert savings.saved_fraction == pytest.approx(123 / 168)  # 73.2%; the documents claim 60%


def test_savings_count_overnight_and_overlapping_windows_once() -> None:
    savings = replica_hours_saved([OVERNIGHT, OVERNIGHT], min_replicas=1)
    assert savings.scheduled_replica_hours == 8
    assert replica_hours_saved([], 1).saved_fraction == 0.0


# --- the Ray Serve policy ------------------------------------------------------------------


def _pool(**fields: object) -> PoolConfig:
    window = {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "18:00", "timezone": "Europe/Berlin"}
    data: dict = {"name": "p", "engine": {"model": "m"}, "schedule": [window]}
    data.update(fields)
    return PoolConfig.model_validate(data)


def _context(config: RayAutoscalingConfig, when: datetime, replicas: int, requests: float) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=DeploymentID(name="engine-p", app_name="default"),
        deployment_name="engine-p",
        app_name="default",
        current_num_replicas=replicas,
        target_num_replicas=replicas,
        running_replicas=[],
        total_num_requests=requests,
        total_queued_requests=0.0,
        aggregated_metrics={},
        raw_metrics={},
        capacity_adjusted_min_replicas=config.min_replicas,
        capacity_adjusted_max_replicas=config.max_replicas,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=when.timestamp(),
        config=config,
    )


def _ray_config(pool: PoolConfig) -> RayAutoscalingConfig:
    return RayAutoscalingConfig(**engine_deployment_options(pool)["autoscaling_config"])


def test_scheduled_pool_deploys_with_min_zero_and_the_policy() -> None:
    options = engine_deployment_options(_pool(autoscaling={"min_replicas": 2, "max_replicas": 6}))
    autoscaling = options["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (0, 6)
    assert autoscaling["policy"]["policy_function"] == POLICY_IMPORT_PATH
    assert autoscaling["policy"]["policy_kwargs"]["min_replicas"] == 2
    # A fixed-size pool becomes an autoscaling one pinned to its size inside the windows.
    fixed = engine_deployment_options(_pool(num_replicas=3))
    assert "num_replicas" not in fixed
    assert (fixed["autoscaling_config"]["min_replicas"], fixed["autoscaling_config"]["max_replicas"]) == (0, 3)
    assert fixed["autoscaling_config"]["policy"]["policy_kwargs"]["min_replicas"] == 3
    # Without a schedule nothing changes.
    plain = engine_deployment_options(_pool(schedule=[], num_replicas=3))
    assert plain["num_replicas"] == 3 and "autoscaling_config" not in plain


def test_schedule_needs_a_minimum_to_keep() -> None:
    with pytest.raises(ValidationError, match="min_replicas >= 1"):
        _pool(autoscaling={"min_replicas": 0, "max_replicas": 2})


@pytest.mark.parametrize(
    ("when", "replicas", "requests", "expected"),
    [
        (_at("2026-01-05T10:00", BERLIN), 0, 0.0, 2),  # window opens: scale from zero to the minimum
        (_at("2026-01-05T10:00", BERLIN), 2, 0.0, 2),  # idle in the window: keep the minimum
        (_at("2026-01-05T10:00", BERLIN), 2, 80.0, 5),  # busy: Ray's decision (80 / 16 per replica)
        (_at("2026-01-05T19:00", BERLIN), 2, 0.0, 0),  # after hours, idle: down to zero
        (_at("2026-01-05T19:00", BERLIN), 2, 32.0, 2),  # after hours, busy: Ray's decision
        (_at("2026-01-10T10:00", BERLIN), 1, 0.0, 0),  # Saturday
    ],
)
def test_policy_raises_rays_decision_to_the_scheduled_minimum(
    when: datetime, replicas: int, requests: float, expected: int
) -> None:
    config = _ray_config(_pool(autoscaling={"min_replicas": 2, "max_replicas": 6}))
    # As Ray 2.60 builds it (serve/_private/autoscaling_state.py): the pickled policy, the
    # class instantiated with policy_kwargs.
    policy = _resolve_policy_callable(config.policy)
    assert isinstance(policy, ScheduledMinimumPolicy)
    desired, _ = policy(_context(config, when, replicas, requests))
    assert desired == expected


def test_policy_under_rays_wrapper_applies_the_floor_after_the_delays() -> None:
    pool = _pool(autoscaling={"min_replicas": 2, "max_replicas": 6, "upscale_delay_s": 0, "downscale_delay_s": 0})
    config = _ray_config(pool)
    wrapped = _apply_autoscaling_config(_resolve_policy_callable(config.policy))
    assert wrapped(_context(config, _at("2026-01-05T10:00", BERLIN), 0, 0.0))[0] == 2
    # After hours Ray steps down to 1 first and only then to 0 (it scales to zero from 1 only).
    assert wrapped(_context(config, _at("2026-01-05T19:00", BERLIN), 2, 0.0))[0] == 1
    assert wrapped(_context(config, _at("2026-01-05T19:00", BERLIN), 1, 0.0))[0] == 0


def test_policy_kwargs_survive_rays_deployment_config_round_trip() -> None:
    config = _ray_config(_pool(num_replicas=2))
    restored = DeploymentConfig.from_proto_bytes(DeploymentConfig(autoscaling_config=config).to_proto_bytes())
    assert restored.autoscaling_config.policy.policy_function == POLICY_IMPORT_PATH
    assert restored.autoscaling_config.policy.policy_kwargs == config.policy.policy_kwargs


_UNPICKLE_WITHOUT_FRUGAL = """
import sys
import subprocess
import sys
from datetime import datetime, timezone

class BlockFrugal:
    def find_spec(self, name, path=None, target=None):
        if name == "serve" or name.startswith("serve."):
            raise ImportError(f"{name} is not installed here")

sys.meta_path.insert(0, BlockFrugal())
from ray import cloudpickle

policy_cls = cloudpickle.loads(sys.stdin.buffer.read())
policy = policy_cls(min_replicas=2, windows=[
    {"days": ["mon"], "start": "09:00", "end": "18:00", "timezone": "Europe/Berlin"}])
print(policy.floor(datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc)),
      policy.floor(datetime(2026, 1, 5, 20, 0, tzinfo=timezone.utc)))
"""


def test_policy_unpickles_where_frugal_is_not_installed() -> None:
    # Ray's controller unpickles the policy (pickled by value, as Ray does) in its own
    # environment, which need not have Frugal.
    config = _ray_config(_pool(num_replicas=2))
    result = subprocess.run(
        [sys.executable, "-c", _UNPICKLE_WITHOUT_FRUGAL],
        input=config.policy.get_serialized_policy_def(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert result.stdout.decode().split() == ["2", "0"]
