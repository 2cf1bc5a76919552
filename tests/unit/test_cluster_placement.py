"""deployments/gpu-production.yaml on cluster.yaml, without Ray, an engine or a GPU: each pool's
deployment plan (serve/builder.py), its memory (serve/cluster/memory.py) and its placement on
the node types (serve/cluster/placement.py); and configs that must fail, naming the pool."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml
from ray.serve import Application

import deployments
from serve.builder import plan_deployments
from serve.cluster.memory import BYTES_PER_GB, RUNTIME_RESERVE_BYTES_PER_DEVICE, check_memory, pool_memory_fit
from serve.cluster.placement import check_placement, pack
from serve.cluster.spec import ClusterSpec, load_cluster, parse_cluster
from serve.cluster.validate import check_frugal_config
from serve.config.loader import load_config, parse_config
from serve.config.schema import PoolConfig

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PATH = REPO / "cluster.yaml"
PRODUCTION_PATH = REPO / "deployments" / "gpu-production.yaml"


@pytest.fixture(scope="module")
def cluster() -> ClusterSpec:
    return load_cluster(CLUSTER_PATH)


def _pools(path: Path) -> dict[str, PoolConfig]:
    return {pool.name: pool for model in load_config(path).models for pool in model.pools}


def _one_pool(pool_yaml: str, model: str = "m") -> str:
    body = "\n".join("        " + line for line in pool_yaml.strip().splitlines())
    return f"models:\n  - name: {model}\n    pools:\n      - name: odd-pool\n{body}\n"


def test_production_config_passes_every_check(cluster: ClusterSpec) -> None:
    config = load_config(PRODUCTION_PATH)
    assert check_frugal_config(config, cluster) == []


def test_production_plan_gives_each_replica_its_gpus_and_accelerator() -> None:
    config = load_config(PRODUCTION_PATH)
    pools = _pools(PRODUCTION_PATH)
    plans = plan_deployments(config)
    assert [p.pool_name for p in plans] == list(pools)
    for plan in plans:
        pool = pools[plan.pool_name]
        actor = plan.options["ray_actor_options"]
        assert actor["num_gpus"] == pool.engine.tensor_parallel_size
        assert actor["accelerator_type"] == pool.accelerator_type
    by_pool = {p.pool_name: p.options["ray_actor_options"] for p in plans}
    h100, a100 = by_pool["llama70b-h100-fp8-tp4"], by_pool["llama70b-a100-fp8-tp4"]
    assert (h100["num_gpus"], h100["accelerator_type"]) == (4, "H100")
    assert (a100["num_gpus"], a100["accelerator_type"]) == (4, "A100-40G")
    assert {a["accelerator_type"] for a in by_pool.values()} == {"T4", "L4", "A10G", "H100", "A100-40G"}


def test_expensive_pools_scale_to_zero_and_cheap_ones_stay_on() -> None:
    plans = {p.pool_name: p.options for p in plan_deployments(load_config(PRODUCTION_PATH))}
    for name in ("llama8b-h100-fp8", "llama70b-h100-fp8-tp4", "llama70b-a100-fp8-tp4", "llama8b-a10g-bf16"):
        scaling = plans[name]["autoscaling_config"]
        assert (scaling["min_replicas"], scaling["initial_replicas"]) == (0, 0), name
    for name in ("qwen1.5b-t4-awq", "llama8b-l4-fp8"):
        assert plans[name]["autoscaling_config"]["min_replicas"] == 1, name


def test_production_has_latency_targets_and_spot_cheap_pools() -> None:
    config = load_config(PRODUCTION_PATH)
    chat = [m for m in config.models if m.task == "chat"]
    assert all(m.latency_target is not None for m in chat)
    pools = _pools(PRODUCTION_PATH)
    assert {p.capacity for p in pools.values() if p.accelerator_type in ("T4", "L4", "A10G")} == {"spot"}
    assert {p.capacity for p in pools.values() if p.accelerator_type in ("H100", "A100-40G")} == {"on_demand"}


def test_build_app_for_the_production_config_needs_no_ray() -> None:
    was_running = ray.is_initialized()
    app = deployments.build_app({"config": str(PRODUCTION_PATH), "revision": 1})
    assert isinstance(app, Application)
    assert ray.is_initialized() == was_running


def test_memory_rule_arithmetic_for_70b_fp8_on_four_h100s() -> None:
    fit = pool_memory_fit(_pools(PRODUCTION_PATH)["llama70b-h100-fp8-tp4"], "Llama-3.3-70B-Instruct")
    assert fit.budget_bytes == pytest.approx(0.90 * 80e9)
    assert fit.weight_bytes == pytest.approx(70.6e9 * 1.0 / 4)
    # 80 layers, 8 KV heads / 4 ranks = 2 per GPU, head_dim 128, K and V, fp8 (1 byte).
    assert fit.kv_bytes_per_token == pytest.approx(2 * 80 * 2 * 128 * 1)
    assert fit.kv_room_bytes == pytest.approx(72e9 - 17.65e9 - RUNTIME_RESERVE_BYTES_PER_DEVICE)
    assert fit.fits


def test_kv_heads_are_replicated_when_tensor_parallelism_exceeds_them() -> None:
    # Qwen2.5-1.5B has 2 KV heads: at TP 4 each GPU still holds one.
    config = parse_config(
        _one_pool(
            """
accelerator_type: L4
engine: {model: Qwen/Qwen2.5-1.5B-Instruct, dtype: float16, tensor_parallel_size: 4, max_model_len: 4096}
""",
            model="Qwen2.5-1.5B-Instruct",
        )
    )
    fit = pool_memory_fit(config.models[0].pools[0], "Qwen2.5-1.5B-Instruct")
    assert fit.kv_bytes_per_token == pytest.approx(2 * 28 * 1 * 128 * 2)


def test_too_little_gpu_memory_fails_naming_the_pool() -> None:
    # 70B in FP8 over 2 x A100-40G: 35.3 GB of weights per GPU, over the 36 GB budget with the reserve.
    config = parse_config(
        _one_pool(
            """
accelerator_type: A100-40G
engine: {model: meta-llama/Llama-3.3-70B-Instruct, quantization: fp8, tensor_parallel_size: 2, max_model_len: 8192}
"""
        )
    )
    [problem] = check_memory(config)
    assert problem.startswith("pool 'odd-pool': too little GPU memory for 'meta-llama/Llama-3.3-70B-Instruct'")
    assert "weights 35.30 GB at tensor_parallel_size 2" in problem and "budget is 36.00 GB" in problem


def test_a_context_too_long_for_the_kv_room_fails() -> None:
    # 8B bf16 on an A10G: 4.0 GB of KV room holds ~30k tokens, not one 64k sequence.
    config = parse_config(
        _one_pool(
            """
accelerator_type: A10G
engine: {model: meta-llama/Llama-3.1-8B-Instruct, dtype: bfloat16, max_model_len: 65536}
"""
        )
    )
    [problem] = check_memory(config)
    assert "pool 'odd-pool': too little GPU memory" in problem and "KV for one 65536-token sequence 8.59 GB" in problem


def test_a_model_of_unknown_size_cannot_be_checked_unless_params_b_is_given() -> None:
    unknown = _one_pool("accelerator_type: L4\nengine: {model: acme/secret-13b}")
    [problem] = check_memory(parse_config(unknown))
    assert problem.startswith("pool 'odd-pool': model 'acme/secret-13b' is not in the catalogue")
    sized = parse_config(unknown.replace("accelerator_type: L4", "accelerator_type: L4\n        params_b: 13"))
    [problem] = check_memory(sized)  # 26 GB of fp16 weights on a 24 GB L4
    assert "too little GPU memory" in problem and "weights 26.00 GB" in problem


def test_a_gpu_memory_override_is_used() -> None:
    text = _one_pool("accelerator_type: L4\nparams_b: 13\nengine: {model: acme/secret-13b}")
    bigger = parse_config(text.replace("params_b: 13", "params_b: 13\n        gpu: {memory_gb: 48}"))
    assert check_memory(bigger) == []
    fit = pool_memory_fit(bigger.models[0].pools[0], "m")
    assert fit.budget_bytes / BYTES_PER_GB == pytest.approx(0.9 * 48)


def test_a_pool_on_a_gpu_no_node_type_provides_fails_naming_the_pool(cluster: ClusterSpec) -> None:
    config = parse_config(_one_pool("accelerator_type: L40S\nparams_b: 1\nengine: {model: x}"))
    problems = check_placement(config, cluster)
    assert problems == [
        "pool 'odd-pool': no node type provides accelerator_type 'L40S' (the cluster provides "
        "['A100', 'A100-40G', 'A100-80G', 'A10G', 'H100', 'L4', 'T4'])"
    ]


def test_tensor_parallelism_beyond_the_node_fails_naming_the_pool(cluster: ClusterSpec) -> None:
    config = parse_config(
        _one_pool(
            "accelerator_type: A10G\ncapacity: spot\n"
            "engine: {model: meta-llama/Llama-3.1-8B-Instruct, tensor_parallel_size: 2}"
        )
    )
    [problem] = check_placement(config, cluster)
    assert problem.startswith("pool 'odd-pool': one replica needs 2 A10G GPUs (tensor_parallel_size) and 1.0 CPUs")
    assert "gpu-a10g-spot: 1 GPUs, 4 CPUs" in problem


def test_pre_ampere_gpus_refuse_bf16_and_marlin(cluster: ClusterSpec) -> None:
    config = parse_config(
        _one_pool(
            "accelerator_type: T4\ncapacity: spot\n"
            "engine: {model: Qwen/Qwen2.5-1.5B-Instruct-AWQ, dtype: bfloat16, quantization: awq_marlin}",
            model="Qwen2.5-1.5B-Instruct",
        )
    )
    problems = check_placement(config, cluster)
    assert "pool 'odd-pool': T4 has no bfloat16; use dtype float16" in problems
    assert "pool 'odd-pool': awq_marlin needs compute capability 8.0+, which T4 lacks; use awq" in problems


def test_a_spot_priced_pool_needs_a_spot_node_type(cluster: ClusterSpec) -> None:
    config = parse_config(
        _one_pool("accelerator_type: H100\ncapacity: spot\nengine: {model: meta-llama/Llama-3.1-8B-Instruct}")
    )
    [problem] = check_placement(config, cluster)
    assert problem == "pool 'odd-pool': priced as spot capacity, but no node type providing H100 is spot (gpu-h100)"


def test_more_replicas_than_the_cluster_can_hold_fail_naming_the_pool(cluster: ClusterSpec) -> None:
    # Five TP-4 replicas need three p5 nodes; the cluster allows two.
    config = parse_config(
        _one_pool(
            "accelerator_type: H100\nautoscaling: {min_replicas: 0, max_replicas: 5}\nnum_cpus: 16\n"
            "engine: {model: meta-llama/Llama-3.3-70B-Instruct, quantization: fp8, tensor_parallel_size: 4}"
        )
    )
    [problem] = check_placement(config, cluster)
    assert problem.startswith("pool 'odd-pool': 1 of its 5 max replicas find no node at maximum scale")
    assert "gpu-h100 (max_workers 2)" in problem


def test_the_cluster_wide_worker_cap_binds_too(cluster: ClusterSpec) -> None:
    capped = cluster.model_copy(update={"max_workers": 3})
    config = load_config(PRODUCTION_PATH)
    problems = check_placement(config, capped)
    assert problems and all("find no node at maximum scale" in p and "cluster max_workers 3" in p for p in problems)


def test_production_packs_into_fourteen_workers_at_maximum(cluster: ClusterSpec) -> None:
    packing = pack(load_config(PRODUCTION_PATH), cluster, "max")
    assert packing.unplaced == {}
    workers = [n.node_type.name for n in packing.nodes[1:]]
    assert len(workers) == 14
    assert workers.count("gpu-h100") == 2  # 2 x (4 + 4) GPUs of 70B, then 2 x 1 of 8B
    assert workers.count("gpu-l4-spot") == 4 and workers.count("gpu-l4-ondemand") == 1  # spot first
    assert packing.nodes[0].pools == []  # the head hosts no engine


def test_production_at_minimum_is_three_spot_gpus(cluster: ClusterSpec) -> None:
    packing = pack(load_config(PRODUCTION_PATH), cluster, "min")
    assert packing.unplaced == {}
    assert sorted(n.node_type.name for n in packing.nodes[1:]) == ["gpu-l4-spot", "gpu-t4-spot", "gpu-t4-spot"]
    # ... which is what cluster.yaml keeps running as min_workers.
    always_on = {name: t.min_workers for name, t in cluster.node_types.items() if t.min_workers}
    assert always_on == {"gpu-t4-spot": 2, "gpu-l4-spot": 1}


def test_the_gpu_example_config_needs_a_multi_gpu_a10g_node(cluster: ClusterSpec) -> None:
    # deployments/gpu-example.yaml runs 8B at TP 2 on A10G; this cluster's A10G nodes have one GPU.
    example = yaml.safe_load((REPO / "deployments" / "gpu-example.yaml").read_text())
    pools = {p["name"]: p for m in example["models"] for p in m["pools"]}
    tp2 = [
        name
        for name, p in pools.items()
        if p["accelerator_type"] == "A10G" and p["engine"].get("tensor_parallel_size", 1) > 1
    ]
    assert tp2
    problems = check_placement(load_config(REPO / "deployments" / "gpu-example.yaml"), cluster)
    for name in tp2:
        assert any(p.startswith(f"pool {name!r}: one replica needs 2 A10G GPUs") for p in problems)


def test_validation_reads_its_cluster_from_text_too() -> None:
    text = (CLUSTER_PATH).read_text()
    cluster = parse_cluster(text, "inline")
    assert cluster.source is None and len(cluster.node_types) == 10
