"""The config ``serve deploy`` sends to the cluster, checked against the Frugal configs it names.

Rules, each naming the application:

- The file is a valid ``ServeDeploySchema`` (Ray Serve's own model of it).
- Each application is Frugal's (``import_path: deployments:build_app``) and its ``args.config``
  is an absolute path on the cluster under one of ``cluster.yaml``'s ``file_mounts``: the
  builder runs on the cluster, where relative paths mean nothing stable. Mapped back through the
  mount, the file exists here and loads.
- ``deployments`` overrides name deployments the application builds (``router``,
  ``engine-<pool>``). An override's ``ray_actor_options`` replaces the code's entirely (Ray
  Serve's ``override_deployment_info``), so engines may not have one (their GPUs and accelerator
  type come from the Frugal config), and the router's must keep the Frugal config's ``num_cpus``.
- A router pinned to the head node (``resources: {"node:__internal_head__": ...}``, keeping it
  off GPU nodes that would otherwise never go idle) fits there: replicas x CPUs <= head CPUs.
- A Redis on localhost (``tenants.redis_url``) is the head node's (cluster.yaml installs it
  there), so the routers that use it must be pinned to the head; elsewhere each router would
  reach a different Redis, or none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import ValidationError
from ray._common.constants import HEAD_NODE_RESOURCE_NAME
from ray.serve.schema import ServeApplicationSchema, ServeDeploySchema

from serve.builder import plan_deployments
from serve.cluster.spec import ClusterSpec
from serve.config.loader import ConfigError, load_config
from serve.config.schema import FrugalConfig

FRUGAL_IMPORT_PATH = "deployments:build_app"
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ROUTER_DEPLOYMENT_NAME = "router"  # serve/builder.py names the ingress so


@dataclass(frozen=True)
class FrugalApp:
    """One Frugal application of a ``serve deploy`` config, with its config file located here."""

    name: str
    remote_config_path: str
    local_config_path: Path | None
    config: FrugalConfig | None


def load_serve_deploy_config(path: str | Path) -> ServeDeploySchema:
    """Raises ``ValueError`` with Ray Serve's own message when the file is not a valid config."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
        return ServeDeploySchema.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as e:
        raise ValueError(f"{path}: not a valid serve deploy config: {e}") from e


def local_path_of(remote: str, cluster: ClusterSpec) -> Path | None:
    """The local file that ``cluster.yaml``'s ``file_mounts`` copy to ``remote``, if any."""
    base = cluster.source.parent if cluster.source is not None else Path.cwd()
    target = PurePosixPath(remote)
    for mount_remote, mount_local in cluster.file_mounts.items():
        mount = PurePosixPath(mount_remote)
        if target == mount or mount in target.parents:
            return (base / Path(mount_local).expanduser() / target.relative_to(mount)).resolve()
    return None


def _check_overrides(app: ServeApplicationSchema, config: FrugalConfig, cluster: ClusterSpec) -> list[str]:
    where = f"application {app.name!r}"
    try:
        built = {plan.name for plan in plan_deployments(config)} | {ROUTER_DEPLOYMENT_NAME}
    except ValueError as e:
        return [f"{where}: {e}"]
    problems = []
    router_on_head = False
    for override in app.deployments:
        fields: dict[str, Any] = override.model_dump(exclude_unset=True)
        if override.name not in built:
            problems.append(f"{where}: deployments override {override.name!r} names no deployment ({sorted(built)})")
            continue
        actor = fields.get("ray_actor_options")
        if actor is None:
            continue
        if override.name != ROUTER_DEPLOYMENT_NAME:
            problems.append(
                f"{where}: override {override.name!r} sets ray_actor_options, which would replace the"
                " engine's GPUs and accelerator type; set them in the Frugal config"
            )
            continue
        if actor.get("num_cpus") != config.router.num_cpus:
            problems.append(
                f"{where}: router ray_actor_options.num_cpus {actor.get('num_cpus')} differs from the Frugal"
                f" config's router.num_cpus {config.router.num_cpus}"
            )
        if HEAD_NODE_RESOURCE_NAME in (actor.get("resources") or {}):
            router_on_head = True
            replicas = fields.get("num_replicas", config.router.num_replicas)
            need = replicas * config.router.num_cpus
            if need > (cluster.head.num_cpus or 0):
                problems.append(
                    f"{where}: {replicas} router replicas pinned to the head need {need} CPUs;"
                    f" {cluster.head_node_type} has {cluster.head.num_cpus}"
                )
    redis_url = config.tenants.redis_url
    if redis_url and urlparse(redis_url).hostname in LOCAL_HOSTS and not router_on_head:
        problems.append(
            f"{where}: tenants.redis_url {redis_url!r} is the head node's Redis; pin the router to the head"
            f' (ray_actor_options.resources {{"{HEAD_NODE_RESOURCE_NAME}": 0.001}})'
        )
    return problems


def check_serve_deploy_config(path: str | Path, cluster: ClusterSpec) -> tuple[list[str], list[FrugalApp]]:
    """Problems, and the Frugal applications found (with their configs where they loaded)."""
    try:
        schema = load_serve_deploy_config(path)
    except ValueError as e:
        return [str(e)], []
    problems: list[str] = []
    apps: list[FrugalApp] = []
    for app in schema.applications:
        where = f"application {app.name!r}"
        if app.import_path != FRUGAL_IMPORT_PATH:
            problems.append(f"{where}: import_path {app.import_path!r} is not Frugal's {FRUGAL_IMPORT_PATH!r}")
            continue
        remote = (app.args or {}).get("config")
        if not isinstance(remote, str) or not PurePosixPath(remote).is_absolute():
            problems.append(f"{where}: args.config must be an absolute path on the cluster, got {remote!r}")
            continue
        local = local_path_of(remote, cluster)
        config = None
        if local is None:
            mounts = sorted(cluster.file_mounts)
            problems.append(f"{where}: args.config {remote!r} is under none of the file_mounts {mounts}")
        else:
            try:
                config = load_config(local)
            except ConfigError as e:
                problems.append(f"{where}: {e}")
        if config is not None:
            problems.extend(_check_overrides(app, config, cluster))
        apps.append(FrugalApp(app.name, remote, local, config))
    return problems, apps
