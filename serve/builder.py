"""Build the Ray Serve application from a validated config: one engine deployment per pool,
one router ingress holding their handles."""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from serve.config.schema import FrugalConfig, PoolConfig
from serve.constants import ENGINE_HEALTH_CHECK_PERIOD_S, ENGINE_HEALTH_CHECK_TIMEOUT_S
from serve.engine.deployment import EngineDeployment
from serve.router.deployment import RouterDeployment


def engine_deployment_options(pool: PoolConfig) -> dict[str, Any]:
    """Ray Serve options for a pool's engine deployment (replicas, resources, placement)."""
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
    if pool.autoscaling is not None:
        a = pool.autoscaling
        options["autoscaling_config"] = {
            "min_replicas": a.min_replicas,
            "max_replicas": a.max_replicas,
            "initial_replicas": a.initial_replicas,
            "target_ongoing_requests": a.target_ongoing_requests,
            "upscale_delay_s": a.upscale_delay_s,
            "downscale_delay_s": a.downscale_delay_s,
        }
    else:
        options["num_replicas"] = pool.num_replicas or 1
    return options


def build_app(config: FrugalConfig, engine_factory: Any = None) -> Application:
    """The whole application. ``engine_factory`` replaces the vLLM engine (tests only)."""
    handles: dict[str, dict[str, Application]] = {}
    for model in config.models:
        handles[model.name] = {}
        for pool in model.pools:
            deployment = serve.deployment(EngineDeployment).options(**engine_deployment_options(pool))
            args = (model, pool) if engine_factory is None else (model, pool, engine_factory)
            handles[model.name][pool.name] = deployment.bind(*args)
    router = serve.deployment(RouterDeployment).options(
        name="router",
        num_replicas=config.router.num_replicas,
        max_ongoing_requests=config.router.max_ongoing_requests,
        ray_actor_options={"num_cpus": config.router.num_cpus},
    )
    return router.bind(config, handles)

