"""serve/sim/study.py, pools.py and report.py on a small study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serve.dispatch.types import LatencyTarget, RequestEstimate
from serve.sim.pools import autoscaling_target, catalogue_pool, study_pools
from serve.sim.report import headline_table, plot_costs, plot_replicas, policy_table, write_json
from serve.dispatch.policies import make_policy
from serve.sim.study import StudyConfig, run_study
from serve.sim.trace import ArrivalProcess

TARGET = LatencyTarget(ttft_ms=2000, tpot_ms=100)


def test_catalogue_pools_fit_and_derive_targets() -> None:
    pools = study_pools(TARGET, context_tokens=500, typical_prompt_tokens=300, typical_output_tokens=250)
    by_name = {p.name: p for p in pools}
    assert set(by_name) == {"T4-awq", "L4", "A10G", "A100-40G", "A100-80G", "H100"}
    h100 = by_name["H100"]
    assert h100.price_usd_per_hour == 6.88 and h100.cold_start_s == 120.0
    assert by_name["T4-awq"].kv_capacity_tokens > by_name["A10G"].kv_capacity_tokens  # 4-bit weights
    for p in pools:
        assert 1 <= p.autoscaling.target_ongoing_requests <= p.max_ongoing_requests <= p.profile.max_concurrency
        assert p.autoscaling.min_replicas == 0


def test_autoscaling_target_takes_headroom_in_throughput() -> None:
    pool = catalogue_pool(
        "H100", target=TARGET, context_tokens=500, typical_prompt_tokens=300, typical_output_tokens=250
    )
    slo_c, target_c = autoscaling_target(pool.profile, pool.kv_capacity_tokens, 300, 250, TARGET, 0.9)
    assert slo_c == 256  # max_num_seqs binds before the TPOT target on an H100
    assert target_c < 0.7 * slo_c  # 90% of the throughput needs far fewer than 90% of the slots


def test_cost_policy_prices_growable_pools_at_their_autoscaling_target() -> None:
    """All pools warm and idle: priced at one request per replica the T4 would win; priced at
    the load the autoscaler will give each replica, the H100 is cheaper per request."""
    pools = study_pools(TARGET, context_tokens=500, typical_prompt_tokens=300, typical_output_tokens=250)
    states = [p.pool_state() for p in pools]
    for s in states:
        s.replicas = 1
    request = RequestEstimate(model=pools[0].model, prompt_tokens=300, max_output_tokens=1024)
    assert make_policy("cost").choose(request, states).pools[0] == "H100"
    for s in states:
        s.target_ongoing_requests = None  # no autoscaling: priced at the current load
    assert make_policy("cost").choose(request, states).pools[0] == "T4-awq"


def test_small_study_and_report(tmp_path: Path) -> None:
    config = StudyConfig(
        workload="mix",
        arrivals=ArrivalProcess(rate_per_s=3, ramp_s=60),
        duration_s=400,
        warmup_s=100,
        gpus=("T4", "H100"),
        policies=("cost", "round_robin"),
    )
    result = run_study(config)
    assert set(result.runs) == {"cost", "round_robin"}
    assert result.optimum.optimum.cost_usd_per_hour > 0
    assert result.optimum.relaxed.cost_usd_per_hour <= result.optimum.optimum.cost_usd_per_hour + 1e-9
    for run in result.runs.values():
        assert run.summary.requests > 500 and 0 <= run.summary.slo_attainment <= 1
        assert run.summary.cost_usd > 0
    assert "optimum (integer program)" in policy_table(result)
    assert "mix (poisson 3/s)" in headline_table([result])
    write_json([result], tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())[0]["config"]["workload"] == "mix"
    plot_costs([result], tmp_path / "cost.png")
    plot_replicas(result, tmp_path / "replicas.png")
    assert (tmp_path / "cost.png").stat().st_size > 1000 and (tmp_path / "replicas.png").stat().st_size > 1000


def test_unknown_policy_or_workload() -> None:
    arrivals = ArrivalProcess(rate_per_s=1)
    with pytest.raises(ValueError, match="unknown policies"):
        run_study(StudyConfig(workload="chat", arrivals=arrivals, duration_s=10, policies=("nope",)))
    with pytest.raises(ValueError, match="unknown workload"):
        run_study(StudyConfig(workload="nope", arrivals=arrivals, duration_s=10, policies=("cost",)))


def test_bursty_study_prices_the_static_peak_fleet_on_the_traces_own_tokens() -> None:
    """The static fleet for the peak rate serves the trace's (mean-rate) traffic: its $/1M is
    its hourly price over that traffic, above the optimum's by the ratio of hourly prices."""
    from serve.sim.study import optimum_for, pools_for, study_trace

    config = StudyConfig(
        workload="chat",
        arrivals=ArrivalProcess(kind="bursty", rate_per_s=20, burst_factor=2, on_s=60, off_s=120, ramp_s=0),
        duration_s=600,
        gpus=("T4", "H100"),
        policies=("cost",),
    )
    trace = study_trace(config)
    o = optimum_for(config, trace, pools_for(config, trace))
    assert o.peak is not None and o.peak.cost_usd_per_hour > o.optimum.cost_usd_per_hour
    ratio = o.peak.cost_usd_per_hour / o.optimum.cost_usd_per_hour
    assert o.peak.usd_per_million_output_tokens == pytest.approx(o.optimum.usd_per_million_output_tokens * ratio)
