"""The soak benchmark's verdict: a least-squares memory trend after the warm-up, and its outputs."""

from __future__ import annotations

import pytest

from serve.bench.soak import PROCESSES, Sample, SoakReport, plot, table, trend


def _samples(slope_mib_per_min: float, warmup_jump: float = 0.0) -> list[Sample]:
    out = []
    for i in range(60):
        t = i * 5.0
        base = 500.0 + (warmup_jump if t >= 60 else 0.0)
        wobble = (-1) ** i * 0.5
        out.append(Sample(t_s=t, rss_mib={n: base + slope_mib_per_min * t / 60 + wobble for n in PROCESSES}))
    return out


def test_a_flat_series_has_a_slope_near_zero_and_a_leak_shows():
    flat = trend("router", _samples(0.0, warmup_jump=200.0), warmup_s=60)
    assert abs(flat.slope_mib_per_min) < 0.2 and flat.slope_mib_per_min - flat.slope_ci95_mib_per_min < 0
    leak = trend("router", _samples(3.0), warmup_s=60)
    assert leak.slope_mib_per_min == pytest.approx(3.0, abs=0.2)
    assert leak.slope_mib_per_min - leak.slope_ci95_mib_per_min > 0


def test_the_warm_up_is_left_out_of_the_trend():
    # Memory that grows only while warming up (caches filling) is not a leak.
    tr = trend("engine", _samples(0.0, warmup_jump=300.0), warmup_s=60)
    assert tr.start_mib > 700 and abs(tr.slope_mib_per_min) < 0.2


def test_too_few_samples_is_an_error():
    with pytest.raises(ValueError):
        trend("proxy", _samples(0.0)[:2], warmup_s=0)


def test_report_plot_and_table(tmp_path):
    samples = _samples(0.0)
    report = SoakReport(
        machine="test", minutes=5, concurrency=4, max_tokens=8, warmup_s=60, requests=100, errors=0,
        output_tokens=800, samples=samples, trends=[trend(n, samples, 60) for n in PROCESSES],
    )
    plot(report, tmp_path / "soak.png")
    assert (tmp_path / "soak.png").stat().st_size > 10_000
    text = table(report)
    assert all(f"| {n} |" in text for n in PROCESSES)
    assert SoakReport.model_validate_json(report.model_dump_json()) == report
