"""Measure a live pool through the router's OpenAI API and write its throughput profile to
deployments/profiles/<pool>.json, for the pool's `profile:` field.

The router picks the pool by model name: profile a model served by this one pool, scaled to
one replica (or give --num-replicas). Example:
    python scripts/profile_pool.py --model SmolLM2-135M-Instruct --pool smollm2-cpu
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from pathlib import Path

from serve.cost.profiling import (
    DEFAULT_CONCURRENCIES,
    measure_levels,
    measure_prefill_rate,
    profile_from_levels,
    profile_source,
    write_profile,
)

DEFAULT_OUT_DIR = Path(__file__).resolve().parents[1] / "deployments" / "profiles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the router's base URL")
    parser.add_argument("--model", required=True, help="the model name clients send")
    parser.add_argument("--pool", required=True, help="the pool's name (names the output file)")
    parser.add_argument("--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCIES)))
    parser.add_argument("--requests-per-stream", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--num-replicas", type=int, default=1, help="replicas the pool runs while measured")
    parser.add_argument("--prefill-words", type=int, default=1500, help="long-prompt length; 0 skips prefill")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args()

    concurrencies = [int(c) for c in args.concurrency.split(",")]
    prefill = None
    if args.prefill_words > 0:
        prefill = asyncio.run(measure_prefill_rate(args.url, args.model, args.prefill_words))
        print(f"prefill: {prefill:.0f} prompt tokens/s")
    levels = asyncio.run(
        measure_levels(args.url, args.model, concurrencies, args.requests_per_stream, args.max_tokens)
    )
    for level in levels:
        print(
            f"c={level.concurrency:4d}  {level.output_tokens_per_s:9.1f} tok/s  "
            f"ttft p50 {level.ttft_p50_ms:8.1f} ms  errors {level.num_errors}"
        )
    command = "python scripts/profile_pool.py " + shlex.join(sys.argv[1:])
    profile = profile_from_levels(levels, profile_source(command), prefill, args.num_replicas)
    print(f"wrote {write_profile(profile, args.out_dir, args.pool)}")


if __name__ == "__main__":
    main()
