"""Measure the semantic cache on labelled question pairs (``tests/data/semantic_pairs.jsonl``).

A pair is a stored question ``a`` and a new question ``b``. For a *paraphrase* a hit is
right (same answer); for a *near miss* (another number, entity, unit, negation, opposite,
or a follow-up on another subject) a hit is wrong. At a threshold ``t`` a pair hits when the
cosine similarity of the normalised texts is at least ``t`` and, with the guard, the guard
allows it, exactly as ``ResponseCache`` decides. Reported per threshold, with and without the
guard: the hit rate on paraphrases and the wrong-hit rate on near misses.

The default threshold is the lowest on the grid whose wrong-hit rate with the guard is at
most the target on the ``dev`` split (the pairs the guard's rules were developed on). The
``holdout`` pairs were written later and chose nothing: they show how the choice carries
over to questions it was not fitted to. ``holdout2`` pairs were written after two near
misses were seen to pass the guard (a question's intent, why or how, and its action, stop
or make, changed), before the guard's checks for them: near misses of those two kinds and
paraphrases built the same way, which price those checks in lost hits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from serve.cache.guard import mismatch
from serve.cache.keys import normalise_text
from serve.cache.semantic import Embedder, unit_vector

Split = Literal["dev", "holdout", "holdout2", "all"]
SPLITS: tuple[Split, ...] = ("dev", "holdout", "holdout2", "all")
DEFAULT_THRESHOLDS: tuple[float, ...] = (*(round(0.50 + 0.01 * i, 2) for i in range(50)), 0.995, 0.999)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelledPair(_Strict):
    id: str
    label: Literal["paraphrase", "near_miss"]
    category: str
    domain: str
    a: str
    b: str
    split: Literal["dev", "holdout", "holdout2"]


def load_pairs(path: str | Path) -> list[LabelledPair]:
    """The pairs of a JSONL file, one object per line; raises on a malformed line."""
    lines = Path(path).read_text().splitlines()
    return [LabelledPair.model_validate_json(line) for line in lines if line.strip()]


@dataclass(frozen=True)
class ScoredPair:
    pair: LabelledPair
    similarity: float
    guard_mismatch: str | None  # the guard check that tells the texts apart, if any


async def score_pairs(pairs: Sequence[LabelledPair], embedder: Embedder) -> list[ScoredPair]:
    """Embed every distinct normalised text once and score each pair."""
    texts = sorted({normalise_text(t) for p in pairs for t in (p.a, p.b)})
    raw = await embedder.embed(texts)
    vectors = {}
    for text, values in zip(texts, raw, strict=True):
        vector = unit_vector(values)
        if vector is None:
            raise ValueError(f"the embedder returned no usable vector for {text!r}")
        vectors[text] = vector
    scored = []
    for p in pairs:
        a, b = normalise_text(p.a), normalise_text(p.b)
        scored.append(ScoredPair(p, float(vectors[a] @ vectors[b]), mismatch(a, b)))
    return scored


class Rates(_Strict):
    threshold: float
    guard: bool
    split: Split
    num_paraphrases: int
    num_near_misses: int
    hit_rate: float = Field(description="paraphrases served from the cache / paraphrases")
    wrong_hit_rate: float = Field(description="near misses served from the cache / near misses")


def _hits(scored: Iterable[ScoredPair], threshold: float, guard: bool) -> list[ScoredPair]:
    return [s for s in scored if s.similarity >= threshold and (not guard or s.guard_mismatch is None)]


def _in_split(scored: Sequence[ScoredPair], split: Split) -> list[ScoredPair]:
    return [s for s in scored if split == "all" or s.pair.split == split]


def rates(scored: Sequence[ScoredPair], threshold: float, guard: bool, split: Split = "all") -> Rates:
    chosen = _in_split(scored, split)
    paraphrases = [s for s in chosen if s.pair.label == "paraphrase"]
    near_misses = [s for s in chosen if s.pair.label == "near_miss"]
    return Rates(
        threshold=threshold,
        guard=guard,
        split=split,
        num_paraphrases=len(paraphrases),
        num_near_misses=len(near_misses),
        hit_rate=len(_hits(paraphrases, threshold, guard)) / max(1, len(paraphrases)),
        wrong_hit_rate=len(_hits(near_misses, threshold, guard)) / max(1, len(near_misses)),
    )


def choose_threshold(
    scored: Sequence[ScoredPair], max_wrong_hit_rate: float, guard: bool, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> float | None:
    """The lowest threshold whose wrong-hit rate on the dev split is at most the target (hit
    and wrong-hit rates only fall as the threshold rises, so it keeps the most hits)."""
    for t in sorted(thresholds):
        if rates(scored, t, guard, "dev").wrong_hit_rate <= max_wrong_hit_rate:
            return t
    return None


class CategoryRates(_Strict):
    label: str
    category: str
    num_pairs: int
    hit_rate_without_guard: float
    hit_rate_with_guard: float


class PairExample(_Strict):
    id: str
    category: str
    a: str
    b: str
    similarity: float
    guard_mismatch: str | None


class EvalReport(_Strict):
    model: str
    num_pairs: int
    max_wrong_hit_rate: float
    threshold: float | None = Field(description="the default: chosen with the guard on the dev split")
    threshold_without_guard: float | None = Field(description="what cosine alone would need for the same target")
    at_threshold: list[Rates]
    at_threshold_without_guard: list[Rates]
    by_category: list[CategoryRates]
    guard_blocked_paraphrases: dict[str, int]
    wrong_hits: list[PairExample]
    sweep: list[Rates]


def build_report(
    scored: Sequence[ScoredPair], model: str, max_wrong_hit_rate: float, thresholds: Sequence[float] = DEFAULT_THRESHOLDS
) -> EvalReport:
    chosen = choose_threshold(scored, max_wrong_hit_rate, True, thresholds)
    alone = choose_threshold(scored, max_wrong_hit_rate, False, thresholds)
    at = chosen if chosen is not None else max(thresholds)
    at_alone = alone if alone is not None else max(thresholds)
    categories = sorted({(s.pair.label, s.pair.category) for s in scored})
    by_category = []
    for label, category in categories:
        group = [s for s in scored if (s.pair.label, s.pair.category) == (label, category)]
        by_category.append(
            CategoryRates(
                label=label,
                category=category,
                num_pairs=len(group),
                hit_rate_without_guard=len(_hits(group, at, False)) / len(group),
                hit_rate_with_guard=len(_hits(group, at, True)) / len(group),
            )
        )
    blocked = Counter(s.guard_mismatch for s in scored if s.pair.label == "paraphrase" and s.similarity >= at and s.guard_mismatch)
    wrong = [s for s in _hits(scored, at, True) if s.pair.label == "near_miss"]
    return EvalReport(
        model=model,
        num_pairs=len(scored),
        max_wrong_hit_rate=max_wrong_hit_rate,
        threshold=chosen,
        threshold_without_guard=alone,
        at_threshold=[rates(scored, at, g, split) for g in (False, True) for split in SPLITS],
        at_threshold_without_guard=[rates(scored, at_alone, False, split) for split in SPLITS],
        by_category=by_category,
        guard_blocked_paraphrases=dict(sorted(blocked.items())),
        wrong_hits=[
            PairExample(id=s.pair.id, category=s.pair.category, a=s.pair.a, b=s.pair.b, similarity=round(s.similarity, 4), guard_mismatch=None)
            for s in sorted(wrong, key=lambda s: -s.similarity)
        ],
        sweep=[rates(scored, t, g, split) for split in SPLITS for g in (False, True) for t in thresholds],
    )


def format_table(report: EvalReport) -> str:
    """A Markdown table of the rates at the default threshold (guard on and off), and at the
    threshold cosine alone would need (if any threshold on the grid meets the target)."""
    lines = ["| threshold | guard | split (paraphrases+near misses) | paraphrase hit rate | near-miss wrong-hit rate |", "|---|---|---|---|---|"]
    rows = list(report.at_threshold) + (list(report.at_threshold_without_guard) if report.threshold_without_guard is not None else [])
    for r in rows:
        lines.append(
            f"| {r.threshold:.3g} | {'on' if r.guard else 'off'} | {r.split} ({r.num_paraphrases}+{r.num_near_misses}) "
            f"| {r.hit_rate:.1%} | {r.wrong_hit_rate:.1%} |"
        )
    if report.threshold_without_guard is None:
        lines.append(f"\nNo threshold up to {max(r.threshold for r in report.sweep)} keeps cosine alone within {report.max_wrong_hit_rate:.0%} on dev.")
    return "\n".join(lines)


def format_sweep(report: EvalReport, low: float, high: float) -> str:
    """A Markdown table of hit and wrong-hit rates per split for thresholds in [low, high]."""
    head = "| threshold | " + " | ".join(f"{s} hit / wrong-hit, guard {g}" for s in SPLITS for g in ("off", "on")) + " |"
    lines = [head, "|---" * (1 + 2 * len(SPLITS)) + "|"]
    by_key = {(r.threshold, r.split, r.guard): r for r in report.sweep}
    for t in sorted({r.threshold for r in report.sweep if low <= r.threshold <= high}):
        cells = [by_key[(t, s, g)] for s in SPLITS for g in (False, True)]
        lines.append(f"| {t:.3g} | " + " | ".join(f"{c.hit_rate:.1%} / {c.wrong_hit_rate:.1%}" for c in cells) + " |")
    return "\n".join(lines)


def write_report(report: EvalReport, json_path: str | Path) -> None:
    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps(report.model_dump(mode="json"), indent=1) + "\n")


def plot_report(report: EvalReport, png_path: str | Path) -> None:
    """Hit rate and wrong-hit rate against the threshold, with and without the guard."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for guard, style in ((False, "--"), (True, "-")):
        rows = [r for r in report.sweep if r.guard == guard and r.split == "all"]
        xs = np.array([r.threshold for r in rows])
        suffix = "with guard" if guard else "cosine only"
        ax.plot(xs, [r.hit_rate for r in rows], style, color="tab:green", label=f"paraphrase hit rate, {suffix}")
        ax.plot(xs, [r.wrong_hit_rate for r in rows], style, color="tab:red", label=f"near-miss wrong-hit rate, {suffix}")
    ax.axhline(report.max_wrong_hit_rate, color="grey", linewidth=0.8, linestyle=":")
    if report.threshold is not None:
        ax.axvline(report.threshold, color="black", linewidth=0.8, label=f"default threshold {report.threshold:.2f}")
    ax.set_xlabel("cosine similarity threshold")
    ax.set_ylabel("rate")
    ax.set_ylim(0, 1)
    ax.set_title(f"Semantic cache on {report.num_pairs} labelled pairs ({report.model})")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
