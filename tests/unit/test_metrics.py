"""FrugalMetrics: counters equal what was recorded, labels stay bounded, scrapes parse, and
the Ray mirror receives the same records (with a fake ray.util.metrics: no Ray here)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from serve.observability.catalog import METRICS, exported_sample_names
from serve.observability.config import MetricsConfig
from serve.observability.metrics import FrugalMetrics
from serve.observability.scrape import parse_samples, sum_samples


def scrape(metrics: FrugalMetrics) -> str:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return body.decode()


def finish(metrics: FrugalMetrics, **overrides: object) -> None:
    fields: dict[str, object] = {
        "model": "small", "pool": "small-cpu", "tier": "paid", "tenant": "acme", "status": "ok",
        "prompt_tokens": 12, "completion_tokens": 30, "cost_usd": 0.0004, "billed_usd": 0.000084,
        "ttft_s": 0.08, "tpot_s": 0.012, "e2e_s": 0.43,
    }
    fields.update(overrides)
    metrics.request_finished(**fields)  # type: ignore[arg-type]


def test_token_and_cost_counters_equal_the_sum_of_requests() -> None:
    metrics = FrugalMetrics()
    usages = [(12, 30, 0.0004), (100, 1, 0.00011), (7, 250, 0.0031)]
    for prompt, completion, cost in usages:
        finish(metrics, prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
    finish(metrics, pool=None, prompt_tokens=12, completion_tokens=30, cost_usd=0.0, avoided_cost_usd=0.0004)
    text = scrape(metrics)
    assert sum_samples(text, "frugal_prompt_tokens_total") == 12 + 100 + 7 + 12
    assert sum_samples(text, "frugal_completion_tokens_total") == 30 + 1 + 250 + 30
    assert sum_samples(text, "frugal_cost_usd_total") == pytest.approx(0.0004 + 0.00011 + 0.0031)
    assert sum_samples(text, "frugal_avoided_cost_usd_total") == pytest.approx(0.0004)
    assert sum_samples(text, "frugal_requests_total", status="ok") == 4
    assert sum_samples(text, "frugal_requests_total", pool="-") == 1  # the cache hit
    assert sum_samples(text, "frugal_completion_tokens_total", pool="small-cpu") == 281


def test_latency_histograms_observe_seconds_into_buckets() -> None:
    metrics = FrugalMetrics()
    finish(metrics, ttft_s=0.08, tpot_s=0.012, e2e_s=0.43)
    finish(metrics, ttft_s=3.0, tpot_s=None, e2e_s=3.0, status="failed")
    text = scrape(metrics)
    assert sum_samples(text, "frugal_ttft_seconds_count") == 2
    assert sum_samples(text, "frugal_ttft_seconds_sum") == pytest.approx(3.08)
    assert sum_samples(text, "frugal_ttft_seconds_bucket", le="0.1") == 1
    assert sum_samples(text, "frugal_ttft_seconds_bucket", le="+Inf") == 2
    assert sum_samples(text, "frugal_tpot_seconds_count") == 1  # None is not observed
    assert sum_samples(text, "frugal_e2e_seconds_count", status="failed") == 1


def test_tenant_labels_are_off_by_default() -> None:
    metrics = FrugalMetrics()
    finish(metrics, tenant="acme")
    finish(metrics, tenant="globex")
    tenants = {s.labels["tenant"] for s in parse_samples(scrape(metrics)) if "tenant" in s.labels}
    assert tenants == {"-"}


def test_tenant_labels_are_bounded() -> None:
    metrics = FrugalMetrics(MetricsConfig(tenant_label="id", max_tenant_labels=2))
    for tenant in ("a", "b", "c", "d", "a"):
        finish(metrics, tenant=tenant)
    text = scrape(metrics)
    assert sum_samples(text, "frugal_requests_total", tenant="a") == 2
    assert sum_samples(text, "frugal_requests_total", tenant="b") == 1
    assert sum_samples(text, "frugal_requests_total", tenant="other") == 2


def test_bad_values_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    metrics = FrugalMetrics()
    finish(metrics, status="exploded", cost_usd=-1.0)
    metrics.rejected("solar_flare", None)
    metrics.cache_lookup("small", "maybe", "fuzzy")
    text = scrape(metrics)
    assert sum_samples(text, "frugal_requests_total", status="other") == 1
    assert sum_samples(text, "frugal_cost_usd_total") == 0
    assert sum_samples(text, "frugal_rejections_total", reason="other", tier="-") == 1
    assert sum_samples(text, "frugal_cache_lookups_total", result="other", match="other") == 1
    assert "negative increment of frugal_cost_usd" in caplog.text


def test_rejections_and_cache_lookups() -> None:
    metrics = FrugalMetrics()
    metrics.rejected("budget", "free")
    metrics.rejected("rate_limit_requests", "free")
    metrics.rejected("budget", "free")
    metrics.cache_lookup("small", "hit", "semantic")
    metrics.cache_lookup("small", "miss")
    metrics.cache_lookup("small", "bypass", None)
    text = scrape(metrics)
    assert sum_samples(text, "frugal_rejections_total", reason="budget", tier="free") == 2
    assert sum_samples(text, "frugal_cache_lookups_total", result="hit", match="semantic") == 1
    assert sum_samples(text, "frugal_cache_lookups_total", result="miss", match="-") == 1
    assert sum_samples(text, "frugal_cache_lookups_total") == 3


def test_cache_event_sink_counts_stores_and_degraded_operations_not_lookups() -> None:
    metrics = FrugalMetrics()
    events = metrics.cache_events()
    events.on_lookup("hit", "exact")
    events.on_store()
    events.on_degraded("get")
    events.on_degraded("get")
    text = scrape(metrics)
    assert sum_samples(text, "frugal_cache_lookups_total") == 0
    assert sum_samples(text, "frugal_cache_stores_total") == 1
    assert sum_samples(text, "frugal_degraded_total", component="cache", operation="get") == 2


def test_pool_state_gauges_follow_the_latest_poll() -> None:
    metrics = FrugalMetrics()
    state = {"pool": "big-h100", "model": "big", "accelerator": "H100", "price_usd_per_hour": 6.88}
    metrics.pool_state(**state, replicas=1, starting=2, running=5, waiting=1, kv_cache_usage=0.25)  # type: ignore[arg-type]
    metrics.pool_state(**state, replicas=3, starting=0, running=40, waiting=7, kv_cache_usage=None)  # type: ignore[arg-type]
    text = scrape(metrics)
    assert sum_samples(text, "frugal_pool_replicas", pool="big-h100", state="ready", accelerator="H100") == 3
    assert sum_samples(text, "frugal_pool_replicas", pool="big-h100", state="starting") == 0
    assert sum_samples(text, "frugal_pool_running_requests", pool="big-h100") == 40
    assert sum_samples(text, "frugal_pool_waiting_requests", pool="big-h100") == 7
    assert sum_samples(text, "frugal_pool_price_usd_per_hour", pool="big-h100") == 6.88
    assert not [s for s in parse_samples(text) if s.name == "frugal_pool_kv_cache_usage_ratio"]


def test_tenant_spend_needs_tenant_labels() -> None:
    off = FrugalMetrics()
    off.tenant_spend(tenant="acme", tier="paid", basis="billed", spent_usd=12.5, budget_usd=50.0)
    assert sum_samples(scrape(off), "frugal_tenant_spend_usd") == 0

    on = FrugalMetrics(MetricsConfig(tenant_label="id"))
    on.tenant_spend(tenant="acme", tier="paid", basis="billed", spent_usd=12.5, budget_usd=50.0)
    text = scrape(on)
    assert sum_samples(text, "frugal_tenant_spend_usd", tenant="acme", basis="billed") == 12.5
    assert sum_samples(text, "frugal_tenant_budget_usd", tenant="acme") == 50.0
    on.tenant_spend(tenant="acme", tier="paid", basis="billed", spent_usd=13.0, budget_usd=None)
    assert not [s for s in parse_samples(scrape(on)) if s.name == "frugal_tenant_budget_usd"]


def test_every_catalogued_metric_is_exported_and_instances_are_independent() -> None:
    first, second = FrugalMetrics(MetricsConfig(tenant_label="id")), FrugalMetrics()
    finish(first, avoided_cost_usd=0.1)
    first.rejected("quota", "free")
    first.cache_lookup("small", "hit", "exact")
    first.cache_events().on_store()
    first.degraded("ledger", "append")
    first.pool_state(pool="p", model="small", accelerator="CPU", replicas=1, starting=0, running=1, waiting=0,
                     kv_cache_usage=0.5, price_usd_per_hour=0.096)
    first.tenant_spend(tenant="acme", tier="paid", basis="cost", spent_usd=1.0, budget_usd=2.0)
    names = {s.name for s in parse_samples(scrape(first))}
    assert names == exported_sample_names()
    assert sum_samples(scrape(second), "frugal_requests_total") == 0


def test_export_to_ray_on_needs_a_ray_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    with pytest.raises(RuntimeError, match="not an initialised Ray worker"):
        FrugalMetrics(MetricsConfig(export_to_ray="on"))
    assert not FrugalMetrics().mirrored  # auto, outside Ray


class FakeRayMetric:
    def __init__(self, name: str, description: str = "", boundaries: list[float] | None = None,
                 tag_keys: tuple[str, ...] = ()) -> None:
        self.name, self.tag_keys, self.records = name, tag_keys, []
        if boundaries is not None:
            assert all(b > 0 for b in boundaries)  # Ray refuses other bounds

    def inc(self, value: float, tags: dict[str, str]) -> None:
        assert value > 0  # Ray refuses other increments
        self._record(value, tags)

    def observe(self, value: float, tags: dict[str, str]) -> None:
        self._record(value, tags)

    def set(self, value: float | None, tags: dict[str, str]) -> None:
        self._record(value, tags)

    def _record(self, value: float | None, tags: dict[str, str]) -> None:
        assert set(tags) == set(self.tag_keys) and all(isinstance(v, str) for v in tags.values())
        self.records.append((value, tags))


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeRayMetric]:
    """``ray``, ``ray.util`` and ``ray.util.metrics`` stand-ins; returns the metrics built."""
    built: dict[str, FakeRayMetric] = {}

    def factory(*args: object, **kwargs: object) -> FakeRayMetric:
        metric = FakeRayMetric(*args, **kwargs)  # type: ignore[arg-type]
        built[metric.name] = metric
        return metric

    ray = types.ModuleType("ray")
    ray.is_initialized = lambda: True  # type: ignore[attr-defined]
    util = types.ModuleType("ray.util")
    metrics = types.ModuleType("ray.util.metrics")
    metrics.Counter = metrics.Histogram = metrics.Gauge = factory  # type: ignore[attr-defined]
    util.metrics = metrics  # type: ignore[attr-defined]
    ray.util = util  # type: ignore[attr-defined]
    for name, module in (("ray", ray), ("ray.util", util), ("ray.util.metrics", metrics)):
        monkeypatch.setitem(sys.modules, name, module)
    return built


def test_inside_ray_every_record_is_mirrored(fake_ray: dict[str, FakeRayMetric]) -> None:
    metrics = FrugalMetrics()
    assert metrics.mirrored
    assert set(fake_ray) == {m.name for m in METRICS}
    finish(metrics, prompt_tokens=5, completion_tokens=0, cost_usd=0.002)
    metrics.pool_state(pool="p", model="small", accelerator="CPU", replicas=1, starting=0, running=0, waiting=0,
                       kv_cache_usage=None, price_usd_per_hour=0.096)
    assert fake_ray["frugal_prompt_tokens"].records == [(5.0, {"model": "small", "pool": "small-cpu", "tier": "paid", "tenant": "-"})]
    assert fake_ray["frugal_completion_tokens"].records == []  # zero increments are skipped
    assert [v for v, _ in fake_ray["frugal_cost_usd"].records] == [0.002]
    assert len(fake_ray["frugal_ttft_seconds"].records) == 1
    assert [v for v, t in fake_ray["frugal_pool_replicas"].records if t["state"] == "ready"] == [1.0]
    # The Prometheus registry records the same.
    assert sum_samples(scrape(metrics), "frugal_cost_usd_total") == pytest.approx(0.002)


def test_the_docs_list_every_metric() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for spec in METRICS:
        exported = f"{spec.name}_total" if spec.kind == "counter" else spec.name
        assert f"`{exported}`" in docs, f"docs/observability.md does not list {exported}"
