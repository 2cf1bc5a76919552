"""``FrugalMetrics``: what the router records, as Prometheus metrics.

The router builds one per replica (``FrugalMetrics(config.metrics)``) and calls:

- ``request_finished`` once per finished request, with the figures it gives the ledger
  (so the token and cost counters equal the responses' usage and the ledger's sums);
- ``cache_lookup`` once per response-cache lookup, with the model;
- ``rejected`` when admission refuses a request (limits, budget, quota, priority gate);
- ``pool_state`` from the pool monitor after each poll, per pool;
- ``tenant_spend`` after settling a request (tenant labels on only);
- ``degraded`` on a degraded path (a backend unavailable); ``cache_events()`` is the
  cache's event sink, which reports its degraded operations and stores here.

``render()`` is the body and content type of the router's ``GET /metrics``. Recording never
raises for a bad value: an unknown label value becomes "other" and a negative amount is
dropped, each with one warning, because metrics must not fail a request.

The metrics, their labels and bounds are listed in ``serve.observability.catalog``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from prometheus_client import CollectorRegistry

from serve.constants import METRICS_NO_LABEL, METRICS_OTHER_LABEL
from serve.observability.catalog import (
    BUDGET_BASES,
    CACHE_MATCHES,
    CACHE_RESULTS,
    REJECT_REASONS,
    REQUEST_STATUSES,
)
from serve.observability.config import MetricsConfig
from serve.observability.prometheus import PrometheusSink
from serve.observability.ray_mirror import RayMirror, ray_worker_initialised

logger = logging.getLogger(__name__)


class MetricSink(Protocol):
    def inc(self, name: str, labels: Mapping[str, str], value: float) -> None: ...

    def observe(self, name: str, labels: Mapping[str, str], value: float) -> None: ...

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None: ...

    def remove(self, name: str, labels: Mapping[str, str]) -> None: ...


class FrugalMetrics:
    """All of the router's metrics, in a private registry (see the module docstring)."""

    def __init__(self, config: MetricsConfig | None = None, mirror: MetricSink | None = None) -> None:
        """``mirror``: a second sink receiving every record (default: Ray's pipeline, per
        ``config.export_to_ray``). Raises ``RuntimeError`` if ``export_to_ray`` is "on"
        outside an initialised Ray worker."""
        self.config = config or MetricsConfig()
        self.prometheus = PrometheusSink()
        self._sinks: list[MetricSink] = [self.prometheus]
        if mirror is None and self.config.export_to_ray != "off":
            inside_ray = ray_worker_initialised()
            if self.config.export_to_ray == "on" and not inside_ray:
                raise RuntimeError("metrics.export_to_ray is 'on' but this process is not an initialised Ray worker")
            if inside_ray:
                mirror = RayMirror()
        if mirror is not None:
            self._sinks.append(mirror)
        self.mirrored = mirror is not None
        self._tenants: set[str] = set()
        self._warned: set[str] = set()

    @property
    def registry(self) -> CollectorRegistry:
        return self.prometheus.registry

    def render(self) -> tuple[bytes, str]:
        """(body, content type) for ``GET /metrics``: the Prometheus text format."""
        return self.prometheus.render()

    # --- requests ----------------------------------------------------------------------

    def request_finished(
        self,
        *,
        model: str,
        pool: str | None,
        tier: str | None,
        tenant: str | None,
        status: str,
        prompt_tokens: int,
        completion_tokens: int,
        cost_usd: float,
        billed_usd: float = 0.0,
        avoided_cost_usd: float = 0.0,
        ttft_s: float | None = None,
        tpot_s: float | None = None,
        e2e_s: float | None = None,
    ) -> None:
        """One finished request, with the figures its ledger record carries.

        ``pool`` None: answered from the cache or failed before dispatch (labelled "-").
        ``status``: "ok", "failed" or "cancelled" (the ledger's). Latencies in seconds, each
        observed only when given: ``ttft_s`` from arrival to the first token, ``tpot_s`` the
        decode time per output token after the first, ``e2e_s`` arrival to the answer's end.
        """
        pool_label = pool or METRICS_NO_LABEL
        tier_label = tier or METRICS_NO_LABEL
        tenant_label = self._tenant(tenant)
        request = {"model": model, "pool": pool_label, "tier": tier_label, "tenant": tenant_label}
        status_label = self._known("status", status, REQUEST_STATUSES)
        self._inc("frugal_requests", {**request, "status": status_label}, 1)
        self._inc("frugal_prompt_tokens", request, prompt_tokens)
        self._inc("frugal_completion_tokens", request, completion_tokens)
        self._inc("frugal_cost_usd", request, cost_usd)
        billing = {"model": model, "tier": tier_label, "tenant": tenant_label}
        self._inc("frugal_billed_usd", billing, billed_usd)
        self._inc("frugal_avoided_cost_usd", billing, avoided_cost_usd)
        latency = {"model": model, "pool": pool_label}
        if ttft_s is not None:
            self._observe("frugal_ttft_seconds", latency, ttft_s)
        if tpot_s is not None:
            self._observe("frugal_tpot_seconds", latency, tpot_s)
        if e2e_s is not None:
            self._observe("frugal_e2e_seconds", {**latency, "status": status_label}, e2e_s)

    def rejected(self, reason: str, tier: str | None) -> None:
        """A request refused before dispatch; ``reason`` one of ``catalog.REJECT_REASONS``."""
        labels = {"reason": self._known("reason", reason, REJECT_REASONS), "tier": tier or METRICS_NO_LABEL}
        self._inc("frugal_rejections", labels, 1)

    # --- cache -------------------------------------------------------------------------

    def cache_lookup(self, model: str, result: str, match: str | None = None) -> None:
        """One lookup: ``result`` "hit", "miss" or "bypass"; ``match`` "exact" or "semantic"
        for a hit."""
        labels = {
            "model": model,
            "result": self._known("result", result, CACHE_RESULTS),
            "match": self._known("match", match or METRICS_NO_LABEL, CACHE_MATCHES),
        }
        self._inc("frugal_cache_lookups", labels, 1)

    def degraded(self, component: str, operation: str) -> None:
        """An operation skipped or failed because ``component``'s backend was unavailable."""
        self._inc("frugal_degraded", {"component": component, "operation": operation}, 1)

    def cache_events(self) -> CacheEventSink:
        """The response cache's event sink (``build_cache(..., events=...)``); it satisfies
        ``serve.cache.events.CacheEvents`` structurally, so this module need not import the
        cache."""
        return CacheEventSink(self)

    # --- pools and tenants -------------------------------------------------------------

    def pool_state(
        self,
        *,
        pool: str,
        model: str,
        accelerator: str,
        replicas: int,
        starting: int,
        running: int,
        waiting: int,
        kv_cache_usage: float | None,
        price_usd_per_hour: float,
    ) -> None:
        """A pool's current figures (replicas ready and starting, requests running and
        waiting, KV-cache use in [0, 1] when the engine reports it, price per replica)."""
        for state, count in (("ready", replicas), ("starting", starting)):
            labels = {"pool": pool, "model": model, "accelerator": accelerator, "state": state}
            self._set("frugal_pool_replicas", labels, count)
        load = {"pool": pool, "model": model}
        self._set("frugal_pool_running_requests", load, running)
        self._set("frugal_pool_waiting_requests", load, waiting)
        if kv_cache_usage is None:
            self._remove("frugal_pool_kv_cache_usage_ratio", load)
        else:
            self._set("frugal_pool_kv_cache_usage_ratio", load, kv_cache_usage)
        self._set("frugal_pool_price_usd_per_hour", {**load, "accelerator": accelerator}, price_usd_per_hour)

    def tenant_spend(self, *, tenant: str, tier: str, basis: str, spent_usd: float, budget_usd: float | None) -> None:
        """A tenant's spend this month on its budget's ``basis`` ("billed" or "cost") and its
        monthly budget (None: unlimited). Recorded only with ``tenant_label: id``: without
        tenant labels one series would mix every tenant's spend."""
        if self.config.tenant_label != "id":
            return
        labels = {"tenant": self._tenant(tenant), "tier": tier, "basis": self._known("basis", basis, BUDGET_BASES)}
        self._set("frugal_tenant_spend_usd", labels, spent_usd)
        if budget_usd is None:
            self._remove("frugal_tenant_budget_usd", labels)
        else:
            self._set("frugal_tenant_budget_usd", labels, budget_usd)

    # --- helpers -----------------------------------------------------------------------

    def _tenant(self, tenant: str | None) -> str:
        if self.config.tenant_label != "id" or not tenant:
            return METRICS_NO_LABEL
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) >= self.config.max_tenant_labels:
            self._warn_once("tenants", f"more than {self.config.max_tenant_labels} tenants: later ones are labelled 'other'")
            return METRICS_OTHER_LABEL
        self._tenants.add(tenant)
        return tenant

    def _known(self, label: str, value: str, known: frozenset[str]) -> str:
        if value in known:
            return value
        # One warning per label, not per value: the unknown values themselves are unbounded.
        self._warn_once(label, f"metrics: unknown {label} {value!r} recorded as 'other'; known: {sorted(known)}")
        return METRICS_OTHER_LABEL

    def _inc(self, name: str, labels: Mapping[str, str], value: float) -> None:
        if value < 0:
            self._warn_once(f"negative {name}", f"metrics: negative increment of {name} dropped ({value})")
            return
        for sink in self._sinks:
            sink.inc(name, labels, value)

    def _observe(self, name: str, labels: Mapping[str, str], value: float) -> None:
        for sink in self._sinks:
            sink.observe(name, labels, max(value, 0.0))

    def _set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        for sink in self._sinks:
            sink.set(name, labels, value)

    def _remove(self, name: str, labels: Mapping[str, str]) -> None:
        for sink in self._sinks:
            sink.remove(name, labels)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)


class CacheEventSink:
    """The cache's ``CacheEvents`` reporting into ``FrugalMetrics``.

    ``on_lookup`` records nothing: the router counts lookups with their model through
    ``FrugalMetrics.cache_lookup``, and counting them here as well would double them.
    """

    def __init__(self, metrics: FrugalMetrics) -> None:
        self.metrics = metrics

    def on_lookup(self, status: str, match: str | None) -> None:
        return None

    def on_store(self) -> None:
        self.metrics._inc("frugal_cache_stores", {}, 1)

    def on_degraded(self, operation: str) -> None:
        self.metrics.degraded("cache", operation)
