"""The response cache on the router's request path: answering a hit, and the embedder the
semantic cache calls (the served embedding model, through its pool's engine client)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from fastapi.responses import Response, StreamingResponse

from serve.cache import CacheLookup, render_body, render_stream
from serve.engine.protocol import Endpoint, ErrorBody
from serve.router.engines import EngineClient
from serve.router.outcome import Finisher, Outcome
from serve.router.streaming import SSE_DONE, sse_event

CACHE_POOL = "cache"  # the x-frugal-pool of an answer served from the cache
CACHE_ROUTE_REASON = "cache-hit"


class EngineEmbedder:
    """Embeds texts with the served embedding model (vLLM's embedding endpoint)."""

    def __init__(self, client: EngineClient, model: str) -> None:
        self.client = client
        self.model = model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        from vllm.entrypoints.pooling.embed.protocol import EmbeddingCompletionRequest

        request = EmbeddingCompletionRequest(model=self.model, input=texts)
        replies = self.client.generate("embedding", request, f"cache-{uuid.uuid4().hex}")
        try:
            body = await anext(replies)
        finally:
            await replies.aclose()
        if isinstance(body, ErrorBody) or not isinstance(body, str):
            raise RuntimeError(f"embedding failed: {body}")
        data = sorted(json.loads(body)["data"], key=lambda d: d["index"])
        return [d["embedding"] for d in data]


def fill_from_hit(outcome: Outcome, lookup: CacheLookup) -> None:
    """A hit costs no GPU time: its usage is the cached answer's, its cost 0, and what the
    answer cost when it was generated is recorded as avoided."""
    assert lookup.entry is not None
    usage = lookup.entry.usage
    outcome.pool = None
    outcome.cache_hit = True
    outcome.prompt_tokens = usage.prompt_tokens
    outcome.completion_tokens = usage.completion_tokens
    outcome.cost_usd = 0.0
    outcome.avoided_cost_usd = lookup.cost_avoided_usd


async def respond_from_cache(
    endpoint: Endpoint,
    lookup: CacheLookup,
    model: str,
    stream: bool,
    include_usage: bool,
    outcome: Outcome,
    finisher: Finisher,
    headers: dict[str, str],
) -> Response:
    assert lookup.entry is not None
    fill_from_hit(outcome, lookup)
    headers.update({
        "x-frugal-pool": CACHE_POOL,
        "x-frugal-route-reason": CACHE_ROUTE_REASON,
        "x-frugal-cost-usd": "0",
        "x-frugal-cost-kind": "actual",
    })
    if not stream:
        body = render_body(lookup.entry, endpoint, outcome.request_id, model)
        await finisher.finish("ok")
        return Response(content=body, media_type="application/json", headers=headers)
    payloads = render_stream(lookup.entry, endpoint, outcome.request_id, model, include_usage)

    async def replay() -> AsyncIterator[str]:
        status = "cancelled"
        try:
            for payload in payloads:
                yield sse_event(payload)
            yield SSE_DONE
            status = "ok"
        finally:
            await finisher.finish(status)

    headers["cache-control"] = "no-cache"
    return StreamingResponse(replay(), media_type="text/event-stream", headers=headers)
