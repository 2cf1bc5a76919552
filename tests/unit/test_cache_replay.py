"""serve/cache/entry.py, recorder.py and render.py: an engine answer recorded, stored and
replayed, as a body or a stream, against the fake engine's vLLM-shaped payloads and the
official openai client's types."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types import Completion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from serve.cache.entry import CachedChoice, CachedUsage, CacheEntry, entry_from_body
from serve.cache.recorder import StreamRecorder
from serve.cache.render import render_body, render_stream
from serve.constants import CACHE_REPLAY_CHUNK_CHARS
from serve.engine.fake import FakeEngine
from serve.router.requests import force_usage_chunk, parse_request

TEXT = "what is the answer to everything"


def _request(endpoint: str, n: int, stream: bool, max_tokens: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"model": "m", "n": n, "stream": stream, "temperature": 0}
    if endpoint == "chat":
        data["messages"] = [{"role": "system", "content": "be brief"}, {"role": "user", "content": TEXT}]
    else:
        data["prompt"] = TEXT
    if max_tokens is not None:
        data["max_tokens"] = max_tokens
    return data


async def _engine_replies(endpoint: str, data: dict[str, Any]) -> list[str]:
    parsed = parse_request(endpoint, data)
    if data["stream"]:
        force_usage_chunk(parsed)
    return [r async for r in FakeEngine().generate(endpoint, parsed, "orig")]


def _record(endpoint: str, payloads: list[str], cost_usd: float = 0.5) -> CacheEntry | None:
    recorder = StreamRecorder(endpoint)  # type: ignore[arg-type]
    for p in payloads:
        recorder.feed(p)
    return recorder.entry(cost_usd)


def _same_answer(a: CacheEntry, b: CacheEntry) -> bool:
    return a.model_dump(exclude={"created_at_s"}) == b.model_dump(exclude={"created_at_s"})


@pytest.mark.parametrize("endpoint", ["chat", "completion"])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("max_tokens", [None, 3])
async def test_stream_and_body_give_one_entry_and_replay_it(endpoint: str, n: int, max_tokens: int | None) -> None:
    [body] = await _engine_replies(endpoint, _request(endpoint, n, stream=False, max_tokens=max_tokens))
    payloads = await _engine_replies(endpoint, _request(endpoint, n, stream=True, max_tokens=max_tokens))
    from_body = entry_from_body(endpoint, body, 0.5)  # type: ignore[arg-type]
    from_stream = _record(endpoint, payloads)
    assert from_body is not None and from_stream is not None
    assert _same_answer(from_body, from_stream)
    assert [c.finish_reason for c in from_body.choices] == ["length" if max_tokens else "stop"] * n

    # The replayed body says what the engine said, with a fresh id and zero cost.
    original = json.loads(body)
    replay = json.loads(render_body(from_stream, endpoint, "new", "m"))  # type: ignore[arg-type]
    field = "message" if endpoint == "chat" else "text"
    assert [c[field] if endpoint == "completion" else c[field]["content"] for c in replay["choices"]] == [
        c[field] if endpoint == "completion" else c[field]["content"] for c in original["choices"]
    ]
    assert replay["id"] == ("chatcmpl-new" if endpoint == "chat" else "cmpl-new") != original["id"]
    assert replay["usage"] == {**original["usage"], "cost_usd": 0.0}
    (ChatCompletion if endpoint == "chat" else Completion).model_validate(replay)

    # The replayed stream records back to the same entry.
    for include_usage in (True, False):
        events = render_stream(from_body, endpoint, "new", "m", include_usage)  # type: ignore[arg-type]
        again = _record(endpoint, events)
        if include_usage:
            assert again is not None and _same_answer(again, from_body)
        else:
            assert again is None  # no usage chunk: a recorder refuses it, as it should


@pytest.mark.parametrize("endpoint", ["chat", "completion"])
def test_stream_shape(endpoint: str) -> None:
    long = "x" * (2 * CACHE_REPLAY_CHUNK_CHARS + 5)
    entry = CacheEntry(
        endpoint=endpoint,  # type: ignore[arg-type]
        choices=(CachedChoice(index=0, text=long, finish_reason="stop"), CachedChoice(index=1, text="", finish_reason="length")),
        usage=CachedUsage(prompt_tokens=4, completion_tokens=9, total_tokens=13),
        cost_usd=0.25,
        created_at_s=0.0,
    )
    chunks = [json.loads(p) for p in render_stream(entry, endpoint, "rid", "m", include_usage=True)]  # type: ignore[arg-type]
    # The openai client's chunk type for chat; vLLM's for completions (the client's Completion
    # type requires a finish reason that streams leave null until the last chunk).
    from vllm.entrypoints.openai.completion.protocol import CompletionStreamResponse

    model = ChatCompletionChunk if endpoint == "chat" else CompletionStreamResponse
    for chunk in chunks:
        model.model_validate(chunk)
    assert {c["id"] for c in chunks} == {"chatcmpl-rid" if endpoint == "chat" else "cmpl-rid"}
    assert len({c["created"] for c in chunks}) == 1 and chunks[0]["created"] > 0
    per_choice = [[c["choices"][0] for c in chunks if c["choices"] and c["choices"][0]["index"] == i] for i in (0, 1)]
    if endpoint == "chat":
        assert per_choice[0][0]["delta"] == {"role": "assistant", "content": ""}
        pieces = [c["delta"].get("content") for c in per_choice[0][1:-1]]
    else:
        pieces = [c["text"] for c in per_choice[0][:-1]]
    assert "".join(pieces) == long and all(len(p) <= CACHE_REPLAY_CHUNK_CHARS for p in pieces) and len(pieces) == 3
    assert [c[-1]["finish_reason"] for c in per_choice] == ["stop", "length"]
    assert all(c["finish_reason"] is None for choice in per_choice for c in choice[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == {**entry.usage.model_dump(), "cost_usd": 0.0}
    without = render_stream(entry, endpoint, "rid", "m", include_usage=False)  # type: ignore[arg-type]
    assert all(json.loads(p)["choices"] for p in without) and len(without) == len(chunks) - 1


def test_reasoning_is_recorded_and_replayed() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return json.dumps({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

    usage = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 4}})
    entry = _record("chat", [chunk({"role": "assistant"}), chunk({"reasoning": "hmm "}), chunk({"reasoning": "ok"}),
                              chunk({"content": "42"}), chunk({}, "stop"), usage])
    assert entry is not None and entry.choices[0].reasoning == "hmm ok" and entry.choices[0].text == "42"
    assert entry.usage.total_tokens == 5
    body = json.loads(render_body(entry, "chat", "r", "m"))
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "42", "reasoning": "hmm ok"}
    again = _record("chat", render_stream(entry, "chat", "r", "m", include_usage=True))
    assert again is not None and _same_answer(again, entry)


async def test_unfinished_or_malformed_streams_are_not_stored() -> None:
    payloads = await _engine_replies("chat", _request("chat", 2, stream=True))
    usage_chunk, finishes = payloads[-1], payloads[-3:-1]
    assert json.loads(usage_chunk)["choices"] == [] and all(json.loads(f)["choices"][0]["finish_reason"] for f in finishes)
    assert _record("chat", payloads) is not None

    def altered(index: int, change: dict[str, Any]) -> list[str]:
        obj = json.loads(payloads[index])
        obj["choices"][0].update(change)
        return payloads[:index] + [json.dumps(obj)] + payloads[index + 1 :]

    error = json.dumps({"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    broken = {
        "cut before the finishes": payloads[:-3],
        "one choice unfinished": payloads[:-3] + payloads[-2:],
        "no usage": payloads[:-1],
        "an error mid-way": payloads[:3] + [error] + payloads[3:],
        "not JSON": payloads[:2] + ["{not json"] + payloads[2:],
        "a completion chunk": [p.replace("chat.completion.chunk", "text_completion") for p in payloads],
        "aborted": altered(-2, {"finish_reason": "abort"}),
        "a tool call": altered(2, {"delta": {"tool_calls": [{"index": 0, "function": {"name": "f"}}]}}),
        "log-probabilities": altered(2, {"logprobs": {"content": []}}),
        "output after the finish": payloads[:-1] + [payloads[2], payloads[-1]],
        "a gap in the choices": [p for p in payloads if '"index": 0' not in p],
    }
    for why, stream in broken.items():
        assert _record("chat", stream) is None, why


@pytest.mark.parametrize(
    "change",
    [
        {"object": "chat.completion.chunk"},
        {"usage": None},
        {"choices": []},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [{"id": "t"}]}, "finish_reason": "tool_calls"}]},
        {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop", "logprobs": {"content": []}}]},
        {"choices": [{"index": 1, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}]},
    ],
)
def test_uncacheable_bodies(change: dict[str, Any]) -> None:
    body = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop", "logprobs": None}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    assert entry_from_body("chat", json.dumps(body), 0.1) is not None
    assert entry_from_body("chat", json.dumps(body | change), 0.1) is None
    assert entry_from_body("chat", "not json", 0.1) is None
    assert entry_from_body("completion", json.dumps(body), 0.1) is None


def test_entry_bytes_round_trip() -> None:
    entry = CacheEntry(
        endpoint="chat",
        choices=(CachedChoice(index=0, text="héllo", finish_reason="stop", stop_reason="###"),),
        usage=CachedUsage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        cost_usd=1e-6,
        created_at_s=123.5,
    )
    assert CacheEntry.from_bytes(entry.to_bytes()) == entry
