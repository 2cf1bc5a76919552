"""serve/sim/autoscaler.py: Ray Serve's queue-length autoscaling, tick by tick."""

from __future__ import annotations

from serve.config.schema import AutoscalingConfig
from serve.sim.autoscaler import PoolAutoscaler, RayScalingOptions


def _config(**kw: float) -> AutoscalingConfig:
    base = dict(min_replicas=1, max_replicas=10, target_ongoing_requests=2, upscale_delay_s=30, downscale_delay_s=600)
    return AutoscalingConfig(**{**base, **kw})  # type: ignore[arg-type]


def test_scales_up_only_after_the_delay() -> None:
    scaler = PoolAutoscaler(_config())
    decisions = []
    for t in range(40):
        scaler.observe(t, 9.0)  # 9 ongoing / target 2 -> 5 replicas
        decisions.append(scaler.decide(t, running_replicas=1, target_replicas=1, waiting_now=0))
    assert decisions[:30] == [1] * 30
    assert decisions[30] == 5


def test_average_over_look_back_window() -> None:
    scaler = PoolAutoscaler(_config(), RayScalingOptions(look_back_period_s=10))
    for t in range(10):
        scaler.observe(t, 0.0 if t < 5 else 8.0)
    assert scaler.average_ongoing == 4.0
    assert scaler.desired(running_replicas=1, target_replicas=1, waiting_now=0) == 2


def test_interrupted_wish_restarts_the_delay() -> None:
    scaler = PoolAutoscaler(_config())
    for t in range(20):
        scaler.observe(t, 9.0)
        assert scaler.decide(t, 1, 1, 0) == 1
    scaler = PoolAutoscaler(_config(), RayScalingOptions(look_back_period_s=1))
    for t in range(20):
        scaler.observe(t, 9.0)
        scaler.decide(t, 1, 1, 0)
    scaler.observe(20, 2.0)  # back at target: the wish is dropped
    assert scaler.decide(20, 1, 1, 0) == 1
    for t in range(21, 50):
        scaler.observe(t, 9.0)
        assert scaler.decide(t, 1, 1, 0) == 1  # 29 s of wanting, not 30


def test_downscale_delay_factor_and_floor() -> None:
    options = RayScalingOptions(look_back_period_s=1, downscaling_factor=0.5)
    scaler = PoolAutoscaler(_config(downscale_delay_s=60), options)
    out = []
    for t in range(61):
        scaler.observe(t, 2.0)  # 1 replica wanted, 9 running
        out.append(scaler.decide(t, running_replicas=9, target_replicas=9, waiting_now=0))
    assert out[59] == 9 and out[60] == 5  # ceil(9 + 0.5 * (1 - 9))


def test_scale_from_zero_is_immediate_and_to_zero_waits() -> None:
    scaler = PoolAutoscaler(_config(min_replicas=0, downscale_delay_s=100))
    scaler.observe(0, 0.0)
    assert scaler.decide(0, running_replicas=0, target_replicas=0, waiting_now=0) == 0
    assert scaler.decide(1, running_replicas=0, target_replicas=0, waiting_now=3) == 1
    scaler = PoolAutoscaler(_config(min_replicas=0, downscale_delay_s=100), RayScalingOptions(look_back_period_s=1))
    decisions = []
    for t in range(101):
        scaler.observe(t, 0.0)
        decisions.append(scaler.decide(t, running_replicas=1, target_replicas=1, waiting_now=0))
    assert decisions[99] == 1 and decisions[100] == 0


def test_bounds() -> None:
    scaler = PoolAutoscaler(_config(max_replicas=3), RayScalingOptions(look_back_period_s=1))
    scaler.observe(0, 100.0)
    assert scaler.desired(running_replicas=1, target_replicas=1, waiting_now=0) == 3


def test_work_signal_sizes_from_routed_work() -> None:
    from serve.sim.autoscaler import WorkModel

    work = WorkModel(prefill_s_per_token=0.001, decode_s_per_request=1.5)  # 100-token prompt: 1.6 s
    scaler = PoolAutoscaler(_config(), RayScalingOptions(signal="work", look_back_period_s=10), work, 8)
    for i in range(50):  # 5 requests/s for 10 s: 8 replica-seconds per second
        scaler.record_arrival(i * 0.2, 100)
    scaler.observe(9.9, 4.0)  # few ongoing: the work rate decides
    assert scaler.desired(running_replicas=2, target_replicas=2, waiting_now=0, now_s=9.9) == 8
    scaler.observe(10.0, 100.0)  # mean ongoing 52, over 8 per replica: 6.5 replicas' worth
    assert scaler.desired(running_replicas=2, target_replicas=2, waiting_now=0, now_s=10.0) == 8  # work still larger
    # The routed work has left the window; the saturation floor (52 / 8 = 6.5) remains.
    assert scaler.desired(running_replicas=2, target_replicas=2, waiting_now=0, now_s=30.0) == 7


def test_work_signal_needs_a_model() -> None:
    import pytest

    with pytest.raises(ValueError):
        PoolAutoscaler(_config(), RayScalingOptions(signal="work"))
