"""The vLLM adapter: one ``AsyncLLM`` engine behind vLLM's own OpenAI serving classes.

Chat templating, prompt validation (context length included), sampling parameters and the
response shapes are vLLM's own (``init_app_state`` wires the same serving objects that
``vllm serve`` uses), so the wire format matches vLLM's OpenAI server exactly. This module
only adapts their results to the ``Engine`` protocol and maps failures to ``ErrorBody``.

vLLM is imported inside methods: importing this module starts nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

from serve.config.schema import EngineArgsConfig
from serve.engine.load import LoadTracker, make_load_logger_factory
from serve.engine.protocol import EngineLoad, EngineReply, Endpoint, ErrorBody

logger = logging.getLogger(__name__)

SSE_PREFIX = "data: "
SSE_DONE = "[DONE]"


def _error_from_vllm(err: Any) -> ErrorBody:
    """vLLM's ``ErrorResponse`` -> ``ErrorBody``. Server-side failures become a retryable 503."""
    info = err.error
    status = int(info.code)
    if status >= 500:
        return ErrorBody(
            status_code=HTTPStatus.SERVICE_UNAVAILABLE,
            message=f"the engine failed to serve the request; retry later ({info.message})",
            type="service_unavailable",
            code="engine_unavailable",
        )
    return ErrorBody(
        status_code=status,
        message=info.message,
        type="invalid_request_error",
        param=info.param,
        code=None if status != 404 else "not_found",
    )


def _error_from_exception(exc: Exception) -> ErrorBody:
    from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

    return _error_from_vllm(create_error_response(exc))


def sse_payloads(chunk: str) -> list[str]:
    """Split what vLLM's stream generator yields (one or more ``data: ...\\n\\n`` events) into
    their JSON payloads, dropping ``[DONE]``."""
    payloads = []
    for event in chunk.split("\n\n"):
        event = event.strip()
        if not event:
            continue
        data = event[len(SSE_PREFIX) :] if event.startswith(SSE_PREFIX) else event
        if data != SSE_DONE:
            payloads.append(data)
    return payloads


def cpu_auto_dtype() -> str:
    """bf16 only where the CPU computes it natively (AVX512-BF16); elsewhere bf16 matmuls are
    emulated and fp32 is faster (measured on an AVX2-only EPYC: 63 vs 10 tok/s at 32
    streams, scripts/bench_batching.py --targets vllm)."""
    import torch

    return "bfloat16" if torch.cpu._is_avx512_bf16_supported() else "float32"


class VLLMEngine:
    """Hosts one vLLM ``AsyncLLM`` engine for one served model name."""

    def __init__(self, served_model_name: str, task: str, engine_args: EngineArgsConfig, on_cpu: bool = False) -> None:
        self.served_model_name = served_model_name
        self.task = task
        self.engine_args = engine_args
        self.on_cpu = on_cpu
        self._engine: Any = None
        self._state: Any = None
        self._load = LoadTracker()

    def _cli_args(self) -> Any:
        """vLLM's own argument namespace (the defaults of ``vllm serve``) with our engine
        arguments set on it, so every serving object is built exactly as vLLM builds it."""
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
        from vllm.utils.argparse_utils import FlexibleArgumentParser

        from serve.engine.args import check_engine_args

        problems = check_engine_args(self.engine_args)
        if problems:
            raise ValueError(f"invalid vLLM engine arguments: {'; '.join(problems)}")
        args = make_arg_parser(FlexibleArgumentParser()).parse_args([])
        kwargs = self.engine_args.to_engine_kwargs()
        for key, value in kwargs.items():
            setattr(args, key, value)
        if self.on_cpu and self.engine_args.dtype == "auto":
            args.dtype = cpu_auto_dtype()
        args.served_model_name = [self.served_model_name]
        args.runner = "pooling" if self.task == "embed" else "generate"
        args.disable_log_stats = False  # the load tracker needs scheduler stats
        args.enable_log_requests = False
        return args

    async def start(self) -> None:
        from starlette.datastructures import State
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.entrypoints.launchers.api_server.app_state import init_app_state
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.async_llm import AsyncLLM

        args = self._cli_args()
        engine_args = AsyncEngineArgs.from_cli_args(args)
        self._engine = AsyncLLM.from_engine_args(
            engine_args,
            usage_context=UsageContext.OPENAI_API_SERVER,
            stat_loggers=[make_load_logger_factory(self._load)],
        )
        supported_tasks = await self._engine.get_supported_tasks()
        self._state = State()
        await init_app_state(self._engine, self._state, args, supported_tasks)
        logger.info("engine for %s ready (tasks: %s)", self.served_model_name, supported_tasks)

    async def generate(self, endpoint: Endpoint, request: Any, request_id: str) -> AsyncIterator[EngineReply]:
        from vllm.entrypoints.serve.engine.protocol import ErrorResponse

        request.request_id = request_id
        try:
            if endpoint == "chat":
                handler = self._state.openai_serving_chat
                result = await handler.create_chat_completion(request, None) if handler else None
            elif endpoint == "completion":
                handler = self._state.openai_serving_completion
                result = await handler.create_completion(request, None) if handler else None
            else:
                handler = self._state.serving_embedding
                result = await handler(request, None) if handler else None
        except Exception as exc:  # vLLM raises client errors as exceptions too
            yield self._log_error(_error_from_exception(exc), exc)
            return
        if result is None:
            yield ErrorBody(
                status_code=400,
                message=f"model {self.served_model_name!r} does not support the {endpoint} endpoint",
                param="model",
                code="unsupported_endpoint",
            )
            return
        if isinstance(result, ErrorResponse):
            yield self._log_error(_error_from_vllm(result))
            return
        if hasattr(result, "model_dump_json"):
            yield result.model_dump_json(exclude_unset=False)
            return
        if hasattr(result, "body"):  # a starlette Response (pooling endpoints)
            yield bytes(result.body).decode()
            return
        async for chunk in result:  # the SSE generator of a streaming request
            for payload in sse_payloads(chunk):
                yield payload

    def _log_error(self, body: ErrorBody, exc: Exception | None = None) -> ErrorBody:
        if body.status_code >= 500:
            logger.error("engine %s failed: %s", self.served_model_name, body.message, exc_info=exc)
        return body

    async def check_health(self) -> None:
        if self._engine is None:
            raise RuntimeError("engine not started")
        await self._engine.check_health()

    def load(self) -> EngineLoad:
        unfinished = self._engine.get_num_unfinished_requests() if self._engine else 0
        return self._load.snapshot(unfinished)

    async def shutdown(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None
