"""Integration fixtures: a real Ray Serve application with the real vLLM CPU engines,
started once per session on a free port and stopped afterwards (only what we started)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from serve.config.loader import load_config
from serve.config.schema import FrugalConfig
from serve.local_ray import free_port, local_serve

APP_NAME = "frugal-test"
# Tenants of the test service. Each file that checks ledger totals has one of its own:
# gamma (metrics), delta (cancellation, dispatch's kill test), epsilon (cache).
TENANTS = ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta")
# zeta and eta opt into one shared cache namespace; every other tenant has its own.
SHARED_CACHE_NAMESPACES = {"zeta": "team-ze", "eta": "team-ze"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@dataclass
class Service:
    base_url: str
    config: FrugalConfig
    keys: dict[str, str]  # tenant id -> API key
    admin_key: str

    def call_engine(self, pool: str, method: str, *args, timeout_s: float = 30.0):
        """Call a method of a pool's engine deployment from the test thread.

        In Ray Serve's throughput mode a handle's router lives on the event loop of its first
        call and is shared by later handles to the same deployment, so every call runs on one
        loop that lives as long as the session (``_handle_loop``)."""
        import asyncio

        from ray import serve

        async def call():
            handle = serve.get_deployment_handle(f"engine-{pool}", app_name=APP_NAME)
            return await asyncio.wait_for(getattr(handle, method).remote(*args), timeout_s)

        return asyncio.run_coroutine_threadsafe(call(), _handle_loop()).result(timeout_s + 5)


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


_HANDLE_LOOP: list = []


def _handle_loop():
    """The session's event loop for Ray Serve handle calls, on a daemon thread (started on
    first use, stopped by the ``ray_serve`` fixture)."""
    import asyncio
    import threading

    if not _HANDLE_LOOP:
        loop = asyncio.new_event_loop()
        threading.Thread(target=loop.run_forever, name="serve-handles", daemon=True).start()
        _HANDLE_LOOP.append(loop)
    return _HANDLE_LOOP[0]


def _stop_handle_loop() -> None:
    while _HANDLE_LOOP:
        loop = _HANDLE_LOOP.pop()
        loop.call_soon_threadsafe(loop.stop)


@dataclass
class ServeCluster:
    base_url: str


@pytest.fixture(scope="session")
def ray_serve() -> Iterator[ServeCluster]:
    """A local Ray instance with Serve's HTTP ingress on a free port; stopped at the end."""
    import ray

    if ray.is_initialized():
        pytest.fail("Ray is already initialised in the test process")
    with local_serve(free_port(), namespace=f"frugal-test-{os.getpid()}", log_to_driver=False) as base_url:
        try:
            yield ServeCluster(base_url=base_url)
        finally:
            _stop_handle_loop()


@pytest.fixture(scope="session")
def service(ray_serve: ServeCluster, redis_server) -> Iterator[Service]:
    """The default application (real vLLM CPU engines) at the root of the proxy, with its
    response cache in the test's redis-server, semantic caching on for the chat model (at the
    default threshold, with the guard), and the ``TENANTS`` with keys (auth stays off:
    requests without a key are the anonymous tenant's; an admin key reads the ledger)."""
    from ray import serve

    from serve.builder import build_app
    from serve.constants import SEMANTIC_THRESHOLD
    from serve.tenants.keys import generate_key, hash_key

    keys = {tenant: generate_key() for tenant in TENANTS}
    admin_key = generate_key().key
    base = load_config()
    chat = next(m.name for m in base.models if m.task == "chat")
    semantic = {**base.cache.semantic.model_dump(), "models": {chat: {"threshold": SEMANTIC_THRESHOLD, "guard": True}}}
    config = base.model_validate({
        **base.model_dump(),
        "cache": {**base.cache.model_dump(), "redis_url": redis_server.url, "semantic": semantic},
        "tenants": {"admin_key_env": None, "admin_key_sha256": hash_key(admin_key), "tenants": [
            {"id": tenant, "tier": "paid", "keys": [{"id": key.key_id, "sha256": key.sha256}],
             "cache_namespace": SHARED_CACHE_NAMESPACES.get(tenant)}
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
