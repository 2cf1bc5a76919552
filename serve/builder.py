"""Build the Ray Serve application from a validated config: one engine deployment per pool,
one router ingress holding their handles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ray import serve
from ray.serve import Application
from ray.util.accelerators import accelerators as ray_accelerators

from serve.config.schema import AutoscalingConfig, FrugalConfig, PoolConfig
from serve.constants import ENGINE_HEALTH_CHECK_PERIOD_S, ENGINE_HEALTH_CHECK_TIMEOUT_S
from serve.dispatch.scheduled_autoscaling import scheduled_policy_option
from serve.dispatch.state import pool_state_template
from serve.engine.deployment import EngineDeployment
from serve.router.deployment import RouterDeployment


CPU_ACCELERATOR_TYPE = "CPU"


@dataclass(frozen=True)
class DeploymentPlan:
    """One engine deployment as ``build_app`` creates it; inspectable without Ray running."""

    name: str
    model_name: str
    pool_name: str
    options: dict[str, Any]  # the keyword arguments of ``Deployment.options``


def ray_accelerator_types() -> frozenset[str]:
    """The accelerator type names Ray defines (``ray.util.accelerators``), e.g. "T4", "H100"."""
    return frozenset(
        value for name, value in vars(ray_accelerators).items() if not name.startswith("_") and isinstance(value, str)
    )


def engine_deployment_options(pool: PoolConfig) -> dict[str, Any]:
    """Ray Serve options for a pool's engine deployment (replicas, resources, placement).

    A pool with a ``schedule`` always autoscales: Ray's ``min_replicas`` is 0 and a custom
    policy (``serve.dispatch.scheduled_autoscaling``) keeps the configured minimum (or the
    fixed ``num_replicas``) inside the schedule's windows.
    """
    actor_options: dict[str, Any] = {
        "num_cpus": pool.num_cpus,
        "runtime_env": {"env_vars": dict(pool.env)},
    }
    if pool.num_gpus:
        actor_options["num_gpus"] = pool.num_gpus
        actor_options["accelerator_type"] = pool.accelerator_type
    options: dict[str, Any] = {
        "name": f"engine-{pool.name}",
        "ray_actor_options": actor_options,
        "max_ongoing_requests": pool.max_ongoing_requests,
        "health_check_period_s": ENGINE_HEALTH_CHECK_PERIOD_S,
        "health_check_timeout_s": ENGINE_HEALTH_CHECK_TIMEOUT_S,
        "graceful_shutdown_timeout_s": 20,
    }
    a = pool.autoscaling
    if a is None and pool.schedule:
        fixed = pool.num_replicas or 1
        a = AutoscalingConfig(min_replicas=fixed, max_replicas=fixed)
    if a is not None:
        options["autoscaling_config"] = {
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "initial_replicas": a.initial_replicas,
            "target_ongoing_requests": a.target_ongoing_requests,
            "upscale_delay_s": a.upscale_delay_s,
            "downscale_delay_s": a.downscale_delay_s,
        }
        if pool.schedule:
            options["autoscaling_config"]["min_replicas"] = 0
            windows = [w.model_dump() for w in pool.schedule]
            options["autoscaling_config"]["policy"] = scheduled_policy_option(windows, a.min_replicas)
    else:
        options["num_replicas"] = pool.num_replicas or 1
    return options


def plan_deployments(config: FrugalConfig) -> list[DeploymentPlan]:
    """One plan per pool, in config order.

    Raises ``ValueError`` naming the pool when its accelerator type is neither "CPU" nor one
    Ray defines: Ray accepts any string, and a misspelt one leaves the replicas pending for a
    node that never comes.
    """
    known = ray_accelerator_types()
    plans = []
    for model in config.models:
        for pool in model.pools:
            if pool.accelerator_type != CPU_ACCELERATOR_TYPE and pool.accelerator_type not in known:
                raise ValueError(
                    f"pool {pool.name!r}: unknown accelerator_type {pool.accelerator_type!r}; "
                    f"use {CPU_ACCELERATOR_TYPE!r} or one of Ray's: {sorted(known)}"
                )
            try:  # the router prices and predicts every pool: fail here, not on a replica
                pool_state_template(model, pool)
            except ValueError as e:
                raise ValueError(str(e) if pool.name in str(e) else f"pool {pool.name!r}: {e}") from None
            options = engine_deployment_options(pool)
            plans.append(DeploymentPlan(options["name"], model.name, pool.name, options))
    return plans


def build_app(config: FrugalConfig, engine_factory: Any = None) -> Application:
    """The whole application. ``engine_factory`` replaces the vLLM engine (tests only)."""
    pools = {pool.name: (model, pool) for model in config.models for pool in model.pools}
    handles: dict[str, dict[str, Application]] = {model.name: {} for model in config.models}
    for plan in plan_deployments(config):
        model, pool = pools[plan.pool_name]
        deployment = serve.deployment(EngineDeployment).options(**plan.options)
        args = (model, pool) if engine_factory is None else (model, pool, engine_factory)
        handles[plan.model_name][plan.pool_name] = deployment.bind(*args)
    router = serve.deployment(RouterDeployment).options(
        name="router",
        num_replicas=config.router.num_replicas,
        max_ongoing_requests=config.router.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.router.num_cpus},
    )
    return router.bind(config, handles)

