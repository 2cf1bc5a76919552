"""Bounded soak: Frugal's full request path (auth, Redis limits, Redis cache, ledger) under
steady streaming load, sampling the memory of the router, the HTTP ingress (HAProxy) and the engine.
Writes results/soak.json and results/soak.png (``--name``) and prints the per-process memory trend.

    python scripts/soak.py                          # 10 minutes at 16 concurrent streams
    python scripts/soak.py --minutes 3 --concurrency 8
    python scripts/soak.py --app frugal-fake --name soak-fake   # instant fake engine: far more requests/s
    python scripts/soak.py --app ray-chain --name soak-ray      # the same Ray Serve hops, no Frugal code
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serve.bench.run_frugal import APPS
from serve.bench.soak import plot, run, table
from serve.config.loader import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None, help="defaults to deployments/default.yaml")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="samples before this are left out of the trend")
    parser.add_argument("--sample-every-s", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=Path("results"))
    parser.add_argument("--name", default="soak", help="writes OUT/NAME.json and OUT/NAME.png")
    parser.add_argument("--app", choices=APPS, default="frugal")
    args = parser.parse_args()
    report = run(load_config(args.config), args.model, args.minutes, args.concurrency, args.max_tokens,
                 args.warmup_s, args.sample_every_s, args.out, app=args.app)
    (args.out / f"{args.name}.json").write_text(report.model_dump_json(indent=2))
    plot(report, args.out / f"{args.name}.png")
    print(f"{report.requests} requests, {report.errors} errors, {report.output_tokens} output tokens")
    print(table(report))


if __name__ == "__main__":
    main()
