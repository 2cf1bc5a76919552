"""Rules a Frugal cluster config must follow beyond Ray's schema, each returning problems as text.

- Every command list is written out: otherwise ``ray up`` runs the provider's defaults, which on
  AWS install a nightly Ray wheel with the system pip.
- Every ``ray start`` sets Ray Serve's throughput mode and HAProxy ingress (``RAY_ENV_DEFAULTS``)
  and points Ray at Frugal's HAProxy launcher (``HAPROXY_BINARY_ENV``): Ray's processes
  inherit their environment from ``ray start`` and nothing later can change it.
- Every worker node type declares ``CPU``; every GPU node type declares ``GPU`` and at least one
  ``accelerator_type:<name>`` that Ray knows (a misspelt name is a node no pool can use).
- Every spot node type has an on-demand twin with the same resources, so demand beyond the spot
  type's ``max_workers`` (or while spot capacity is short, under autoscaler v2) has somewhere to go;
  and the spot type wins ties: Ray's default autoscaler (v1) breaks equal utilisation scores by the
  node type name, highest first (``resource_demand_scheduler.get_nodes_for`` sorts
  ``(score, node_type)`` in reverse), autoscaler v2 by ``priority``, highest first.
- Local sources of ``file_mounts`` given relative to the repository exist.
"""

from __future__ import annotations

from serve.builder import ray_accelerator_types
from serve.cluster.spec import COMMAND_KEYS, ClusterSpec, NodeTypeSpec
from serve.constants import HAPROXY_BINARY_ENV, HAPROXY_LAUNCHER, RAY_ENV_DEFAULTS

START_COMMAND_KEYS = ("head_start_ray_commands", "worker_start_ray_commands")


def check_commands(cluster: ClusterSpec) -> list[str]:
    problems = [
        f"{key} is not set: ray up would run the {cluster.provider_type} defaults instead"
        for key in COMMAND_KEYS
        if key not in cluster.commands
    ]
    for key in START_COMMAND_KEYS:
        starts = [c for c in cluster.commands.get(key, []) if "ray start" in c]
        if not starts:
            problems.append(f"{key}: no `ray start` command")
        for command in starts:
            missing = [f"{k}={v}" for k, v in RAY_ENV_DEFAULTS.items() if f"{k}={v}" not in command]
            if f"{HAPROXY_BINARY_ENV}=" not in command or f"/{HAPROXY_LAUNCHER}" not in command:
                missing.append(f"{HAPROXY_BINARY_ENV}=<venv>/bin/{HAPROXY_LAUNCHER}")
            if missing:
                problems.append(f"{key}: `ray start` without {missing} (Ray's processes inherit it from there)")
    return problems


def check_node_resources(cluster: ClusterSpec) -> list[str]:
    known = ray_accelerator_types()
    problems = []
    for node in cluster.node_types.values():
        if node.num_cpus is None:
            problems.append(f"node type {node.name!r}: declare CPU in resources (the vCPUs of {node.instance_type})")
        unknown = [a for a in node.accelerator_types if a not in known]
        if unknown:
            problems.append(
                f"node type {node.name!r}: accelerator types {unknown} are not Ray's names: {sorted(known)}"
            )
        if node.num_gpus and not node.accelerator_types:
            problems.append(
                f"node type {node.name!r} has {node.num_gpus} GPUs but advertises no accelerator_type:<name>,"
                " so no pool can ask for it"
            )
        if node.accelerator_types and not node.num_gpus:
            problems.append(f"node type {node.name!r} advertises {list(node.accelerator_types)} but no GPU")
    return problems


def _same_hardware(a: NodeTypeSpec, b: NodeTypeSpec) -> bool:
    return a.resources == b.resources


def check_spot_fallback(cluster: ClusterSpec) -> list[str]:
    problems = []
    for spot in cluster.workers:
        if spot.capacity != "spot":
            continue
        twins = [t for t in cluster.workers if t.capacity == "on_demand" and _same_hardware(t, spot)]
        if not twins:
            problems.append(
                f"spot node type {spot.name!r} has no on-demand node type with the same resources to fall back to"
            )
            continue
        for twin in twins:
            if spot.name < twin.name:
                problems.append(
                    f"spot node type {spot.name!r} sorts before its on-demand twin {twin.name!r}: Ray's v1"
                    " autoscaler breaks ties by the higher name and would launch on-demand first"
                )
            if spot.priority <= twin.priority:
                problems.append(
                    f"spot node type {spot.name!r} needs a higher priority than {twin.name!r} (autoscaler v2 order)"
                )
    return problems


def check_file_mounts(cluster: ClusterSpec) -> list[str]:
    """Relative local paths are resolved against the cluster file's folder (run ``ray up`` there)."""
    if cluster.source is None:
        return []
    base = cluster.source.parent
    return [
        f"file_mounts[{remote!r}]: local path {local!r} does not exist under {base}"
        for remote, local in cluster.file_mounts.items()
        if not local.startswith(("/", "~")) and not (base / local).exists()
    ]


def check_cluster(cluster: ClusterSpec) -> list[str]:
    """Every rule in this module; an empty list means the cluster config follows them."""
    return [
        *check_commands(cluster),
        *check_node_resources(cluster),
        *check_spot_fallback(cluster),
        *check_file_mounts(cluster),
    ]
