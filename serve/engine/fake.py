"""A deterministic in-process engine, for unit tests only.

It implements the ``Engine`` protocol without a model: a chat or completion request is
answered with the words of ``"echo: " + <last user message or prompt>``, cut to the request's
token limit (one word is one token; ``finish_reason`` is ``"length"`` when cut, else
``"stop"``). Prompt tokens are the whitespace-separated words of the messages or prompt. An
embedding is a unit vector derived from a hash of the text. Payloads have the shapes of
vLLM's OpenAI server, so the router's handling of them is exercised as in production.

Failures are injected through the constructor; ``num_active``, ``num_requests`` and
``aborted`` (request ids closed or cancelled before their last output) let tests check that
the router closes engine streams.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from serve.engine.protocol import Endpoint, EngineLoad, EngineReply, ErrorBody

FAKE_EMBEDDING_DIM = 8
ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl", "completion": "cmpl", "embedding": "embd"}


def _num_words(text: str) -> int:
    return len(text.split())


def _text_of(content: Any) -> str:
    """A chat message's content: a string, or a list of parts of which the text ones count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _texts(prompt: Any) -> list[str]:
    """A prompt or embedding input (a string, token ids, or a list of either) as one text per
    item; token ids become their numbers separated by spaces, one word per token."""
    if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
        prompt = [prompt]
    return [p if isinstance(p, str) else " ".join(map(str, p)) for p in prompt]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    total = prompt_tokens + completion_tokens
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total}


def fake_embedding(text: str, dim: int = FAKE_EMBEDDING_DIM) -> list[float]:
    """A unit vector of ``dim`` floats that depends only on ``text``."""
    digest = b""
    while len(digest) < 4 * dim:
        digest += hashlib.sha256(digest + text.encode()).digest()
    raw = [v / 2**31 - 1.0 for v in struct.unpack(f"<{dim}I", digest[: 4 * dim])]
    norm = math.sqrt(sum(v * v for v in raw)) or 1.0
    return [v / norm for v in raw]


class FakeEngine:
    """Answers deterministically; see the module docstring.

    ``fail_before``: yield this error instead of any output. ``raise_after_chunks``: raise
    ``RuntimeError`` once that many payloads were yielded (0: before any), like a replica
    dying. ``delay_s``: sleep this long per generated token, so a request can be cancelled
    while it runs.
    """

    def __init__(
        self,
        model: str = "fake-model",
        fail_before: ErrorBody | None = None,
        raise_after_chunks: int | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.model = model
        self.fail_before = fail_before
        self.raise_after_chunks = raise_after_chunks
        self.delay_s = delay_s
        self.num_active = 0
        self.num_requests = 0
        self.aborted: list[str] = []
        self.started = False
        self.tokens_processed = 0

    async def start(self) -> None:
        self.started = True

    async def check_health(self) -> None:
        if not self.started:
            raise RuntimeError("engine not started")

    def load(self) -> EngineLoad:
        return EngineLoad(num_running=self.num_active, tokens_processed=self.tokens_processed)

    async def shutdown(self) -> None:
        self.started = False

    async def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
        self.num_active += 1
        self.num_requests += 1
        complete = False  # set before the last item: closing the stream after it aborts nothing
        try:
            if self.fail_before is not None:
                complete = True
                yield self.fail_before
                return
            prompt_tokens, outputs = self._outputs(endpoint, request, f"{ID_PREFIX[endpoint]}-{request_id}")
            self.tokens_processed += prompt_tokens
            for i, (num_tokens, payload) in enumerate(outputs):
                if self.raise_after_chunks is not None and i >= self.raise_after_chunks:
                    raise RuntimeError("fake engine replica died")
                if self.delay_s and num_tokens:
                    await asyncio.sleep(self.delay_s * num_tokens)
                complete = i == len(outputs) - 1
                self.tokens_processed += num_tokens
                yield payload
        except (GeneratorExit, asyncio.CancelledError):
            if not complete:
                self.aborted.append(request_id)
            raise
        finally:
            self.num_active -= 1

    def _outputs(self, endpoint: Endpoint, request: Any, response_id: str) -> tuple[int, list[tuple[int, str]]]:
        """The prompt's token count, and the payloads to yield, each with the number of tokens
        it took to generate."""
        base = {"id": response_id, "created": int(time.time()), "model": request.model or self.model}
        if endpoint == "embedding":
            body = self._embedding_body(request, base)
            return body["usage"]["prompt_tokens"], [(0, json.dumps(body))]
        chat = endpoint == "chat"
        if chat:
            prompts = [" ".join(_text_of(m.get("content")) for m in request.messages)]
            user = [_text_of(m.get("content")) for m in request.messages if m.get("role") == "user"]
            answers = [("echo: " + (user[-1] if user else "")).split()]
            limit = request.max_completion_tokens or request.max_tokens
        else:
            prompts = _texts(request.prompt)
            answers = [("echo: " + p).split() for p in prompts]
            limit = request.max_tokens
        n = request.n or 1
        # One choice per (prompt, sample), numbered as vLLM numbers them.
        choices = [(i * n + j, words[:limit] if limit else words) for i, words in enumerate(answers) for j in range(n)]
        reasons = {idx: "length" if limit and len(answers[idx // n]) > limit else "stop" for idx, _ in choices}
        prompt_tokens = sum(_num_words(p) for p in prompts)
        completion_tokens = sum(len(words) for _, words in choices)
        usage = _usage(prompt_tokens, completion_tokens)

        if not request.stream:
            body_choices = []
            for idx, words in choices:
                text = " ".join(words)
                output = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
                body_choices.append({"index": idx, **output, "logprobs": None, "finish_reason": reasons[idx]})
            obj = "chat.completion" if chat else "text_completion"
            body = {**base, "object": obj, "choices": body_choices, "usage": usage}
            return prompt_tokens, [(completion_tokens, json.dumps(body))]

        obj = "chat.completion.chunk" if chat else "text_completion"

        def chunk(idx: int, delta: dict[str, str], finish: str | None = None) -> tuple[int, str]:
            output = {"delta": delta} if chat else {"text": delta.get("content", "")}
            choice = {"index": idx, **output, "logprobs": None, "finish_reason": finish}
            return (1 if delta.get("content") else 0), json.dumps({**base, "object": obj, "choices": [choice]})

        out = [chunk(idx, {"role": "assistant", "content": ""}) for idx, _ in choices] if chat else []
        for t in range(max(len(words) for _, words in choices)):  # one chunk per token and choice
            text = {idx: words[t] if t == 0 else " " + words[t] for idx, words in choices if t < len(words)}
            out += [chunk(idx, {"content": piece}) for idx, piece in text.items()]
        out += [chunk(idx, {}, reasons[idx]) for idx, _ in choices]
        if request.stream_options is not None and request.stream_options.include_usage:
            out.append((0, json.dumps({**base, "object": obj, "choices": [], "usage": usage})))
        return prompt_tokens, out

    def _embedding_body(self, request: Any, base: dict[str, Any]) -> dict[str, Any]:
        texts = _texts(request.input)
        dim = request.dimensions or FAKE_EMBEDDING_DIM
        data = []
        for i, text in enumerate(texts):
            vector: Any = fake_embedding(text, dim)
            if request.encoding_format == "base64":  # little-endian float32, as OpenAI sends it
                vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            data.append({"index": i, "object": "embedding", "embedding": vector})
        usage = _usage(sum(_num_words(t) for t in texts), 0)
        return {**base, "object": "list", "data": data, "usage": usage}


def fake_engine_factory(model: Any, pool: Any) -> FakeEngine:
    """An ``engine_factory`` for ``serve.builder.build_app``: instant fake engines, for tests and
    for measuring the router's own overhead (importable by Ray workers, unlike test modules)."""
    return FakeEngine(model.name)
