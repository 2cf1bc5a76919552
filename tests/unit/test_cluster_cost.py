"""What cluster.yaml costs per hour (serve/cluster/cost.py), recomputed here from the catalogue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from serve.catalog.gpus import GPU_CATALOG
from serve.cluster.cost import CATALOG_CPU_INSTANCE_VCPUS, cluster_cost, node_price_usd_per_hour
from serve.cluster.spec import load_cluster, parse_cluster

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PATH = REPO / "cluster.yaml"


def _gpu(name: str, capacity: str = "on_demand") -> float:
    return GPU_CATALOG[name].price_usd_per_hour(capacity)


def test_node_prices_come_from_the_catalogue() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    prices = {name: node_price_usd_per_hour(cluster, t)[0] for name, t in cluster.node_types.items()}
    assert prices["head"] == pytest.approx(GPU_CATALOG["CPU"].on_demand_usd_per_hour / CATALOG_CPU_INSTANCE_VCPUS * 8)
    assert prices["gpu-t4-spot"] == pytest.approx(_gpu("T4", "spot"))
    assert prices["gpu-t4-ondemand"] == pytest.approx(_gpu("T4"))
    assert prices["gpu-a100-40g"] == pytest.approx(8 * _gpu("A100-40G"))  # the specific name, not "A100"
    assert prices["gpu-a100-80g"] == pytest.approx(8 * _gpu("A100-80G"))
    assert prices["gpu-h100"] == pytest.approx(8 * _gpu("H100"))


def test_minimum_is_the_head_and_the_always_on_spot_nodes() -> None:
    cost = cluster_cost(load_cluster(CLUSTER_PATH))
    head = GPU_CATALOG["CPU"].on_demand_usd_per_hour / CATALOG_CPU_INSTANCE_VCPUS * 8
    assert cost.min_usd_per_hour == pytest.approx(head + 2 * _gpu("T4", "spot") + 1 * _gpu("L4", "spot"))


def test_maximum_takes_the_priciest_workers_up_to_the_cluster_cap() -> None:
    cluster = load_cluster(CLUSTER_PATH)
    cost = cluster_cost(cluster)
    assert sum(n for name, n in cost.max_nodes.items() if name != "head") == cluster.max_workers == 16
    head = GPU_CATALOG["CPU"].on_demand_usd_per_hour / CATALOG_CPU_INSTANCE_VCPUS * 8
    expected = (
        head
        + 2 * 8 * _gpu("H100")
        + 8 * _gpu("A100-80G")
        + 8 * _gpu("A100-40G")
        + _gpu("A10G")
        + 2 * _gpu("L4")
        + 2 * _gpu("T4")
        + 2 * _gpu("A10G", "spot")
        + 4 * _gpu("L4", "spot")
        + 1 * _gpu("T4", "spot")  # the 16th worker; three T4 spot slots stay unused
    )
    assert cost.max_usd_per_hour == pytest.approx(expected)


def test_without_a_cap_every_node_type_counts_at_max_workers() -> None:
    raw: dict[str, Any] = yaml.safe_load(CLUSTER_PATH.read_text())
    raw["max_workers"] = 100
    cluster = parse_cluster(yaml.safe_dump(raw), "uncapped", CLUSTER_PATH)
    cost = cluster_cost(cluster)
    assert cost.max_nodes == {name: max(t.max_workers, 1) for name, t in cluster.node_types.items()}


def test_a_price_in_cluster_metadata_overrides_the_catalogue() -> None:
    raw: dict[str, Any] = yaml.safe_load(CLUSTER_PATH.read_text())
    raw["metadata"] = {"frugal": {"prices_usd_per_hour": {"gpu-h100": 31.5}}}
    cluster = parse_cluster(yaml.safe_dump(raw), "with prices", CLUSTER_PATH)
    assert node_price_usd_per_hour(cluster, cluster.node_types["gpu-h100"]) == (31.5, "cluster metadata")


def test_an_uncatalogued_gpu_without_a_price_is_reported() -> None:
    raw: dict[str, Any] = yaml.safe_load(CLUSTER_PATH.read_text())
    raw["available_node_types"]["gpu-h100"]["resources"] = {"CPU": 192, "GPU": 8, "accelerator_type:H200": 1}
    cluster = parse_cluster(yaml.safe_dump(raw), "h200", CLUSTER_PATH)
    with pytest.raises(ValueError, match=r"node type 'gpu-h100': none of \['H200'\] is in the GPU catalogue"):
        cluster_cost(cluster)
