"""Model tiers: a complexity score for a chat request, and the tier model it picks.

The score combines five features, each in [0, 1]:

- length L: characters of the whole conversation, log-scaled from 0 at 200 characters (a
  one-line question) to 1 at 8,000 (a few pages of context);
- code C: a fenced block (```) in the last user message is 1; otherwise code words
  ("def", "class", "function", "python", "sql", "stack trace", ...) count a third each;
- reasoning R: cues such as "step by step", "prove", "explain why", "derive", "trade-off",
  "compare", "analyse" count a half each;
- multi-step M: numbered or bulleted asks, "first ... then", and several questions, a third
  per item beyond the first;
- depth D: user turns in the conversation, 0 for the first turn and 1 from the seventh.

and merges them as independent pieces of evidence (a noisy-OR):

    score = 1 - (1 - 0.45 L)(1 - 0.5 C)(1 - 0.6 R)(1 - 0.35 M)(1 - 0.25 D)

so one cue alone moves a request at most to its weight (a long document to 0.45, a code
ask to 0.5, a proof to 0.6: the medium tier by default), and only several cues together
reach the large tier (0.7). Cues are read from the last user message (what is asked now);
length and depth from the whole conversation. The scorer is deterministic and cheap
(regular expressions over the text), and deliberately simple: tune the thresholds in
``TiersConfig`` rather than trusting it as a quality oracle.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from serve.config.dispatch import TiersConfig

LENGTH_FLOOR_CHARS = 200
LENGTH_CEILING_CHARS = 8000
DEPTH_CEILING_TURNS = 7

WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"length": 0.45, "code": 0.5, "reasoning": 0.6, "multi_step": 0.35, "depth": 0.25}
)

_FENCE = re.compile(r"```")
_CODE_WORDS = re.compile(
    r"\b(def|class|function|return|import|lambda|async|await|const|var|struct|impl|fn|"
    r"python|javascript|typescript|java|rust|golang|c\+\+|sql|regex|bash|json|yaml|api|"
    r"compile|compiler|exception|traceback|stack trace|segfault|bug|debug|refactor|implement|algorithm)\b"
    r"|#include|=>|::|\b\w+\(\)",  # \b: a run of word characters is tried once, not at each of its positions
    re.IGNORECASE,
)
_REASONING = re.compile(
    r"step[- ]by[- ]step|\bprove\b|\bproof\b|explain why|\bwhy does\b|\bwhy is\b|\bderive\b|\bderivation\b|"
    r"trade-?offs?|\bcompare\b|\bcontrast\b|\banaly[sz]e\b|\banalysis\b|\bjustify\b|\breason(ing)?\b|"
    r"\btheorem\b|\blemma\b|\boptimi[sz]e\b|\bcomplexity\b|\bdesign\b|\bevaluate\b|\bpros and cons\b",
    re.IGNORECASE,
)
# [ \t], not \s: a run of blank lines must not be rescanned from every line start (quadratic).
_LIST_ITEM = re.compile(r"^[ \t]*(\d+[.)]|[-*•])[ \t]+\S", re.MULTILINE)
_SEQUENCE = re.compile(r"\b(first|then|next|finally|after that|additionally|also)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ComplexityScore:
    """The score and its features, for logs and tests."""

    score: float
    length: float
    code: float
    reasoning: float
    multi_step: float
    depth: float


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of OpenAI's content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            part.get("text", "") for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _clamp(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def _length_feature(chars: int) -> float:
    if chars <= LENGTH_FLOOR_CHARS:
        return 0.0
    return _clamp(math.log(chars / LENGTH_FLOOR_CHARS) / math.log(LENGTH_CEILING_CHARS / LENGTH_FLOOR_CHARS))


def _code_feature(text: str) -> float:
    if _FENCE.search(text):
        return 1.0
    return _clamp(len(_CODE_WORDS.findall(text)) / 3)


def _multi_step_feature(text: str) -> float:
    items = len(_LIST_ITEM.findall(text))
    sequence = len({m.lower() for m in _SEQUENCE.findall(text)})
    questions = text.count("?")
    asks = max(items, sequence, questions)
    return _clamp((asks - 1) / 3)


def score_features(messages: Sequence[Mapping[str, Any]] | str) -> ComplexityScore:
    """The complexity score of a chat request (OpenAI ``messages``) or a prompt string, with
    its features (formula in the module docstring)."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    texts = [(str(m.get("role", "user")), _text(m.get("content"))) for m in messages]
    user_texts = [t for role, t in texts if role == "user"]
    last = user_texts[-1] if user_texts else (texts[-1][1] if texts else "")
    features = {
        "length": _length_feature(sum(len(t) for _, t in texts)),
        "code": _code_feature(last),
        "reasoning": _clamp(len(_REASONING.findall(last)) / 2),
        "multi_step": _multi_step_feature(last),
        "depth": _clamp((len(user_texts) - 1) / (DEPTH_CEILING_TURNS - 1)),
    }
    remaining = 1.0
    for name, value in features.items():
        remaining *= 1.0 - WEIGHTS[name] * value
    return ComplexityScore(score=_clamp(1.0 - remaining), **features)


def complexity_score(messages: Sequence[Mapping[str, Any]] | str) -> float:
    """The complexity of a request in [0, 1]; see the module docstring."""
    return score_features(messages).score


def pick_tier(tiers: TiersConfig, score: float) -> tuple[str, str]:
    """(tier name, model name) for ``score``: small below ``medium_from``, medium below
    ``large_from``, else large."""
    return tiers.pick_tier(score)


def route_tier(tiers: TiersConfig, messages: Sequence[Mapping[str, Any]] | str) -> tuple[str, str, float]:
    """(tier name, model name, score) for a request sent to a tier alias."""
    score = complexity_score(messages)
    tier, model = tiers.pick_tier(score)
    return tier, model, score
