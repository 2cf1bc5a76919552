"""deployments/serve-gpu-production.yaml, the file `serve deploy` sends (serve/cluster/serve_config.py),
and scripts/validate_cluster.py, run as docs/deploy.md runs it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

import deployments
from serve.cluster.serve_config import FRUGAL_IMPORT_PATH, FrugalApp, check_serve_deploy_config, local_path_of
from serve.cluster.spec import ClusterSpec, load_cluster
from serve.config.loader import load_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER_PATH = REPO / "cluster.yaml"
SERVE_CONFIG_PATH = REPO / "deployments" / "serve-gpu-production.yaml"
PRODUCTION_PATH = REPO / "deployments" / "gpu-production.yaml"
VALIDATE_SCRIPT = REPO / "scripts" / "validate_cluster.py"


@pytest.fixture(scope="module")
def cluster() -> ClusterSpec:
    return load_cluster(CLUSTER_PATH)


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(SERVE_CONFIG_PATH.read_text())
    return raw


def _check(raw: dict[str, Any], tmp_path: Path, cluster: ClusterSpec) -> tuple[list[str], list[FrugalApp]]:
    path = tmp_path / "serve.yaml"
    path.write_text(yaml.safe_dump(raw))
    return check_serve_deploy_config(path, cluster)


def test_serve_deploy_schema_accepts_it() -> None:
    schema = ServeDeploySchema.model_validate(_raw())
    [app] = schema.applications
    assert app.import_path == FRUGAL_IMPORT_PATH
    assert app.runtime_env["env_vars"]["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_it_names_the_production_config_through_the_file_mount(cluster: ClusterSpec) -> None:
    problems, [app] = check_serve_deploy_config(SERVE_CONFIG_PATH, cluster)
    assert problems == []
    assert app.remote_config_path == "/home/ubuntu/frugal/deployments/gpu-production.yaml"
    assert app.local_config_path == PRODUCTION_PATH
    assert app.config == load_config(PRODUCTION_PATH)


def test_the_import_path_and_args_build_the_application_without_ray(cluster: ClusterSpec) -> None:
    [app] = ServeDeploySchema.model_validate(_raw()).applications
    module, attr = app.import_path.split(":")
    assert module == "deployments" and getattr(deployments, attr) is deployments.build_app
    args = dict(app.args)
    args["config"] = str(local_path_of(args["config"], cluster))  # where the mount puts it, here
    was_running = ray.is_initialized()
    assert isinstance(deployments.build_app(args), Application)
    assert ray.is_initialized() == was_running


def test_the_router_is_pinned_to_the_head_with_the_configs_cpus() -> None:
    [app] = ServeDeploySchema.model_validate(_raw()).applications
    router = next(d for d in app.deployments if d.name == "router")
    assert router.ray_actor_options.resources == {"node:__internal_head__": 0.001}
    assert router.ray_actor_options.num_cpus == load_config(PRODUCTION_PATH).router.num_cpus


def test_always_on_pools_start_replacements_before_stopping_old_replicas() -> None:
    [app] = ServeDeploySchema.model_validate(_raw()).applications
    surging = {d.name for d in app.deployments if (d.model_dump(exclude_unset=True).get("max_surge_percent") or 0) > 0}
    pools = [pool for model in load_config(PRODUCTION_PATH).models for pool in model.pools]
    always_on = {f"engine-{pool.name}" for pool in pools if pool.min_replicas >= 1}
    assert surging == always_on


def test_a_relative_config_path_is_refused(tmp_path: Path, cluster: ClusterSpec) -> None:
    raw = _raw()
    raw["applications"][0]["args"]["config"] = "deployments/gpu-production.yaml"
    problems, _ = _check(raw, tmp_path, cluster)
    assert problems == [
        "application 'frugal': args.config must be an absolute path on the cluster,"
        " got 'deployments/gpu-production.yaml'"
    ]


def test_a_config_path_outside_the_mounts_is_refused(tmp_path: Path, cluster: ClusterSpec) -> None:
    raw = _raw()
    raw["applications"][0]["args"]["config"] = "/etc/frugal.yaml"
    problems, _ = _check(raw, tmp_path, cluster)
    [problem] = problems
    assert problem.startswith("application 'frugal': args.config '/etc/frugal.yaml' is under none")


def test_overrides_must_not_replace_engine_resources_or_name_unknown_deployments(
    tmp_path: Path, cluster: ClusterSpec
) -> None:
    raw = _raw()
    overrides = raw["applications"][0]["deployments"]
    overrides.append({"name": "engine-llama8b-h100-fp8", "ray_actor_options": {"num_cpus": 8}})
    overrides.append({"name": "engine-no-such-pool", "max_surge_percent": 100})
    overrides[0]["ray_actor_options"]["num_cpus"] = 2
    problems, _ = _check(raw, tmp_path, cluster)
    assert any("override 'engine-llama8b-h100-fp8' sets ray_actor_options" in p for p in problems)
    assert any("deployments override 'engine-no-such-pool' names no deployment" in p for p in problems)
    assert any("router ray_actor_options.num_cpus 2.0 differs from the Frugal config's router.num_cpus 1.0" in p
               for p in problems)


def test_a_head_node_redis_needs_the_router_on_the_head(tmp_path: Path, cluster: ClusterSpec) -> None:
    config = load_config(PRODUCTION_PATH)
    assert config.tenants.auth_enabled and config.tenants.redis_url == "redis://127.0.0.1:6380/1"
    raw = _raw()
    del raw["applications"][0]["deployments"][0]["ray_actor_options"]["resources"]
    problems, _ = _check(raw, tmp_path, cluster)
    assert problems == [
        "application 'frugal': tenants.redis_url 'redis://127.0.0.1:6380/1' is the head node's Redis;"
        ' pin the router to the head (ray_actor_options.resources {"node:__internal_head__": 0.001})'
    ]


def test_routers_pinned_to_the_head_must_fit_there(tmp_path: Path, cluster: ClusterSpec) -> None:
    raw = _raw()
    raw["applications"][0]["deployments"][0]["num_replicas"] = 9
    problems, _ = _check(raw, tmp_path, cluster)
    assert problems == ["application 'frugal': 9 router replicas pinned to the head need 9.0 CPUs; head has 8"]


def test_an_invalid_file_reports_ray_serves_message(tmp_path: Path, cluster: ClusterSpec) -> None:
    raw = _raw()
    raw["applications"][0]["import_pth"] = raw["applications"][0].pop("import_path")
    [problem], apps = _check(raw, tmp_path, cluster)
    assert "not a valid serve deploy config" in problem and "import_path" in problem and apps == []


def _run_script(monkeypatch: pytest.MonkeyPatch, *argv: str) -> int:
    monkeypatch.setattr(sys, "argv", [str(VALIDATE_SCRIPT), *argv])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(VALIDATE_SCRIPT), run_name="__main__")
    return int(exit_.value.code or 0)


def test_the_guides_validation_command_passes_and_prints_the_cost(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    code = _run_script(
        monkeypatch,
        "cluster.yaml",
        "deployments/gpu-production.yaml",
        "--serve-config",
        "deployments/serve-gpu-production.yaml",
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "cluster.yaml: Ray autoscaler schema OK" in out
    assert "llama70b-h100-fp8-tp4" in out
    assert "minimum (head + min_workers): $1.04/h" in out
    assert "): $165.51/h" in out
    assert out.rstrip().endswith("OK: no problems found")


def test_the_validation_command_fails_naming_the_pool(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = yaml.safe_load(PRODUCTION_PATH.read_text())
    pool = bad["models"][2]["pools"][1]  # the 70B A100 pool
    pool["engine"]["tensor_parallel_size"] = 2
    bad["models"][0]["pools"][0]["accelerator_type"] = "L40S"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    code = _run_script(monkeypatch, str(CLUSTER_PATH), str(path))
    out = capsys.readouterr().out
    assert code == 1
    assert f"bad.yaml: pool {pool['name']!r}: too little GPU memory" in out
    assert "bad.yaml: pool 'qwen1.5b-t4-awq': no node type provides accelerator_type 'L40S'" in out
