"""Can every pool's replicas be placed on the cluster's node types? Rules, each naming the pool:

1. A GPU pool's ``accelerator_type`` is advertised by some node type
   (``accelerator_type:<name>`` in its resources): that is the only resource Ray matches.
2. One of those node types has at least ``tensor_parallel_size`` GPUs and ``num_cpus`` CPUs: a
   replica holds all its GPUs on one node (vLLM's tensor-parallel workers are its processes).
   A CPU pool needs some node type with ``num_cpus`` CPUs.
3. Some of those node types sell the pool's ``capacity`` (spot or on-demand), the market its
   price is computed for. Ray cannot tell twins apart (same resources), so a spot pool's replica
   may still land on the on-demand twin while spot is short; the price is then an underestimate.
4. The GPU supports the pool's arithmetic: bf16 and Marlin kernels (``awq_marlin``,
   ``gptq_marlin``) need compute capability 8.0+, which the GPU catalogue marks with
   ``supports_bf16``.
5. At maximum scale (every pool at ``max_replicas``) the replicas pack, first-fit decreasing,
   into the node types' ``max_workers`` under the cluster-wide ``max_workers``. Passing means a
   packing exists; the autoscaler finds its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from serve.catalog.gpus import GPU_CATALOG
from serve.cluster.spec import ClusterSpec, NodeTypeSpec
from serve.config.schema import FrugalConfig, PoolConfig

MARLIN_QUANTIZATIONS = ("awq_marlin", "gptq_marlin")


def hosts(node: NodeTypeSpec, pool: PoolConfig) -> bool:
    """Whether one replica of ``pool`` fits on one node of this type."""
    if pool.num_gpus and pool.accelerator_type not in node.accelerator_types:
        return False
    return node.num_gpus >= pool.num_gpus and (node.num_cpus or 0) >= pool.num_cpus


def check_pool_placement(pool: PoolConfig, cluster: ClusterSpec) -> list[str]:
    """Rules 1-4 for one pool."""
    if pool.num_gpus == 0:
        if any(hosts(node, pool) for node in cluster.node_types.values()):
            return []
        return [f"pool {pool.name!r}: no node type has {pool.num_cpus} CPUs for one replica"]
    candidates = cluster.providing(pool.accelerator_type)
    if not candidates:
        provided = sorted({a for node in cluster.node_types.values() for a in node.accelerator_types})
        return [
            f"pool {pool.name!r}: no node type provides accelerator_type {pool.accelerator_type!r}"
            f" (the cluster provides {provided})"
        ]
    problems = []
    if not any(hosts(node, pool) for node in candidates):
        sizes = ", ".join(f"{n.name}: {n.num_gpus} GPUs, {n.num_cpus} CPUs" for n in candidates)
        problems.append(
            f"pool {pool.name!r}: one replica needs {pool.num_gpus} {pool.accelerator_type} GPUs"
            f" (tensor_parallel_size) and {pool.num_cpus} CPUs on one node; the node types have {sizes}"
        )
    if not any(node.capacity == pool.capacity for node in candidates):
        problems.append(
            f"pool {pool.name!r}: priced as {pool.capacity} capacity, but no node type providing"
            f" {pool.accelerator_type} is {pool.capacity} ({', '.join(n.name for n in candidates)})"
        )
    gpu = GPU_CATALOG.get(pool.accelerator_type)
    if gpu is not None and not gpu.supports_bf16:
        if pool.engine.dtype == "bfloat16":
            problems.append(f"pool {pool.name!r}: {gpu.name} has no bfloat16; use dtype float16")
        if pool.engine.quantization in MARLIN_QUANTIZATIONS:
            problems.append(
                f"pool {pool.name!r}: {pool.engine.quantization} needs compute capability 8.0+,"
                f" which {gpu.name} lacks; use {pool.engine.quantization.removesuffix('_marlin')}"
            )
    return problems


@dataclass
class PackedNode:
    """One node of a packing and the pools with a replica on it."""

    node_type: NodeTypeSpec
    free_gpus: int
    free_cpus: float
    pools: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Packing:
    nodes: list[PackedNode]  # the head first, then the workers opened
    unplaced: dict[str, int]  # pool name -> replicas that found no room


def pack(config: FrugalConfig, cluster: ClusterSpec, scale: Literal["min", "max"] = "max") -> Packing:
    """First-fit decreasing of every pool's ``min_replicas`` or ``max_replicas``. Replicas go to
    an open node with room, else to a new node of the first node type (config order, so spot
    before its on-demand twin) that hosts them and is under its and the cluster's limits."""
    head = cluster.head
    nodes = [PackedNode(head, head.num_gpus, head.num_cpus or 0)]
    opened = {name: 0 for name in cluster.node_types}
    unplaced: dict[str, int] = {}
    replicas = [
        pool
        for model in config.models
        for pool in model.pools
        for _ in range(pool.max_replicas if scale == "max" else pool.min_replicas)
    ]
    replicas.sort(key=lambda p: (p.num_gpus, p.num_cpus), reverse=True)
    for pool in replicas:
        node = next((n for n in nodes if hosts(n.node_type, pool) and _room(n, pool)), None)
        if node is None and len(nodes) - 1 < cluster.max_workers:
            new_type = next(
                (t for t in cluster.workers if hosts(t, pool) and opened[t.name] < t.max_workers),
                None,
            )
            if new_type is not None:
                opened[new_type.name] += 1
                node = PackedNode(new_type, new_type.num_gpus, new_type.num_cpus or 0)
                nodes.append(node)
        if node is None:
            unplaced[pool.name] = unplaced.get(pool.name, 0) + 1
            continue
        node.free_gpus -= pool.num_gpus
        node.free_cpus -= pool.num_cpus
        node.pools.append(pool.name)
    return Packing(nodes, unplaced)


def _room(node: PackedNode, pool: PoolConfig) -> bool:
    return node.free_gpus >= pool.num_gpus and node.free_cpus >= pool.num_cpus


def check_capacity(config: FrugalConfig, cluster: ClusterSpec) -> list[str]:
    """Rule 5, for pools that pass rules 1-2 (the others are already reported)."""
    unplaced = pack(config, cluster, "max").unplaced
    pools = {pool.name: pool for model in config.models for pool in model.pools}
    problems = []
    for name, count in unplaced.items():
        pool = pools[name]
        if not any(hosts(node, pool) for node in cluster.node_types.values()):
            continue
        providers = ", ".join(
            f"{n.name} (max_workers {n.max_workers})" for n in cluster.node_types.values() if hosts(n, pool)
        )
        problems.append(
            f"pool {name!r}: {count} of its {pool.max_replicas} max replicas find no node at maximum scale"
            f" ({pool.num_gpus} x {pool.accelerator_type}, {pool.num_cpus} CPUs each; hosts: {providers};"
            f" cluster max_workers {cluster.max_workers})"
        )
    return problems


def check_router(config: FrugalConfig, cluster: ClusterSpec) -> list[str]:
    if any((n.num_cpus or 0) >= config.router.num_cpus for n in cluster.node_types.values()):
        return []
    return [f"router: no node type has the {config.router.num_cpus} CPUs one router replica asks for"]


def check_placement(config: FrugalConfig, cluster: ClusterSpec) -> list[str]:
    """Every rule in this module for every pool, then the router."""
    problems = [p for model in config.models for pool in model.pools for p in check_pool_placement(pool, cluster)]
    return [*problems, *check_capacity(config, cluster), *check_router(config, cluster)]
