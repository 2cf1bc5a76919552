"""Every metric Frugal exports: name, kind, labels and meaning, in one table.

The table is the single source for the Prometheus registry (``serve.observability.prometheus``),
the mirror into Ray's metrics pipeline (``serve.observability.ray_mirror``), the dashboard
(``serve.observability.dashboard``) and the test that checks every dashboard query names a
metric that exists.

Names follow Prometheus conventions: a ``frugal_`` prefix, the unit in the name
(``_seconds``, ``_usd``, ``_tokens``, ``_ratio``), and counters are declared without the
``_total`` suffix, which the client libraries append when exporting. Label values are
bounded: models, pools, tiers and accelerators come from the config, the other labels from
the fixed sets below; ``tenant`` is the tenant id only when ``MetricsConfig.tenant_label`` is
"id", and then for at most ``max_tenant_labels`` tenants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from serve.constants import METRICS_E2E_BUCKETS_S, METRICS_TPOT_BUCKETS_S, METRICS_TTFT_BUCKETS_S

MetricKind = Literal["counter", "histogram", "gauge"]

# The fixed label sets (a value outside them is recorded as "other").
REQUEST_STATUSES: frozenset[str] = frozenset({"ok", "failed", "cancelled"})
CACHE_RESULTS: frozenset[str] = frozenset({"hit", "miss", "bypass"})
CACHE_MATCHES: frozenset[str] = frozenset({"exact", "semantic", "coalesced", "-"})
REJECT_REASONS: frozenset[str] = frozenset({
    "rate_limit_requests",  # requests per minute
    "rate_limit_tokens",  # tokens per minute
    "too_large",  # one request above the tokens-per-minute limit
    "quota",  # monthly request quota
    "budget",  # monthly budget spent
    "model_not_allowed",  # the tier does not include the model
    "queue_full",  # the priority gate's waiting room is full
    "store_unavailable",  # the limits store is down and fail_open is off
})
REPLICA_STATES: frozenset[str] = frozenset({"ready", "starting"})
BUDGET_BASES: frozenset[str] = frozenset({"billed", "cost"})


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``name`` is the family name (a counter's samples end in ``_total``)."""

    name: str
    kind: MetricKind
    doc: str
    labels: tuple[str, ...]
    buckets_s: tuple[float, ...] = ()

    def sample_names(self) -> frozenset[str]:
        """The series names Prometheus stores for this metric."""
        if self.kind == "counter":
            return frozenset({f"{self.name}_total", f"{self.name}_created"})
        if self.kind == "histogram":
            return frozenset(f"{self.name}{s}" for s in ("_bucket", "_sum", "_count", "_created"))
        return frozenset({self.name})


_REQUEST = ("model", "pool", "tier", "tenant")

METRICS: tuple[MetricSpec, ...] = (
    # Traffic.
    MetricSpec(
        "frugal_requests", "counter",
        "Finished requests by outcome. pool '-': answered from the cache or failed before dispatch.",
        (*_REQUEST, "status"),
    ),
    MetricSpec("frugal_prompt_tokens", "counter", "Prompt tokens of finished requests (their usage).", _REQUEST),
    MetricSpec("frugal_completion_tokens", "counter", "Completion tokens of finished requests (their usage).", _REQUEST),
    MetricSpec(
        "frugal_rejections", "counter",
        "Requests refused before dispatch by a limit, a budget or the priority gate.", ("reason", "tier"),
    ),
    # Latency.
    MetricSpec(
        "frugal_ttft_seconds", "histogram", "Time to first token, from the request's arrival.",
        ("model", "pool"), METRICS_TTFT_BUCKETS_S,
    ),
    MetricSpec(
        "frugal_tpot_seconds", "histogram", "Time per output token after the first (decode time / (tokens - 1)).",
        ("model", "pool"), METRICS_TPOT_BUCKETS_S,
    ),
    MetricSpec(
        "frugal_e2e_seconds", "histogram", "End-to-end latency: arrival to the last byte of the answer.",
        ("model", "pool", "status"), METRICS_E2E_BUCKETS_S,
    ),
    # Money (USD).
    MetricSpec("frugal_cost_usd", "counter", "GPU cost of finished requests (the ledger's cost_usd).", _REQUEST),
    MetricSpec(
        "frugal_billed_usd", "counter", "Amount billed to tenants (the ledger's billed_usd).", ("model", "tier", "tenant"),
    ),
    MetricSpec(
        "frugal_avoided_cost_usd", "counter", "GPU cost that cache hits avoided (the ledger's avoided_cost_usd).",
        ("model", "tier", "tenant"),
    ),
    # Cache.
    MetricSpec("frugal_cache_lookups", "counter", "Response-cache lookups by result.", ("model", "result", "match")),
    MetricSpec("frugal_cache_stores", "counter", "Answers written to the response cache.", ()),
    MetricSpec(
        "frugal_degraded", "counter",
        "Operations skipped or failed because a backend was unavailable (the degraded paths).",
        ("component", "operation"),
    ),
    # Pools (set by the router's pool monitor; every router replica reports the same pools, so
    # dashboards aggregate these with max, not sum).
    MetricSpec(
        "frugal_pool_replicas", "gauge", "Replicas of a pool, ready or starting.", ("pool", "model", "accelerator", "state"),
    ),
    MetricSpec("frugal_pool_running_requests", "gauge", "Requests decoding on a pool's replicas.", ("pool", "model")),
    MetricSpec("frugal_pool_waiting_requests", "gauge", "Requests queued on a pool's replicas.", ("pool", "model")),
    MetricSpec(
        "frugal_pool_kv_cache_usage_ratio", "gauge",
        "Fraction of the KV cache in use, as the engine (vLLM) reports it; absent until reported.", ("pool", "model"),
    ),
    MetricSpec(
        "frugal_pool_price_usd_per_hour", "gauge", "Hourly price of one replica of the pool (all its devices).",
        ("pool", "model", "accelerator"),
    ),
    # Tenants (only with tenant labels on).
    MetricSpec(
        "frugal_tenant_spend_usd", "gauge", "A tenant's spend this month on its budget's basis (billed or cost).",
        ("tenant", "tier", "basis"),
    ),
    MetricSpec(
        "frugal_tenant_budget_usd", "gauge", "A tenant's monthly budget; absent when unlimited.", ("tenant", "tier", "basis"),
    ),
)

METRICS_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}


def exported_sample_names(specs: tuple[MetricSpec, ...] = METRICS) -> frozenset[str]:
    """Every series name the metrics in ``specs`` produce."""
    return frozenset().union(*(m.sample_names() for m in specs))
