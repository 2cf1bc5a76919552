"""serve/cache/guard.py (the near-miss guard), serve/cache/evaluate.py and the labelled pairs."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serve.cache.evaluate import (
    LabelledPair,
    build_report,
    choose_threshold,
    format_sweep,
    format_table,
    load_pairs,
    rates,
    score_pairs,
)
from serve.cache.guard import allows, facts, mismatch
from serve.constants import SEMANTIC_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]
PAIRS = ROOT / "tests/data/semantic_pairs.jsonl"
RESULT = ROOT / "results/cache/semantic_eval.json"


@pytest.mark.parametrize(
    ("a", "b", "check"),
    [
        ("What is 15 percent of 200?", "What is 20 percent of 200?", "numbers"),
        ("Who was the first US president?", "Who was the second US president?", "numbers"),
        ("What's 1,000 divided by 8?", "What is 1000 divided by 9?", "numbers"),
        ("Is coffee safe during pregnancy?", "Why isn't coffee safe during pregnancy?", "negation"),
        ("Which snakes are venomous?", "Which snakes are not venomous?", "negation"),
        ("How tall is Everest in feet?", "How tall is Everest in meters?", "units"),
        ("Is a 5 km run long?", "Is a 5 mile run long?", "units"),
        ("What currency does Japan use?", "What currency does Korea use?", "entities"),
        ("What does GPT-4 cost?", "What does GPT-3 cost?", "entities"),
        ("What is the largest planet?", "What is the smallest planet?", "opposites"),
        ("How do I turn on dark mode?", "How do I turn off dark mode?", "opposites"),
        ("Can a landlord sue a tenant?", "Can a tenant sue a landlord?", "swap"),
        ("Convert 50 euros to dollars.", "Convert 50 dollars to euros.", "swap"),
        ("How do I thicken a sauce?", "How do I thin a sauce?", "substitution"),
        ("When did the Titanic sink?", "Where did the Titanic sink?", "substitution"),
        ("Paris population", "London population", "substitution"),
        ("How do I stop my dog from barking at night?", "How do I make my dog bark at night?", "prevention"),
        ("How do I keep deer out of my garden?", "How do I attract deer to my garden?", "prevention"),
        ("How do I avoid paying capital gains tax?", "How do I pay capital gains tax?", "prevention"),
        ("How do I fix a leaking tap?", "Why is my tap leaking?", "intent"),
        ("What were the causes of the Great Depression?", "What were the effects of the Great Depression?", "intent"),
        ("What is done to treat migraines?", "What makes migraines start?", "intent"),
    ],
)
def test_guard_tells_near_misses_apart(a: str, b: str, check: str) -> None:
    assert mismatch(a, b) == check
    assert mismatch(b, a) == check


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "Which city is France's capital?"),
        ("Convert 5 km to miles", "Convert five kilometres to miles"),
        ("Who was the first president of the US?", "Who was the 1st president of the US?"),
        ("What's 1,000 divided by 8?", "What is 1000 divided by 8?"),
        ("How Do I Reset My Password", "how can I reset my password"),
        ("what colour is the sky", "what color is the sky"),
        ("How many seconds are in a day?", "What's the number of seconds in one day?"),
        ("Why do cats purr?", "Why does a cat purr?"),
        ("What's the longest river in South America?", "Which river in South America is the longest?"),
        ("When did the French Revolution begin?", "What year did the French Revolution start?"),
        ("How do I stop my dog from barking at night?", "How can I keep my dog from barking during the night?"),
        ("How do I stop Windows from restarting?", "How can I prevent Windows from restarting?"),
        ("Why does inflation happen?", "What causes inflation?"),
        ("Why do my glasses fog up?", "What makes my glasses fog up?"),
        ("How do I exit Vim?", "How can I quit the Vim editor?"),  # "quit" here is leaving, not preventing
    ],
)
def test_guard_lets_paraphrases_through(a: str, b: str) -> None:
    assert allows(a, b), mismatch(a, b)


def test_facts() -> None:
    f = facts("How far is Paris from Lyon in km? It's 5 km, not three miles. NASA says so.")
    assert f.numbers == {"5", "3"} and f.negated and f.units == {"km", "mile"}
    assert f.entities == {"paris", "lyon", "nasa"}  # "How" and "It's" open sentences
    assert not f.asks_why and not f.prevents
    assert facts("What made the bridge collapse?").asks_why and facts("Keep the cat away from the sofa").prevents
    assert not facts("How do I keep my tea warm from morning to night?").asks_why


@given(st.text(max_size=60), st.text(max_size=60))
def test_guard_is_symmetric_and_total(a: str, b: str) -> None:
    assert mismatch(a, b) == mismatch(b, a) or {mismatch(a, b), mismatch(b, a)} <= {"entities", "opposites"}
    assert allows(a, a)


def test_labelled_pairs_file() -> None:
    pairs = load_pairs(PAIRS)
    assert len(pairs) >= 500
    assert len({p.id for p in pairs}) == len(pairs)
    assert len({(p.a, p.b) for p in pairs}) == len(pairs) and all(p.a != p.b for p in pairs)
    labels = Counter(p.label for p in pairs)
    assert labels["paraphrase"] >= 250 and labels["near_miss"] >= 250
    categories = {p.category for p in pairs if p.label == "near_miss"}
    assert {"number", "entity", "negation", "unit", "followup"} <= categories
    assert len({p.domain for p in pairs}) >= 15
    assert {p.split for p in pairs} == {"dev", "holdout", "holdout2"}


def test_recorded_evaluation_matches_the_default_threshold() -> None:
    if not RESULT.exists():
        pytest.skip("run scripts/eval_semantic_cache.py first")
    report = json.loads(RESULT.read_text())
    assert report["threshold"] == SEMANTIC_THRESHOLD
    [dev] = [r for r in report["at_threshold"] if r["guard"] and r["split"] == "dev"]
    assert dev["wrong_hit_rate"] <= report["max_wrong_hit_rate"]


class TableEmbedder:
    """Vectors by text, at the cosine with "q" that ``COSINES`` gives."""

    COSINES = {"q": 1.0, "q.": 0.95, "q?": 0.85, "q!": 0.90, "q;": 0.60, "not q": 0.97, "q...": 0.99}

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return [[self.COSINES[t], (1 - self.COSINES[t] ** 2) ** 0.5] for t in texts]


def _pair(i: int, label: str, b: str, split: str = "dev") -> LabelledPair:
    return LabelledPair(id=f"x{i}", label=label, category="c", domain="d", a="q", b=b, split=split)  # type: ignore[arg-type]


async def test_evaluation_rates_and_threshold_choice() -> None:
    pairs = [
        _pair(1, "paraphrase", "q."),
        _pair(2, "paraphrase", "q?"),
        _pair(3, "near_miss", "q!"),
        _pair(4, "near_miss", "q;"),
        _pair(5, "near_miss", "not q"),  # the guard refuses it (negation)
        _pair(6, "paraphrase", "q...", "holdout"),
    ]
    scored = await score_pairs(pairs, TableEmbedder())
    assert [round(s.similarity, 2) for s in scored] == [0.95, 0.85, 0.9, 0.6, 0.97, 0.99]
    assert [s.guard_mismatch for s in scored] == [None, None, None, None, "negation", None]
    at = rates(scored, 0.88, guard=False, split="dev")
    assert (at.hit_rate, at.wrong_hit_rate) == (0.5, 2 / 3)
    assert rates(scored, 0.88, guard=True, split="dev").wrong_hit_rate == 1 / 3
    assert rates(scored, 0.5, guard=True, split="holdout").hit_rate == 1.0
    assert choose_threshold(scored, 0.0, guard=True) == 0.91
    assert choose_threshold(scored, 0.0, guard=False) == 0.98
    report = build_report(scored, "table", 0.0)
    assert report.threshold == 0.91 and report.threshold_without_guard == 0.98
    assert "0.91" in format_table(report) and "| 0.91 |" in format_sweep(report, 0.9, 0.92)
