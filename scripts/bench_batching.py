"""Side-by-side benchmark: N concurrent streams through vLLM's own OpenAI server, Frugal's
router as configured, and Frugal with auth, Redis limits, Redis cache (miss) and the ledger on
(same model, same engine arguments), one after the other in one run. Writes
results/batching.json and results/batching.png and prints Markdown tables (absolute figures,
then ratios to bare vLLM).

    python scripts/bench_batching.py                       # about 15 minutes on 2 cores
    python scripts/bench_batching.py --targets vllm,frugal --levels 1,32
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serve.bench.batching import plot, run, table
from serve.config.loader import load_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default=None, help="defaults to deployments/default.yaml")
    parser.add_argument("--model", default="SmolLM2-135M-Instruct")
    parser.add_argument("--targets", default="vllm,frugal,frugal-full", help="of vllm, frugal, frugal-full")
    parser.add_argument("--levels", default="1,8,32,64")
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args()
    report = run(
        load_config(args.config),
        args.model,
        args.targets.split(","),
        [int(x) for x in args.levels.split(",")],
        args.requests_per_stream,
        args.max_tokens,
        args.out,
    )
    (args.out / "batching.json").write_text(report.model_dump_json(indent=2))
    plot(report, args.out / "batching.png")
    print(table(report))


if __name__ == "__main__":
    main()
