"""Errors become HTTP here and nowhere else: every failure leaves the router as
OpenAI-shaped JSON ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve.engine.protocol import ErrorBody

logger = logging.getLogger(__name__)


class FrugalError(Exception):
    """A request that cannot be served, with the status and OpenAI error fields to report."""

    def __init__(
        self,
        status_code: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.body = ErrorBody(status_code=status_code, message=message, type=type, param=param, code=code)
        self.headers = headers or {}

    @classmethod
    def from_body(cls, body: ErrorBody) -> FrugalError:
        return cls(body.status_code, body.message, body.type, body.param, body.code)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> FrugalError:
    return FrugalError(HTTPStatus.BAD_REQUEST, message, param=param, code=code)


def model_not_found(model: str) -> FrugalError:
    return FrugalError(
        HTTPStatus.NOT_FOUND,
        f"The model '{model}' does not exist; GET /v1/models lists the models served here.",
        param="model",
        code="model_not_found",
    )


def engine_unavailable(detail: str) -> FrugalError:
    return FrugalError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"The engine is unavailable; retry the request. ({detail})",
        type="service_unavailable",
        code="engine_unavailable",
        headers={"Retry-After": "1"},
    )


def error_payload(body: ErrorBody) -> dict:
    return {"error": {"message": body.message, "type": body.type, "param": body.param, "code": body.code}}


def error_response(body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_payload(body), status_code=body.status_code, headers=headers)


def from_validation_error(err: ValidationError | RequestValidationError) -> FrugalError:
    """The first pydantic error, naming the parameter by its dotted path."""
    errors = err.errors()
    first = errors[0] if errors else {"loc": (), "msg": str(err)}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    # OpenAI names the top-level parameter; the full path (with pydantic's union labels)
    # goes into the message only.
    param = loc[0] if loc else None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return bad_request(f"{'.'.join(loc)}: {msg}" if loc else msg, param=param)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FrugalError)
    async def _frugal(_: Request, exc: FrugalError) -> JSONResponse:
        return error_response(exc.body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(from_validation_error(exc).body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        body = ErrorBody(status_code=exc.status_code, message=str(exc.detail), code=code)
        return error_response(body, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A bug, not a client mistake: log it with its traceback and say so.
        logger.exception("unhandled error in the router")
        body = ErrorBody(status_code=500, message="internal error in the router", type="server_error", code="internal_error")
        return error_response(body)


def unauthorized(message: str) -> FrugalError:
    """A missing, malformed, unknown or revoked API key (OpenAI: 401 invalid_api_key)."""
    return FrugalError(
        HTTPStatus.UNAUTHORIZED, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )


def permission_denied(message: str, param: str | None = None, code: str = "permission_denied") -> FrugalError:
    return FrugalError(HTTPStatus.FORBIDDEN, message, type="permission_error", param=param, code=code)


def not_found(message: str, param: str | None = None) -> FrugalError:
    return FrugalError(HTTPStatus.NOT_FOUND, message, param=param, code="not_found")


def rate_limited(message: str, type: str, param: str | None, headers: dict[str, str]) -> FrugalError:
    """A request over a rate limit or request quota; ``type`` is "requests" or "tokens" as OpenAI
    reports it, ``param`` names the limit, ``headers`` carry Retry-After and x-ratelimit-*."""
    return FrugalError(HTTPStatus.TOO_MANY_REQUESTS, message, type=type, param=param, code="rate_limit_exceeded",
                       headers=headers)


def insufficient_quota(message: str, headers: dict[str, str]) -> FrugalError:
    """A tenant at 100% of a hard budget (OpenAI: 429 insufficient_quota)."""
    return FrugalError(HTTPStatus.TOO_MANY_REQUESTS, message, type="insufficient_quota", param="monthly_budget_usd",
                       code="insufficient_quota", headers=headers)


def store_unavailable(detail: str) -> FrugalError:
    """The shared state store (Redis) cannot be reached and the request cannot be metered."""
    return FrugalError(
        HTTPStatus.SERVICE_UNAVAILABLE,
        f"The tenant store is unavailable; retry the request. ({detail})",
        type="service_unavailable",
        code="store_unavailable",
        headers={"Retry-After": "1"},
    )


def overloaded(message: str) -> FrugalError:
    return FrugalError(HTTPStatus.SERVICE_UNAVAILABLE, message, type="service_unavailable", code="overloaded",
                       headers={"Retry-After": "1"})
