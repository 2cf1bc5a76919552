"""Cost-aware dispatch on the real engines: every answer priced and labelled, the cheap pool
first, spill when it would break its target, and a killed replica's requests retried on
another pool."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

HELLO = [{"role": "user", "content": "Say hello."}]
LEDGER_TENANT = "delta"  # shared with test_cancellation, whose checks also use ledger deltas
DISPATCH_HEADERS = ("x-frugal-pool", "x-frugal-cost-usd", "x-frugal-route-reason")


@pytest.fixture(scope="module")
def pools_by_price(service, chat_model) -> list[str]:
    from serve.dispatch.state import pool_state_template

    model = service.config.model(chat_model)
    return [p.name for p in sorted(model.pools, key=lambda p: pool_state_template(model, p).price_usd_per_hour)]


def _post(service, path: str, body: dict, timeout: float = 180, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{service.base_url}{path}", json=body, timeout=timeout, headers=headers)


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


def _stream(
    service, body: dict, first_content: threading.Event, seen: dict, timeout: float = 300
) -> tuple[dict, list[str]]:
    """(response headers, the stream's data payloads), setting ``first_content`` at the first
    content event; the headers also go into ``seen`` as soon as they arrive."""
    payloads: list[str] = []
    auth = {"authorization": f"Bearer {service.keys[LEDGER_TENANT]}"}
    with httpx.stream("POST", f"{service.base_url}/v1/chat/completions", json=body, headers=auth, timeout=timeout) as r:
        headers = dict(r.headers)
        seen.update(headers)
        for line in r.iter_lines():
            if line.startswith("data: "):
                payloads.append(line[len("data: "):])
                if '"content"' in line:
                    first_content.set()
    return headers, payloads


def test_requests_on_a_killed_replica_are_retried_on_another_pool(service, chat_model, pools_by_price):
    """Kill the cheap pool's replica (its Ray actor) with a stream and two plain requests on it:
    the plain ones are retried on the other pool and all succeed; the stream, which already has
    output, ends with an OpenAI-shaped error event and [DONE]; the replica's engine process
    goes with it; the ledger has the two as ok and the stream as failed; Ray Serve starts a
    replacement."""
    import psutil
    import ray

    cheap = pools_by_price[0]
    deployment = f"engine-{cheap}"
    body = {"model": chat_model, "messages": HELLO, "max_tokens": 400, "ignore_eos": True}
    auth = {"authorization": f"Bearer {service.keys[LEDGER_TENANT]}"}
    before = service.usage(LEDGER_TENANT)
    _wait_until_dispatch_prefers(service, chat_model, cheap)
    streaming, stream_seen = threading.Event(), {}
    with ThreadPoolExecutor(3) as pool:
        stream = pool.submit(_stream, service, {**body, "stream": True, "temperature": 0.7}, streaming, stream_seen)
        assert streaming.wait(120), "the stream never started"
        assert stream_seen.get("x-frugal-pool") == cheap, f"the stream went elsewhere: {stream_seen}"
        futures = [pool.submit(_post, service, "/v1/chat/completions", body, 300, auth) for _ in range(2)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all three running on the cheap pool's engine
            load = service.call_engine(cheap, "load")
            if load.num_running + load.num_waiting >= 3:
                break
            time.sleep(0.2)
        else:
            routes = [(r.headers.get("x-frugal-pool"), r.headers.get("x-frugal-route-reason")) for r in
                      (f.result() for f in futures)]
            pytest.fail(f"the burst never reached the cheap pool: load {load}, routes {routes}, "
                        f"router gauges {_router_pool_gauges(service)}")
        replica = service.call_engine(cheap, "describe")
        engine_procs = psutil.Process(replica["pid"]).children(recursive=True)
        assert engine_procs, "the replica has no engine process"
        ray.kill(ray.get_actor(replica["replica_actor"], namespace="serve"), no_restart=False)
        responses = [f.result() for f in futures]
        stream_headers, payloads = stream.result(timeout=120)
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    assert {r.headers["x-frugal-pool"] for r in responses} == {pools_by_price[1]}
    assert {r.headers.get("x-frugal-retried-from") for r in responses} == {cheap}
    assert all(json.loads(r.text)["usage"]["completion_tokens"] == 400 for r in responses)

    # The stream had started on the killed replica: it cannot be retried, so it ends cleanly
    # with an error event the client can read, then [DONE].
    assert stream_headers["x-frugal-pool"] == cheap
    assert payloads[-1] == "[DONE]"
    error = json.loads(payloads[-2])["error"]
    assert error["code"] == "engine_unavailable" and error["type"] == "service_unavailable", error
    assert any('"content"' in p for p in payloads[:-2])

    # The ledger: the two retried requests as ok with all their tokens, the stream as failed
    # with at least the tokens the client received (one or more per content event).
    after = service.wait_usage(LEDGER_TENANT, before["requests"] + 3)
    assert (after["requests"] - before["requests"], after["ok"] - before["ok"], after["failed"] - before["failed"]) == (
        3, 2, 1
    )
    content_events = sum('"content"' in p for p in payloads[:-2])
    assert after["completion_tokens"] - before["completion_tokens"] >= 800 + content_events

    # No engine process of the killed replica is left behind.
    gone, alive = psutil.wait_procs(engine_procs, timeout=30)
    assert not alive, f"engine processes outlived their replica: {alive}"

    # Ray Serve replaces the killed replica; wait so later tests see both pools again.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and _running_replicas(deployment) < 1:
        time.sleep(2)
    assert _running_replicas(deployment) == 1
    # ...and until the router has seen it (it reads replica counts every few seconds), so
    # later tests find the pool ready in its gauges and its dispatch.
    while time.monotonic() < deadline and _router_ready_replicas(service, cheap) < 1:
        time.sleep(1)
    assert _router_ready_replicas(service, cheap) >= 1


def _router_pool_gauges(service) -> dict[tuple[str, str, str], float]:
    """The router's pool gauges: (metric, pool, state) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{service.base_url}/metrics", timeout=30).text
    return {
        (s.name, s.labels["pool"], s.labels.get("state", "")): s.value
        for f in text_string_to_metric_families(text) for s in f.samples
        if s.name.startswith("frugal_pool_") and "pool" in s.labels
    }


def _router_ready_replicas(service, pool: str) -> float:
    return _router_pool_gauges(service).get(("frugal_pool_replicas", pool, "ready"), 0.0)


def _wait_until_dispatch_prefers(service, chat_model: str, pool: str, timeout_s: float = 60) -> None:
    """Until a one-token request goes to ``pool`` as the cheapest within its target: the
    previous test's burst has drained from the router's view of the pools."""
    deadline = time.monotonic() + timeout_s
    while True:
        r = _post(service, "/v1/chat/completions", {"model": chat_model, "messages": HELLO, "max_tokens": 1})
        route = (r.headers.get("x-frugal-pool"), r.headers.get("x-frugal-route-reason"))
        if route == (pool, "cheapest-within-slo"):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"dispatch still avoids {pool}: {route}, router gauges {_router_pool_gauges(service)}")
        time.sleep(1)
