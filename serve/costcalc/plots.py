"""The cost report's PNG plots (matplotlib, headless): spend per day by model and pool, cache
savings, tenants' spend against budgets and the what-if fleets."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from serve.costcalc.report import CostReport

PLOT_DPI = 110


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # labels carry "$" amounts, not TeX
    import matplotlib.pyplot as plt

    return plt


def spend_by_day(report: CostReport, path: Path) -> Path:
    """Stacked bars: GPU cost per day, one colour per model / pool."""
    plt = _pyplot()
    days = [c.day for c in report.cache_by_day]
    series: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(days, 0.0))
    for row in report.spend_by_day:
        series[f"{row.model} / {row.pool}"][row.day] += row.cost_usd
    fig, ax = plt.subplots(figsize=(10, 4.5))
    bottom = [0.0] * len(days)
    for label, values in sorted(series.items()):
        heights = [values[d] for d in days]
        if not any(heights):
            continue  # cache hits and the like: no GPU cost
        ax.bar(days, heights, bottom=bottom, label=label)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax.set_title(f"GPU cost per day by model / pool, {report.start} to {report.end}")
    ax.set_ylabel("USD")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def cache_savings(report: CostReport, path: Path) -> Path:
    """Bars: cost paid and cost avoided by cache hits per day; line: hit rate."""
    plt = _pyplot()
    days = [c.day for c in report.cache_by_day]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.bar(days, [c.cost_usd for c in report.cache_by_day], label="GPU cost paid")
    ax.bar(days, [c.avoided_cost_usd for c in report.cache_by_day],
           bottom=[c.cost_usd for c in report.cache_by_day], label="avoided by cache hits")
    ax.set_ylabel("USD")
    ax.tick_params(axis="x", rotation=60, labelsize=8)
    rate = ax.twinx()
    rate.plot(days, [100.0 * c.cache_hits / c.requests if c.requests else 0.0 for c in report.cache_by_day],
              color="black", marker=".", label="hit rate")
    rate.set_ylabel("cache hit rate, %")
    rate.set_ylim(0, 100)
    saved = report.totals.avoided_cost_usd
    share = saved / (saved + report.totals.cost_usd) if saved + report.totals.cost_usd > 0 else 0.0
    ax.set_title(f"Cache savings: ${saved:,.4f} avoided ({share:.1%} of the GPU cost without the cache)")
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = rate.get_legend_handles_labels()
    ax.legend(lines + more, labels + more_labels, fontsize=8, loc="upper left")
    return _save(fig, path)


def tenant_budgets(report: CostReport, path: Path) -> Path:
    """Left: each budgeted tenant's share of its monthly budget used (80% and 100% marked);
    right: every tenant's spend per month on its budget's basis."""
    plt = _pyplot()
    rows = sorted(report.tenants, key=lambda t: (t.month, t.spent_usd))
    budgeted = [t for t in rows if t.used_pct is not None]
    fig, (share, spend) = plt.subplots(1, 2, figsize=(12, max(2.8, 0.45 * len(rows) + 1.4)))
    colours = ["tab:red" if t.used_pct >= 100 else "tab:orange" if t.used_pct >= 80 else "tab:green" for t in budgeted]
    share.barh([f"{t.tenant} ({t.month})" for t in budgeted], [t.used_pct for t in budgeted], color=colours)
    for i, t in enumerate(budgeted):
        share.annotate(f" {t.used_pct:.0f}% of ${t.budget_usd:,.2f} ({t.basis})", (t.used_pct, i), va="center", fontsize=8)
    for limit in (80, 100):
        share.axvline(limit, color="black", linestyle=":" if limit == 80 else "-", linewidth=1)
    share.set_xlabel("% of the monthly budget used")
    share.set_title("Budgeted tenants" if budgeted else "No tenant has a budget")
    share.set_xlim(0, max([125.0] + [t.used_pct * 1.4 for t in budgeted]))
    spend.barh([f"{t.tenant} ({t.month})" for t in rows], [t.spent_usd for t in rows], color="tab:blue")
    for i, t in enumerate(rows):
        spend.annotate(f" ${t.spent_usd:,.4f} {t.basis}", (t.spent_usd, i), va="center", fontsize=8)
    spend.set_xlabel("USD this month, on the budget's basis")
    spend.set_title("Spend by tenant")
    spend.margins(x=0.3)
    fig.suptitle("Tenants' spend against their monthly budgets")
    return _save(fig, path)


def what_if(report: CostReport, path: Path) -> Path | None:
    """Two bar charts for the same traffic: the replica time the requests used on each fleet
    next to the ledger's cost, and each fleet's whole cost when resized every interval."""
    w = report.what_if
    if w is None or not w.models:
        return None
    plt = _pyplot()
    feasible = [f for f in w.by_fleet if f.feasible]
    names = [f"all {f.fleet}" if f.fleet != "mix" else "cheapest mix" for f in feasible]
    fig, (used, whole) = plt.subplots(1, 2, figsize=(12, 4.5))
    used.bar(["ledger (actual)", *names], [w.actual_cost_usd] + [f.utilised_usd or 0.0 for f in feasible],
             color=["tab:gray"] + ["tab:blue"] * len(feasible))
    used.set_title("Replica time the requests used")
    whole.bar(names, [f.fleet_usd or 0.0 for f in feasible], color="tab:orange")
    whole.set_title(f"Whole fleet, resized every {w.interval_s / 3600:g} h")
    for ax in (used, whole):
        ax.set_ylabel("USD over the period")
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    cheapest = w.cheapest_single.fleet if w.cheapest_single else "none"
    fig.suptitle(f"Same traffic, other fleets, latency targets met (cheapest single type: {cheapest})")
    return _save(fig, path)


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=PLOT_DPI)
    plt.close(fig)
    return path


def write_plots(report: CostReport, out_dir: Path) -> list[Path]:
    """Every plot of the report into ``out_dir``; the paths written."""
    written = [
        spend_by_day(report, out_dir / "spend_by_day.png"),
        cache_savings(report, out_dir / "cache_savings.png"),
        tenant_budgets(report, out_dir / "tenant_budgets.png"),
        what_if(report, out_dir / "what_if.png"),
    ]
    return [p for p in written if p is not None]
