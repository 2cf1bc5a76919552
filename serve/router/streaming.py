"""Relay an engine's stream to the client as Server-Sent Events.

The stream the client sees: the engine's chunks in order, the usage chunk only if the client
asked for it (``stream_options.include_usage``), then ``data: [DONE]``. If the engine fails
mid-stream, the client gets an OpenAI-shaped error event and ``[DONE]``, never a hang.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from serve.engine.protocol import EngineReply, ErrorBody
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


def usage_of(payload: str) -> dict | None:
    """The ``usage`` object of a usage-only chunk (``choices == []``), else None."""
    if '"usage"' not in payload:  # cheap test first: most chunks carry no usage
        return None
    obj = json.loads(payload)
    usage = obj.get("usage")
    if usage and obj.get("choices") == []:
        return usage
    return None


async def relay_sse(
    first: str,
    rest: AsyncIterator[EngineReply],
    include_usage: bool,
    usage: StreamUsage,
) -> AsyncIterator[str]:
    """Yield SSE events for ``first`` and then ``rest``; fills ``usage`` as it goes."""
    try:
        payload: EngineReply = first
        while True:
            if isinstance(payload, ErrorBody):
                usage.error = payload
                yield sse_event(json.dumps(error_payload(payload)))
                break
            found = usage_of(payload)
            if found is not None:
                usage.prompt_tokens = int(found.get("prompt_tokens") or 0)
                usage.completion_tokens = int(found.get("completion_tokens") or 0)
                if include_usage:
                    yield sse_event(payload)
            else:
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
    yield SSE_DONE
