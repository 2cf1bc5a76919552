"""Record an engine's stream into a cache entry, only if it finished normally."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from serve.cache.entry import CACHEABLE_FINISH_REASONS, CachedChoice, CachedUsage, CacheEntry, usage_from
from serve.cache.keys import CacheEndpoint

CHUNK_OBJECT: dict[CacheEndpoint, str] = {"chat": "chat.completion.chunk", "completion": "text_completion"}


@dataclass
class _Choice:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    stop_reason: int | str | None = None


class StreamRecorder:
    """Consumes the JSON payloads of an engine's SSE stream, in order (the ``data:`` bodies,
    without ``[DONE]``), and turns them into an entry.

    ``entry`` returns an entry only if every payload was a well-formed chunk of the
    endpoint's kind, every choice seen got a normal finish (``stop``/``length``) exactly once,
    the choices are numbered 0..n-1, and a usage object arrived. An error payload, a tool
    call, log-probabilities or any malformed payload spoils the recording for good.
    """

    def __init__(self, endpoint: CacheEndpoint) -> None:
        self.endpoint = endpoint
        self._choices: dict[int, _Choice] = {}
        self._usage: CachedUsage | None = None
        self.spoiled: str | None = None  # why the stream cannot be stored

    def feed(self, payload: str) -> None:
        """Take the next payload; never raises."""
        if self.spoiled is not None:
            return
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            self.spoiled = "payload is not JSON"
            return
        if not isinstance(obj, dict) or obj.get("object") != CHUNK_OBJECT[self.endpoint]:
            self.spoiled = "payload is not a chunk of this endpoint"
            return
        choices = obj.get("choices")
        if not isinstance(choices, list):
            self.spoiled = "chunk without choices"
            return
        if obj.get("usage") is not None:
            self._usage = usage_from(obj["usage"])
            if self._usage is None:
                self.spoiled = "malformed usage"
                return
        for raw in choices:
            self._feed_choice(raw)

    def _feed_choice(self, raw: object) -> None:
        if not isinstance(raw, dict) or not isinstance(raw.get("index"), int) or raw.get("logprobs") is not None:
            self.spoiled = "malformed choice or log-probabilities"
            return
        choice = self._choices.setdefault(raw["index"], _Choice())
        if choice.finish_reason is not None:
            self.spoiled = "output after the finish"
            return
        if self.endpoint == "chat":
            delta = raw.get("delta")
            if not isinstance(delta, dict) or delta.get("tool_calls") or delta.get("function_call"):
                self.spoiled = "malformed delta or tool call"
                return
            text, reasoning = delta.get("content"), delta.get("reasoning") or delta.get("reasoning_content")
        else:
            text, reasoning = raw.get("text"), None
        if not (text is None or isinstance(text, str)) or not (reasoning is None or isinstance(reasoning, str)):
            self.spoiled = "non-text output"
            return
        if text:
            choice.text.append(text)
        if reasoning:
            choice.reasoning.append(reasoning)
        reason = raw.get("finish_reason")
        if reason is not None:
            if reason not in CACHEABLE_FINISH_REASONS:
                self.spoiled = f"finish_reason {reason!r}"
                return
            choice.finish_reason = reason
            stop_reason = raw.get("stop_reason")
            if isinstance(stop_reason, (int, str)) and not isinstance(stop_reason, bool):
                choice.stop_reason = stop_reason

    def entry(self, cost_usd: float) -> CacheEntry | None:
        """The recorded answer with its ``cost_usd``, or None unless it finished normally."""
        if self.spoiled is not None or self._usage is None or not self._choices:
            return None
        if sorted(self._choices) != list(range(len(self._choices))):
            return None
        if any(c.finish_reason is None for c in self._choices.values()):
            return None
        choices = tuple(
            CachedChoice(
                index=i,
                text="".join(c.text),
                reasoning="".join(c.reasoning) or None,
                finish_reason=c.finish_reason,  # type: ignore[arg-type]  # checked above
                stop_reason=c.stop_reason,
            )
            for i, c in sorted(self._choices.items())
        )
        return CacheEntry(endpoint=self.endpoint, choices=choices, usage=self._usage, cost_usd=cost_usd, created_at_s=time.time())
