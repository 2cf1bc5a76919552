"""Integration fixtures: a real Ray Serve application with the real vLLM CPU engines,
started once per session on a free port and stopped afterwards (only what we started)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from serve.config.loader import load_config
from serve.config.schema import FrugalConfig
from serve.constants import RAY_ENV_DEFAULTS

APP_NAME = "frugal-test"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    base_url: str
    config: FrugalConfig
    keys: dict[str, str]  # tenant id -> API key
    admin_key: str

    def call_engine(self, pool: str, method: str, *args, timeout_s: float = 30.0):
        """Call a method of a pool's engine deployment from the test thread.

        In Ray Serve's throughput mode a handle routes on the caller's event loop, so each call
        runs in a fresh loop with its own handle."""
        import asyncio

        from ray import serve

        async def call():
            handle = serve.get_deployment_handle(f"engine-{pool}", app_name=APP_NAME)
            return await asyncio.wait_for(getattr(handle, method).remote(*args), timeout_s)

        return asyncio.run(call())


    def usage(self, tenant: str) -> dict[str, float]:
        """The tenant's ledger totals (requests, ok, failed, cancelled, tokens, cost) through
        the admin usage endpoint; zeros before its first request."""
        import httpx

        r = httpx.get(
            f"{self.base_url}/admin/usage", params={"group_by": "tenant", "tenant_id": tenant},
            headers={"authorization": f"Bearer {self.admin_key}"}, timeout=30,
        )
        assert r.status_code == 200, r.text
        rows = r.json()["data"]
        return rows[0] if rows else {"requests": 0, "ok": 0, "failed": 0, "cancelled": 0, "completion_tokens": 0}

    def wait_usage(self, tenant: str, requests: int, timeout_s: float = 10.0) -> dict[str, float]:
        """The tenant's ledger totals once it holds ``requests`` records (or at the timeout)."""
        import time

        deadline = time.monotonic() + timeout_s
        while True:
            usage = self.usage(tenant)
            if usage["requests"] >= requests or time.monotonic() > deadline:
                return usage
            time.sleep(0.2)


@dataclass
class ServeCluster:
    base_url: str


@pytest.fixture(scope="session")
def ray_serve() -> Iterator[ServeCluster]:
    """A local Ray instance with Serve's HTTP proxy on a free port; stopped at the end."""
    import ray
    from ray import serve

    if ray.is_initialized():
        pytest.fail("Ray is already initialised in the test process")
    for key, value in RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    port = free_port()
    ray.init(include_dashboard=False, log_to_driver=False, namespace=f"frugal-test-{os.getpid()}")
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield ServeCluster(base_url=f"http://127.0.0.1:{port}")
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def service(ray_serve: ServeCluster, redis_server) -> Iterator[Service]:
    """The default application (real vLLM CPU engines) at the root of the proxy, with its
    response cache in the test's redis-server and four tenants with keys (auth stays off:
    requests without a key are the anonymous tenant's; an admin key reads the ledger)."""
    from ray import serve

    from serve.builder import build_app
    from serve.tenants.keys import generate_key, hash_key

    keys = {tenant: generate_key() for tenant in ("alpha", "beta", "gamma", "delta")}
    admin_key = generate_key().key
    base = load_config()
    config = base.model_validate({
        **base.model_dump(),
        "cache": {**base.cache.model_dump(), "redis_url": redis_server.url},
        "tenants": {"admin_key_env": None, "admin_key_sha256": hash_key(admin_key), "tenants": [
            {"id": tenant, "tier": "paid", "keys": [{"id": key.key_id, "sha256": key.sha256}]}
            for tenant, key in keys.items()
        ]},
    })
    serve.run(build_app(config), name=APP_NAME, route_prefix="/")
    yield Service(
        base_url=ray_serve.base_url, config=config, keys={t: k.key for t, k in keys.items()}, admin_key=admin_key
    )


@pytest.fixture(scope="session")
def client(service: Service):
    from openai import OpenAI

    return OpenAI(base_url=f"{service.base_url}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def chat_model(service: Service) -> str:
    return next(m.name for m in service.config.models if m.task == "chat")


@pytest.fixture(scope="session")
def embed_model(service: Service) -> str:
    return next(m.name for m in service.config.models if m.task == "embed")
