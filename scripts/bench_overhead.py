"""Router overhead benchmark: the Ray Serve path with an instantly answering fake engine,
driven by a closed loop of clients at increasing concurrency, non-streamed and streamed.
Writes <out>/overhead.json and <out>/overhead.png and prints a Markdown table.

    PYTHONPATH=. python scripts/bench_overhead.py                      # every variant, ~25 min
    PYTHONPATH=. python scripts/bench_overhead.py --variants router --levels 1,8,32 --duration-s 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from serve.bench.overhead import VARIANTS, plot, run, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="serve-noop,router,cache-hit-memory,cache-hit-redis,full-miss",
                        help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--levels", default="1,2,4,8,16,32,64", help="concurrent clients per level")
    parser.add_argument("--duration-s", type=float, default=10.0, help="measured window per level")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="unmeasured lead-in per level")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per answer (one SSE event each)")
    parser.add_argument("--port", type=int, default=8200)
    parser.add_argument("--out", type=Path, default=Path("results/overhead"))
    args = parser.parse_args()
    report = run(
        args.variants.split(","),
        [int(x) for x in args.levels.split(",")],
        args.duration_s,
        args.warmup_s,
        args.max_tokens,
        port=args.port,
        progress=tqdm.write,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(report.model_dump_json(indent=2))
    plot(report, args.out / "overhead.png")
    print(table(report))


if __name__ == "__main__":
    main()
