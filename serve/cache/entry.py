"""A cached answer: what is stored, and how it is read from an engine's JSON body.

An entry holds only what a replay needs: per choice the text (and reasoning text, when the
engine's reasoning parser split it off) and the finish reason, the usage of the original
answer and its cost. Ids and timestamps are not stored: every replay gets fresh ones. An
answer with tool calls, log-probabilities, or a finish other than ``stop``/``length`` is not
cacheable (``entry_from_body`` and ``StreamRecorder`` return None for it).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from serve.cache.keys import CacheEndpoint

FinishReason = Literal["stop", "length"]
CACHEABLE_FINISH_REASONS: frozenset[str] = frozenset({"stop", "length"})
BODY_OBJECT: dict[CacheEndpoint, str] = {"chat": "chat.completion", "completion": "text_completion"}

NonNegativeInt = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CachedChoice(_Strict):
    index: NonNegativeInt
    text: str
    reasoning: str | None = None
    finish_reason: FinishReason
    stop_reason: int | str | None = None


class CachedUsage(_Strict):
    prompt_tokens: NonNegativeInt
    completion_tokens: NonNegativeInt
    total_tokens: NonNegativeInt


class CacheEntry(_Strict):
    """One stored answer; serialised as its JSON (``to_bytes``/``from_bytes``)."""

    endpoint: CacheEndpoint
    choices: tuple[CachedChoice, ...] = Field(min_length=1)
    usage: CachedUsage
    cost_usd: Annotated[float, Field(ge=0)]
    created_at_s: float = Field(description="wall-clock time the answer was produced")

    @model_validator(mode="after")
    def _indices(self) -> CacheEntry:
        indices = [c.index for c in self.choices]
        if indices != list(range(len(indices))):
            raise ValueError(f"choice indices must be 0..n-1 in order, got {indices}")
        return self

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_defaults=True).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CacheEntry:
        """Raises ``pydantic.ValidationError`` if ``raw`` is not an entry."""
        return cls.model_validate_json(raw)


def usage_from(obj: Any) -> CachedUsage | None:
    """The token counts of an OpenAI ``usage`` object, or None if they are missing."""
    if not isinstance(obj, dict):
        return None
    counts = [obj.get(k) for k in ("prompt_tokens", "completion_tokens")]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
        return None
    prompt, completion = counts
    total = obj.get("total_tokens")
    if not isinstance(total, int) or isinstance(total, bool):
        total = prompt + completion
    return CachedUsage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)


def _choice_from_body(endpoint: CacheEndpoint, obj: Any) -> CachedChoice | None:
    if not isinstance(obj, dict) or obj.get("logprobs") is not None:
        return None
    reason = obj.get("finish_reason")
    index = obj.get("index")
    if reason not in CACHEABLE_FINISH_REASONS or not isinstance(index, int):
        return None
    stop_reason = obj.get("stop_reason")
    if not isinstance(stop_reason, (int, str)) or isinstance(stop_reason, bool):
        stop_reason = None
    if endpoint == "completion":
        text = obj.get("text")
        if not isinstance(text, str):
            return None
        return CachedChoice(index=index, text=text, finish_reason=reason, stop_reason=stop_reason)
    message = obj.get("message")
    if not isinstance(message, dict) or message.get("tool_calls") or message.get("function_call"):
        return None
    text = message.get("content")
    reasoning = message.get("reasoning") or message.get("reasoning_content")
    if not isinstance(text, str) or not (reasoning is None or isinstance(reasoning, str)):
        return None
    return CachedChoice(index=index, text=text, reasoning=reasoning or None, finish_reason=reason, stop_reason=stop_reason)


def entry_from_body(endpoint: CacheEndpoint, body: str | bytes, cost_usd: float) -> CacheEntry | None:
    """The entry for an engine's non-streamed JSON ``body``, or None when the body is not a
    complete, cacheable answer (malformed, wrong object, tool calls, log-probabilities, no
    usage, an abnormal finish)."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or obj.get("object") != BODY_OBJECT[endpoint]:
        return None
    raw_choices = obj.get("choices")
    usage = usage_from(obj.get("usage"))
    if not isinstance(raw_choices, list) or not raw_choices or usage is None:
        return None
    choices = [_choice_from_body(endpoint, c) for c in raw_choices]
    if any(c is None for c in choices):
        return None
    ordered = sorted((c for c in choices if c is not None), key=lambda c: c.index)
    if [c.index for c in ordered] != list(range(len(ordered))):
        return None
    return CacheEntry(endpoint=endpoint, choices=tuple(ordered), usage=usage, cost_usd=cost_usd, created_at_s=time.time())
