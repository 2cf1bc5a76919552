"""The cost calculator: the source documents' formulas, per-GPU costs consistent with the
capacity model, the cheapest mix, TCO and payback arithmetic, and clear errors."""

from __future__ import annotations

import math
import runpy
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from serve.costcalc.calculator import NoGpuMeetsTarget, calculate, cost_per_query_usd, spi
from serve.costcalc.render import calculator_markdown
from serve.costcalc.tco import HARDWARE, TcoAssumptions, compare_tco, payback_months
from serve.costcalc.workload import Workload, format_validation_error

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cost_calculator.py"
CHAT = {"requests_per_day": 200_000, "prompt_tokens": 512, "output_tokens": 256, "ttft_ms": 1000, "tpot_ms": 50}


def test_source_formula_reproduces_the_documents_example() -> None:
    # An A10 at $0.75/h and 2 s per query costs $0.0004 (to the documents' precision).
    assert cost_per_query_usd(2.0, 0.75) == pytest.approx(2 / 3600 * 0.75)
    assert round(cost_per_query_usd(2.0, 0.75), 4) == 0.0004


def test_spi_is_qps_over_cost_per_hour_times_latency() -> None:
    assert spi(7.0, 0.5, 0.4) == pytest.approx(35.0)
    with pytest.raises(ValueError):
        spi(1.0, 0.0, 1.0)


def test_each_gpu_is_sized_from_its_capacity_within_the_target() -> None:
    workload = Workload(**CHAT)
    result = calculate(workload)
    assert {o.gpu for o in result.options} == set(workload.gpus)
    for option in result.options:
        if not option.meets_target:
            continue
        assert option.tpot_ms <= workload.tpot_ms and option.ttft_ms <= workload.ttft_ms
        assert option.replicas == math.ceil(workload.peak_requests_per_s / option.requests_per_s_per_replica)
        assert option.monthly_cost_usd == pytest.approx(option.replicas * option.price_usd_per_hour * 730)
        assert option.cost_per_query_usd == pytest.approx(option.single_latency_s / 3600 * option.price_usd_per_hour)
        assert option.cost_per_query_batched_usd <= option.cost_per_query_usd  # batching shares the replica
        assert option.spi == pytest.approx(
            option.requests_per_s_per_replica / (option.price_usd_per_hour * option.latency_s))
    # The T4 cannot hold 16 GB of bf16 weights; the cheapest type is the cheapest feasible one.
    assert result.option("T4").reason.startswith("does not fit")
    feasible = [o for o in result.options if o.meets_target]
    assert result.cheapest_single == min(feasible, key=lambda o: o.monthly_cost_usd).gpu
    assert result.mix.monthly_cost_usd <= result.option(result.cheapest_single).monthly_cost_usd + 1e-9


def test_the_mix_can_beat_every_single_type() -> None:
    # A rate just above one H100's capacity: a second H100 is dearer than a cheaper type's top-up.
    base = calculate(Workload(**CHAT))
    h100 = base.option("H100").requests_per_s_per_replica
    rate = h100 * 1.05
    result = calculate(Workload(**{**CHAT, "requests_per_day": rate * 86_400}))
    singles = min(o.monthly_cost_usd for o in result.options if o.meets_target)
    assert result.mix.monthly_cost_usd < singles
    assert sum(result.mix.replicas.values()) >= 2


def test_price_overrides_and_peak_factor() -> None:
    cheap = calculate(Workload(**CHAT, gpus=["A10G", "H100"], price_usd_per_hour={"A10G": 0.75}))
    assert cheap.option("A10G").price_usd_per_hour == 0.75
    peaky = calculate(Workload(**CHAT, gpus=["A10G"], peak_to_mean=3))
    flat = calculate(Workload(**CHAT, gpus=["A10G"]))
    assert peaky.option("A10G").replicas >= 3 * flat.option("A10G").replicas - 2


def test_spot_capacity_uses_spot_prices() -> None:
    result = calculate(Workload(**CHAT, gpus=["H100"], capacity="spot"))
    assert result.option("H100").price_usd_per_hour == pytest.approx(6.88 * 0.35)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"requests_per_day": 0}, "requests_per_day"),
        ({"prompt_tokens": 0}, "prompt_tokens"),
        ({"tpot_ms": -1}, "tpot_ms"),
        ({"model": "gpt-9"}, "model"),
        ({"model": "all-MiniLM-L6-v2"}, "model"),
        ({"gpus": ["B200"]}, "gpus"),
        ({"peak_to_mean": 0.5}, "peak_to_mean"),
        ({"quantization": "int3"}, "quantization"),
        ({"price_usd_per_hour": {"H100": -2}}, "price_usd_per_hour.H100"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_input_names_the_field(fields: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Workload(**{**CHAT, **fields})
    assert f"  {field}:" in format_validation_error(info.value)


def test_an_impossible_target_says_why_for_every_gpu() -> None:
    with pytest.raises(NoGpuMeetsTarget) as info:
        calculate(Workload(**{**CHAT, "ttft_ms": 10, "tpot_ms": 2}))
    message = str(info.value)
    assert "no GPU type meets TTFT <= 10 ms and TPOT <= 2 ms" in message
    for gpu in ("CPU", "T4", "L4", "A10G", "A100-40G", "A100-80G", "H100"):
        assert f"\n  {gpu}: " in message


def test_tco_arithmetic() -> None:
    tco = compare_tco("H100", 2, 10_000.0)
    capex = 2 * HARDWARE["H100"].purchase_usd * 1.4
    power = 2 * 700 * 0.7 * 1.5 / 1000 * 730 * 0.12
    monthly = power + capex * 0.10 / 12
    assert tco.own_capex_usd == pytest.approx(capex)
    assert tco.own_power_monthly_usd == pytest.approx(power)
    assert tco.own_monthly_usd == pytest.approx(monthly)
    assert tco.breakeven_months == pytest.approx(capex / (10_000 - monthly))
    assert [r.years for r in tco.rows] == [1, 2, 3]
    assert tco.rows[2].cloud_usd == pytest.approx(360_000)
    assert tco.rows[2].own_usd == pytest.approx(capex + 36 * monthly)
    never = compare_tco("H100", 2, 100.0)
    assert never.breakeven_months is None
    custom = compare_tco("H100", 1, 1000.0, TcoAssumptions(electricity_usd_per_kwh=0.30, pue=1.2))
    assert custom.own_power_monthly_usd == pytest.approx(700 * 0.7 * 1.2 / 1000 * 730 * 0.30)
    with pytest.raises(ValueError, match="no purchase price"):
        compare_tco("B200", 1, 1.0)


def test_payback_months() -> None:
    # The documents' case study: $20,000 -> $6,000 a month; a $28,000 project pays back in 2 months.
    assert payback_months(28_000, 20_000, 6_000) == pytest.approx(2.0)
    assert payback_months(5_000, 1_000, 1_000) is None
    with pytest.raises(ValueError):
        payback_months(-1, 10, 5)


def test_markdown_names_every_gpu_and_the_mix() -> None:
    result = calculate(Workload(**CHAT))
    text = calculator_markdown(result, compare_tco("A100-40G", 1, 2000.0), (20_000, 5000.0, 2000.0, 6.7))
    for gpu in result.workload.gpus:
        assert f"| {gpu} |" in text
    assert "Cheapest mix" in text and "Payback" in text and "Cloud vs own hardware" in text


def run_script(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    code = 0
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as e:
        code = 1 if isinstance(e.code, str) else (e.code or 0)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out, err


def test_script_prints_the_answer(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_script(
        monkeypatch, capsys, "--requests-per-day", "200000", "--prompt-tokens", "512", "--output-tokens", "256",
        "--ttft-ms", "1000", "--tpot-ms", "50", "--investment-usd", "20000", "--json", str(tmp_path / "r.json"),
    )
    assert code == 0
    assert "Cheapest single type" in out and "Payback" in out
    assert (tmp_path / "r.json").exists()


def test_script_errors_name_the_field(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_script(
        monkeypatch, capsys, "--requests-per-day", "-5", "--prompt-tokens", "512", "--output-tokens", "256",
        "--ttft-ms", "1000", "--tpot-ms", "50",
    )
    assert code == 1 and "requests_per_day: Input should be greater than 0" in err
    code, _, err = run_script(
        monkeypatch, capsys, "--requests-per-day", "100", "--prompt-tokens", "512", "--output-tokens", "256",
        "--ttft-ms", "5", "--tpot-ms", "1",
    )
    assert code == 1 and "no GPU type meets" in err
