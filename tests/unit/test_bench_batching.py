"""The side-by-side benchmark's report: ratios to bare vLLM, the tables and the plot, and the
full-stack config it serves (no servers started here)."""

from __future__ import annotations

import math

import pytest

from serve.bench.batching import BatchingReport, TargetResult, plot, ratios, table
from serve.bench.load import LevelResult, percentile
from serve.bench.targets import chat_only_config, full_stack_config
from serve.config.schema import FrugalConfig


def _level(c: int, tok_s: float, ttft_ms: float, tpot_ms: float) -> LevelResult:
    return LevelResult(
        concurrency=c, num_requests=2 * c, num_errors=0, output_tokens=int(tok_s * 10), wall_s=10,
        output_tokens_per_s=tok_s, requests_per_s=c / 5, ttft_p50_ms=ttft_ms, ttft_p99_ms=2 * ttft_ms,
        tpot_p50_ms=tpot_ms, tpot_p99_ms=2 * tpot_ms, e2e_p50_ms=ttft_ms + 47 * tpot_ms, e2e_p99_ms=2 * (ttft_ms + 47 * tpot_ms),
    )


REPORT = BatchingReport(
    machine="test", model="m", max_tokens=48, requests_per_stream=2,
    targets=[
        TargetResult(target="vllm", levels=[_level(1, 10, 100, 50), _level(32, 100, 1000, 200)]),
        TargetResult(target="frugal", levels=[_level(1, 9.5, 110, 52), _level(32, 96, 1005, 210)]),
    ],
)


def test_ratios_divide_each_metric_by_bare_vllm() -> None:
    r = ratios(REPORT, "frugal")
    assert r[1]["output_tokens_per_s"] == pytest.approx(0.95)
    assert r[32]["ttft_p50_ms"] == pytest.approx(1.005)
    assert r[32]["tpot_p50_ms"] == pytest.approx(1.05)
    assert ratios(REPORT, "frugal-full") == {}


def test_table_lists_absolute_figures_then_ratios_with_added_ttft() -> None:
    text = table(REPORT)
    assert "| vllm | 32 | 100.0 | 10.0x |" in text
    assert "Ratios to bare vllm" in text
    assert "| frugal | 1 | 0.95 |" in text and text.rstrip().endswith("+5 |")


def test_plot_writes_a_png(tmp_path) -> None:
    plot(REPORT, tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_the_baseline_still_writes_a_png(tmp_path) -> None:
    """A run of the Frugal targets alone (``--targets frugal``): no ratio panel to draw."""
    plot(REPORT.model_copy(update={"targets": REPORT.targets[1:]}), tmp_path / "b.png")
    assert (tmp_path / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3, 1, 2], 50) == 2
    assert percentile(list(range(1, 101)), 99) == 99
    assert not math.isnan(percentile([1.0], 99))


def test_the_full_stack_config_switches_everything_on() -> None:
    base = FrugalConfig.model_validate({
        "models": [{"name": "m", "pools": [
            {"name": "a", "engine": {"model": "/m", "max_num_seqs": 4}},
            {"name": "b", "engine": {"model": "/m", "max_num_seqs": 64}},
        ]}],
    })
    only = chat_only_config(base, "m")
    assert [p.name for p in only.models[0].pools] == ["b"]
    full = full_stack_config(only, "redis://127.0.0.1:6399/0", "0123456789ab", "a" * 64)
    assert full.tenants.auth_enabled and full.tenants.redis_url == full.cache.redis_url == "redis://127.0.0.1:6399/0"
    assert full.cache.enabled
    tier = full.tenants.tiers["bench"]
    assert tier.requests_per_minute and tier.tokens_per_minute and tier.price_usd_per_1k_tokens > 0
    assert [k.id for t in full.tenants.tenants for k in t.keys] == ["0123456789ab"]
