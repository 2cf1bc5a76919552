"""The GPU example config, checked without a GPU, Ray or an engine: what serve/builder.py would
deploy (plan_deployments) and what vLLM would say about each pool's engine arguments
(serve/engine/args.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
from ray.serve import Application

import deployments
from serve.builder import plan_deployments
from serve.config.loader import DEFAULT_CONFIG_PATH, load_config, parse_config
from serve.config.schema import EngineArgsConfig, PoolConfig
from serve.engine.args import check_engine_args
from serve.engine.vllm_engine import VLLMEngine

GPU_CONFIG_PATH = DEFAULT_CONFIG_PATH.parent / "gpu-example.yaml"
SHIPPED_CONFIGS = [DEFAULT_CONFIG_PATH, GPU_CONFIG_PATH]


def _pools(path: Path) -> list[PoolConfig]:
    return [pool for model in load_config(path).models for pool in model.pools]


def _one_pool_config(accelerator_type: str) -> str:
    return f"""
models:
  - name: m
    pools:
      - name: odd-pool
        accelerator_type: {accelerator_type}
        params_b: 1.0
        engine: {{model: x}}
"""


def test_a_pool_the_cost_model_cannot_price_fails_with_the_pool_name() -> None:
    config = parse_config(_one_pool_config("A10G").replace("params_b: 1.0", "num_cpus: 1"))
    with pytest.raises(ValueError, match=r"pool 'odd-pool'.*params_b"):
        plan_deployments(config)


def test_gpu_example_loads() -> None:
    config = load_config(GPU_CONFIG_PATH)
    assert [m.task for m in config.models] == ["chat", "chat", "embed"]
    pools = {pool.name: pool for pool in _pools(GPU_CONFIG_PATH)}
    assert {pool.accelerator_type for pool in pools.values()} >= {"L4", "T4", "H100"}
    assert pools["llama-3.1-8b-h100-fp8"].engine.quantization == "fp8"
    # T4 (compute capability 7.5) has no bf16.
    assert all(p.engine.dtype == "float16" for p in pools.values() if p.accelerator_type == "T4")


def test_plan_has_one_engine_deployment_per_pool_with_its_gpus() -> None:
    config = load_config(GPU_CONFIG_PATH)
    plans = plan_deployments(config)
    expected = [(model.name, pool) for model in config.models for pool in model.pools]
    assert [(p.model_name, p.pool_name) for p in plans] == [(m, pool.name) for m, pool in expected]
    assert len({p.name for p in plans}) == len(plans)
    for plan, (_, pool) in zip(plans, expected, strict=True):
        assert plan.name == plan.options["name"] == f"engine-{pool.name}"
        actor = plan.options["ray_actor_options"]
        assert actor["num_gpus"] == pool.engine.tensor_parallel_size
        assert actor["accelerator_type"] == pool.accelerator_type
    # At least one pool spans several GPUs, so the check above is not only 1 == 1.
    assert max(pool.engine.tensor_parallel_size for _, pool in expected) > 1


def test_h100_pool_scales_to_zero() -> None:
    plans = {p.pool_name: p for p in plan_deployments(load_config(GPU_CONFIG_PATH))}
    options = plans["llama-3.1-8b-h100-fp8"].options
    assert options["ray_actor_options"]["accelerator_type"] == "H100"
    assert options["autoscaling_config"]["min_replicas"] == 0
    assert "num_replicas" not in options


def test_cpu_pools_are_planned_without_gpus() -> None:
    for plan in plan_deployments(load_config(DEFAULT_CONFIG_PATH)):
        actor = plan.options["ray_actor_options"]
        assert "num_gpus" not in actor and "accelerator_type" not in actor


@pytest.mark.parametrize(
    "pool", [pool for path in SHIPPED_CONFIGS for pool in _pools(path)], ids=lambda pool: pool.name
)
def test_shipped_engine_args_are_known_to_vllm(pool: PoolConfig) -> None:
    assert check_engine_args(pool.engine) == []


def test_unknown_extra_engine_arg_is_reported() -> None:
    problems = check_engine_args(EngineArgsConfig(model="m", extra={"no_such_engine_arg": 1, "block_size": 16}))
    assert len(problems) == 1
    assert "'no_such_engine_arg'" in problems[0]


def test_unknown_quantization_is_reported() -> None:
    problems = check_engine_args(EngineArgsConfig(model="m", quantization="int3_magic"))
    assert len(problems) == 1
    assert "'int3_magic'" in problems[0] and "awq" in problems[0]


def test_engine_refuses_args_vllm_does_not_know() -> None:
    engine = VLLMEngine("m", "chat", EngineArgsConfig(model="m", quantization="int3_magic", extra={"bogus": 1}))
    with pytest.raises(ValueError, match=r"'bogus'.*'int3_magic'"):
        engine._cli_args()


def test_unknown_accelerator_type_fails_with_the_pool_name() -> None:
    config = parse_config(_one_pool_config("H1000"))
    with pytest.raises(ValueError, match=r"pool 'odd-pool': unknown accelerator_type 'H1000'"):
        plan_deployments(config)


@pytest.mark.parametrize("accelerator_type", ["CPU", "A10G", "A100-80G"])
def test_cpu_and_ray_accelerator_types_are_accepted(accelerator_type: str) -> None:
    [plan] = plan_deployments(parse_config(_one_pool_config(accelerator_type)))
    assert plan.pool_name == "odd-pool"


def test_build_app_for_the_gpu_config_needs_no_ray() -> None:
    # The integration session may already run Ray in this process; building must not start it.
    was_running = ray.is_initialized()
    app = deployments.build_app({"config": str(GPU_CONFIG_PATH)})
    assert isinstance(app, Application)
    assert ray.is_initialized() == was_running
