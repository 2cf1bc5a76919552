"""Semantic cache quality: hit rate on paraphrases and wrong-hit rate on near misses over a
sweep of thresholds, with and without the guard, on the labelled pairs. Embeds with the
embedding model in process (transformers; what vLLM computes when it serves it). Writes
results/cache/semantic_eval.json and semantic_eval.png and prints a Markdown table."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from serve.cache.evaluate import (
    build_report,
    format_sweep,
    format_table,
    load_pairs,
    plot_report,
    score_pairs,
    write_report,
)
from serve.cache.local_embedder import TransformersEmbedder
from serve.constants import DEFAULT_DATA_DIR, SEMANTIC_EMBEDDING_MODEL


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=Path, default=Path("tests/data/semantic_pairs.jsonl"))
    parser.add_argument("--model-dir", type=Path, default=Path(DEFAULT_DATA_DIR) / SEMANTIC_EMBEDDING_MODEL)
    parser.add_argument("--max-wrong-hit-rate", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/cache"))
    args = parser.parse_args()
    pairs = load_pairs(args.pairs)
    scored = asyncio.run(score_pairs(pairs, TransformersEmbedder(args.model_dir, num_threads=args.threads)))
    report = build_report(scored, args.model_dir.name, args.max_wrong_hit_rate)
    write_report(report, args.out / "semantic_eval.json")
    plot_report(report, args.out / "semantic_eval.png")
    print(format_table(report))
    print()
    print(format_sweep(report, 0.80, 0.92))
    print()
    print("| label | category | pairs | hit rate, cosine only | hit rate, with guard |")
    print("|---|---|---|---|---|")
    for c in report.by_category:
        print(f"| {c.label} | {c.category} | {c.num_pairs} | {c.hit_rate_without_guard:.1%} | {c.hit_rate_with_guard:.1%} |")
    print(f"\nparaphrases the guard blocked above the threshold: {report.guard_blocked_paraphrases}")
    for w in report.wrong_hits:
        print(f"wrong hit {w.id} ({w.category}, {w.similarity:.3f}): {w.a!r} -> {w.b!r}")


if __name__ == "__main__":
    main()
