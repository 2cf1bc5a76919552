"""The OpenAI-compatible HTTP surface of the router.

Request flow: body (size-limited) -> JSON -> model lookup -> validated request (vLLM's
protocol models) -> pool -> engine -> response. Errors leave through ``serve.router.errors``.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from serve.config.schema import FrugalConfig, ModelConfig
from serve.engine.protocol import Endpoint, ErrorBody
from serve.router.engines import EngineClient
from serve.router.errors import (
    FrugalError,
    bad_request,
    engine_unavailable,
    install_error_handlers,
    model_not_found,
)
from serve.router.requests import decode_json_object, force_usage_chunk, parse_request, wants_usage_chunk
from serve.router.streaming import StreamUsage, relay_sse

logger = logging.getLogger(__name__)

ENDPOINT_TASK: dict[Endpoint, str] = {"chat": "chat", "completion": "chat", "embedding": "embed"}
REQUEST_ID_PREFIX: dict[Endpoint, str] = {"chat": "chatcmpl", "completion": "cmpl", "embedding": "embd"}


class RouterService:
    """Resolves models to engine clients and runs one request end to end."""

    def __init__(self, config: FrugalConfig, clients: dict[str, list[EngineClient]]) -> None:
        self.config = config
        self.clients = clients
        self.created_s = int(time.time())

    def resolve_model(self, endpoint: Endpoint, data: dict[str, Any]) -> ModelConfig:
        name = data.get("model")
        task = ENDPOINT_TASK[endpoint]
        if name is None:
            candidates = [m for m in self.config.models if m.task == task]
            if len(candidates) != 1:
                raise bad_request("model is required when several models are served.", param="model")
            data["model"] = candidates[0].name
            return candidates[0]
        if not isinstance(name, str):
            raise bad_request("model must be a string.", param="model")
        model = self.config.model(name)
        if model is None:
            raise model_not_found(name)
        if model.task != task:
            raise bad_request(
                f"The model '{name}' is a {model.task} model and does not serve this endpoint.",
                param="model",
                code="unsupported_endpoint",
            )
        return model

    def pick_client(self, model: ModelConfig) -> EngineClient:
        clients = self.clients.get(model.name)
        if not clients:
            raise engine_unavailable(f"no pool of {model.name} is deployed")
        return clients[0]

    async def read_body(self, request: Request) -> bytes:
        limit = self.config.router.max_request_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise FrugalError(413, f"The request body exceeds {limit} bytes.", code="request_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise FrugalError(413, f"The request body exceeds {limit} bytes.", code="request_too_large")
        return bytes(body)

    async def handle(self, endpoint: Endpoint, request: Request) -> Response:
        data = decode_json_object(await self.read_body(request))
        model = self.resolve_model(endpoint, data)
        parsed = parse_request(endpoint, data)
        stream = bool(getattr(parsed, "stream", False))
        include_usage = wants_usage_chunk(parsed)
        if stream:
            force_usage_chunk(parsed)
        client = self.pick_client(model)
        # vLLM prefixes the id itself (chatcmpl-, cmpl-, embd-), as the response's ``id``.
        request_id = uuid.uuid4().hex
        headers = {"x-frugal-request-id": f"{REQUEST_ID_PREFIX[endpoint]}-{request_id}", "x-frugal-pool": client.pool}

        replies = client.generate(endpoint, parsed, request_id)
        try:
            first = await anext(replies)
        except StopAsyncIteration:
            raise engine_unavailable("the engine returned nothing") from None
        except Exception as exc:
            logger.warning("engine call for %s failed: %r", model.name, exc)
            raise engine_unavailable(type(exc).__name__) from None
        if isinstance(first, ErrorBody):
            await replies.aclose()
            raise FrugalError.from_body(first)
        if not stream:
            await replies.aclose()
            return Response(content=first, media_type="application/json", headers=headers)
        usage = StreamUsage()
        return StreamingResponse(
            relay_sse(first, replies, include_usage, usage),
            media_type="text/event-stream",
            headers={**headers, "cache-control": "no-cache"},
        )

    def list_models(self) -> dict[str, Any]:
        data = [
            {"id": m.name, "object": "model", "created": self.created_s, "owned_by": "frugal", "task": m.task}
            for m in self.config.models
        ]
        return {"object": "list", "data": data}


def build_router_app(service: RouterService) -> FastAPI:
    app = FastAPI(title="Frugal", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        # Answers without waiting on engines, so a replica scaled to zero never blocks it.
        return JSONResponse({"status": "ok"})

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        return JSONResponse(service.list_models())

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await service.handle("chat", request)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await service.handle("completion", request)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        return await service.handle("embedding", request)

    return app
