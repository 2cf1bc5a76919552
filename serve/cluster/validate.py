"""Everything that can be checked about a cloud deployment without the cloud, in one report.

``validate_deployment`` loads ``cluster.yaml`` as ``ray up`` would (Ray's schema), applies the
cluster rules (``serve.cluster.rules``), and for each Frugal config: builds its deployment plan
(``serve.builder.plan_deployments``: accelerator names, prices), checks every pool's memory
(``serve.cluster.memory``), placement and capacity (``serve.cluster.placement``) and, when vLLM
is installed, its engine arguments (``serve.engine.args``); then the ``serve deploy`` config
(``serve.cluster.serve_config``) and the cluster's cost per hour (``serve.cluster.cost``).
Every problem is a line of text naming the node type, pool or application at fault.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from serve.builder import plan_deployments
from serve.cluster.cost import ClusterCost, cluster_cost, nodes_usd_per_hour
from serve.cluster.memory import BYTES_PER_GB, MemoryFit, check_memory, pool_memory_fit
from serve.cluster.placement import Packing, check_placement, pack
from serve.cluster.rules import check_cluster
from serve.cluster.serve_config import check_serve_deploy_config
from serve.cluster.spec import ClusterConfigError, ClusterSpec, load_cluster
from serve.config.loader import ConfigError, load_config
from serve.config.schema import FrugalConfig


@dataclass
class ValidationReport:
    cluster_path: Path
    cluster: ClusterSpec | None = None
    configs: dict[Path, FrugalConfig] = field(default_factory=dict)
    fits: dict[Path, list[MemoryFit]] = field(default_factory=dict)
    packings: dict[Path, dict[str, Packing]] = field(default_factory=dict)  # "min"/"max" -> packing
    cost: ClusterCost | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_frugal_config(config: FrugalConfig, cluster: ClusterSpec, check_engines: bool = True) -> list[str]:
    """Every per-config rule for one Frugal config on one cluster."""
    try:
        plan_deployments(config)
    except ValueError as e:
        problems = [str(e)]
    else:
        problems = []
    problems += check_memory(config)
    problems += check_placement(config, cluster)
    if check_engines:
        from serve.engine.args import check_engine_args

        for model in config.models:
            for pool in model.pools:
                problems += [f"pool {pool.name!r}: {p}" for p in check_engine_args(pool.engine)]
    # One cause can surface in several checks (an uncatalogued GPU fails the plan and the memory
    # check); keep the first wording.
    unique: list[str] = []
    for problem in problems:
        if not any(problem.startswith(seen) for seen in unique):
            unique.append(problem)
    return unique


def _fits(config: FrugalConfig) -> list[MemoryFit]:
    fits = []
    for model in config.models:
        for pool in model.pools:
            if pool.num_gpus:
                try:
                    fits.append(pool_memory_fit(pool, model.name))
                except ValueError:
                    pass  # reported by check_memory
    return fits


def validate_deployment(
    cluster_path: str | Path, config_paths: list[str | Path], serve_config_path: str | Path | None = None
) -> ValidationReport:
    report = ValidationReport(Path(cluster_path))
    try:
        cluster = load_cluster(cluster_path)
    except ClusterConfigError as e:
        report.problems.append(str(e))
        return report
    report.cluster = cluster
    report.problems += check_cluster(cluster)
    try:
        report.cost = cluster_cost(cluster)
    except ValueError as e:
        report.problems.append(str(e))
    check_engines = importlib.util.find_spec("vllm") is not None
    if not check_engines:
        report.notes.append("vLLM is not installed here: engine arguments were not checked")
    paths = [Path(p) for p in config_paths]
    if serve_config_path is not None:
        problems, apps = check_serve_deploy_config(serve_config_path, cluster)
        report.problems += problems
        paths += [app.local_config_path for app in apps if app.config is not None and app.local_config_path]
    for path in dict.fromkeys(p.resolve() for p in paths):
        try:
            config = load_config(path)
        except ConfigError as e:
            report.problems.append(str(e))
            continue
        report.configs[path] = config
        report.fits[path] = _fits(config)
        report.packings[path] = {scale: pack(config, cluster, scale) for scale in ("min", "max")}
        report.problems += [f"{path.name}: {p}" for p in check_frugal_config(config, cluster, check_engines)]
    return report


def _gb(value: float) -> str:
    return f"{value / BYTES_PER_GB:.1f}"


def format_report(report: ValidationReport) -> str:
    """The report as text: the pools' memory, the cluster's cost, then the verdict."""
    lines = []
    if report.cluster is not None:
        c = report.cluster
        lines.append(
            f"{report.cluster_path}: Ray autoscaler schema OK; {len(c.node_types)} node types,"
            f" cluster max_workers {c.max_workers}"
        )
    for path, fits in report.fits.items():
        lines.append(f"\n{path.name}: memory per GPU (GB; budget = gpu_memory_utilization x memory)")
        lines.append(f"  {'pool':28} {'GPU':9} {'TP':>2} {'budget':>7} {'weights':>7} {'KV room':>7} {'KV tokens':>10}")
        for f in fits:
            tokens = "-" if f.kv_capacity_tokens is None else f"{f.kv_capacity_tokens:,}"
            lines.append(
                f"  {f.pool_name:28} {f.accelerator_type:9} {f.tensor_parallel_size:>2} {_gb(f.budget_bytes):>7}"
                f" {_gb(f.weight_bytes):>7} {_gb(f.kv_room_bytes):>7} {tokens:>10}"
            )
    if report.cost is not None:
        cost = report.cost
        lines.append(f"\ncost per hour ({report.cluster_path.name}; USD, list prices from the catalogue)")
        lines.append(f"  {'node type':18} {'instance':15} {'market':9} {'$/h':>8} {'min':>4} {'max':>4}  price source")
        for n in cost.node_types:
            lines.append(
                f"  {n.node_type:18} {n.instance_type:15} {n.capacity:9} {n.price_usd_per_hour:8.3f}"
                f" {n.min_workers:>4} {n.max_workers:>4}  {n.price_source}"
            )
        counted = ", ".join(f"{count} x {name}" for name, count in cost.max_nodes.items())
        lines.append(f"  minimum (head + min_workers): ${cost.min_usd_per_hour:.2f}/h")
        lines.append(f"  maximum ({counted}): ${cost.max_usd_per_hour:.2f}/h")
    if report.cluster is not None:
        for path, packings in report.packings.items():
            for scale, packing in packings.items():
                names = [n.node_type.name for n in packing.nodes]
                try:
                    price = f"${nodes_usd_per_hour(report.cluster, names):.2f}/h"
                except ValueError:
                    price = "unpriced"
                counts = ", ".join(f"{names.count(n)} x {n}" for n in dict.fromkeys(names))
                short = " (some replicas find no node)" if packing.unplaced else ""
                lines.append(f"  {path.name} at its {scale} replicas ({counts}): {price}{short}")
    lines += [f"note: {n}" for n in report.notes]
    if report.ok:
        lines.append("\nOK: no problems found")
    else:
        lines.append(f"\n{len(report.problems)} problem(s):")
        lines += [f"  - {p}" for p in report.problems]
    return "\n".join(lines)
