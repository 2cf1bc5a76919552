"""The OpenAI-compatible HTTP surface of the router: routes only. The request path is
``serve.router.service``; errors become HTTP in ``serve.router.errors``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from serve.router.admin import build_admin_router
from serve.router.errors import install_error_handlers
from serve.router.service import RouterService


def build_router_app(service: RouterService) -> FastAPI:
    app = FastAPI(title="Frugal", docs_url=None, redoc_url=None)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        # Answers without waiting on engines, so a replica scaled to zero never blocks it.
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        body, content_type = service.metrics.render()
        return Response(content=body, media_type=content_type)

    app.include_router(build_admin_router(service.tenants))

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
