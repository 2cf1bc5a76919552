"""Cost-aware dispatch on the real engines: every answer priced and labelled, the cheap pool
first, spill when it would break its target, and a killed replica's requests retried on
another pool."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

HELLO = [{"role": "user", "content": "Say hello."}]
DISPATCH_HEADERS = ("x-frugal-pool", "x-frugal-cost-usd", "x-frugal-route-reason")


@pytest.fixture(scope="module")
def pools_by_price(service, chat_model) -> list[str]:
    from serve.dispatch.state import pool_state_template

    model = service.config.model(chat_model)
    return [p.name for p in sorted(model.pools, key=lambda p: pool_state_template(model, p).price_usd_per_hour)]


def _post(service, path: str, body: dict, timeout: float = 180) -> httpx.Response:
    return httpx.post(f"{service.base_url}{path}", json=body, timeout=timeout)


def test_every_answer_reports_pool_cost_and_reason(service, client, chat_model, embed_model, pools_by_price):
    raw = client.chat.completions.with_raw_response.create(model=chat_model, messages=HELLO, max_tokens=8)
    resp = raw.parse()
    assert all(raw.headers.get(h) for h in DISPATCH_HEADERS)
    assert raw.headers["x-frugal-pool"] in pools_by_price
    cost = resp.usage.model_extra["cost_usd"]
    assert cost > 0 and float(raw.headers["x-frugal-cost-usd"]) == pytest.approx(cost, rel=1e-6)

    stream = client.chat.completions.create(
        model=chat_model, messages=HELLO, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    usage = [c.usage for c in stream if c.usage is not None]
    assert len(usage) == 1 and usage[0].model_extra["cost_usd"] > 0

    r = _post(service, "/v1/completions", {"model": chat_model, "prompt": "Hello", "max_tokens": 8})
    assert r.status_code == 200 and all(r.headers.get(h) for h in DISPATCH_HEADERS)
    assert r.json()["usage"]["cost_usd"] > 0

    r = _post(service, "/v1/embeddings", {"model": embed_model, "input": "hello"})
    assert r.status_code == 200 and all(r.headers.get(h) for h in DISPATCH_HEADERS)
    assert r.json()["usage"]["cost_usd"] > 0


def test_the_cheap_pool_takes_traffic_until_its_target_would_break_then_spills(service, chat_model, pools_by_price):
    cheap, pricier = pools_by_price[0], pools_by_price[1]
    r = _post(service, "/v1/chat/completions", {"model": chat_model, "messages": HELLO, "max_tokens": 8})
    assert (r.headers["x-frugal-pool"], r.headers["x-frugal-route-reason"]) == (cheap, "cheapest-within-slo")

    # The cheap pool batches 4 sequences; a fifth concurrent request would queue past the
    # TTFT target, so the rest of a burst of 10 spills to the pricier pool.
    body = {"model": chat_model, "messages": HELLO, "max_tokens": 32, "ignore_eos": True}
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda _: _post(service, "/v1/chat/completions", body), range(10)))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    routes = [(r.headers["x-frugal-pool"], r.headers["x-frugal-route-reason"]) for r in responses]
    on_cheap = sum(p == cheap for p, _ in routes)
    spilled = [reason for p, reason in routes if p == pricier]
    print("routes of a burst of 10:", routes)
    assert 1 <= on_cheap <= 4 + 1  # at most a batch (plus one whose neighbour finished first)
    assert spilled and set(spilled) == {"spill"}


def _running_replicas(deployment: str) -> int:
    from ray import serve

    status = serve.status().applications["frugal-test"].deployments[deployment]
    return sum(n for state, n in status.replica_states.items() if str(getattr(state, "value", state)) == "RUNNING")


def test_requests_on_a_killed_replica_are_retried_on_another_pool(service, chat_model, pools_by_price):
    import ray

    cheap = pools_by_price[0]
    deployment = f"engine-{cheap}"
    body = {"model": chat_model, "messages": HELLO, "max_tokens": 400, "ignore_eos": True}
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(_post, service, "/v1/chat/completions", body, 300) for _ in range(3)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all three running on the cheap pool's engine
            load = service.call_engine(cheap, "load")
            if load.num_running + load.num_waiting >= 3:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the burst never reached the cheap pool")
        name = service.call_engine(cheap, "describe")["replica_actor"]
        ray.kill(ray.get_actor(name, namespace="serve"), no_restart=False)
        responses = [f.result() for f in futures]
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert {r.headers["x-frugal-pool"] for r in responses} == {pools_by_price[1]}
    assert {r.headers.get("x-frugal-retried-from") for r in responses} == {cheap}
    assert all(json.loads(r.text)["usage"]["completion_tokens"] == 400 for r in responses)

    # Ray Serve replaces the killed replica; wait so later tests see both pools again.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and _running_replicas(deployment) < 1:
        time.sleep(2)
    assert _running_replicas(deployment) == 1
