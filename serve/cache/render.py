"""Replay a cache entry as an OpenAI response: a JSON body or the payloads of an SSE stream.

A replay has a fresh ``id`` (``chatcmpl-<request_id>`` / ``cmpl-<request_id>``, as vLLM
names them) and ``created`` time. Its ``usage`` is the cached answer's token counts with
``"cost_usd": 0.0``: the tokens were delivered, nothing was spent.
"""

from __future__ import annotations

import json
import time
from typing import Any

from serve.cache.entry import BODY_OBJECT, CachedChoice, CacheEntry
from serve.cache.keys import CacheEndpoint
from serve.cache.recorder import CHUNK_OBJECT
from serve.constants import CACHE_REPLAY_CHUNK_CHARS

ID_PREFIX: dict[CacheEndpoint, str] = {"chat": "chatcmpl", "completion": "cmpl"}


def _usage(entry: CacheEntry) -> dict[str, Any]:
    return {**entry.usage.model_dump(), "cost_usd": 0.0}


def _head(endpoint: CacheEndpoint, object_name: str, request_id: str, model: str) -> dict[str, Any]:
    return {"id": f"{ID_PREFIX[endpoint]}-{request_id}", "object": object_name, "created": int(time.time()), "model": model}


def _body_choice(endpoint: CacheEndpoint, choice: CachedChoice) -> dict[str, Any]:
    if endpoint == "chat":
        message: dict[str, Any] = {"role": "assistant", "content": choice.text}
        if choice.reasoning is not None:
            message["reasoning"] = choice.reasoning
        output: dict[str, Any] = {"message": message}
    else:
        output = {"text": choice.text}
    return {"index": choice.index, **output, "logprobs": None, "finish_reason": choice.finish_reason, "stop_reason": choice.stop_reason}


def render_body(entry: CacheEntry, endpoint: CacheEndpoint, request_id: str, model: str) -> str:
    """The JSON body of a non-streamed response replaying ``entry``."""
    body = _head(endpoint, BODY_OBJECT[endpoint], request_id, model)
    body["choices"] = [_body_choice(endpoint, c) for c in entry.choices]
    body["usage"] = _usage(entry)
    return json.dumps(body)


def _pieces(text: str) -> list[str]:
    return [text[i : i + CACHE_REPLAY_CHUNK_CHARS] for i in range(0, len(text), CACHE_REPLAY_CHUNK_CHARS)]


def render_stream(entry: CacheEntry, endpoint: CacheEndpoint, request_id: str, model: str, include_usage: bool) -> list[str]:
    """The JSON payloads of a streamed response replaying ``entry``, in order, without
    ``[DONE]`` (the router adds it): for chat a role chunk per choice, then reasoning and
    content in pieces of at most ``CACHE_REPLAY_CHUNK_CHARS`` characters, a finish chunk per
    choice, and a usage chunk (``choices: []``) only if ``include_usage``."""
    head = _head(endpoint, CHUNK_OBJECT[endpoint], request_id, model)
    chat = endpoint == "chat"

    def chunk(index: int, output: dict[str, Any], finish: CachedChoice | None = None) -> str:
        choice: dict[str, Any] = {"index": index, **output, "logprobs": None, "finish_reason": None}
        if finish is not None:
            choice["finish_reason"] = finish.finish_reason
            choice["stop_reason"] = finish.stop_reason
        return json.dumps({**head, "choices": [choice]})

    def text_output(text: str, kind: str = "content") -> dict[str, Any]:
        return {"delta": {kind: text}} if chat else {"text": text}

    payloads: list[str] = []
    for c in entry.choices:
        if chat:
            payloads.append(chunk(c.index, {"delta": {"role": "assistant", "content": ""}}))
        payloads += [chunk(c.index, text_output(p, "reasoning")) for p in _pieces(c.reasoning or "")]
        payloads += [chunk(c.index, text_output(p)) for p in _pieces(c.text)]
    payloads += [chunk(c.index, {"delta": {}} if chat else {"text": ""}, finish=c) for c in entry.choices]
    if include_usage:
        payloads.append(json.dumps({**head, "choices": [], "usage": _usage(entry)}))
    return payloads
