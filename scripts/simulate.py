"""Fleet simulator: replay workloads against simulated GPU pools under each dispatch policy,
compare with the integer-program optimum, and write tables, JSON and plots.

    PYTHONPATH=. python scripts/simulate.py --workload chat,docs,mix \\
        --rate chat=300,docs=60,mix=200 --out results/sim

Writes OUT/NAME.json, OUT/NAME.md (the tables, also printed), OUT/NAME-cost.png and
OUT/NAME-replicas-WORKLOAD.png. The logic is in serve/sim (see docs/simulator.md).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from serve.config.dispatch import LatencyTargetConfig
from serve.sim.autoscaler import RayScalingOptions
from serve.sim.pools import DEFAULT_TARGET_FRACTION, STUDY_GPUS
from serve.sim.report import headline_table, plot_costs, plot_replicas, policy_table, write_json
from serve.sim.study import DEFAULT_SLO, SIM_POLICY_NAMES, StudyConfig, run_study
from serve.sim.trace import ArrivalProcess


def _rates(text: str, workloads: list[str]) -> dict[str, float]:
    if "=" not in text:
        return {w: float(text) for w in workloads}
    rates = {k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(","))}
    missing = [w for w in workloads if w not in rates]
    if missing:
        raise SystemExit(f"--rate gives no rate for {missing}")
    return rates


def _progress(workload: str) -> Callable[[str, int], Callable[[int], None]]:
    def start(policy: str, total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, desc=f"{workload} {policy}", unit="req", unit_scale=True, leave=False)

        def update(done: int) -> None:
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return update

    return start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", default="chat,docs,mix", help="comma-separated: chat, docs, mix")
    p.add_argument("--rate", default="100", help="requests/s, one value or per workload: chat=200,docs=50")
    p.add_argument("--arrivals", choices=["poisson", "bursty"], default="poisson")
    p.add_argument("--burst-factor", type=float, default=2.0)
    p.add_argument("--on-s", type=float, default=120.0)
    p.add_argument("--off-s", type=float, default=240.0)
    p.add_argument("--ramp", type=float, default=1200.0, help="seconds over which traffic rises from zero")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--duration", type=float, default=None, help="seconds of traffic (default 3600)")
    length.add_argument("--num-requests", type=int, default=None)
    p.add_argument("--warmup", type=float, default=2400.0, help="seconds excluded from the figures")
    p.add_argument("--policies", default=",".join(SIM_POLICY_NAMES))
    p.add_argument("--gpus", default=",".join(STUDY_GPUS))
    p.add_argument("--ttft-ms", type=float, default=DEFAULT_SLO.ttft_ms)
    p.add_argument("--tpot-ms", type=float, default=DEFAULT_SLO.tpot_ms)
    p.add_argument("--target-fraction", type=float, default=DEFAULT_TARGET_FRACTION)
    p.add_argument("--initial-replicas", type=int, default=1)
    p.add_argument("--upscale-delay", type=float, default=30.0)
    p.add_argument("--downscale-delay", type=float, default=600.0)
    p.add_argument(
        "--autoscaler-signal",
        choices=["work", "ongoing"],
        default="work",
        help="work: work-rate (Ray custom policy); ongoing: Ray's default queue-length policy",
    )
    p.add_argument("--downscaling-factor", type=float, default=1.0)
    p.add_argument("--upscaling-factor", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/sim"))
    p.add_argument("--name", default=None, help="output file prefix (default: the arrival kind)")
    p.add_argument("--no-plots", action="store_true")
    args = p.parse_args()

    workloads = [w.strip() for w in args.workload.split(",") if w.strip()]
    rates = _rates(args.rate, workloads)
    duration = args.duration if args.duration is not None or args.num_requests is not None else 3600.0
    results = []
    for workload in workloads:
        config = StudyConfig(
            workload=workload,
            arrivals=ArrivalProcess(
                kind=args.arrivals,
                rate_per_s=rates[workload],
                burst_factor=args.burst_factor,
                on_s=args.on_s,
                off_s=args.off_s,
                ramp_s=args.ramp,
            ),
            duration_s=duration,
            num_requests=args.num_requests,
            warmup_s=args.warmup,
            seed=args.seed,
            slo=LatencyTargetConfig(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms),
            gpus=tuple(args.gpus.split(",")),
            policies=tuple(args.policies.split(",")),
            target_fraction=args.target_fraction,
            initial_replicas=args.initial_replicas,
            upscale_delay_s=args.upscale_delay,
            downscale_delay_s=args.downscale_delay,
            scaling=RayScalingOptions(
                signal=args.autoscaler_signal,
                downscaling_factor=args.downscaling_factor,
                upscaling_factor=args.upscaling_factor,
            ),
        )
        result = run_study(config, _progress(workload))
        results.append(result)
        print(policy_table(result), end="\n\n", flush=True)

    name = args.name or args.arrivals
    tables = [headline_table(results, "cost")] + [policy_table(r) for r in results]
    text = "\n\n".join(tables) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(text)
    write_json(results, args.out / f"{name}.json")
    if not args.no_plots:
        plot_costs(results, args.out / f"{name}-cost.png")
        for r in results:
            plot_replicas(r, args.out / f"{name}-replicas-{r.config.workload}.png")
    print("\n\n".join(tables[:2]))


if __name__ == "__main__":
    main()
