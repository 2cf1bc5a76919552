"""What a cluster of a given shape costs per hour, from its node types and the catalogue.

A node type's instance price is, in order: ``metadata.frugal.prices_usd_per_hour[<node type>]``
in the cluster file (for instances the catalogue prices wrongly); for a GPU node, the GPU
catalogue's per-device price for its market (spot or on-demand) times its GPUs; for a CPU node,
the catalogue's CPU entry, a ``CATALOG_CPU_INSTANCE_VCPUS``-vCPU instance, scaled by its vCPUs.

- minimum: the head plus every node type at ``min_workers`` (what an idle cluster costs);
- maximum: the head plus the most expensive set of workers the autoscaler may launch: each node
  type up to ``max_workers``, at most the cluster-wide ``max_workers`` in all, the priciest first.
Storage, traffic and the spot market's movements are not included.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from serve.catalog.gpus import GPU_CATALOG
from serve.cluster.spec import ClusterSpec, NodeTypeSpec

# The catalogue's CPU entry prices a 2-vCPU general-purpose instance (serve/catalog/gpus.py).
CATALOG_CPU_INSTANCE_VCPUS = 2


@dataclass(frozen=True)
class NodeTypeCost:
    node_type: str
    instance_type: str
    capacity: str
    price_usd_per_hour: float
    price_source: str
    min_workers: int  # the head counts as one, at minimum and maximum
    max_workers: int


@dataclass(frozen=True)
class ClusterCost:
    node_types: tuple[NodeTypeCost, ...]
    max_nodes: dict[str, int]  # node type -> nodes counted in the maximum

    @property
    def min_usd_per_hour(self) -> float:
        return sum(n.price_usd_per_hour * n.min_workers for n in self.node_types)

    @property
    def max_usd_per_hour(self) -> float:
        prices = {n.node_type: n.price_usd_per_hour for n in self.node_types}
        return sum(prices[name] * count for name, count in self.max_nodes.items())


def node_price_usd_per_hour(cluster: ClusterSpec, node: NodeTypeSpec) -> tuple[float, str]:
    """The instance price and where it came from. Raises ``ValueError`` naming the node type when
    neither the cluster file nor the catalogue prices it."""
    if node.name in cluster.prices_usd_per_hour:
        return cluster.prices_usd_per_hour[node.name], "cluster metadata"
    if node.num_gpus:
        priced = [a for a in node.accelerator_types if a in GPU_CATALOG]
        if not priced:
            raise ValueError(
                f"node type {node.name!r}: none of {list(node.accelerator_types)} is in the GPU catalogue;"
                " give its price in metadata.frugal.prices_usd_per_hour"
            )
        # The most specific catalogued name: "A100-40G" over "A100" when a node advertises both.
        gpu = GPU_CATALOG[max(priced, key=len)]
        per_device = gpu.price_usd_per_hour(node.capacity)
        return per_device * node.num_gpus, f"catalogue {gpu.name} {node.capacity} x {node.num_gpus}"
    cpu = GPU_CATALOG["CPU"]
    if node.num_cpus is None:
        raise ValueError(f"node type {node.name!r}: declare CPU in resources to price it")
    per_vcpu = cpu.price_usd_per_hour(node.capacity) / CATALOG_CPU_INSTANCE_VCPUS
    return per_vcpu * node.num_cpus, f"catalogue CPU {node.capacity} x {node.num_cpus} vCPU"


def cluster_cost(cluster: ClusterSpec) -> ClusterCost:
    rows = []
    for node in cluster.node_types.values():
        price, source = node_price_usd_per_hour(cluster, node)
        is_head = node.name == cluster.head_node_type
        rows.append(
            NodeTypeCost(
                node_type=node.name,
                instance_type=node.instance_type,
                capacity=node.capacity,
                price_usd_per_hour=price,
                price_source=source,
                min_workers=node.min_workers + (1 if is_head else 0),
                max_workers=node.max_workers + (1 if is_head else 0),
            )
        )
    max_nodes = {cluster.head_node_type: 1}
    budget = cluster.max_workers
    workers = [r for r in rows if r.node_type != cluster.head_node_type]
    for row in sorted(workers, key=lambda r: r.price_usd_per_hour, reverse=True):
        take = min(row.max_workers, budget)
        if take:
            max_nodes[row.node_type] = take
            budget -= take
    return ClusterCost(tuple(rows), max_nodes)


def nodes_usd_per_hour(cluster: ClusterSpec, node_type_names: Iterable[str]) -> float:
    """The hourly price of a set of nodes, one name per node (e.g. a packing of a config)."""
    return sum(node_price_usd_per_hour(cluster, cluster.node_types[name])[0] for name in node_type_names)
