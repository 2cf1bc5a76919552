"""serve/dispatch/state.py and the dispatch fields of the config: a pool's PoolState from
YAML."""

from __future__ import annotations

import pytest
import yaml

from serve.config.loader import ConfigError, parse_config
from serve.cost.pool_profile import pool_profile
from serve.dispatch.policies import CheapestWithinSlo
from serve.dispatch.state import pool_state_template
from serve.dispatch.types import LatencyTarget, RequestEstimate

CONFIG = """
dispatch:
  policy: cost
  options: {observed_weight: 0.3}
  load_poll_interval_s: 0.5
  latency_window_size: 128
models:
  - name: Llama-3.1-8B-Instruct
    latency_target: {ttft_ms: 1000, tpot_ms: 50}
    pools:
      - name: l4-spot
        accelerator_type: L4
        capacity: spot
        autoscaling: {min_replicas: 1, max_replicas: 4}
        engine: {model: meta-llama/Llama-3.1-8B-Instruct, quantization: fp8}
        latency_target: {ttft_ms: 2000, tpot_ms: 80, percentile: 90}
        schedule:
          - {days: [mon, tue, wed, thu, fri], start: "08:00", end: "20:00", timezone: Europe/Berlin}
      - name: h100-cheap-cloud
        accelerator_type: H100
        gpu: {usd_per_hour: 2.0}
        num_replicas: 2
        engine: {model: meta-llama/Llama-3.1-8B-Instruct, dtype: bfloat16}
      - name: v100-own
        accelerator_type: V100
        price_usd_per_hour: 0.9
        params_b: 8.03
        engine: {model: /models/my-llama}
        profile:
          source: measured by hand
          points:
            - {concurrency: 1, output_tokens_per_s: 60, ttft_ms: 80}
            - {concurrency: 16, output_tokens_per_s: 600, ttft_ms: 200}
"""


def _states() -> dict:
    config = parse_config(CONFIG)
    [model] = config.models
    return {pool.name: pool_state_template(model, pool) for pool in model.pools}


def test_dispatch_config_is_read() -> None:
    dispatch = parse_config(CONFIG).dispatch
    assert (dispatch.policy, dispatch.options, dispatch.load_poll_interval_s, dispatch.latency_window_size) == (
        "cost",
        {"observed_weight": 0.3},
        0.5,
        128,
    )
    assert parse_config("models: [{name: m, pools: [{name: p, engine: {model: x}}]}]").dispatch.policy == "cost"


def test_templates_carry_price_profile_target_and_bounds() -> None:
    states = _states()
    l4, h100, v100 = states["l4-spot"], states["h100-cheap-cloud"], states["v100-own"]
    assert l4.price_usd_per_hour == pytest.approx(0.28)  # 35% of $0.80, the spot estimate
    assert h100.price_usd_per_hour == 2.0
    assert v100.price_usd_per_hour == 0.9
    # Pool target overrides the model's; pools without one inherit it.
    assert l4.target == LatencyTarget(ttft_ms=2000, tpot_ms=80, percentile=90)
    assert h100.target == LatencyTarget(ttft_ms=1000, tpot_ms=50, percentile=95)
    assert (l4.min_replicas, l4.max_replicas, h100.min_replicas, h100.max_replicas) == (1, 4, 2, 2)
    assert v100.profile.source == "measured by hand"
    assert l4.profile.source.startswith("roofline: 1 x L4")
    for state in states.values():
        assert (state.model, state.replicas, state.running, state.waiting, state.healthy) == (
            "Llama-3.1-8B-Instruct",
            0,
            0,
            0,
            True,
        )
        assert state.observed_ttft_ms is None and state.cold


def test_templates_feed_a_policy() -> None:
    states = _states()
    for state in states.values():
        state.replicas = 1
    request = RequestEstimate(model="Llama-3.1-8B-Instruct", prompt_tokens=200, max_output_tokens=200)
    decision = CheapestWithinSlo().choose(request, list(states.values()))
    assert set(decision.pools) == set(states)
    assert decision.reason in ("cheapest-within-slo", "spill")
    assert decision.estimated_cost_usd > 0


def test_template_errors_name_the_pool() -> None:
    config = parse_config("models: [{name: m, pools: [{name: odd, accelerator_type: V100, engine: {model: x}}]}]")
    model = config.models[0]
    with pytest.raises(ValueError, match="pool 'odd'"):
        pool_state_template(model, model.pools[0])


@pytest.mark.parametrize(
    ("pool_fields", "message"),
    [
        ({"latency_target": {"ttft_ms": 0, "tpot_ms": 10}}, "latency_target.ttft_ms"),
        ({"latency_target": {"ttft_ms": 10, "tpot_ms": 10, "percentile": 101}}, "percentile"),
        ({"schedule": [{"start": "09:00"}]}, "schedule.0.end"),
        ({"price_usd_per_hour": -1}, "price_usd_per_hour"),
        ({"profile": {"points": []}}, "profile"),
        ({"params_b": 0}, "params_b"),
    ],
)
def test_bad_dispatch_fields_name_their_path(pool_fields: dict, message: str) -> None:
    data = {"models": [{"name": "m", "pools": [{"name": "p", "engine": {"model": "x"}, **pool_fields}]}]}
    with pytest.raises(ConfigError, match=message):
        parse_config(yaml.safe_dump(data))


def test_bad_policy_name_is_reported() -> None:
    with pytest.raises(ConfigError, match="unknown dispatch policy 'priciest'"):
        parse_config("dispatch: {policy: priciest}\nmodels: [{name: m, pools: [{name: p, engine: {model: x}}]}]")


def test_profile_path_in_yaml_is_inlined_from_the_config_dir(tmp_path) -> None:
    profile = _states()["v100-own"].profile
    (tmp_path / "v100.json").write_text(profile.model_dump_json())
    text = "models: [{name: m, pools: [{name: p, price_usd_per_hour: 1, profile: v100.json, engine: {model: x}}]}]"
    pool = parse_config(text, base_dir=tmp_path).models[0].pools[0]
    assert pool.profile == profile
    assert pool_profile(pool, "m") == profile
    with pytest.raises(ConfigError, match="v100.json' not found"):
        parse_config(text, base_dir=tmp_path / "elsewhere")
