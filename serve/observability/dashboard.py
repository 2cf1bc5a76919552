"""Frugal's Grafana dashboard, built from code so every query names a metric of the catalogue.

``python -m serve.observability.dashboard`` rewrites ``deployments/grafana/frugal-dashboard.json``;
a unit test checks that the file equals what ``build_dashboard`` returns, that it validates
against ``serve.observability.grafana_schema`` and that every query's metrics exist.

Two variables: ``datasource`` (any Prometheus data source) and ``job``, the scrape job the
Frugal series come from: "frugal-router" (the router's ``/metrics``, exact with one router
replica) or "ray" (Ray's metrics agents, every router replica; the scrape config strips the
``ray_`` prefix). Gauges of pools and tenants are reported by every router replica, so they
are combined with ``max``; counters with ``sum``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DASHBOARD_PATH = Path(__file__).resolve().parents[2] / "deployments" / "grafana" / "frugal-dashboard.json"
DASHBOARD_UID = "frugal-overview"
SCHEMA_VERSION = 39  # Grafana 10.4 / 11.x
JOBS: tuple[str, ...] = ("frugal-router", "ray")
RATE = "$__rate_interval"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRID_COLUMNS = 24
PANEL_HEIGHT = 8


def sel(name: str, **matchers: str) -> str:
    """``name{job=~"$job", k="v"...}``; a value starting with "~" or "!" is a regex or negation."""
    parts = ['job=~"$job"']
    for key, value in matchers.items():
        if value.startswith("~"):
            parts.append(f'{key}=~"{value[1:]}"')
        elif value.startswith("!"):
            parts.append(f'{key}!="{value[1:]}"')
        else:
            parts.append(f'{key}="{value}"')
    return f"{name}{{{','.join(parts)}}}"


def rate(name: str, **matchers: str) -> str:
    return f"rate({sel(name, **matchers)}[{RATE}])"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    description: str = ""
    max_value: float | None = None
    thresholds: tuple[tuple[float, str], ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    panels: tuple[PanelSpec, ...] = field(default_factory=tuple)


def _quantiles(metric: str, by: str, status: str | None = None) -> tuple[Query, ...]:
    matchers = {"status": status} if status else {}
    return tuple(
        Query(
            f"histogram_quantile({q}, sum by (le, {by}) ({rate(metric + '_bucket', **matchers)}))",
            f"p{round(q * 100)} {{{{{by}}}}}",
        )
        for q in (0.5, 0.95)
    )


def _tokens_by_pool(window: str) -> str:
    return (
        f"sum by (pool) (rate({sel('frugal_prompt_tokens_total', pool='!-')}[{window}]) "
        f"+ rate({sel('frugal_completion_tokens_total', pool='!-')}[{window}]))"
    )


SECTIONS: tuple[Section, ...] = (
    Section("Traffic", (
        PanelSpec("Requests per second by model and status", (
            Query(f"sum by (model, status) ({rate('frugal_requests_total')})", "{{model}} {{status}}"),
        ), unit="reqps"),
        PanelSpec("Tokens per second by model", (
            Query(f"sum by (model) ({rate('frugal_prompt_tokens_total')})", "{{model}} prompt"),
            Query(f"sum by (model) ({rate('frugal_completion_tokens_total')})", "{{model}} completion"),
        )),
        PanelSpec("Rejections per second by reason", (
            Query(f"sum by (reason, tier) ({rate('frugal_rejections_total')})", "{{reason}} ({{tier}})"),
        ), unit="reqps", description="Rate limits, quotas, budgets and the priority gate."),
    )),
    Section("Latency", (
        PanelSpec("Time to first token by pool", _quantiles("frugal_ttft_seconds", "pool"), unit="s"),
        PanelSpec("Time per output token by pool", _quantiles("frugal_tpot_seconds", "pool"), unit="s"),
        PanelSpec("End-to-end latency by model (ok requests)", _quantiles("frugal_e2e_seconds", "model", "ok"), unit="s"),
    )),
    Section("Cost", (
        PanelSpec("Request cost per hour by pool", (
            Query(f"3600 * sum by (pool) ({rate('frugal_cost_usd_total')})", "{{pool}}"),
        ), unit="currencyUSD", description="GPU cost attributed to requests (the ledger's cost), per hour."),
        PanelSpec("Fleet cost per hour by pool (replicas x price)", (
            Query(
                f"sum by (pool) (max by (pool, state) ({sel('frugal_pool_replicas')})) "
                f"* on (pool) max by (pool) ({sel('frugal_pool_price_usd_per_hour')})",
                "{{pool}}",
            ),
        ), unit="currencyUSD", description="What the pools' ready and starting replicas cost per hour, busy or idle."),
        PanelSpec("Cost per 1M tokens by pool", (
            Query(
                f"1e6 * sum by (pool) (rate({sel('frugal_cost_usd_total', pool='!-')}[{RATE}])) / {_tokens_by_pool(RATE)}",
                "{{pool}}",
            ),
        ), unit="currencyUSD", description="Prompt and completion tokens together."),
        PanelSpec("GPU cost in range", (
            Query(f"sum(increase({sel('frugal_cost_usd_total')}[$__range]))", "cost"),
        ), unit="currencyUSD", kind="stat"),
        PanelSpec("Billed in range", (
            Query(f"sum(increase({sel('frugal_billed_usd_total')}[$__range]))", "billed"),
        ), unit="currencyUSD", kind="stat"),
        PanelSpec("Cache savings in range", (
            Query(f"sum(increase({sel('frugal_avoided_cost_usd_total')}[$__range]))", "avoided"),
        ), unit="currencyUSD", kind="stat"),
    )),
    Section("Cache", (
        PanelSpec("Cache savings per hour by model", (
            Query(f"3600 * sum by (model) ({rate('frugal_avoided_cost_usd_total')})", "{{model}}"),
        ), unit="currencyUSD", description="GPU cost that answers from the cache avoided."),
        PanelSpec("Cache hit ratio by model", (
            Query(
                f"sum by (model) ({rate('frugal_cache_lookups_total', result='hit')}) "
                f"/ sum by (model) ({rate('frugal_cache_lookups_total', result='~hit|miss')})",
                "{{model}}",
            ),
        ), unit="percentunit", max_value=1),
        PanelSpec("Cache lookups and degraded operations per second", (
            Query(f"sum by (result, match) ({rate('frugal_cache_lookups_total')})", "{{result}} {{match}}"),
            Query(
                f"sum by (component, operation) ({rate('frugal_degraded_total')})", "degraded {{component}} {{operation}}",
            ),
        ), unit="ops"),
    )),
    Section("Tenants", (
        PanelSpec("Spend against monthly budget", (
            Query(
                f"100 * max by (tenant) ({sel('frugal_tenant_spend_usd')}) "
                f"/ max by (tenant) ({sel('frugal_tenant_budget_usd')})",
                "{{tenant}}",
            ),
        ), unit="percent", kind="bargauge", max_value=100, thresholds=((80, "orange"), (100, "red")),
            description="Needs metrics.tenant_label: id. Tenants without a budget are not shown."),
        PanelSpec("Tenant spend and budget this month", (
            Query(f"max by (tenant, basis) ({sel('frugal_tenant_spend_usd')})", "{{tenant}} spent ({{basis}})"),
            Query(f"max by (tenant, basis) ({sel('frugal_tenant_budget_usd')})", "{{tenant}} budget ({{basis}})"),
        ), unit="currencyUSD"),
        PanelSpec("Cost per hour by tenant", (
            Query(f"3600 * sum by (tenant) ({rate('frugal_cost_usd_total')})", "{{tenant}}"),
        ), unit="currencyUSD", description="Tenant '-': tenant labels off."),
    )),
    Section("Pools", (
        PanelSpec("Replicas per pool", (
            Query(
                f"max by (pool, accelerator, state) ({sel('frugal_pool_replicas')})", "{{pool}} ({{accelerator}}) {{state}}",
            ),
        )),
        PanelSpec("Running and waiting requests per pool", (
            Query(f"max by (pool) ({sel('frugal_pool_running_requests')})", "{{pool}} running"),
            Query(f"max by (pool) ({sel('frugal_pool_waiting_requests')})", "{{pool}} waiting"),
        )),
        PanelSpec("Engine KV-cache use per pool", (
            Query(f"max by (pool) ({sel('frugal_pool_kv_cache_usage_ratio')})", "{{pool}}"),
        ), unit="percentunit", max_value=1, description="As vLLM reports it, from the replica the router last polled."),
    )),
)


def _panel(spec: PanelSpec, panel_id: int, x: int, y: int) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    steps += [{"color": color, "value": value} for value, color in spec.thresholds]
    defaults: dict[str, Any] = {"unit": spec.unit, "thresholds": {"mode": "absolute", "steps": steps}}
    if spec.max_value is not None:
        defaults["min"], defaults["max"] = 0, spec.max_value
    options: dict[str, Any] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
    if spec.kind == "timeseries":
        options["tooltip"] = {"mode": "multi", "sort": "desc"}
        defaults["custom"] = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
    elif spec.kind == "stat":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value"}
    elif spec.kind == "bargauge":
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                   "orientation": "horizontal", "displayMode": "gradient"}
    panel: dict[str, Any] = {
        "id": panel_id,
        "type": spec.kind,
        "title": spec.title,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": spec.width, "x": x, "y": y},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend, "range": True}
            for i, q in enumerate(spec.queries)
        ],
        "options": options,
        "fieldConfig": {"defaults": defaults, "overrides": []},
    }
    if spec.description:
        panel["description"] = spec.description
    return panel


def _variables() -> list[dict[str, Any]]:
    return [
        {
            "type": "datasource", "name": "datasource", "label": "Prometheus", "query": "prometheus",
            "current": {}, "hide": 0, "refresh": 1, "regex": "",
        },
        {
            "type": "custom", "name": "job", "label": "Metrics source",
            "description": "frugal-router: the router's /metrics (one router replica); ray: Ray's metrics agents",
            "query": ",".join(JOBS), "current": {"text": JOBS[0], "value": JOBS[0]},
            "options": [{"text": j, "value": j, "selected": j == JOBS[0]} for j in JOBS], "hide": 0,
        },
    ]


def build_dashboard() -> dict[str, Any]:
    """The dashboard JSON (as Grafana's "Import dashboard" and provisioning read it)."""
    panels: list[dict[str, Any]] = []
    next_id, y = 1, 0
    for section in SECTIONS:
        panels.append({"id": next_id, "type": "row", "title": section.title, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": y}})
        next_id, y, x = next_id + 1, y + 1, 0
        for spec in section.panels:
            if x + spec.width > GRID_COLUMNS:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(_panel(spec, next_id, x, y))
            next_id, x = next_id + 1, x + spec.width
        y += PANEL_HEIGHT
    return {
        "id": None,
        "uid": DASHBOARD_UID,
        "title": "Frugal: traffic, latency and cost",
        "description": "Frugal's router metrics (serve/observability/catalog.py), "
                       "built by serve/observability/dashboard.py.",
        "tags": ["frugal", "llm", "cost"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "panels": panels,
        "templating": {"list": _variables()},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True, "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "links": [],
    }


def render_dashboard() -> str:
    return json.dumps(build_dashboard(), indent=2) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="Write Frugal's Grafana dashboard JSON.")
    parser.add_argument("--out", type=Path, default=DASHBOARD_PATH)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render_dashboard())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
