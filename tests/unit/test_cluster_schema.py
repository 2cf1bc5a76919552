"""cluster.yaml as `ray up` sees it before any cloud call (Ray's defaults, then the autoscaler's
JSON schema from the ray package), and Frugal's cluster rules (serve/cluster/rules.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from serve.cluster.rules import check_cluster
from serve.cluster.spec import ClusterConfigError, ClusterSpec, load_cluster, parse_cluster, ray_schema
from serve.constants import RAY_ENV_DEFAULTS

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PATH = REPO / "cluster.yaml"


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(CLUSTER_PATH.read_text())
    return raw


def _parse(raw: dict[str, Any]) -> ClusterSpec:
    return parse_cluster(yaml.safe_dump(raw), "cluster.yaml (edited)", CLUSTER_PATH)


def test_ray_up_would_accept_cluster_yaml() -> None:
    # Exactly ray up's offline steps (commands.py _bootstrap_config): fill defaults, validate.
    prepared = prepare_config(_raw())
    validate_config(prepared)
    assert prepared["head_node_type"] == "head"


def test_the_schema_is_the_one_in_the_ray_package() -> None:
    schema = ray_schema()
    assert schema["title"] == "Ray AutoScaler"
    assert "available_node_types" in schema["properties"]


def test_cluster_yaml_follows_frugal_rules() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    assert check_cluster(cluster) == []


def test_node_types_advertise_each_gpu_kind() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    by_accelerator = {
        accelerator: sorted(t.instance_type for t in cluster.providing(accelerator))
        for accelerator in ("T4", "L4", "A10G", "A100", "A100-40G", "A100-80G", "H100")
    }
    assert by_accelerator == {
        "T4": ["g4dn.xlarge", "g4dn.xlarge"],
        "L4": ["g6.xlarge", "g6.xlarge"],
        "A10G": ["g5.xlarge", "g5.xlarge"],
        "A100": ["p4d.24xlarge", "p4de.24xlarge"],
        "A100-40G": ["p4d.24xlarge"],
        "A100-80G": ["p4de.24xlarge"],
        "H100": ["p5.48xlarge"],
    }
    head = cluster.head
    assert head.num_gpus == 0 and head.accelerator_types == ()


def test_cheap_gpus_are_spot_with_an_on_demand_twin_and_expensive_ones_start_at_zero() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    for accelerator in ("T4", "L4", "A10G"):
        assert sorted(t.capacity for t in cluster.providing(accelerator)) == ["on_demand", "spot"]
    for accelerator in ("A100", "H100"):
        types = cluster.providing(accelerator)
        assert all(t.capacity == "on_demand" and t.min_workers == 0 for t in types)


def test_setup_installs_frugal_with_the_gpu_extra_from_the_mounted_repo() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    assert cluster.file_mounts["/home/ubuntu/frugal"] == "."
    setup = " ".join(cluster.commands["setup_commands"])
    assert 'pip install -q -e "$HOME/frugal[gpu]"' in setup
    # RAY_ENV_DEFAULTS reach every Ray process through `ray start`.
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        start = next(c for c in cluster.commands[key] if "ray start" in c)
        assert all(f"{k}={v}" in start for k, v in RAY_ENV_DEFAULTS.items())


def test_a_schema_violation_names_its_path() -> None:
    raw = _raw()
    raw["available_node_types"]["gpu-h100"]["resources"]["GPU"] = "eight"
    raw["available_node_types"]["gpu-h100"]["min_wrokers"] = 1
    with pytest.raises(ClusterConfigError) as err:
        _parse(raw)
    message = str(err.value)
    assert "available_node_types.gpu-h100.resources.GPU: 'eight' is not of type 'integer'" in message
    assert "available_node_types.gpu-h100: Additional properties are not allowed ('min_wrokers'" in message


def test_missing_command_lists_would_run_the_providers_defaults() -> None:
    raw = _raw()
    del raw["setup_commands"]
    problems = check_cluster(_parse(raw))
    assert problems == ["setup_commands is not set: ray up would run the aws defaults instead"]


def test_ray_start_without_throughput_mode_is_reported() -> None:
    raw = _raw()
    raw["worker_start_ray_commands"] = ["ray stop", "ray start --address=$RAY_HEAD_IP:6379"]
    [problem] = check_cluster(_parse(raw))
    assert problem.startswith(
        "worker_start_ray_commands: `ray start` without"
        " ['RAY_SERVE_THROUGHPUT_OPTIMIZED=1', 'RAY_SERVE_ENABLE_HA_PROXY=1', 'MALLOC_ARENA_MAX=2',"
        " 'RAY_SERVE_HAPROXY_BINARY_PATH=<venv>/bin/frugal-haproxy']"
    )


def test_gpu_node_types_must_advertise_a_known_accelerator() -> None:
    raw = _raw()
    types = raw["available_node_types"]
    del types["gpu-h100"]["resources"]["accelerator_type:H100"]
    types["gpu-l4-ondemand"]["resources"]["accelerator_type:L4X"] = 1
    del types["gpu-t4-ondemand"]["resources"]["CPU"]
    problems = check_cluster(_parse(raw))
    assert any(p.startswith("node type 'gpu-h100' has 8 GPUs but advertises no accelerator_type") for p in problems)
    assert any(p.startswith("node type 'gpu-l4-ondemand': accelerator types ['L4X'] are not Ray's") for p in problems)
    assert any(p.startswith("node type 'gpu-t4-ondemand': declare CPU") for p in problems)


def test_spot_without_fallback_or_losing_the_tie_is_reported() -> None:
    raw = _raw()
    types = raw["available_node_types"]
    del types["gpu-a10g-ondemand"]
    types["gpu-l4-ondemand"]["priority"] = 1
    # A twin whose name sorts after the spot type's wins Ray v1's tie-break.
    types["gpu-t4-zz-ondemand"] = types.pop("gpu-t4-ondemand")
    problems = check_cluster(_parse(raw))
    assert (
        "spot node type 'gpu-a10g-spot' has no on-demand node type with the same resources to fall back to"
        in problems
    )
    assert any(p.startswith("spot node type 'gpu-l4-spot' needs a higher priority than 'gpu-l4-") for p in problems)
    assert any(p.startswith("spot node type 'gpu-t4-spot' sorts before its on-demand twin") for p in problems)


def test_file_mount_sources_in_the_repository_must_exist() -> None:
    raw = _raw()
    raw["file_mounts"]["/home/ubuntu/extra"] = "no-such-dir"
    [problem] = check_cluster(_parse(raw))
    assert problem.startswith("file_mounts['/home/ubuntu/extra']: local path 'no-such-dir' does not exist")


def test_prepared_config_keeps_the_per_type_limits() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    limits = {name: (t.min_workers, t.max_workers) for name, t in cluster.node_types.items()}
    raw = copy.deepcopy(_raw())
    for name, node_type in raw["available_node_types"].items():
        if name != raw["head_node_type"]:
            assert limits[name] == (node_type["min_workers"], node_type["max_workers"])
    assert limits["head"] == (0, 0)  # Ray's default for the head type: it is the one head node
