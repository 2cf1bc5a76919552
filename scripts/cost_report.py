"""Cost report for a period of the ledger: spend per day by model and pool, cache savings,
tenants' spend against their budgets and a what-if (the same traffic on an all-H100 fleet,
on the cheapest single GPU type that meets the latency targets, and on the cheapest mix).
Writes report.md, report.json and PNG plots; the logic is in serve/costcalc/.

Examples:
    python scripts/cost_report.py --ledger STATE_DIR/ledger.jsonl --config deployments/default.yaml
    python scripts/cost_report.py --redis-url redis://127.0.0.1:6379/0 --start 2026-06-01 --end 2026-06-30
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from pydantic import ValidationError
from tqdm import tqdm

from serve.catalog.gpus import GPU_CATALOG
from serve.config.loader import ConfigError, load_config
from serve.constants import REPORT_DEFAULT_TPOT_MS, REPORT_DEFAULT_TTFT_MS, REPORT_WHAT_IF_INTERVAL_S
from serve.costcalc.ledger_source import file_store, period_bounds_s, read_records, redis_store
from serve.costcalc.plots import write_plots
from serve.costcalc.render import report_markdown
from serve.costcalc.report import build_report, tenant_budgets, what_if_specs
from serve.costcalc.whatif import what_if
from serve.costcalc.workload import format_validation_error
from serve.dispatch.types import LatencyTarget
from serve.tenants.config import TenantsConfig


def tenants_config(path: Path | None) -> TenantsConfig:
    """The config file's ``tenants:`` section (defaults without a file or a section)."""
    if path is None:
        return TenantsConfig()
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return TenantsConfig.model_validate(raw.get("tenants") or {})
    except ValidationError as e:
        sys.exit(format_validation_error(e, f"tenants section of {path}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ledger", type=Path, help="the JSONL ledger (<tenants.local_state_dir>/ledger.jsonl)")
    source.add_argument("--redis-url", help="the Redis holding the ledger stream (tenants.redis_url)")
    parser.add_argument("--redis-prefix", default="frugal", help="tenants.redis_prefix")
    parser.add_argument("--stream", default="frugal:ledger", help="tenants.ledger.stream")
    parser.add_argument("--config", type=Path, default=None,
                        help="Frugal config: budgets (tenants:), latency targets, measured profiles")
    today = datetime.now(UTC).date()
    parser.add_argument("--start", type=date.fromisoformat, default=today.replace(day=1), help="first day, UTC")
    parser.add_argument("--end", type=date.fromisoformat, default=today, help="last day, UTC (inclusive)")
    parser.add_argument("--out", type=Path, default=Path("results/costs"))
    parser.add_argument("--ttft-ms", type=float, default=REPORT_DEFAULT_TTFT_MS, help="target of models without one")
    parser.add_argument("--tpot-ms", type=float, default=REPORT_DEFAULT_TPOT_MS, help="target of models without one")
    parser.add_argument("--interval-s", type=float, default=REPORT_WHAT_IF_INTERVAL_S, help="what-if fleet resize interval")
    parser.add_argument("--gpus", default=",".join(GPU_CATALOG), help="GPU types of the what-if")
    parser.add_argument("--no-what-if", action="store_true")
    args = parser.parse_args()

    try:
        start_s, end_s = period_bounds_s(args.start, args.end)
        store = file_store(args.ledger) if args.ledger else redis_store(args.redis_url, args.redis_prefix, args.stream)
        records = asyncio.run(read_records(store, args.start, args.end))
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")
    print(f"{len(records)} ledger records from {args.start} to {args.end}", file=sys.stderr)
    specs = {}
    if args.config is not None:
        try:
            specs = what_if_specs(load_config(args.config), LatencyTarget(args.ttft_ms, args.tpot_ms))
        except ConfigError as e:
            sys.exit(str(e))
    scenario = None
    if not args.no_what_if and records:
        gpus = [g.strip() for g in args.gpus.split(",") if g.strip()]
        unknown = sorted(set(gpus) - set(GPU_CATALOG))
        if unknown:
            sys.exit(f"--gpus: {unknown} are not in the catalogue {list(GPU_CATALOG)}")
        scenario = what_if(
            records, specs, LatencyTarget(args.ttft_ms, args.tpot_ms), start_s, end_s, args.interval_s, gpus,
            progress=lambda it, label: tqdm(it, desc=label, unit="interval", file=sys.stderr),
        )
    report = build_report(records, args.start, args.end, tenant_budgets(tenants_config(args.config)), scenario)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(report.model_dump_json(indent=2))
    text = report_markdown(report)
    (args.out / "report.md").write_text(text)
    print(text, end="")
    for path in [args.out / "report.md", args.out / "report.json", *write_plots(report, args.out)]:
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
