"""serve/sim/study.py, pools.py, proposed.py and report.py on a small study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serve.dispatch.types import LatencyTarget, RequestEstimate
from serve.sim.pools import autoscaling_target, catalogue_pool, study_pools
from serve.sim.proposed import CheapestAtTarget
from serve.sim.report import headline_table, plot_costs, plot_replicas, policy_table, write_json
from serve.sim.study import StudyConfig, run_study, sim_policy
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


def test_proposed_policy_prices_at_target() -> None:
    pools = study_pools(TARGET, context_tokens=500, typical_prompt_tokens=300, typical_output_tokens=250)
    states = [p.pool_state() for p in pools]
    for s in states:
        s.replicas = 1  # all warm and idle
    request = RequestEstimate(model=pools[0].model, prompt_tokens=300, max_output_tokens=1024)
    assert sim_policy("cost", pools).choose(request, states).pools[0] == "T4-awq"  # cheapest when idle
    assert isinstance(sim_policy("cost_at_target", pools), CheapestAtTarget)
    assert sim_policy("cost_at_target", pools).choose(request, states).pools[0] == "H100"  # cheapest loaded


def test_small_study_and_report(tmp_path: Path) -> None:
    config = StudyConfig(
        workload="mix",
        arrivals=ArrivalProcess(rate_per_s=3, ramp_s=60),
        duration_s=400,
        warmup_s=100,
        gpus=("T4", "H100"),
        policies=("cost", "cost_at_target", "round_robin"),
    )
    result = run_study(config)
    assert set(result.runs) == {"cost", "cost_at_target", "round_robin"}
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
