"""Relay an engine's stream to the client as Server-Sent Events.

The stream the client sees: the engine's chunks in order, the usage chunk (with
``usage.cost_usd``) only if the client asked for it (``stream_options.include_usage``), then
``data: [DONE]``. If the engine fails
mid-stream, the client gets an OpenAI-shaped error event and ``[DONE]``, never a hang.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from serve.constants import COST_USD_DECIMALS
from serve.engine.protocol import EngineReply, ErrorBody, RunStats
from serve.router.errors import error_payload

logger = logging.getLogger(__name__)

SSE_DONE = "data: [DONE]\n\n"


def sse_event(payload: str) -> str:
    return f"data: {payload}\n\n"


@dataclass
class StreamUsage:
    """What a relayed stream reports once it ends."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finished: bool = False
    error: ErrorBody | None = field(default=None)
    stats: RunStats | None = None
    cost_usd: float = 0.0
    first_token_s: float | None = None  # monotonic time of the first content payload
    num_content_events: int = 0


# (prompt_tokens, completion_tokens, run stats or None) -> cost in USD
CostFn = Callable[[int, int, RunStats | None], float]


def usage_of(payload: str) -> dict | None:
    """The ``usage`` object of a usage-only chunk (``choices == []``), else None."""
    if '"usage"' not in payload:  # cheap test first: most chunks carry no usage
        return None
    obj = json.loads(payload)
    usage = obj.get("usage")
    if usage and obj.get("choices") == []:
        return usage
    return None


def with_cost(payload: str, cost_usd: float) -> str:
    """``payload`` (a JSON object with ``usage``) with ``usage.cost_usd`` set."""
    obj = json.loads(payload)
    if isinstance(obj.get("usage"), dict):
        obj["usage"]["cost_usd"] = round(cost_usd, COST_USD_DECIMALS)
    return json.dumps(obj)


async def relay_sse(
    first: EngineReply,
    rest: AsyncIterator[EngineReply],
    include_usage: bool,
    usage: StreamUsage,
    cost_fn: CostFn | None = None,
    observe: Callable[[str], None] | None = None,
) -> AsyncIterator[str]:
    """Yield SSE events for ``first`` and then ``rest``; fills ``usage`` as it goes.

    The engine's usage chunk is held back until the stream's ``RunStats`` arrive, so the
    usage chunk the client gets (when it asked for one) carries ``usage.cost_usd``.
    ``observe`` sees every engine payload in order (the cache's stream recorder).
    """
    held_usage: str | None = None

    def priced_usage() -> str | None:
        usage.cost_usd = cost_fn(usage.prompt_tokens, usage.completion_tokens, usage.stats) if cost_fn else 0.0
        if held_usage is None or not include_usage:
            return None
        return sse_event(with_cost(held_usage, usage.cost_usd))

    try:
        payload: EngineReply = first
        while True:
            if isinstance(payload, ErrorBody):
                usage.error = payload
                yield sse_event(json.dumps(error_payload(payload)))
                break
            if isinstance(payload, RunStats):
                usage.stats = payload
            else:
                if observe is not None:
                    observe(payload)
                found = usage_of(payload)
                if found is not None:
                    usage.prompt_tokens = int(found.get("prompt_tokens") or 0)
                    usage.completion_tokens = int(found.get("completion_tokens") or 0)
                    held_usage = payload
                else:
                    if usage.first_token_s is None:
                        usage.first_token_s = time.monotonic()
                    usage.num_content_events += 1
                    yield sse_event(payload)
            try:
                payload = await anext(rest)
            except StopAsyncIteration:
                usage.finished = True
                break
    except Exception as exc:  # the engine replica failed mid-stream
        logger.warning("stream failed mid-way: %r", exc)
        usage.error = ErrorBody(
            status_code=503,
            message="The engine failed while streaming; retry the request.",
            type="service_unavailable",
            code="engine_unavailable",
        )
        yield sse_event(json.dumps(error_payload(usage.error)))
    finally:
        await rest.aclose()
    if usage.error is None:
        event = priced_usage()
        if event is not None:
            yield event
    else:
        priced_usage()
    yield SSE_DONE
