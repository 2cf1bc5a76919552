"""The router's ``GET /metrics`` after real requests on the real engines: the token counters
equal the responses' usage, the cost counter equals the ledger's sum, cache hits and avoided
cost are counted, latency histograms observed, and the pools' gauges reported.

Everything is measured as the difference between two scrapes around this test's own
requests, sent as a tenant ("gamma") that no other test uses."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

TENANT = "gamma"


def scrape(service) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Samples by series name: [(labels, value)]."""
    r = httpx.get(f"{service.base_url}/metrics", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            samples[sample.name].append((sample.labels, sample.value))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items()))


def ledger_cost_usd(service) -> tuple[int, float]:
    """(requests, GPU cost) of the tenant in the ledger, through the admin usage endpoint."""
    r = httpx.get(
        f"{service.base_url}/admin/usage",
        params={"group_by": "tenant", "tenant_id": TENANT},
        headers={"authorization": f"Bearer {service.admin_key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    rows = r.json()["data"]
    return (rows[0]["requests"], rows[0]["cost_usd"]) if rows else (0, 0.0)


def test_metrics_equal_the_responses_usage_and_the_ledger(service, chat_model, embed_model):
    from openai import OpenAI

    client = OpenAI(base_url=f"{service.base_url}/v1", api_key=service.keys[TENANT], max_retries=0, timeout=120)
    before, (ledger_requests_before, ledger_cost_before) = scrape(service), ledger_cost_usd(service)

    usages = []
    ask = [{"role": "user", "content": f"Name a fruit. ({uuid.uuid4().hex[:8]})"}]
    for _ in range(2):  # a miss, then the same deterministic request: a hit
        raw = client.chat.completions.with_raw_response.create(model=chat_model, messages=ask, max_tokens=8, temperature=0)
        usages.append(raw.parse().usage)
    assert raw.headers["x-frugal-cache"] == "hit"
    stream = client.chat.completions.create(
        model=chat_model, messages=[{"role": "user", "content": "Count to five."}], max_tokens=12,
        stream=True, stream_options={"include_usage": True},
    )
    usages += [c.usage for c in stream if c.usage is not None]
    usages.append(client.completions.create(model=chat_model, prompt="Once upon a time", max_tokens=8).usage)
    usages.append(client.embeddings.create(model=embed_model, input=["metrics", "are counted"]).usage)
    num_requests = len(usages)
    assert num_requests == 5

    # The ledger's writes are buffered: wait until it holds every request.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ledger_requests, ledger_cost = ledger_cost_usd(service)
        if ledger_requests - ledger_requests_before >= num_requests:
            break
        time.sleep(0.5)
    assert ledger_requests - ledger_requests_before == num_requests
    after = scrape(service)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    assert delta("frugal_requests_total", status="ok") == num_requests
    assert delta("frugal_prompt_tokens_total") == sum(u.prompt_tokens for u in usages)
    assert delta("frugal_completion_tokens_total") == sum(getattr(u, "completion_tokens", 0) or 0 for u in usages)
    # Responses carry the cost rounded to 10 decimals, the ledger sums nano-dollars: equal up
    # to that rounding per request.
    responses_cost = sum(u.model_extra["cost_usd"] for u in usages)
    assert delta("frugal_cost_usd_total") == pytest.approx(responses_cost, rel=0, abs=num_requests * 1e-10)
    assert delta("frugal_cost_usd_total") == pytest.approx(ledger_cost - ledger_cost_before, rel=0, abs=num_requests * 1e-9)
    assert usages[1].model_extra["cost_usd"] == 0 and delta("frugal_avoided_cost_usd_total") > 0

    assert delta("frugal_cache_lookups_total", model=chat_model, result="hit") == 1
    assert delta("frugal_cache_lookups_total", model=chat_model, result="miss") >= 1
    # Three chat/completion answers came from engines, one of them streamed: each is observed
    # in the end-to-end histogram, the stream also in TTFT (a complete body has no first token).
    assert delta("frugal_ttft_seconds_count", model=chat_model) == 1
    assert delta("frugal_e2e_seconds_count", model=chat_model) >= 3
    assert delta("frugal_tpot_seconds_count", model=chat_model) >= 1

    for pool in (p.name for m in service.config.models for p in m.pools):
        assert total(after, "frugal_pool_replicas", pool=pool, state="ready") >= 1, pool
        assert after.get("frugal_pool_price_usd_per_hour") and total(after, "frugal_pool_price_usd_per_hour", pool=pool) > 0
        assert any(lab.get("pool") == pool for lab, _ in after.get("frugal_pool_running_requests", []))
