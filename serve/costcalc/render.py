"""The calculator's answer and the cost report's summary as Markdown (what
``scripts/cost_calculator.py`` and ``scripts/cost_report.py`` print)."""

from __future__ import annotations

from serve.costcalc.calculator import CalculatorResult
from serve.costcalc.report import CostReport
from serve.costcalc.tco import TcoComparison


def usd(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if 0 < abs(value) < 1:
        return f"${value:.4g}"  # four significant figures: $0.000329, $0.5503
    return f"${value:,.{digits}f}"


def num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def calculator_markdown(
    result: CalculatorResult,
    tco: TcoComparison | None = None,
    payback: tuple[float, float, float, float | None] | None = None,
) -> str:
    """``payback``: (investment, monthly before, monthly after, months or None)."""
    w = result.workload
    lines = [
        f"## {w.model}: {w.requests_per_day:,.0f} requests/day, {w.prompt_tokens} in / {w.output_tokens} out tokens, "
        f"target TTFT <= {w.ttft_ms:g} ms, TPOT <= {w.tpot_ms:g} ms",
        "",
        f"Peak rate {w.peak_requests_per_s:.3f} req/s (peak/mean {w.peak_to_mean:g}); {w.capacity} prices; "
        f"{w.hours_per_month:g} h/month.",
        "",
        "| GPU | $/h | meets target | c | req/s/replica | TTFT ms | TPOT ms | latency s | $/query (source formula) "
        "| $/query (batched) | $/1M out tokens | replicas | $/month | SPI |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for o in result.options:
        lines.append(
            f"| {o.gpu} | {o.price_usd_per_hour:.2f} | {'yes' if o.meets_target else 'no'} | {num(o.concurrency, 'd')} "
            f"| {num(o.requests_per_s_per_replica, '.2f')} | {num(o.ttft_ms, '.0f')} | {num(o.tpot_ms, '.1f')} "
            f"| {num(o.latency_s, '.2f')} | {usd(o.cost_per_query_usd)} | {usd(o.cost_per_query_batched_usd)} "
            f"| {usd(o.usd_per_million_output_tokens)} | {num(o.replicas, 'd')} | {usd(o.monthly_cost_usd)} "
            f"| {num(o.spi, '.3f')} |"
        )
    out = [o for o in result.options if not o.meets_target]
    if out:
        lines += ["", "Out:"] + [f"- {o.gpu}: {o.reason}" for o in out]
    best = result.option(result.cheapest_single)
    mix = result.mix
    mix_text = ", ".join(f"{n} x {g}" for g, n in sorted(mix.replicas.items()))
    lines += [
        "",
        f"Cheapest single type: **{best.replicas} x {best.gpu}**, {usd(best.monthly_cost_usd)}/month "
        f"({usd(best.cost_per_query_fleet_usd)} per query).",
        f"Cheapest mix: **{mix_text}**, {usd(mix.monthly_cost_usd)}/month ({usd(mix.cost_per_query_usd)} per query; "
        f"{mix.source}).",
        "",
        "$/query (source formula) = one request's seconds running alone / 3600 x $/h; (batched) = $/h / 3600 / "
        "req/s per replica at the highest load within the target (c requests at once). "
        "SPI = req/s per replica / ($/h x latency s).",
    ]
    if tco is not None:
        lines += [
            "",
            f"### Cloud vs own hardware: {tco.num_devices} x {tco.gpu}",
            "",
            f"Own: {usd(tco.own_capex_usd, 0)} up front, then {usd(tco.own_monthly_usd)}/month "
            f"(power {usd(tco.own_power_monthly_usd)}); cloud {usd(tco.cloud_monthly_usd)}/month. "
            + (f"Owning breaks even after {tco.breakeven_months:.1f} months." if tco.breakeven_months is not None
               else "Owning never breaks even at these figures."),
            "",
            "| years | cloud | own |",
            "|---|---|---|",
            *[f"| {r.years} | {usd(r.cloud_usd, 0)} | {usd(r.own_usd, 0)} |" for r in tco.rows],
            "",
            f"Hardware figures: {tco.hardware_source}. Power, PUE, host and operations shares are assumptions "
            "(serve/constants.py), all overridable.",
        ]
    if payback is not None:
        investment, before, after, months = payback
        lines += [
            "",
            f"Payback: {usd(investment, 0)} invested to go from {usd(before)}/month to {usd(after)}/month: "
            + (f"{months:.1f} months." if months is not None else "never (no monthly saving)."),
        ]
    return "\n".join(lines) + "\n"


def report_markdown(report: CostReport) -> str:
    """The cost report's summary: totals, spend by model and pool, tenants and the what-if."""
    t = report.totals
    lines = [
        f"## Cost report {report.start} to {report.end}",
        "",
        f"{t.requests:,} requests ({t.ok:,} ok, {t.failed:,} failed, {t.cancelled:,} cancelled; {t.cache_hits:,} cache hits), "
        f"{t.prompt_tokens:,} prompt + {t.completion_tokens:,} completion tokens.",
        f"GPU cost {usd(t.cost_usd)}, billed {usd(t.billed_usd)}, avoided by the cache {usd(t.avoided_cost_usd)}.",
        "",
        "| model | pool | requests | GPU cost |",
        "|---|---|---|---|",
    ]
    by_pool: dict[tuple[str, str], list[float]] = {}
    for row in report.spend_by_day:
        acc = by_pool.setdefault((row.model, row.pool), [0, 0.0])
        acc[0] += row.requests
        acc[1] += row.cost_usd
    lines += [f"| {m} | {p} | {int(n):,} | {usd(c)} |" for (m, p), (n, c) in sorted(by_pool.items())]
    lines += ["", "| tenant | month | tier | basis | spent | budget | used |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r.tenant} | {r.month} | {r.tier or '-'} | {r.basis} | {usd(r.spent_usd)} | {usd(r.budget_usd)} "
        f"| {num(r.used_pct, '.1f')}% |" if r.used_pct is not None else
        f"| {r.tenant} | {r.month} | {r.tier or '-'} | {r.basis} | {usd(r.spent_usd)} | - | - |"
        for r in report.tenants
    ]
    w = report.what_if
    if w is not None:
        lines += [
            "",
            f"### What-if: the same traffic on other fleets (resized every {w.interval_s / 3600:g} h, targets met)",
            "",
            f"Ledger cost of the same requests (the modelled chat models' requests that reached a pool): "
            f"{usd(w.actual_cost_usd)}. Used replica time is what the requests occupied at the target's operating "
            "point (the mix: each request on the type cheapest for its size); whole fleet adds the idle capacity of "
            "replicas kept for a whole interval.",
            "",
            "| fleet | used replica time | whole fleet | peak replicas | note |",
            "|---|---|---|---|---|",
        ]
        for f in w.by_fleet:
            name = "cheapest mix" if f.fleet == "mix" else f"all {f.fleet}"
            peak = ", ".join(f"{n} x {g}" for g, n in sorted(f.peak_replicas.items())) or "-"
            lines.append(f"| {name} | {usd(f.utilised_usd)} | {usd(f.fleet_usd)} | {peak} | {f.reason or ''} |")
        best = w.cheapest_single
        lines += ["", f"Cheapest single type meeting the targets: {best.fleet if best else 'none'}."]
        lines += [f"Skipped: {s}" for s in w.skipped]
        for m in w.models:
            lines.append(
                f"- {m.model} (as {m.catalogue_model}): {m.requests:,} requests, mean {m.mean_prompt_tokens:.0f} in / "
                f"{m.mean_output_tokens:.0f} out tokens, target TTFT {m.target_ttft_ms:g} ms, TPOT {m.target_tpot_ms:g} ms"
            )
    return "\n".join(lines) + "\n"
