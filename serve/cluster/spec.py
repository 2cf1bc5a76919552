"""A Ray cluster launcher config (``ray up cluster.yaml``), loaded the way ``ray up`` loads it.

``ray up`` first fills the file out with the provider's defaults (``prepare_config``) and then
validates it against the JSON schema shipped in the ray package (``ray-schema.json``); both steps
run offline, before any cloud API call. ``load_cluster`` does the same two steps and returns the
parts Frugal reasons about as typed objects; ``ClusterConfigError`` lists every schema violation
with its path.

Node types must declare ``CPU``, ``GPU`` and ``accelerator_type:<name>`` in ``resources``: the
autoscaler can only plan for what a node type advertises, and a check without a cloud can only
see what is written down.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import jsonschema
import ray.autoscaler
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ray.autoscaler._private.util import prepare_config, validate_config

# Ray turns ``ray_actor_options={"accelerator_type": "T4"}`` into a demand for this resource
# (``ray._common.utils.RESOURCE_CONSTRAINT_PREFIX``), so a node type hosts a pool's replicas only
# if it advertises ``accelerator_type:<pool.accelerator_type>``.
ACCELERATOR_RESOURCE_PREFIX = "accelerator_type:"

# The command lists ``ray up`` takes from the provider's defaults when a config leaves them out.
# AWS's defaults install a nightly Ray wheel with the system pip, which is never what Frugal wants.
COMMAND_KEYS = (
    "initialization_commands",
    "setup_commands",
    "head_setup_commands",
    "worker_setup_commands",
    "head_start_ray_commands",
    "worker_start_ray_commands",
)

Capacity = Literal["spot", "on_demand"]


class ClusterConfigError(ValueError):
    """A cluster config ``ray up`` would refuse; the message names the file and each bad path."""


class NodeTypeSpec(BaseModel):
    """One entry of ``available_node_types``, after ``prepare_config`` filled in the defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    resources: dict[str, int]
    node_config: dict[str, Any]
    min_workers: int = Field(default=0, ge=0)
    max_workers: int = Field(default=0, ge=0)
    priority: int = 0

    @property
    def accelerator_types(self) -> tuple[str, ...]:
        """The accelerator names the node advertises, e.g. ("A100", "A100-40G")."""
        return tuple(
            key[len(ACCELERATOR_RESOURCE_PREFIX) :]
            for key in sorted(self.resources)
            if key.startswith(ACCELERATOR_RESOURCE_PREFIX)
        )

    @property
    def num_gpus(self) -> int:
        return self.resources.get("GPU", 0)

    @property
    def num_cpus(self) -> int | None:
        return self.resources.get("CPU")

    @property
    def instance_type(self) -> str:
        """AWS ``InstanceType`` or GCP ``machineType``."""
        return str(self.node_config.get("InstanceType") or self.node_config.get("machineType") or "?")

    @property
    def capacity(self) -> Capacity:
        """Spot (AWS ``InstanceMarketOptions.MarketType: spot``; GCP ``provisioningModel: SPOT``
        or ``preemptible``) or on-demand."""
        market = self.node_config.get("InstanceMarketOptions") or {}
        scheduling = self.node_config.get("scheduling") or {}
        spot = (
            str(market.get("MarketType", "")).lower() == "spot"
            or str(scheduling.get("provisioningModel", "")).upper() == "SPOT"
            or scheduling.get("preemptible") is True
        )
        return "spot" if spot else "on_demand"


class ClusterSpec(BaseModel):
    """The parts of a prepared cluster config that placement and cost checks need."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    cluster_name: str
    provider_type: str
    max_workers: int = Field(ge=0, description="global cap on worker nodes (the head excluded)")
    head_node_type: str
    node_types: dict[str, NodeTypeSpec]
    file_mounts: dict[str, str] = Field(default_factory=dict, description="remote path -> local path")
    commands: dict[str, list[str]] = Field(default_factory=dict)
    prices_usd_per_hour: dict[str, float] = Field(
        default_factory=dict, description="metadata.frugal.prices_usd_per_hour: node type -> instance price"
    )
    source: Path | None = None

    @property
    def head(self) -> NodeTypeSpec:
        return self.node_types[self.head_node_type]

    @property
    def workers(self) -> list[NodeTypeSpec]:
        return [t for name, t in self.node_types.items() if name != self.head_node_type]

    def providing(self, accelerator_type: str) -> list[NodeTypeSpec]:
        """The node types that advertise ``accelerator_type``, in config order."""
        return [t for t in self.node_types.values() if accelerator_type in t.accelerator_types]


def ray_schema() -> dict[str, Any]:
    """The autoscaler's JSON schema from the installed ray package (what ``ray up`` checks)."""
    path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def schema_errors(prepared: dict[str, Any]) -> list[str]:
    """Every violation of Ray's schema in a prepared config, as ``path: message``."""
    validator = jsonschema.Draft7Validator(ray_schema())
    errors = sorted(validator.iter_errors(prepared), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def prepare(raw: dict[str, Any], source: str = "<cluster>") -> dict[str, Any]:
    """``ray up``'s offline steps: fill in defaults, then validate. Raises ``ClusterConfigError``."""
    try:
        prepared: dict[str, Any] = prepare_config(copy.deepcopy(raw))
    except Exception as e:  # Ray raises bare ValueError/KeyError/AssertionError for bad shapes.
        raise ClusterConfigError(f"{source}: ray up would refuse it: {type(e).__name__}: {e}") from e
    problems = schema_errors(prepared)
    if problems:
        raise ClusterConfigError("\n  ".join([f"{source} violates Ray's autoscaler schema:", *problems]))
    try:
        validate_config(prepared)  # the schema again, plus Ray's own cross-field checks
    except Exception as e:
        raise ClusterConfigError(f"{source}: ray up would refuse it: {type(e).__name__}: {e}") from e
    return prepared


def parse_cluster(text: str, source: str = "<cluster>", path: Path | None = None) -> ClusterSpec:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ClusterConfigError(f"invalid YAML in {source}: {e}") from e
    if not isinstance(raw, dict):
        raise ClusterConfigError(f"{source}: the top level must be a mapping")
    prepared = prepare(raw, source)
    frugal_meta = (prepared.get("metadata") or {}).get("frugal") or {}
    try:
        return ClusterSpec(
            cluster_name=prepared["cluster_name"],
            provider_type=prepared["provider"]["type"],
            max_workers=prepared["max_workers"],
            head_node_type=prepared["head_node_type"],
            node_types={
                name: NodeTypeSpec(name=name, **node_type)
                for name, node_type in prepared["available_node_types"].items()
            },
            file_mounts=prepared.get("file_mounts") or {},
            # What the file says, not the defaults ``prepare_config`` merged in.
            commands={key: raw[key] for key in COMMAND_KEYS if key in raw},
            prices_usd_per_hour=frugal_meta.get("prices_usd_per_hour") or {},
            source=path,
        )
    except (ValidationError, KeyError, TypeError) as e:
        raise ClusterConfigError(f"{source}: {e}") from e


def load_cluster(path: str | Path) -> ClusterSpec:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ClusterConfigError(f"cannot read cluster config {path}: {e}") from e
    return parse_cluster(text, str(path), path.resolve())
