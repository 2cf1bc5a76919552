"""serve/sim/trace.py: seeded workloads and arrival processes."""

from __future__ import annotations

import numpy as np
import pytest

from serve.sim.trace import WORKLOADS, ArrivalProcess, LengthDist, Workload, make_trace


def test_same_seed_same_trace() -> None:
    a = make_trace(WORKLOADS["mix"], ArrivalProcess(rate_per_s=5), duration_s=600, seed=3)
    b = make_trace(WORKLOADS["mix"], ArrivalProcess(rate_per_s=5), duration_s=600, seed=3)
    c = make_trace(WORKLOADS["mix"], ArrivalProcess(rate_per_s=5), duration_s=600, seed=4)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert not np.array_equal(a.arrival_s[:10], c.arrival_s[:10])


def test_poisson_count_sorted_and_within_duration() -> None:
    trace = make_trace(WORKLOADS["chat"], ArrivalProcess(rate_per_s=50), duration_s=2000, seed=1)
    assert abs(len(trace) - 100_000) < 5 * np.sqrt(100_000)
    assert np.all(np.diff(trace.arrival_s) >= 0)
    assert trace.arrival_s[0] >= 0 and trace.arrival_s[-1] < 2000
    gaps = np.diff(trace.arrival_s)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)  # exponential gaps


def test_lengths_respect_clips_and_medians() -> None:
    trace = make_trace(WORKLOADS["docs"], ArrivalProcess(rate_per_s=20), duration_s=2000, seed=2)
    docs = WORKLOADS["docs"].classes[0]
    assert trace.prompt_tokens.min() >= docs.prompt.lo and trace.prompt_tokens.max() <= docs.prompt.hi
    assert trace.output_tokens.max() <= docs.max_output_tokens
    assert np.median(trace.prompt_tokens) == pytest.approx(docs.prompt.median, rel=0.03)
    assert np.all(trace.max_output_tokens == docs.max_output_tokens)


def test_mix_shares() -> None:
    trace = make_trace(WORKLOADS["mix"], ArrivalProcess(rate_per_s=20), duration_s=2000, seed=2)
    assert trace.class_names == ("chat", "docs")
    assert np.mean(trace.request_class == 1) == pytest.approx(0.2, abs=0.01)
    assert np.median(trace.prompt_tokens[trace.request_class == 1]) > 10 * np.median(
        trace.prompt_tokens[trace.request_class == 0]
    )


def test_bursty_keeps_mean_rate_and_bursts() -> None:
    process = ArrivalProcess(kind="bursty", rate_per_s=10, burst_factor=2.5, on_s=60, off_s=240)
    assert process.off_rate_per_s == pytest.approx(10 * (1 - 2.5 * 0.2) / 0.8)
    trace = make_trace(WORKLOADS["chat"], process, duration_s=40_000, seed=5)
    assert len(trace) / 40_000 == pytest.approx(10, rel=0.05)
    per_minute = np.bincount((trace.arrival_s // 60).astype(int))
    poisson = make_trace(WORKLOADS["chat"], ArrivalProcess(rate_per_s=10), duration_s=40_000, seed=5)
    assert per_minute.std() > 3 * np.bincount((poisson.arrival_s // 60).astype(int)).std()


def test_ramp_and_exact_count() -> None:
    process = ArrivalProcess(rate_per_s=10, ramp_s=1000)
    trace = make_trace(WORKLOADS["chat"], process, num_requests=20_000, seed=0)
    assert len(trace) == 20_000
    first, second = np.sum(trace.arrival_s < 500), np.sum((trace.arrival_s >= 500) & (trace.arrival_s < 1000))
    assert second / first == pytest.approx(3.0, rel=0.1)  # the rate grows linearly over the ramp
    assert process.expected_count(process.duration_for(20_000)) == pytest.approx(20_000)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        make_trace(WORKLOADS["chat"], ArrivalProcess(rate_per_s=1), seed=0)
    with pytest.raises(ValueError):
        ArrivalProcess(kind="bursty", rate_per_s=1, burst_factor=4, on_s=100, off_s=100)
    with pytest.raises(ValueError):
        LengthDist(median=10, sigma=1, lo=5, hi=2)
    with pytest.raises(ValueError):
        Workload(name="bad", classes=[WORKLOADS["chat"].classes[0].model_copy(update={"share": 0.5})])
