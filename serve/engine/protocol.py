"""What the router needs from an engine, and what travels between them.

An engine serves one model. It takes a validated OpenAI request (vLLM's own protocol models)
and produces an ``EngineReply`` stream:

- for a streaming request: ``str`` items, each the JSON payload of one SSE ``data:`` event,
  in order, without the final ``[DONE]``;
- for a non-streaming request: exactly one ``str`` item, the JSON body of the response;
- in either case, if the request is refused before any output, exactly one ``ErrorBody``;
- through the engine deployment, a ``RunStats`` after the last payload of a completed run
  (the engine itself never yields it).

Token usage always travels in the payloads: streams carry a final usage chunk (the router
asks for it), bodies carry ``usage``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Literal, Protocol, TypeAlias

from pydantic import BaseModel

if TYPE_CHECKING:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.entrypoints.pooling.embed.protocol import EmbeddingCompletionRequest

    OpenAIRequest: TypeAlias = ChatCompletionRequest | CompletionRequest | EmbeddingCompletionRequest


class ErrorBody(BaseModel):
    """An OpenAI-shaped error raised by an engine, with its HTTP status."""

    status_code: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None


class EngineLoad(BaseModel):
    """A snapshot of an engine replica's load, for dispatch decisions.

    ``tokens_processed`` counts every prompt and output token the replica has processed
    since it started; the difference over a request's run is what the replica produced while
    that request ran, the denominator of its cost share.
    """

    num_running: int = 0
    num_waiting: int = 0
    kv_cache_usage: float = 0.0
    tokens_processed: int = 0


class RunStats(BaseModel):
    """The last item of every completed engine stream: how long the request ran on its
    replica and how many tokens (all requests together) the replica processed meanwhile."""

    wall_s: float
    replica_tokens: int


EngineReply: TypeAlias = str | ErrorBody | RunStats
Endpoint: TypeAlias = Literal["chat", "completion", "embedding"]


class Engine(Protocol):
    """One model's inference engine inside one replica."""

    async def start(self) -> None:
        """Load the model; returns when the engine can take requests."""

    def generate(self, endpoint: Endpoint, request: OpenAIRequest, request_id: str) -> AsyncIterator[EngineReply]:
        """Run one request. Cancelling the iteration aborts the request in the engine."""

    async def check_health(self) -> None:
        """Raise if the engine cannot serve."""

    def load(self) -> EngineLoad: ...

    async def shutdown(self) -> None: ...
