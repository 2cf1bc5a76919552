"""Redis stopped and restarted under load, on a real engine: no 5xx for requests that need no
Redis-only feature, and the ledger loses nothing.

The application here keeps everything it can in Redis: API keys, rate limits and quota
(``fail_open: true``: admitted unmetered while Redis is away), the response cache (each
prompt is unique: a lookup that misses and a store) and the ledger (a Redis stream). Its
redis-server persists (append-only file, fsync per write), as a production one would, and is
stopped (SIGTERM) and started again while four clients keep sending requests.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from serve.bench.redis_server import RedisServer
from serve.tenants.keys import generate_key

APP = "frugal-redis-outage-test"
PREFIX = "/redis-outage-test"
TENANT = "ops"
NUM_CLIENTS = 4
BEFORE_S, OUTAGE_S, AFTER_S = 3.0, 4.0, 3.0
LEDGER_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def persistent_redis() -> Iterator[RedisServer]:
    server = RedisServer(persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def outage_app(ray_serve, persistent_redis) -> Iterator[tuple[str, str, str]]:
    """One real SmolLM2 engine (the default's small pool) behind a router whose keys, limits,
    cache and ledger are all in ``persistent_redis``: (base URL, API key, model)."""
    from ray import serve

    from serve.bench.targets import chat_only_config
    from serve.builder import build_app
    from serve.config.loader import load_config
    from serve.config.schema import FrugalConfig

    default = load_config()
    chat_model = next(m.name for m in default.models if m.task == "chat")
    base = chat_only_config(default, chat_model, pool="smollm2-small-cpu")
    key = generate_key()
    config = FrugalConfig.model_validate({
        **base.model_dump(),
        "tenants": {
            "auth_enabled": True,
            "admin_key_env": None,
            "redis_url": persistent_redis.url,
            "fail_open": True,
            "tiers": {"paid": {
                "requests_per_minute": 100_000, "tokens_per_minute": 10_000_000, "price_usd_per_1k_tokens": 0.002,
            }},
            "tenants": [{"id": TENANT, "tier": "paid", "keys": [{"id": key.key_id, "sha256": key.sha256}]}],
        },
        "cache": {**base.cache.model_dump(), "enabled": True, "redis_url": persistent_redis.url},
    })
    serve.run(build_app(config), name=APP, route_prefix=PREFIX)
    try:
        yield f"{ray_serve.base_url}{PREFIX}", key.key, chat_model
    finally:
        serve.delete(APP)


def _ledger(redis_url: str) -> list[dict]:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        return [
            json.loads(fields[b"record"]) if b"record" in fields else {k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in client.xrange("frugal:ledger")
        ]
    finally:
        client.close()


def test_redis_restart_under_load_gives_no_5xx_and_loses_no_ledger_record(outage_app, persistent_redis):
    url, key, chat_model = outage_app
    headers = {"authorization": f"Bearer {key}"}
    # Warm up: the first request starts the router's stores and resolves the key (a key
    # resolved in the last minute keeps working while Redis is away).
    warm = httpx.post(
        f"{url}/v1/chat/completions", headers=headers, timeout=300,
        json={"model": chat_model, "messages": [{"role": "user", "content": "warm-up"}], "max_tokens": 2},
    )
    assert warm.status_code == 200, warm.text

    stop = threading.Event()
    answers: list[tuple[float, httpx.Response]] = []
    failures: list[BaseException] = []

    def client_loop(worker: int) -> None:
        try:
            with httpx.Client(timeout=120) as http:
                i = 0
                while not stop.is_set():
                    body = {
                        "model": chat_model, "max_tokens": 6, "temperature": 0,
                        "messages": [{"role": "user", "content": f"Name a colour. (client {worker}, request {i})"}],
                    }
                    r = http.post(f"{url}/v1/chat/completions", json=body, headers=headers)
                    answers.append((time.monotonic(), r))
                    i += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=client_loop, args=(w,), daemon=True) for w in range(NUM_CLIENTS)]
    for t in threads:
        t.start()
    time.sleep(BEFORE_S)
    persistent_redis.stop()
    down = time.monotonic()
    time.sleep(OUTAGE_S)
    persistent_redis.start()
    up = time.monotonic()
    time.sleep(AFTER_S)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures

    statuses = [r.status_code for _, r in answers]
    during = [r for t, r in answers if down < t < up]
    print(f"{len(answers)} answers ({len(during)} during the {OUTAGE_S:.0f} s outage); statuses {sorted(set(statuses))}")
    assert all(s == 200 for s in statuses), [r.text for _, r in answers if r.status_code != 200][:3]
    assert len(during) >= NUM_CLIENTS, "the outage window saw too few requests to show anything"
    assert any(t > up for t, _ in answers), "no request after Redis came back"

    # The ledger: every answered request exactly once, including those answered while Redis
    # was down (buffered in the router and written once it came back), with their tokens.
    answered = {r.headers["x-frugal-request-id"]: r.json()["usage"] for _, r in answers} | {
        warm.headers["x-frugal-request-id"]: warm.json()["usage"]
    }
    deadline = time.monotonic() + LEDGER_TIMEOUT_S
    while True:
        records = [r for r in _ledger(persistent_redis.url) if r["tenant_id"] == TENANT]
        if len(records) >= len(answered) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    ids = [r["request_id"] for r in records]
    assert len(ids) == len(set(ids)), "a request was written to the ledger twice"
    missing = [i for i in answered if not any(i.endswith(rid) or rid.endswith(i) for rid in ids)]
    assert not missing, f"{len(missing)} of {len(answered)} answered requests missing from the ledger"
    assert len(records) == len(answered)
    assert sum(int(r["completion_tokens"]) for r in records) == sum(u["completion_tokens"] for u in answered.values())
    unmetered = [r for r in records if r.get("metered") == "0"]
    print(f"ledger: {len(records)} records, {len(unmetered)} admitted unmetered during the outage")
    # Requests admitted while Redis was away are in the ledger, flagged as unmetered.
    assert unmetered
