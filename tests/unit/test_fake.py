"""serve/engine/fake.py: the fake engine keeps the Engine protocol's contract."""

from __future__ import annotations

import asyncio
import base64
import json
import struct

import pytest

from serve.engine.fake import FAKE_EMBEDDING_DIM, FakeEngine, fake_embedding
from serve.engine.protocol import ErrorBody
from serve.router.requests import parse_request

CHAT = {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "one two"}]}]}


async def _replies(engine: FakeEngine, endpoint: str, data: dict) -> list:
    return [r async for r in engine.generate(endpoint, parse_request(endpoint, data), "rid")]


async def test_lifecycle() -> None:
    engine = FakeEngine()
    with pytest.raises(RuntimeError):
        await engine.check_health()
    await engine.start()
    await engine.check_health()
    await engine.shutdown()
    assert engine.load().num_running == 0


async def test_completion_of_several_prompts_and_samples() -> None:
    data = {"model": "m", "prompt": ["a b c", "x y"], "n": 2, "max_tokens": 3}
    [body] = await _replies(FakeEngine(), "completion", data)
    choices = json.loads(body)["choices"]
    assert [c["index"] for c in choices] == [0, 1, 2, 3]
    assert [c["text"] for c in choices] == ["echo: a b", "echo: a b", "echo: x y", "echo: x y"]
    assert [c["finish_reason"] for c in choices] == ["length", "length", "stop", "stop"]
    assert json.loads(body)["usage"] == {"prompt_tokens": 5, "completion_tokens": 12, "total_tokens": 17}


async def test_token_id_prompts_count_one_token_per_id() -> None:
    [body] = await _replies(FakeEngine(), "completion", {"model": "m", "prompt": [7, 8, 9]})
    assert json.loads(body)["usage"]["prompt_tokens"] == 3
    [body] = await _replies(FakeEngine(), "embedding", {"model": "m", "input": [[1, 2], [3]]})
    assert len(json.loads(body)["data"]) == 2 and json.loads(body)["usage"]["prompt_tokens"] == 3


async def test_stream_without_usage_option_has_no_usage_chunk() -> None:
    replies = await _replies(FakeEngine(), "chat", {**CHAT, "stream": True})
    chunks = [json.loads(r) for r in replies]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": ""}, {"content": "echo:"}, {"content": " one"}, {"content": " two"}, {}]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in chunks)


async def test_embeddings_dimensions_and_base64() -> None:
    [body] = await _replies(FakeEngine(), "embedding", {"model": "m", "input": "hi", "dimensions": 4, "encoding_format": "base64"})
    encoded = json.loads(body)["data"][0]["embedding"]
    decoded = struct.unpack("<4f", base64.b64decode(encoded))
    assert decoded == pytest.approx(fake_embedding("hi", 4), abs=1e-6)
    assert len(fake_embedding("hi")) == FAKE_EMBEDDING_DIM


async def test_fail_before_yields_only_the_error() -> None:
    error = ErrorBody(status_code=400, message="no")
    engine = FakeEngine(fail_before=error)
    assert await _replies(engine, "chat", CHAT) == [error]
    assert engine.num_active == 0 and engine.aborted == []


async def test_raise_after_chunks() -> None:
    engine = FakeEngine(raise_after_chunks=2)
    gen = engine.generate("chat", parse_request("chat", {**CHAT, "stream": True}), "rid")
    assert len([await anext(gen), await anext(gen)]) == 2
    with pytest.raises(RuntimeError):
        await anext(gen)
    assert engine.num_active == 0 and engine.aborted == []


async def test_cancelling_a_running_request_records_the_abort() -> None:
    engine = FakeEngine(delay_s=10)

    async def consume() -> None:
        async for _ in engine.generate("chat", parse_request("chat", CHAT), "slow"):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    assert engine.load().num_running == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.num_active == 0 and engine.aborted == ["slow"]
