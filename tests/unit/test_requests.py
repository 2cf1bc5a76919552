"""serve/router/requests.py: JSON decoding, OpenAI bounds and parsing into vLLM's models."""

from __future__ import annotations

from typing import Any

import pytest

from serve.constants import MAX_EMBEDDING_INPUTS, MAX_N
from serve.router.errors import FrugalError
from serve.router.requests import check_bounds, decode_json_object, force_usage_chunk, parse_request, wants_usage_chunk

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
COMPLETION = {"model": "m", "prompt": "once upon"}
EMBEDDING = {"model": "m", "input": "some text"}


def _error(fn: Any, *args: Any) -> FrugalError:
    with pytest.raises(FrugalError) as info:
        fn(*args)
    return info.value


# --- decode_json_object -----------------------------------------------------------------


def test_decode_json_object_accepts_an_object() -> None:
    assert decode_json_object(b'{"a": [1, 2]}') == {"a": [1, 2]}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b'{"a": 1', b'{"a": "\xff\xfe\xfa"}', b"\xff\xfe\x00\xd8", b"[" * 100_000, b'{"a":' * 100_000],
    ids=["garbage", "empty", "truncated", "invalid-utf8", "invalid-utf16", "deep-array", "deep-object"],
)
def test_decode_json_object_rejects_invalid_json_with_400(body: bytes) -> None:
    err = _error(decode_json_object, body)
    assert err.body.status_code == 400
    assert err.body.code == "invalid_json"
    assert err.body.message.startswith("The request body is not valid JSON")


@pytest.mark.parametrize("body", [b"[]", b"[1]", b'"text"', b"42", b"null", b"true"])
def test_decode_json_object_rejects_non_objects(body: bytes) -> None:
    err = _error(decode_json_object, body)
    assert (err.body.status_code, err.body.code) == (400, "invalid_json")
    assert "must be a JSON object" in err.body.message


# --- check_bounds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "extra", "param"),
    [
        ("chat", {"temperature": 2.5}, "temperature"),
        ("chat", {"temperature": -0.1}, "temperature"),
        ("completion", {"temperature": 3}, "temperature"),
        ("chat", {"top_p": 1.5}, "top_p"),
        ("chat", {"n": 0}, "n"),
        ("chat", {"n": MAX_N + 1}, "n"),
        ("completion", {"n": 100}, "n"),
        ("chat", {"max_tokens": -1}, "max_tokens"),
        ("chat", {"max_tokens": 0}, "max_tokens"),
        ("completion", {"max_tokens": -5}, "max_tokens"),
        ("chat", {"max_completion_tokens": 0}, "max_completion_tokens"),
        ("chat", {"presence_penalty": 2.1}, "presence_penalty"),
        ("chat", {"frequency_penalty": -3}, "frequency_penalty"),
    ],
)
def test_out_of_bounds_numbers_name_the_param(endpoint: str, extra: dict, param: str) -> None:
    data = {**(CHAT if endpoint == "chat" else COMPLETION), **extra}
    err = _error(check_bounds, endpoint, data)
    assert (err.body.status_code, err.body.param) == (400, param)
    assert param in err.body.message


def test_bounds_are_inclusive() -> None:
    check_bounds("chat", {**CHAT, "temperature": 2, "top_p": 0, "n": MAX_N, "max_tokens": 1, "presence_penalty": -2})


def test_wrong_types_are_left_to_the_schema() -> None:
    check_bounds("chat", {**CHAT, "temperature": "hot", "n": True})


@pytest.mark.parametrize(
    ("endpoint", "data", "param"),
    [
        ("chat", {"model": "m"}, "messages"),
        ("chat", {"model": "m", "messages": []}, "messages"),
        ("completion", {"model": "m"}, "prompt"),
        ("completion", {"model": "m", "prompt": ""}, "prompt"),
        ("completion", {"model": "m", "prompt": []}, "prompt"),
        ("embedding", {"model": "m"}, "input"),
        ("embedding", {"model": "m", "input": ""}, "input"),
        ("embedding", {"model": "m", "input": []}, "input"),
        ("embedding", {"model": "m", "input": ["x"] * (MAX_EMBEDDING_INPUTS + 1)}, "input"),
    ],
)
def test_missing_or_empty_inputs_name_the_param(endpoint: str, data: dict, param: str) -> None:
    err = _error(check_bounds, endpoint, data)
    assert (err.body.status_code, err.body.param) == (400, param)


# --- parse_request ------------------------------------------------------------------


def test_parse_valid_chat_request() -> None:
    request = parse_request("chat", {**CHAT, "temperature": 0.5, "max_completion_tokens": 7, "n": 2, "stream": True})
    assert type(request).__name__ == "ChatCompletionRequest"
    assert request.messages[0]["content"] == "hello"
    assert (request.temperature, request.max_completion_tokens, request.n, request.stream) == (0.5, 7, 2, True)


def test_parse_valid_completion_request() -> None:
    request = parse_request("completion", {**COMPLETION, "prompt": ["a", "b"], "max_tokens": 3})
    assert type(request).__name__ == "CompletionRequest"
    assert (request.prompt, request.max_tokens) == (["a", "b"], 3)


def test_parse_valid_embedding_request() -> None:
    request = parse_request("embedding", {**EMBEDDING, "input": ["a", "b"], "dimensions": 4})
    assert type(request).__name__ == "EmbeddingCompletionRequest"
    assert (request.input, request.dimensions) == (["a", "b"], 4)


@pytest.mark.parametrize(
    ("endpoint", "extra", "param"),
    [
        ("chat", {"temperature": 9}, "temperature"),
        ("chat", {"max_tokens": -1}, "max_tokens"),
        ("chat", {"n": 1000}, "n"),
        ("chat", {"messages": []}, "messages"),
        ("chat", {"temperature": "hot"}, "temperature"),
        ("chat", {"n": "two"}, "n"),
        ("chat", {"stream": "yes please"}, "stream"),
        ("chat", {"messages": "hello"}, "messages"),
        ("completion", {"max_tokens": "many"}, "max_tokens"),
        ("embedding", {"dimensions": "four"}, "dimensions"),
    ],
)
def test_parse_invalid_requests_name_the_param(endpoint: str, extra: dict, param: str) -> None:
    base = {"chat": CHAT, "completion": COMPLETION, "embedding": EMBEDDING}[endpoint]
    err = _error(parse_request, endpoint, {**base, **extra})
    assert err.body.status_code == 400
    assert err.body.type == "invalid_request_error"
    assert err.body.param is not None and err.body.param.split(".")[0] == param
    assert param in err.body.message


# --- usage chunks -------------------------------------------------------------------


def test_force_usage_chunk_without_stream_options() -> None:
    request = parse_request("chat", {**CHAT, "stream": True})
    assert not wants_usage_chunk(request)
    force_usage_chunk(request)
    assert request.stream_options.include_usage is True


def test_force_usage_chunk_keeps_other_stream_options() -> None:
    request = parse_request("completion", {**COMPLETION, "stream": True, "stream_options": {"include_usage": False, "continuous_usage_stats": True}})
    assert not wants_usage_chunk(request)
    force_usage_chunk(request)
    assert request.stream_options.include_usage is True
    assert request.stream_options.continuous_usage_stats is True


def test_wants_usage_chunk_when_the_client_asked() -> None:
    request = parse_request("chat", {**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert wants_usage_chunk(request)
