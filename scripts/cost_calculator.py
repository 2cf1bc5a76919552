"""Cost calculator: what a workload costs per query and per month on each GPU type of the
catalogue and on the cheapest mix, its cost-performance index (SPI), cloud vs own hardware
over 1-3 years, and the payback of a saving. The logic is in serve/costcalc/.

Example:
    python scripts/cost_calculator.py --requests-per-day 200000 --prompt-tokens 512 \
        --output-tokens 256 --ttft-ms 1000 --tpot-ms 50
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from serve.costcalc.calculator import CalculatorResult, NoGpuMeetsTarget, calculate
from serve.costcalc.render import calculator_markdown
from serve.costcalc.tco import HARDWARE, HardwareCost, TcoAssumptions, compare_tco, payback_months
from serve.costcalc.workload import DEFAULT_MODEL, Workload, format_validation_error


def pairs(values: list[str], option: str) -> dict[str, float]:
    """GPU=NUMBER arguments as a dict; exits naming the option on a malformed one."""
    out: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            out[name] = float(number)
        except ValueError:
            sep = ""
        if not sep or not name:
            sys.exit(f"{option}: expected GPU=NUMBER, got {value!r}")
    return out


def baseline_monthly(result: CalculatorResult) -> float:
    """What the saving is measured against when no current bill is given: an all-H100
    fleet if H100 serves the workload, else the dearest type that does."""
    feasible = [o for o in result.options if o.meets_target]
    h100 = next((o for o in feasible if o.gpu == "H100"), None)
    return (h100 or max(feasible, key=lambda o: o.monthly_cost_usd or 0)).monthly_cost_usd or 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-per-day", type=float, required=True)
    parser.add_argument("--prompt-tokens", type=int, required=True)
    parser.add_argument("--output-tokens", type=int, required=True)
    parser.add_argument("--ttft-ms", type=float, required=True, help="time-to-first-token target")
    parser.add_argument("--tpot-ms", type=float, required=True, help="time-per-output-token target")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--quantization", default=None)
    parser.add_argument("--peak-to-mean", type=float, default=1.0)
    parser.add_argument("--gpus", default=None, help="comma-separated catalogue types (default: all)")
    parser.add_argument("--capacity", default="on_demand", help="on_demand or spot")
    parser.add_argument("--price", action="append", default=[], metavar="GPU=USD_PER_HOUR",
                        help="override a device's hourly price (repeatable)")
    parser.add_argument("--tco-gpu", default=None, help="own-hardware comparison for this type (default: cheapest single)")
    parser.add_argument("--purchase", action="append", default=[], metavar="GPU=USD",
                        help="override a device's purchase price (repeatable)")
    parser.add_argument("--electricity-usd-per-kwh", type=float, default=None)
    parser.add_argument("--pue", type=float, default=None)
    parser.add_argument("--power-draw-fraction", type=float, default=None)
    parser.add_argument("--host-overhead-fraction", type=float, default=None)
    parser.add_argument("--ops-fraction-per-year", type=float, default=None)
    parser.add_argument("--investment-usd", type=float, default=None, help="one-off cost of the change, for payback")
    parser.add_argument("--current-monthly-usd", type=float, default=None,
                        help="today's monthly bill (default: the all-H100 fleet)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result as JSON here")
    args = parser.parse_args()

    fields = {
        "requests_per_day": args.requests_per_day, "prompt_tokens": args.prompt_tokens,
        "output_tokens": args.output_tokens, "ttft_ms": args.ttft_ms, "tpot_ms": args.tpot_ms, "model": args.model,
        "quantization": args.quantization, "peak_to_mean": args.peak_to_mean, "capacity": args.capacity,
        "price_usd_per_hour": pairs(args.price, "--price"),
    }
    if args.gpus:
        fields["gpus"] = [g.strip() for g in args.gpus.split(",") if g.strip()]
    overrides = {k: v for k, v in {
        "electricity_usd_per_kwh": args.electricity_usd_per_kwh, "pue": args.pue,
        "power_draw_fraction": args.power_draw_fraction, "host_overhead_fraction": args.host_overhead_fraction,
        "ops_fraction_per_year": args.ops_fraction_per_year,
    }.items() if v is not None}
    hardware = dict(HARDWARE)
    for gpu, price in pairs(args.purchase, "--purchase").items():
        base = hardware.get(gpu)
        if base is None:
            sys.exit(f"--purchase: {gpu!r} has no power figure; known: {sorted(HARDWARE)}")
        hardware[gpu] = HardwareCost(
            purchase_usd=price, tdp_watts=base.tdp_watts, source=f"{gpu} price given on the command line"
        )
    try:
        workload = Workload(**fields)
        assumptions = TcoAssumptions(**overrides, hardware=hardware)
    except ValidationError as e:
        sys.exit(format_validation_error(e, "input"))
    try:
        result = calculate(workload)
    except NoGpuMeetsTarget as e:
        sys.exit(f"error: {e}")

    tco_gpu = args.tco_gpu or result.cheapest_single
    option = next((o for o in result.options if o.gpu == tco_gpu), None)
    if option is None or not option.meets_target:
        sys.exit(f"--tco-gpu: {tco_gpu!r} does not serve this workload; types that do: "
                 f"{[o.gpu for o in result.options if o.meets_target]}")
    tco = compare_tco(tco_gpu, option.replicas or 0, option.monthly_cost_usd or 0.0, assumptions)
    payback = None
    if args.investment_usd is not None:
        before = args.current_monthly_usd if args.current_monthly_usd is not None else baseline_monthly(result)
        after = result.mix.monthly_cost_usd
        try:
            payback = (args.investment_usd, before, after, payback_months(args.investment_usd, before, after))
        except ValueError as e:
            sys.exit(f"--investment-usd/--current-monthly-usd: {e}")
    print(calculator_markdown(result, tco, payback), end="")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(result.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
