"""Study results as text tables, JSON and PNG plots (matplotlib's Agg backend, no display)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from serve.sim.study import StudyResult


def _label(result: StudyResult) -> str:
    a = result.config.arrivals
    return f"{result.config.workload} ({a.kind} {a.rate_per_s:g}/s)"


def _gpu_hours(hours: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in sorted(hours.items(), key=lambda kv: -kv[1]) if v >= 0.05) or "-"


def headline_table(results: Sequence[StudyResult], policy: str = "cost") -> str:
    """One row per study: the optimum, ``policy``'s cost and ratio to it (three decimals, so
    1.103 does not read as within 10%), its SLO attainment, and the best single-GPU-type fleet
    with the saving against it of ``policy`` and of the optimum. "-" where a figure is missing
    (no ``policy`` run, no feasible single type)."""
    lines = [
        f"| workload | optimum $/1M out (mix) | {policy} $/1M | {policy} / optimum | {policy} SLO met "
        f"| best single type $/1M | {policy} saving vs best single | optimum saving vs best single |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        o = r.optimum
        optimum = o.optimum.usd_per_million_output_tokens
        mix = ", ".join(f"{n:g} {p}" for p, n in o.optimum.replicas.items())
        best = o.single_type.get(o.best_single_type) if o.best_single_type else None
        run = r.runs.get(policy)
        cost = run.summary.usd_per_million_output_tokens if run else None
        best_cost = best.usd_per_million_output_tokens if best is not None else None
        cells = [
            _label(r),
            f"{optimum:.3f} ({mix})",
            f"{cost:.3f}" if cost is not None else "-",
            f"{cost / optimum:.3f}" if cost is not None and optimum else "-",
            f"{run.summary.slo_attainment:.2%}" if run else "-",
            f"{best_cost:.3f} ({o.best_single_type})" if best_cost is not None else "none",
            f"{1 - cost / best_cost:.1%}" if cost is not None and best_cost else "-",
            f"{o.saving_vs_best_single:.1%}" if o.saving_vs_best_single is not None else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def policy_table(result: StudyResult) -> str:
    """Every policy on one study, with the yardsticks first."""
    o = result.optimum
    lines = [
        f"{_label(result)}: {result.requests:,} requests over {result.duration_s:,.0f} s, "
        f"measured after {result.config.warmup_s:,.0f} s; SLO TTFT <= {result.config.slo.ttft_ms:g} ms and "
        f"TPOT <= {result.config.slo.tpot_ms:g} ms",
        "",
        "| fleet | $/1M output tokens | vs optimum | SLO met | TTFT met | TPOT met | TTFT p99 ms "
        "| TPOT p99 ms | GPU-hours by type | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| optimum (integer program) | {o.optimum.usd_per_million_output_tokens:.3f} | 1.00 | - | - | - | - | - "
        f"| {', '.join(f'{n:g} x {p}' for p, n in o.optimum.replicas.items())} | - |",
        f"| LP relaxation (fractional replicas) | {o.relaxed.usd_per_million_output_tokens:.3f} "
        f"| {o.relaxed.usd_per_million_output_tokens / o.optimum.usd_per_million_output_tokens:.2f} "
        "| - | - | - | - | - | - | - |",
    ]
    for pool, plan in o.single_type.items():
        if plan is None:
            lines.append(f"| only {pool} (integer program) | infeasible | - | - | - | - | - | - | - | - |")
            continue
        lines.append(
            f"| only {pool} (integer program) | {plan.usd_per_million_output_tokens:.3f} "
            f"| {plan.usd_per_million_output_tokens / o.optimum.usd_per_million_output_tokens:.2f} "
            f"| - | - | - | - | - | {', '.join(f'{n:g} x {p}' for p, n in plan.replicas.items())} | - |"
        )
    if o.peak is not None:
        lines.append(
            f"| static fleet for the peak rate (integer program) | {o.peak.usd_per_million_output_tokens:.3f} "
            f"| {o.peak.usd_per_million_output_tokens / o.optimum.usd_per_million_output_tokens:.2f} "
            f"| - | - | - | - | - | {', '.join(f'{n:g} x {p}' for p, n in o.peak.replicas.items())} | - |"
        )
    for name, run in result.runs.items():
        s = run.summary
        lines.append(
            f"| policy `{name}` (simulated) | {s.usd_per_million_output_tokens:.3f} "
            f"| {s.usd_per_million_output_tokens / o.optimum.usd_per_million_output_tokens:.2f} "
            f"| {s.slo_attainment:.2%} | {s.ttft_attainment:.2%} | {s.tpot_attainment:.2%} "
            f"| {s.ttft_p99_ms:,.0f} | {s.tpot_p99_ms:,.0f} | {_gpu_hours(s.gpu_hours_by_type)} | {run.wall_s:.0f} |"
        )
    return "\n".join(lines)


def write_json(results: Sequence[StudyResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.model_dump(mode="json") for r in results], indent=1))


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_costs(results: Sequence[StudyResult], path: Path) -> None:
    """Cost per 1M output tokens per policy and study, with the optimum and the best single
    GPU type as lines; each bar is labelled with its SLO attainment."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 4.2), squeeze=False)
    for ax, r in zip(axes[0], results):
        names = list(r.runs)
        costs = [r.runs[n].summary.usd_per_million_output_tokens for n in names]
        bars = ax.bar(range(len(names)), costs, color="#6a8caf")
        for bar, n in zip(bars, names):
            slo = r.runs[n].summary.slo_attainment
            x = bar.get_x() + bar.get_width() / 2
            ax.annotate(f"{slo:.1%}", (x, bar.get_height()), ha="center", va="bottom", fontsize=7)
        opt = r.optimum.optimum.usd_per_million_output_tokens
        ax.axhline(opt, color="#2a7f2a", linestyle="--", label=f"optimum {opt:.3f}")
        ax.axhline(opt * 1.1, color="#2a7f2a", linestyle=":", linewidth=0.8, label="optimum + 10%")
        best = r.optimum.best_single_type
        plan = r.optimum.single_type.get(best) if best else None
        if plan is not None:
            single = plan.usd_per_million_output_tokens
            ax.axhline(single, color="#b5651d", linestyle="-.", label=f"only {best} {single:.3f}")
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(_label(r), fontsize=9)
        ax.set_ylabel("$ per 1M output tokens")
        ax.legend(fontsize=7)
    fig.suptitle("Simulated cost per policy (bar labels: share of requests meeting the SLO)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_replicas(result: StudyResult, path: Path) -> None:
    """Billed replicas per pool over time, one panel per policy (the warm-up shaded)."""
    plt = _pyplot()
    names = list(result.runs)
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.2 * len(names)), sharex=True, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        series = result.runs[name].series
        t_min = [t / 60 for t in series.t_s]
        pools = [p for p, values in series.replicas.items() if any(values)]
        ax.stackplot(t_min, [series.replicas[p] for p in pools], labels=pools)
        ax.axvspan(0, result.config.warmup_s / 60, color="grey", alpha=0.15)
        ax.set_ylabel(f"{name}\nreplicas", fontsize=8)
        ax.legend(fontsize=6, loc="upper left", ncol=3)
    axes[-1, 0].set_xlabel("minutes (shaded: warm-up, not measured)")
    fig.suptitle(f"Replicas by pool, {_label(result)}", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
