"""serve/router/app.py: the OpenAI HTTP surface, driven in-process against FakeEngine."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from serve.config.schema import FrugalConfig
from serve.engine.fake import FakeEngine
from serve.engine.protocol import ErrorBody
from serve.router.app import build_router_app
from serve.router.assembly import build_router_service
from serve.router.pools import StaticReplicaCounter
from serve.router.engines import LocalEngineClient

MAX_BODY_BYTES = 4096
ERROR_KEYS = {"message", "type", "param", "code"}
HELLO = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there world"}]


def _config() -> FrugalConfig:
    def model(name: str, task: str) -> dict[str, Any]:
        return {"name": name, "task": task, "pools": [{"name": f"{name}-cpu", "params_b": 0.1, "engine": {"model": f"/models/{name}"}}]}

    return FrugalConfig.model_validate(
        {
            "router": {"max_request_body_bytes": MAX_BODY_BYTES},
            "models": [model("chat-a", "chat"), model("chat-b", "chat"), model("embed-a", "embed")],
        }
    )


class App:
    """The router app over one FakeEngine per model."""

    def __init__(self, **engines: FakeEngine) -> None:
        self.config = _config()
        self.engines = {m.name: engines.get(m.name.replace("-", "_"), FakeEngine(m.name)) for m in self.config.models}
        clients = {f"{name}-cpu": LocalEngineClient(f"{name}-cpu", engine) for name, engine in self.engines.items()}
        replicas = StaticReplicaCounter({pool: (1, 0) for pool in clients})
        self.service = build_router_service(self.config, clients, replicas)
        self.app = build_router_app(self.service)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")


@pytest.fixture
def make_app() -> Callable[..., App]:
    return App


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with App().client() as c:
        yield c


def assert_error(response: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == ERROR_KEYS
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def without_cost(usage: dict) -> dict:
    """``usage`` minus ``cost_usd``, which must be there, a non-negative number."""
    usage = dict(usage)
    cost = usage.pop("cost_usd")
    assert isinstance(cost, float) and cost >= 0
    return usage


def sse_data(response: httpx.Response) -> list[str]:
    """The ``data:`` payloads of an SSE response, in order."""
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[len("data: ") :] for e in events]


def chat_text(payloads: list[str], index: int = 0) -> str:
    text = ""
    for payload in payloads:
        for choice in json.loads(payload)["choices"]:
            if choice["index"] == index:
                text += choice["delta"].get("content") or ""
    return text


# --- plain routes -------------------------------------------------------------------


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_models_lists_every_model(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["task"]) for m in body["data"]] == [
        ("chat-a", "model", "chat"),
        ("chat-b", "model", "chat"),
        ("embed-a", "model", "embed"),
    ]


# --- chat -----------------------------------------------------------------------------


async def test_chat_non_streaming(make_app: Callable[..., App]) -> None:
    app = make_app()
    async with app.client() as client:
        response = await client.post("/v1/chat/completions", json={"model": "chat-a", "messages": HELLO})
    assert response.status_code == 200, response.text
    assert response.headers["x-frugal-pool"] == "chat-a-cpu"
    body = response.json()
    assert body["id"] == response.headers["x-frugal-request-id"]
    assert body["id"].startswith("chatcmpl-")
    assert (body["object"], body["model"]) == ("chat.completion", "chat-a")
    assert body["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "echo: hello there world"}, "logprobs": None, "finish_reason": "stop"}
    ]
    assert without_cost(body["usage"]) == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    engine = app.engines["chat-a"]
    assert engine.num_requests == 1 and engine.num_active == 0 and engine.aborted == []
    assert app.engines["chat-b"].num_requests == 0


async def test_chat_max_tokens_cuts_the_answer(client: httpx.AsyncClient) -> None:
    payload = {"model": "chat-b", "messages": HELLO, "max_completion_tokens": 2, "n": 2}
    body = (await client.post("/v1/chat/completions", json=payload)).json()
    assert [c["message"]["content"] for c in body["choices"]] == ["echo: hello", "echo: hello"]
    assert [c["finish_reason"] for c in body["choices"]] == ["length", "length"]
    assert without_cost(body["usage"]) == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}


@pytest.mark.parametrize("include_usage", [None, False, True])
async def test_chat_streaming(make_app: Callable[..., App], include_usage: bool | None) -> None:
    app = make_app()
    payload: dict[str, Any] = {"model": "chat-a", "messages": HELLO, "stream": True}
    if include_usage is not None:
        payload["stream_options"] = {"include_usage": include_usage}
    async with app.client() as client:
        response = await client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200
    assert response.headers["x-frugal-pool"] == "chat-a-cpu"
    assert response.headers["cache-control"] == "no-cache"
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == response.headers["x-frugal-request-id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chat_text(data[:-1]) == "echo: hello there world"
    finishes = [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]
    assert finishes == ["stop"]
    usage_chunks = [c for c in chunks if c.get("usage")]
    if include_usage:
        assert usage_chunks == [chunks[-1]]
        assert chunks[-1]["choices"] == []
        assert without_cost(chunks[-1]["usage"]) == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    else:
        assert usage_chunks == []
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert app.engines["chat-a"].num_active == 0 and app.engines["chat-a"].aborted == []


async def test_chat_streaming_with_several_choices(client: httpx.AsyncClient) -> None:
    payload = {"model": "chat-a", "messages": HELLO, "stream": True, "n": 3, "max_tokens": 3}
    data = sse_data(await client.post("/v1/chat/completions", json=payload))
    assert data[-1] == "[DONE]"
    assert [chat_text(data[:-1], i) for i in range(3)] == ["echo: hello there"] * 3


# --- completions and embeddings ---------------------------------------------------------


async def test_completion_non_streaming(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/completions", json={"model": "chat-b", "prompt": "once upon a time", "max_tokens": 3})
    assert response.status_code == 200
    assert response.headers["x-frugal-pool"] == "chat-b-cpu"
    body = response.json()
    assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
    assert [(c["text"], c["finish_reason"]) for c in body["choices"]] == [("echo: once upon", "length")]
    assert without_cost(body["usage"]) == {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7}


async def test_completion_streaming(client: httpx.AsyncClient) -> None:
    payload = {"model": "chat-b", "prompt": "once upon", "stream": True, "stream_options": {"include_usage": True}}
    data = sse_data(await client.post("/v1/completions", json=payload))
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "echo: once upon"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


async def test_embeddings(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/embeddings", json={"model": "embed-a", "input": ["a b", "c"]})
    assert response.status_code == 200
    assert response.headers["x-frugal-pool"] == "embed-a-cpu"
    body = response.json()
    assert body["object"] == "list" and body["model"] == "embed-a"
    assert [d["index"] for d in body["data"]] == [0, 1]
    for item in body["data"]:
        assert item["object"] == "embedding"
        assert abs(sum(v * v for v in item["embedding"]) - 1.0) < 1e-9
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]
    assert without_cost(body["usage"]) == {"prompt_tokens": 3, "completion_tokens": 0, "total_tokens": 3}
    again = (await client.post("/v1/embeddings", json={"model": "embed-a", "input": "a b"})).json()
    assert again["data"][0]["embedding"] == body["data"][0]["embedding"]


# --- model resolution ------------------------------------------------------------------


async def test_omitted_model_with_several_candidates_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"messages": HELLO})
    assert_error(response, 400, param="model")


async def test_omitted_model_with_one_candidate_is_served(make_app: Callable[..., App]) -> None:
    app = make_app()
    async with app.client() as client:
        response = await client.post("/v1/embeddings", json={"input": "hello"})
    assert response.status_code == 200
    assert response.json()["model"] == "embed-a"
    assert app.engines["embed-a"].num_requests == 1


async def test_unknown_model_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "gpt-9", "messages": HELLO})
    error = assert_error(response, 404, code="model_not_found", param="model")
    assert "gpt-9" in error["message"]


async def test_model_of_the_wrong_type_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": 7, "messages": HELLO})
    assert_error(response, 400, param="model")


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/chat/completions", {"model": "embed-a", "messages": HELLO}),
        ("/v1/completions", {"model": "embed-a", "prompt": "hi"}),
        ("/v1/embeddings", {"model": "chat-a", "input": "hi"}),
    ],
)
async def test_endpoint_the_model_does_not_serve_is_400(client: httpx.AsyncClient, path: str, payload: dict) -> None:
    assert_error(await client.post(path, json=payload), 400, code="unsupported_endpoint", param="model")


# --- request errors ------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{oops", b"[1, 2]", b"[" * (MAX_BODY_BYTES - 1), b"\xff\xfe{}"])
async def test_undecodable_bodies_are_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, code="invalid_json")


async def test_invalid_parameters_are_400_naming_the_param(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/chat/completions", json={"model": "chat-a", "messages": HELLO, "temperature": 5})
    assert_error(response, 400, param="temperature")
    response = await client.post("/v1/completions", json={"model": "chat-a", "prompt": "x", "max_tokens": "lots"})
    assert_error(response, 400, param="max_tokens")


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    big = {"model": "chat-a", "messages": [{"role": "user", "content": "x" * MAX_BODY_BYTES}]}
    assert_error(await client.post("/v1/chat/completions", json=big), 413, code="request_too_large")


async def test_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the router counts as it reads
        yield b'{"model": "chat-a", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}]}'

    assert_error(await client.post("/v1/chat/completions", content=chunks()), 413, code="request_too_large")


async def test_unknown_path_is_404(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/nothing"), 404, code="not_found")
    assert_error(await client.post("/v2/chat/completions", json={}), 404, code="not_found")


async def test_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/v1/chat/completions"), 405, code="method_not_allowed")
    assert_error(await client.post("/v1/models"), 405, code="method_not_allowed")


async def test_wrong_method_names_the_allowed_methods(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/chat/completions")
    assert response.headers.get("allow") == "POST"


# --- engine failures -----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_engine_error_before_output_keeps_its_status(make_app: Callable[..., App], stream: bool) -> None:
    refusal = ErrorBody(status_code=400, message="This model's maximum context length is 2048 tokens.", param="messages")
    app = make_app(chat_a=FakeEngine("chat-a", fail_before=refusal))
    async with app.client() as client:
        response = await client.post("/v1/chat/completions", json={"model": "chat-a", "messages": HELLO, "stream": stream})
    error = assert_error(response, 400, param="messages")
    assert error["message"] == refusal.message and error["type"] == "invalid_request_error"
    assert app.engines["chat-a"].num_active == 0


async def test_engine_unavailable_error_body_is_passed_on(make_app: Callable[..., App]) -> None:
    busy = ErrorBody(status_code=503, message="overloaded", type="service_unavailable", code="engine_unavailable")
    app = make_app(embed_a=FakeEngine("embed-a", fail_before=busy))
    async with app.client() as client:
        response = await client.post("/v1/embeddings", json={"model": "embed-a", "input": "x"})
    assert_error(response, 503, code="engine_unavailable")


@pytest.mark.parametrize(("path", "payload"), [
    ("/v1/chat/completions", {"model": "chat-a", "messages": HELLO}),
    ("/v1/chat/completions", {"model": "chat-a", "messages": HELLO, "stream": True}),
    ("/v1/embeddings", {"model": "embed-a", "input": "x"}),
])
async def test_engine_failing_before_output_is_503_with_retry_after(make_app: Callable[..., App], path: str, payload: dict) -> None:
    app = make_app(chat_a=FakeEngine("chat-a", raise_after_chunks=0), embed_a=FakeEngine("embed-a", raise_after_chunks=0))
    async with app.client() as client:
        response = await client.post(path, json=payload)
    error = assert_error(response, 503, code="engine_unavailable")
    assert error["type"] == "service_unavailable"
    assert response.headers["retry-after"] == "1"


async def test_engine_failing_mid_stream_ends_the_stream_with_an_error_event(make_app: Callable[..., App]) -> None:
    app = make_app(chat_a=FakeEngine("chat-a", raise_after_chunks=3))
    payload = {"model": "chat-a", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
    async with app.client() as client:
        response = await client.post("/v1/chat/completions", json=payload)
    assert response.status_code == 200  # sent before the failure
    data = sse_data(response)
    assert data[-1] == "[DONE]"
    assert chat_text(data[:3]) == "echo: hello"
    error = json.loads(data[3])
    assert set(error) == {"error"} and set(error["error"]) == ERROR_KEYS
    assert error["error"]["code"] == "engine_unavailable"
    assert len(data) == 5
    assert app.engines["chat-a"].num_active == 0


# --- cancellation --------------------------------------------------------------------


def _request(payload: dict) -> Request:
    """A starlette request with ``payload`` as its body, for driving RouterService directly
    (httpx's ASGI transport buffers whole responses, so it cannot disconnect mid-stream)."""
    body = json.dumps(payload).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
    return Request(scope, receive)


async def test_client_going_away_mid_stream_aborts_the_engine_request(make_app: Callable[..., App]) -> None:
    app = make_app(chat_a=FakeEngine("chat-a", delay_s=0.001))
    engine = app.engines["chat-a"]
    response = await app.service.handle("chat", _request({"model": "chat-a", "messages": HELLO, "stream": True}))
    request_id = response.headers["x-frugal-request-id"].removeprefix("chatcmpl-")
    events = response.body_iterator
    assert (await anext(events)).startswith("data: ")
    assert (await anext(events)).startswith("data: ")
    assert engine.num_active == 1
    await events.aclose()
    assert engine.num_active == 0
    assert engine.aborted == [request_id]
    assert engine.load().num_running == 0
