"""The floor of the overhead benchmark: a plain Ray Serve ingress answering every POST with a
canned chat completion, the same bytes and SSE events as the fake engine, with no routing.

``ray_chain_app`` is the soak's control: the same two Ray Serve hops as Frugal (an ingress
relaying a downstream deployment's stream through a ``DeploymentHandle``) with none of
Frugal's code, named like Frugal's deployments so the soak finds the same processes."""

from __future__ import annotations

import json
from typing import Any

MODEL = "fake-chat"
# The fake engine answers with "echo: " + the user's words, one token per word.
PROMPT_WORDS = 15
PROMPT = " ".join(f"word{i}" for i in range(PROMPT_WORDS))


def _canned_words(max_tokens: int) -> list[str]:
    return ("echo: " + PROMPT).split()[:max_tokens]


def canned_body(max_tokens: int) -> bytes:
    words = _canned_words(max_tokens)
    usage = {"prompt_tokens": PROMPT_WORDS, "completion_tokens": len(words), "total_tokens": PROMPT_WORDS + len(words)}
    choice = {"index": 0, "message": {"role": "assistant", "content": " ".join(words)}, "logprobs": None, "finish_reason": "length"}
    body = {"id": "chatcmpl-noop", "object": "chat.completion", "created": 0, "model": MODEL, "choices": [choice], "usage": usage}
    return json.dumps(body).encode()


def canned_events(max_tokens: int) -> list[str]:
    """The SSE events of a streamed answer: role, one chunk per token, finish, usage, [DONE]."""

    def chunk(delta: dict[str, str], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = {"id": "chatcmpl-noop", "object": "chat.completion.chunk", "created": 0, "model": MODEL, "choices": [choice]}
        return f"data: {json.dumps(obj)}\n\n"

    words = _canned_words(max_tokens)
    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
    events.append(chunk({}, "length"))
    return events + ["data: [DONE]\n\n"]


class NoopIngress:
    """A Ray Serve ingress that answers every POST with the canned completion: no routing."""

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response, StreamingResponse

        body = json.loads(await request.body())
        max_tokens = int(body.get("max_tokens") or PROMPT_WORDS + 2)
        if body.get("stream"):
            events = canned_events(max_tokens)

            async def stream() -> Any:
                for event in events:
                    yield event

            return StreamingResponse(stream(), media_type="text/event-stream")
        return Response(canned_body(max_tokens), media_type="application/json")


class NoopEngine:
    """A downstream deployment streaming the canned events (``canned_events``)."""

    async def generate(self, max_tokens: int) -> Any:
        for event in canned_events(max_tokens):
            yield event

    async def body(self, max_tokens: int) -> bytes:
        return canned_body(max_tokens)


class NoopRelay:
    """An ingress relaying ``NoopEngine``'s stream (or body) through a Ray Serve handle."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    async def __call__(self, request: Any) -> Any:
        from starlette.responses import Response, StreamingResponse

        body = json.loads(await request.body())
        max_tokens = int(body.get("max_tokens") or PROMPT_WORDS + 2)
        if body.get("stream"):
            return StreamingResponse(
                self.engine.options(stream=True).generate.remote(max_tokens), media_type="text/event-stream"
            )
        return Response(await self.engine.body.remote(max_tokens), media_type="application/json")


def ray_chain_app(max_ongoing_requests: int) -> Any:
    """``router`` (a ``NoopRelay``) in front of ``engine-noop`` (a ``NoopEngine``)."""
    from ray import serve

    engine = serve.deployment(NoopEngine).options(
        name="engine-noop", num_replicas=1, max_ongoing_requests=max_ongoing_requests, ray_actor_options={"num_cpus": 0}
    )
    relay = serve.deployment(NoopRelay).options(
        name="router", num_replicas=1, max_ongoing_requests=max_ongoing_requests, ray_actor_options={"num_cpus": 0}
    )
    return relay.bind(engine.bind())
