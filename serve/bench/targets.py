"""Start and stop the servers a benchmark compares: Frugal (``serve run`` in its own
process group) and vLLM's own OpenAI server with the same engine arguments."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

from serve.config.schema import FrugalConfig, ModelConfig

READY_TIMEOUT_S = 600.0


def chat_only_config(config: FrugalConfig, model: str, pool: str | None = None) -> FrugalConfig:
    """The config with only ``model`` and one of its pools (``pool``, else the one with the
    largest batch), so both targets run the same single engine."""
    m = config.model(model)
    if m is None:
        raise ValueError(f"no model {model!r} in the config")
    if pool is None:
        chosen = max(m.pools, key=lambda p: p.engine.max_num_seqs or 0)
    else:
        chosen = next((p for p in m.pools if p.name == pool), None)
        if chosen is None:
            raise ValueError(f"model {model!r} has no pool {pool!r}; pools: {[p.name for p in m.pools]}")
    only = m.model_copy(update={"pools": [chosen]})
    return config.model_copy(update={"models": [only], "tiers": None})


BENCH_TIER = "bench"
BENCH_TENANT = "bench"


def full_stack_config(config: FrugalConfig, redis_url: str, key_id: str, key_sha256: str) -> FrugalConfig:
    """``config`` with everything on the request path switched on against ``redis_url``: auth
    (one tenant with the key ``key_id``/``key_sha256``), Redis rate limits and monthly quota
    (limits far above what the benchmark offers, so every request runs the Lua scripts and is
    admitted), the response cache in Redis (each benchmark prompt is unique: a lookup that
    misses, then a store), per-token billing and the ledger in a Redis stream."""
    tenants = {
        "auth_enabled": True,
        "admin_key_env": None,
        "redis_url": redis_url,
        "tiers": {BENCH_TIER: {
            "requests_per_minute": 10_000_000,
            "tokens_per_minute": 1_000_000_000,
            "monthly_requests": 100_000_000,
            "price_usd_per_1k_tokens": 0.002,
        }},
        "tenants": [{"id": BENCH_TENANT, "tier": BENCH_TIER, "keys": [{"id": key_id, "sha256": key_sha256}]}],
    }
    cache = {**config.cache.model_dump(), "enabled": True, "redis_url": redis_url}
    return FrugalConfig.model_validate({**config.model_dump(), "tenants": tenants, "cache": cache})


def vllm_cli_args(model: ModelConfig) -> list[str]:
    """``AsyncEngineArgs`` keyword arguments as vLLM's command-line flags."""
    args: list[str] = []
    kwargs = model.pools[0].engine.to_engine_kwargs()
    if model.pools[0].accelerator_type == "CPU" and kwargs.get("dtype") == "auto":
        from serve.engine.vllm_engine import cpu_auto_dtype

        kwargs["dtype"] = cpu_auto_dtype()  # the same choice the Frugal engine makes
    for key, value in kwargs.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            continue
        else:
            args += [flag, str(value)]
    return args + ["--served-model-name", model.name]


def _wait_ready(base_url: str, model: str, proc: subprocess.Popen, headers: dict[str, str] | None = None) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
        try:
            r = httpx.post(f"{base_url}/v1/chat/completions", json=body, headers=headers, timeout=30)
            if r.status_code == 200:
                return
            if 400 <= r.status_code < 500 and r.status_code not in (404, 429):
                raise RuntimeError(f"server refused the readiness request: {r.status_code} {r.text[:300]}")
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"{base_url} not ready after {READY_TIMEOUT_S}s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextmanager
def _server(
    cmd: list[str], base_url: str, model: str, env: dict[str, str], log: Path, headers: dict[str, str] | None = None
) -> Iterator[str]:
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}, start_new_session=True)
        try:
            _wait_ready(base_url, model, proc, headers)
            yield base_url
        finally:
            _stop(proc)


@contextmanager
def frugal_server(
    config: FrugalConfig, port: int, log: Path, headers: dict[str, str] | None = None, app: str = "frugal"
) -> Iterator[str]:
    """Frugal serving ``config`` on ``port``; ``headers`` (an API key) for the readiness probe;
    ``app`` one of ``serve.bench.run_frugal.APPS`` (fake engines, or the Ray-only control)."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(config.model_dump(mode="json", exclude_none=True), f)
    serve_config = Path(f.name)
    cmd = [sys.executable, "-m", "serve.bench.run_frugal", "--config", str(serve_config), "--port", str(port)]
    cmd += ["--app", app]
    try:
        with _server(cmd, f"http://127.0.0.1:{port}", config.models[0].name, {}, log, headers) as url:
            yield url
    finally:
        serve_config.unlink(missing_ok=True)


@contextmanager
def vllm_server(model: ModelConfig, port: int, log: Path) -> Iterator[str]:
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += vllm_cli_args(model)
    with _server(cmd, f"http://127.0.0.1:{port}", model.name, dict(model.pools[0].env), log) as url:
        yield url


@contextmanager
def full_stack_server(
    config: FrugalConfig, port: int, log: Path, app: str = "frugal"
) -> Iterator[tuple[str, dict[str, str]]]:
    """Frugal serving ``config`` with everything on the request path on (``full_stack_config``)
    against a redis-server started here: (base URL, the API key's headers). Both stop on exit."""
    from serve.bench.redis_server import RedisServer
    from serve.tenants.keys import generate_key

    key = generate_key()
    redis = RedisServer()
    redis.start()
    try:
        headers = {"authorization": f"Bearer {key.key}"}
        full = full_stack_config(config, redis.url, key.key_id, key.sha256)
        with frugal_server(full, port, log, headers, app) as url:
            yield url, headers
    finally:
        redis.close()
