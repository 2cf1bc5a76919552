"""The Grafana dashboard in the repo: up to date with its builder, valid against the model of
Grafana's dashboard schema, and every query names metrics that Frugal exports. Also the
Prometheus scrape config it reads."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from serve.observability.catalog import METRICS, exported_sample_names
from serve.observability.dashboard import DASHBOARD_PATH, JOBS, build_dashboard, render_dashboard
from serve.observability.grafana_schema import validate_dashboard
from serve.observability.promql import metric_names

PROMETHEUS_CONFIG = Path(__file__).resolve().parents[2] / "deployments" / "prometheus" / "prometheus.yml"


def test_the_file_is_what_the_builder_writes() -> None:
    assert DASHBOARD_PATH.read_text() == render_dashboard(), "run: python -m serve.observability.dashboard"


def test_the_file_validates_against_grafanas_dashboard_model() -> None:
    dashboard = validate_dashboard(json.loads(DASHBOARD_PATH.read_text()))
    assert dashboard.schemaVersion >= 36
    assert {v.name for v in dashboard.templating.variables} == {"datasource", "job"}
    assert len(dashboard.query_panels()) >= 15


def test_every_query_names_only_exported_metrics() -> None:
    dashboard = validate_dashboard(json.loads(DASHBOARD_PATH.read_text()))
    exported = exported_sample_names()
    used: set[str] = set()
    for panel in dashboard.query_panels():
        for target in panel.targets:
            names = metric_names(target.expr)
            assert names, f"{panel.title}: no metric in {target.expr}"
            assert names <= exported, f"{panel.title}: {sorted(names - exported)} are not exported"
            used |= names
    # The panels: traffic, latency, cost, cache savings, tenant budgets, replicas.
    for family in ("frugal_requests", "frugal_ttft_seconds", "frugal_tpot_seconds", "frugal_e2e_seconds",
                   "frugal_cost_usd", "frugal_avoided_cost_usd", "frugal_cache_lookups", "frugal_tenant_budget_usd",
                   "frugal_pool_replicas", "frugal_pool_price_usd_per_hour", "frugal_pool_kv_cache_usage_ratio"):
        spec = next(m for m in METRICS if m.name == family)
        assert used & spec.sample_names(), f"no panel reads {family}"


@pytest.mark.parametrize(
    "expr, names",
    [
        ('sum by (pool) (rate(frugal_cost_usd_total{job=~"$job",pool!="-"}[$__rate_interval])) * 3600', {"frugal_cost_usd_total"}),
        ("histogram_quantile(0.95, sum by (le, pool) (rate(x_bucket[5m])))", {"x_bucket"}),
        ("1e6 * sum(a) by (pool) / sum without (tenant) (b + c offset 1h)", {"a", "b", "c"}),
        ("max by (pool) (x) * on (pool) group_left max by (pool) (y)", {"x", "y"}),
        ('count(up{job="frugal"} == bool 1) and on () vector(1)', {"up"}),
    ],
)
def test_metric_names_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_the_model_rejects_what_grafana_would() -> None:
    good = build_dashboard()
    cases = []
    wide = copy.deepcopy(good)
    wide["panels"][1]["gridPos"]["w"] = 25
    cases.append(wide)
    overflow = copy.deepcopy(good)
    overflow["panels"][1]["gridPos"]["x"] = 20
    cases.append(overflow)
    duplicate = copy.deepcopy(good)
    duplicate["panels"][2]["id"] = duplicate["panels"][1]["id"]
    cases.append(duplicate)
    typo = copy.deepcopy(good)
    typo["panels"][1]["gridpos"] = typo["panels"][1].pop("gridPos")
    cases.append(typo)
    undeclared = copy.deepcopy(good)
    undeclared["panels"][1]["targets"][0]["expr"] += ' + on() vector($nope)'
    cases.append(undeclared)
    no_version = copy.deepcopy(good)
    del no_version["schemaVersion"]
    cases.append(no_version)
    for case in cases:
        with pytest.raises(ValidationError):
            validate_dashboard(case)


def test_prometheus_config_scrapes_both_sources_the_dashboard_offers() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(JOBS) <= set(jobs)
    assert jobs["frugal-router"]["metrics_path"] == "/metrics"
    rule = jobs["ray"]["metric_relabel_configs"][0]
    # Prometheus anchors relabel regexes and expands $1 like re's \1.
    renamed = re.sub(rf"^(?:{rule['regex']})$", rule["replacement"].replace("$1", r"\1"), "ray_frugal_requests_total")
    assert renamed == "frugal_requests_total" and rule["target_label"] == "__name__"
    assert re.fullmatch(rule["regex"], "ray_serve_num_http_requests_total") is None
