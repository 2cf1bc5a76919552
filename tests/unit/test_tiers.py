"""serve/dispatch/tiers.py and TiersConfig: the complexity score, tier choice and the
config's checks."""

from __future__ import annotations

import pytest
import yaml

from serve.config.dispatch import TiersConfig
from serve.config.loader import ConfigError, parse_config
from serve.dispatch.tiers import complexity_score, pick_tier, route_tier, score_features

TIERS = TiersConfig(small="s", medium="m", large="l")

LONG_REPORT = "Summarise this report.\n" + "The quarterly numbers were in line with expectations. " * 150
DESIGN = (
    "Design a rate limiter for a distributed API.\n"
    "1. Compare token bucket and sliding window.\n"
    "2. Analyse the trade-offs.\n"
    "3. Implement it in Python with Redis.\n"
    "4. Explain why your design is correct under clock skew."
)


@pytest.mark.parametrize(
    ("case", "request_", "tier"),
    [
        ("greeting", "hi", "small"),
        ("fact", "What is the capital of France?", "small"),
        ("translation", "Translate 'good morning' into Spanish.", "small"),
        ("creative, short", "Write a haiku about autumn.", "small"),
        ("everyday writing", "Can you help me write a polite email to my landlord asking to fix the heating?", "small"),
        ("code ask", "Write a Python function that reverses a linked list.", "medium"),
        ("code with a question", "Why does this raise a KeyError?\n```python\nd = {}\nprint(d['x'])\n```", "medium"),
        ("proof", "Prove that there are infinitely many primes. Explain step by step.", "medium"),
        ("long document", LONG_REPORT, "medium"),
        ("multi-part design with code", DESIGN, "large"),
        (
            "deep but simple conversation",
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}] * 7
            + [{"role": "user", "content": "and tomorrow?"}],
            "small",
        ),
        (
            "cues come from the last user message",
            [
                {"role": "user", "content": DESIGN},
                {"role": "assistant", "content": "Here is a design..."},
                {"role": "user", "content": "thanks!"},
            ],
            "small",
        ),
        (
            "content parts",
            [{"role": "user", "content": [{"type": "text", "text": DESIGN}, {"type": "image_url", "image_url": {}}]}],
            "large",
        ),
        ("system prompt only counts for length", [{"role": "system", "content": "You are helpful."}], "small"),
    ],
)
def test_tier_by_request(case: str, request_: object, tier: str) -> None:
    name, model, score = route_tier(TIERS, request_)  # type: ignore[arg-type]
    assert name == tier, f"{case}: score {score:.3f}"
    assert model == {"small": "s", "medium": "m", "large": "l"}[tier]
    assert 0.0 <= score <= 1.0


def test_features_and_their_combination() -> None:
    f = score_features(DESIGN)
    assert (f.code, f.reasoning, f.multi_step) == (1.0, 1.0, 1.0)
    # One cue alone scores its weight.
    assert complexity_score("Prove it step by step.") == pytest.approx(0.6)
    assert score_features(LONG_REPORT).length == 1.0
    assert complexity_score("") == 0.0
    assert complexity_score([]) == 0.0


@pytest.mark.parametrize(
    ("score", "tier"), [(0.0, "small"), (0.299, "small"), (0.3, "medium"), (0.699, "medium"), (0.7, "large"), (1.0, "large")]
)
def test_default_thresholds(score: float, tier: str) -> None:
    assert pick_tier(TIERS, score)[0] == tier


def test_thresholds_are_configurable_and_ordered() -> None:
    tiers = TiersConfig(small="s", medium="m", large="l", medium_from=0.5, large_from=0.5)
    assert [tiers.pick_tier(x)[0] for x in (0.49, 0.5)] == ["small", "large"]
    with pytest.raises(ValueError, match="medium_from must not exceed large_from"):
        TiersConfig(small="s", medium="m", large="l", medium_from=0.8, large_from=0.7)


def _config(tiers: dict) -> str:
    models = [
        {"name": "small-chat", "pools": [{"name": "p1", "engine": {"model": "x"}}]},
        {"name": "big-chat", "pools": [{"name": "p2", "engine": {"model": "y"}}]},
        {"name": "embedder", "task": "embed", "pools": [{"name": "p3", "engine": {"model": "z"}}]},
    ]
    return yaml.safe_dump({"models": models, "tiers": tiers})


def test_config_with_tiers() -> None:
    config = parse_config(_config({"small": "small-chat", "medium": "small-chat", "large": "big-chat"}))
    assert config.tiers is not None and config.tiers.aliases == ["auto"]
    assert config.tiers.pick_tier(0.9) == ("large", "big-chat")


@pytest.mark.parametrize(
    ("tiers", "message"),
    [
        ({"small": "small-chat", "medium": "nope", "large": "big-chat"}, "tiers.medium: no model named 'nope'"),
        ({"small": "small-chat", "medium": "big-chat", "large": "embedder"}, "tiers.large: 'embedder' has task 'embed'"),
        (
            {"small": "small-chat", "medium": "big-chat", "large": "big-chat", "aliases": ["big-chat"]},
            "also model names",
        ),
        ({"small": "small-chat", "medium": "big-chat"}, "tiers.large"),
        ({"small": "small-chat", "medium": "big-chat", "large": "big-chat", "huge": "x"}, "tiers.huge"),
    ],
)
def test_config_rejects_bad_tiers(tiers: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_config(tiers))
