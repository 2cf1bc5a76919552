"""The cost report on a small synthetic ledger: totals equal the ledger's sums, tenants are
measured against their budgets, the what-if fleets are consistent with the capacity model,
and the script writes its report and plots."""

from __future__ import annotations

import asyncio
import json
import math
import runpy
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from serve.config.loader import parse_config
from serve.costcalc.ledger_source import file_store, period_bounds_s, read_records
from serve.costcalc.plots import write_plots
from serve.costcalc.render import report_markdown
from serve.costcalc.report import build_report, tenant_budgets, what_if_specs
from serve.costcalc.whatif import WhatIfModel, model_pools, traffic, what_if
from serve.dispatch.types import LatencyTarget
from serve.sim.optimal import capacity_matrix
from serve.tenants.config import TenantsConfig
from serve.tenants.ledger_record import LedgerRecord
from serve.tenants.ledger_store import LocalLedgerStore
from serve.tenants.units import to_nano_usd, to_usd

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cost_report.py"
START, END = date(2026, 3, 2), date(2026, 3, 4)
TARGET = LatencyTarget(ttft_ms=1000, tpot_ms=100)
TENANTS = TenantsConfig.model_validate({
    "tiers": {"paid": {"monthly_budget_usd": 0.05, "budget_basis": "cost"}},
    "tenants": [
        {"id": "acme", "tier": "paid"},
        {"id": "globex", "tier": "paid", "monthly_budget_usd": 1.0},
        {"id": "initech", "tier": "free"},
    ],
})
CONFIG_YAML = """
models:
  - name: chat-8b
    latency_target: {ttft_ms: 2000, tpot_ms: 80}
    pools:
      - name: chat-8b-l4
        accelerator_type: L4
        engine: {model: meta-llama/Llama-3.1-8B-Instruct}
  - name: embed
    task: embed
    pools:
      - name: embed-cpu
        engine: {model: sentence-transformers/all-MiniLM-L6-v2}
"""


def synthetic_ledger(seed: int = 7) -> list[LedgerRecord]:
    """Three days of two chat models and an embedding model: a daytime peak, cache hits,
    failures, three tenants and the anonymous one."""
    rng = np.random.default_rng(seed)
    records = []
    start_s = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
    tenants = ["acme", "globex", "initech", "anonymous"]
    for i in range(900):
        day = (i // 3) % 3
        hour = int(rng.choice([9, 10, 11, 14, 15, 16, 3]))
        time_s = start_s + day * 86_400 + hour * 3600 + float(rng.uniform(0, 3600))
        model, pool = [("chat-8b", "chat-8b-l4"), ("SmolLM2-135M-Instruct", "smollm2-cpu"), ("embed", "embed-cpu")][i % 3]
        hit = model != "embed" and rng.random() < 0.2
        prompt = int(rng.integers(20, 900))
        completion = 0 if model == "embed" else int(rng.integers(10, 400))
        cost = 0.0 if hit else round(float(rng.uniform(1e-5, 4e-4)), 9)
        records.append(LedgerRecord(
            request_id=f"req-{i}", time_s=time_s, tenant_id=tenants[i % 4], model=model,
            pool=None if hit else pool, prompt_tokens=prompt, completion_tokens=completion, cache_hit=hit,
            cost_usd=cost, avoided_cost_usd=round(float(rng.uniform(1e-5, 4e-4)), 9) if hit else 0.0,
            billed_usd=round((prompt + completion) * 0.002 / 1000, 9), latency_ms=float(rng.uniform(50, 4000)),
            status="failed" if i % 97 == 0 else "ok",
        ))
    return records


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in synthetic_ledger()))
    return path


def test_records_are_read_through_the_ledger_store(ledger_file: Path) -> None:
    records = asyncio.run(read_records(file_store(ledger_file), START, date(2026, 3, 3)))
    assert len(records) == 600  # two of the three days
    assert [r.time_s for r in records] == sorted(r.time_s for r in records)
    with pytest.raises(FileNotFoundError, match="no ledger file"):
        file_store(ledger_file.parent / "absent.jsonl")
    with pytest.raises(ValueError, match="before start"):
        period_bounds_s(END, START)


def test_totals_and_daily_spend_equal_the_ledgers_sums() -> None:
    records = synthetic_ledger()
    report = build_report(records, START, END, tenant_budgets(TENANTS))
    assert report.totals.requests == 900
    assert report.totals.cost_usd == to_usd(sum(to_nano_usd(r.cost_usd) for r in records))
    assert report.totals.avoided_cost_usd == to_usd(sum(to_nano_usd(r.avoided_cost_usd) for r in records))
    assert report.totals.cache_hits == sum(r.cache_hit for r in records)
    assert report.totals.failed == sum(r.status == "failed" for r in records)
    assert sum(d.cost_usd for d in report.spend_by_day) == pytest.approx(report.totals.cost_usd)
    assert {d.pool for d in report.spend_by_day} == {"chat-8b-l4", "smollm2-cpu", "embed-cpu", "-"}
    assert [c.day for c in report.cache_by_day] == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert sum(c.cache_hits for c in report.cache_by_day) == report.totals.cache_hits


def test_tenants_against_budgets() -> None:
    records = synthetic_ledger()
    rows = {t.tenant: t for t in build_report(records, START, END, tenant_budgets(TENANTS)).tenants}
    acme = rows["acme"]
    assert acme.basis == "cost" and acme.budget_usd == 0.05  # the tier's budget, on cost
    assert acme.spent_usd == pytest.approx(sum(r.cost_usd for r in records if r.tenant_id == "acme"))
    assert acme.used_pct == pytest.approx(100 * acme.spent_usd / 0.05)
    assert rows["globex"].budget_usd == 1.0  # the tenant's override
    assert rows["initech"].budget_usd is None and rows["initech"].used_pct is None  # free: no budget
    assert rows["anonymous"].tier == "vip"


def test_what_if_single_types_follow_the_capacity_model() -> None:
    records = synthetic_ledger()
    start_s, end_s = period_bounds_s(START, END)
    specs = {"chat-8b": WhatIfModel("llama-3.1-8b-instruct", TARGET)}
    result = what_if(records, specs, TARGET, start_s, end_s, gpus=["T4", "L4", "A100-80G", "H100"])
    assert [m.model for m in result.models] == ["SmolLM2-135M-Instruct", "chat-8b"]
    assert result.skipped and result.skipped[0].startswith("embed:")
    chat = next(m for m in result.models if m.model == "chat-8b")
    served = [r for r in records if r.model == "chat-8b" and not r.cache_hit]
    assert chat.requests == len(served)
    assert chat.actual_cost_usd == pytest.approx(sum(r.cost_usd for r in served))
    assert not chat.fleet("T4").feasible and "does not fit" in chat.fleet("T4").reason
    # Recompute the H100 fleet by hand from the capacity matrix.
    tr = traffic(served, start_s, end_s, 3600.0)
    pools, _ = model_pools(specs["chat-8b"], chat.mean_prompt_tokens, chat.mean_output_tokens, ["H100"])
    mu = capacity_matrix(tr.buckets, pools)[:, 0]
    replicas = np.ceil(tr.counts / 3600.0 @ (1 / mu) - 1e-9)
    h100 = chat.fleet("H100")
    assert h100.fleet_usd == pytest.approx(replicas.sum() * 6.88)
    assert h100.utilised_usd == pytest.approx((tr.counts @ (1 / mu)).sum() * 6.88 / 3600)
    assert h100.peak_replicas == {"H100": int(replicas.max())}
    assert tr.counts.sum() == len(served) and tr.counts.shape[0] == 72
    # The mix is never dearer than the cheapest single type; totals add up across models.
    best = result.cheapest_single
    assert best is not None and best.feasible
    assert result.fleet("mix").fleet_usd <= best.fleet_usd + 1e-9
    assert result.all_h100.fleet_usd == pytest.approx(sum(m.fleet("H100").fleet_usd for m in result.models))
    assert min(f.fleet_usd for f in result.by_fleet if f.feasible and f.fleet != "mix") == best.fleet_usd


def test_an_unmeetable_target_leaves_no_single_type() -> None:
    records = synthetic_ledger()
    start_s, end_s = period_bounds_s(START, END)
    tight = LatencyTarget(ttft_ms=1, tpot_ms=0.01)
    result = what_if(records, {}, tight, start_s, end_s, gpus=["L4", "H100"])
    assert result.cheapest_single is None
    assert not result.all_h100.feasible and "misses the target" in result.all_h100.reason


def test_specs_from_config_take_the_models_target_and_catalogue_entry() -> None:
    config = parse_config(CONFIG_YAML)
    specs = what_if_specs(config, TARGET)
    assert set(specs) == {"chat-8b"}  # embedding models are not modelled
    assert specs["chat-8b"].catalogue_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert specs["chat-8b"].target == LatencyTarget(ttft_ms=2000, tpot_ms=80, percentile=95.0)


def test_markdown_and_plots(tmp_path: Path) -> None:
    records = synthetic_ledger()
    start_s, end_s = period_bounds_s(START, END)
    scenario = what_if(records, {}, TARGET, start_s, end_s, gpus=["L4", "H100"])
    report = build_report(records, START, END, tenant_budgets(TENANTS), scenario)
    text = report_markdown(report)
    assert "| acme | 2026-03 | paid | cost |" in text and "all H100" in text and "cheapest mix" in text
    paths = write_plots(report, tmp_path)
    assert [p.name for p in paths] == ["spend_by_day.png", "cache_savings.png", "tenant_budgets.png", "what_if.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_script_writes_report_and_plots(ledger_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "frugal.yaml"
    config.write_text(CONFIG_YAML)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--ledger", str(ledger_file), "--config", str(config), "--start", "2026-03-02",
        "--end", "2026-03-04", "--out", str(out), "--gpus", "L4,A100-80G,H100",
    ])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    printed = capsys.readouterr()
    assert "Cost report 2026-03-02 to 2026-03-04" in printed.out
    assert "what-if" in printed.err  # the progress bar
    report = json.loads((out / "report.json").read_text())
    assert report["totals"]["requests"] == 900
    assert math.isclose(report["what_if"]["actual_cost_usd"],
                        sum(r.cost_usd for r in synthetic_ledger() if not r.cache_hit and r.model != "embed"))
    for name in ("report.md", "spend_by_day.png", "cache_savings.png", "tenant_budgets.png", "what_if.png"):
        assert (out / name).is_file()


def test_local_store_round_trip(tmp_path: Path) -> None:
    # The report reads what the ledger store wrote, not a copy of its format.
    store = LocalLedgerStore(tmp_path / "ledger.jsonl")
    records = synthetic_ledger()[:10]
    asyncio.run(store.append(records))
    again = asyncio.run(read_records(LocalLedgerStore(tmp_path / "ledger.jsonl"), START, END))
    assert again == sorted(records, key=lambda r: r.time_s)
