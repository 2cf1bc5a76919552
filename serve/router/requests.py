"""Turn an HTTP body into a validated OpenAI request.

The wire models are vLLM's own (the same schema and validators as ``vllm serve``); this
module adds the bounds OpenAI enforces and vLLM leaves open, and turns every failure into
a 400 that names the parameter.
"""

from __future__ import annotations

import functools
import json
import math
import re
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


INT64_MAX = 2**63 - 1
# A JSON escape of a UTF-16 surrogate (\ud800-\udfff): the only way a string in a strictly
# decoded UTF-8 body can hold a code point that no UTF-8 encoder accepts.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _parse_int(text: str) -> int:
    value = int(text)
    if not -INT64_MAX - 1 <= value <= INT64_MAX:
        raise ValueError(f"integer {text[:24]}{'...' if len(text) > 24 else ''} is out of range (64-bit)")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:24]} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _check_unicode(data: Any) -> None:
    """Refuse strings (keys included) holding lone surrogates: valid JSON escapes that
    tokenizers, cache keys, the ledger and response rendering cannot encode."""
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise bad_request(
                    "The request body holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not valid Unicode.",
                    code="invalid_json",
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def decode_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object: strict UTF-8, numbers finite and within 64 bits (no NaN or
    Infinity), no lone surrogates; anything else is a 400 ``invalid_json``."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_request(f"The request body is not valid JSON: {e}", code="invalid_json") from None
    if not isinstance(data, dict):
        raise bad_request("The request body must be a JSON object.", code="invalid_json")
    if _SURROGATE_ESCAPE.search(text):
        _check_unicode(data)
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


def estimate_request(model: str, endpoint: Endpoint, data: dict[str, Any], parsed: Any = None) -> RequestEstimate:
    """Token counts known before dispatch: the prompt at ~4 characters per token (the
    tokenizer runs in the engine), and the output bound ``max_tokens`` x ``n`` (or a default
    when unset). The bounds come from the validated request when there is one: the raw body
    may carry fields the endpoint's model ignores (``max_completion_tokens`` on completions)."""
    text = data.get("messages") if endpoint == "chat" else data.get("prompt" if endpoint == "completion" else "input")
    prompt_tokens = max(1, _text_chars(text) // CHARS_PER_TOKEN_ESTIMATE)
    if endpoint == "embedding":
        return RequestEstimate(model=model, prompt_tokens=prompt_tokens, max_output_tokens=0)
    def get(key: str) -> Any:
        return getattr(parsed, key, None) if parsed is not None else data.get(key)

    limit = _positive_int(get("max_completion_tokens")) or _positive_int(get("max_tokens"))
    n = _positive_int(get("n")) or 1
    return RequestEstimate(
        model=model,
        prompt_tokens=prompt_tokens,
        max_output_tokens=(limit or DEFAULT_OUTPUT_TOKENS_ESTIMATE) * n,
        stream=get("stream") is True,
    )


def _positive_int(value: Any) -> int | None:
    """``value`` when it is a positive integer (not a bool), else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def is_streaming(endpoint: Endpoint, request: Any) -> bool:
    """Whether the answer goes out as SSE. Embeddings never stream: a ``stream`` field on an
    embedding request is an unknown field, not a switch."""
    return endpoint != "embedding" and getattr(request, "stream", None) is True


def wants_usage_chunk(request: Any) -> bool:
    options = getattr(request, "stream_options", None)
    return getattr(options, "include_usage", None) is True


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
    "is_streaming",
    "wants_usage_chunk",
]
