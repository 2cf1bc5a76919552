"""Turn an HTTP body into a validated OpenAI request.

The wire models are vLLM's own (the same schema and validators as ``vllm serve``); this
module adds the bounds OpenAI enforces and vLLM leaves open, and turns every failure into
a 400 that names the parameter.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import ValidationError

from serve.constants import (
    CHARS_PER_TOKEN_ESTIMATE,
    DEFAULT_OUTPUT_TOKENS_ESTIMATE,
    MAX_EMBEDDING_INPUTS,
    MAX_N,
    MAX_TEMPERATURE,
)
from serve.dispatch.types import RequestEstimate
from serve.engine.protocol import Endpoint
from serve.router.errors import FrugalError, bad_request, from_validation_error


@functools.cache
def _request_models() -> dict[Endpoint, Any]:
    from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
    from vllm.entrypoints.openai.completion.protocol import CompletionRequest
    from vllm.entrypoints.pooling.embed.protocol import EmbeddingCompletionRequest

    return {"chat": ChatCompletionRequest, "completion": CompletionRequest, "embedding": EmbeddingCompletionRequest}


def load_request_models() -> None:
    """Import vLLM's protocol models now (about 15 s on a small CPU) rather than on the first
    request; the router replica calls it while starting, before it takes traffic."""
    _request_models()


def decode_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_request(f"The request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    return data


def _check_number(data: dict[str, Any], name: str, low: float | None, high: float | None) -> None:
    value = data.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return  # absent, or the wrong type: the schema reports it
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if low is not None and high is not None else (f">= {low}" if low is not None else f"<= {high}")
        raise bad_request(f"{name} must be {bounds}, got {value}.", param=name)


def check_bounds(endpoint: Endpoint, data: dict[str, Any]) -> None:
    """OpenAI's documented bounds, checked before the schema so the message is precise."""
    if endpoint in ("chat", "completion"):
        _check_number(data, "temperature", 0, MAX_TEMPERATURE)
        _check_number(data, "top_p", 0, 1)
        _check_number(data, "n", 1, MAX_N)
        _check_number(data, "max_tokens", 1, None)
        _check_number(data, "max_completion_tokens", 1, None)
        _check_number(data, "presence_penalty", -2, 2)
        _check_number(data, "frequency_penalty", -2, 2)
    if endpoint == "chat":
        messages = data.get("messages")
        if messages is None:
            raise bad_request("messages is required.", param="messages")
        if isinstance(messages, list) and not messages:
            raise bad_request("messages must contain at least one message.", param="messages")
    if endpoint == "completion" and data.get("prompt") in (None, "", []):
        raise bad_request("prompt is required and must not be empty.", param="prompt")
    if endpoint == "embedding":
        inputs = data.get("input")
        if inputs in (None, "", []):
            raise bad_request("input is required and must not be empty.", param="input")
        if isinstance(inputs, list) and len(inputs) > MAX_EMBEDDING_INPUTS:
            raise bad_request(f"input may hold at most {MAX_EMBEDDING_INPUTS} items.", param="input")


def parse_request(endpoint: Endpoint, data: dict[str, Any]) -> Any:
    """Validate ``data`` as the request model of ``endpoint``; raises ``FrugalError``(400)."""
    from vllm.exceptions import VLLMClientError

    check_bounds(endpoint, data)
    model_cls = _request_models()[endpoint]
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise from_validation_error(e) from None
    except VLLMClientError as e:  # vLLM's own request checks, e.g. stream_options without stream
        raise bad_request(str(e), param=getattr(e, "parameter", None)) from None
    except (ValueError, TypeError) as e:  # validators that raise outside pydantic's wrapping
        raise bad_request(str(e)) from None


def _text_chars(value: Any) -> int:
    """Characters of text in a prompt, message list or content-part list."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_chars(v) for k, v in value.items() if k in ("content", "text"))
    if isinstance(value, list):
        return sum(_text_chars(v) if not isinstance(v, int) else 1 for v in value)
    return 0


def estimate_request(model: str, endpoint: Endpoint, data: dict[str, Any]) -> RequestEstimate:
    """Token counts known before dispatch: the prompt at ~4 characters per token (the
    tokenizer runs in the engine), and the output bound ``max_tokens`` x ``n`` (or a default
    when unset)."""
    text = data.get("messages") if endpoint == "chat" else data.get("prompt" if endpoint == "completion" else "input")
    prompt_tokens = max(1, _text_chars(text) // CHARS_PER_TOKEN_ESTIMATE)
    if endpoint == "embedding":
        return RequestEstimate(model=model, prompt_tokens=prompt_tokens, max_output_tokens=0)
    limit = data.get("max_completion_tokens") or data.get("max_tokens") or DEFAULT_OUTPUT_TOKENS_ESTIMATE
    n = data.get("n") or 1
    return RequestEstimate(
        model=model, prompt_tokens=prompt_tokens, max_output_tokens=int(limit) * int(n), stream=bool(data.get("stream"))
    )


def wants_usage_chunk(request: Any) -> bool:
    options = getattr(request, "stream_options", None)
    return bool(options and options.include_usage)


def force_usage_chunk(request: Any) -> None:
    """Ask the engine for a final usage chunk whatever the client asked: the router needs the
    token counts of every request. The router strips it again if the client did not ask."""
    from vllm.entrypoints.generate.base.protocol import StreamOptions

    if request.stream_options is None:
        request.stream_options = StreamOptions(include_usage=True)
    else:
        request.stream_options.include_usage = True


__all__ = [
    "FrugalError",
    "decode_json_object",
    "estimate_request",
    "parse_request",
    "force_usage_chunk",
    "wants_usage_chunk",
]
