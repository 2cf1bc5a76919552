"""Quantisation benchmark: the full-precision and 4-bit SmolLM2 pools on offline vLLM engines
with identical engine arguments (weights memory, 1-stream and batched tok/s, greedy answer
agreement). One engine per invocation, so runs stay short and can be split by phase:

    python scripts/bench_quant.py run --label full --model-dir ~/.cache/frugal/models/SmolLM2-135M-Instruct
    python scripts/bench_quant.py run --label 4bit --model-dir ~/.cache/frugal/models/SmolLM2-135M-Instruct-4bit
    python scripts/bench_quant.py report --reference full

``run`` saves results/quant/run-LABEL.json (merging phases run separately); ``report`` writes
results/quant/quant.json and quant.png and prints a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from serve.bench.quant import (
    DEFAULT_AGREEMENT_MAX_TOKENS,
    DEFAULT_BATCH_CONCURRENCY,
    DEFAULT_MAX_TOKENS,
    DEFAULT_NUM_SINGLE_REQUESTS,
    PoolRun,
    build_report,
    load_run,
    measure_pool,
    merge,
    plot,
    run_path,
    table,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/quant"))
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="measure one pool")
    run.add_argument("--label", required=True)
    run.add_argument("--model-dir", type=Path, required=True)
    run.add_argument("--dtype", default="auto", help="auto: bf16 with AVX512-BF16, else float32")
    run.add_argument("--phases", default="speed,agreement")
    run.add_argument("--max-tokens", type=int, default=DEFAULT_MAX_TOKENS)
    run.add_argument("--single-requests", type=int, default=DEFAULT_NUM_SINGLE_REQUESTS)
    run.add_argument("--concurrency", type=int, default=DEFAULT_BATCH_CONCURRENCY)
    run.add_argument("--agreement-max-tokens", type=int, default=DEFAULT_AGREEMENT_MAX_TOKENS)
    run.add_argument("--prompts", default=":", help="slice of the prompt set to answer, e.g. 0:20")
    report = sub.add_parser("report", help="compare the saved runs")
    report.add_argument("--reference", default="full")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.command == "run":
        from serve.engine.vllm_engine import cpu_auto_dtype

        dtype = cpu_auto_dtype() if args.dtype == "auto" else args.dtype
        pool = PoolRun(label=args.label, model_dir=str(args.model_dir.expanduser()), dtype=dtype)
        result = measure_pool(
            pool,
            phases=args.phases.split(","),
            max_tokens=args.max_tokens,
            num_single_requests=args.single_requests,
            batch_concurrency=args.concurrency,
            agreement_max_tokens=args.agreement_max_tokens,
            prompt_slice=slice(*(int(x) if x else None for x in args.prompts.split(":"))),
        )
        path = run_path(args.out, args.label)
        path.write_text(merge(load_run(path), result).model_dump_json(indent=2) + "\n")
        print(path)
    else:
        runs = [r for p in sorted(args.out.glob("run-*.json")) if (r := load_run(p)) is not None]
        result = build_report(runs, args.reference)
        (args.out / "quant.json").write_text(result.model_dump_json(indent=2) + "\n")
        plot(result, args.out / "quant.png")
        print(table(result))


if __name__ == "__main__":
    main()
