"""serve/router/streaming.py (relaying engine streams as SSE) and the SSE splitting of the
vLLM adapter (serve/engine/vllm_engine.sse_payloads)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from serve.engine.protocol import EngineReply, ErrorBody
from serve.engine.vllm_engine import sse_payloads
from serve.engine.protocol import RunStats
from serve.router.streaming import SSE_DONE, StreamUsage, relay_sse, sse_event, usage_of

USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def _chunk(text: str) -> str:
    return json.dumps({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]})


USAGE_CHUNK = json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": USAGE})


class Upstream:
    """An engine stream that records whether it was closed and how far it got."""

    def __init__(self, items: list[EngineReply], fail_at: int | None = None) -> None:
        self.items = items
        self.fail_at = fail_at
        self.num_yielded = 0
        self.closed = False

    async def stream(self) -> AsyncIterator[EngineReply]:
        try:
            for i, item in enumerate(self.items):
                if i == self.fail_at:
                    raise RuntimeError("replica died")
                self.num_yielded += 1
                yield item
        finally:
            self.closed = True


async def _relay(items: list[EngineReply], include_usage: bool, fail_at: int | None = None) -> tuple[list[str], StreamUsage, Upstream]:
    upstream = Upstream(items, fail_at)
    rest = upstream.stream()
    first = await anext(rest)
    usage = StreamUsage()
    events = [e async for e in relay_sse(first, rest, include_usage, usage)]
    return events, usage, upstream


def _data(events: list[str]) -> list[str]:
    assert all(e.startswith("data: ") and e.endswith("\n\n") for e in events)
    return [e[len("data: ") : -2] for e in events]


# --- usage_of -----------------------------------------------------------------------


def test_usage_of_a_usage_only_chunk() -> None:
    assert usage_of(USAGE_CHUNK) == USAGE


@pytest.mark.parametrize(
    "payload",
    [
        _chunk("hi"),
        json.dumps({"choices": [{"index": 0, "delta": {}}], "usage": USAGE}),  # continuous usage stats
        json.dumps({"choices": [], "usage": None}),
        json.dumps({"choices": [{"index": 0, "delta": {"content": '"usage"'}}]}),  # the word, not the key
    ],
)
def test_usage_of_other_chunks_is_none(payload: str) -> None:
    assert usage_of(payload) is None


# --- relay_sse ----------------------------------------------------------------------


def _priced(cost_usd: float) -> str:
    return json.dumps({"object": "chat.completion.chunk", "choices": [], "usage": {**USAGE, "cost_usd": cost_usd}})


async def test_relay_keeps_usage_when_asked() -> None:
    events, usage, upstream = await _relay([_chunk("a"), _chunk("b"), USAGE_CHUNK], include_usage=True)
    assert _data(events) == [_chunk("a"), _chunk("b"), _priced(0.0), "[DONE]"]
    assert events[-1] == SSE_DONE
    assert (usage.prompt_tokens, usage.completion_tokens, usage.finished, usage.error) == (3, 2, True, None)
    assert upstream.closed


async def test_relay_strips_usage_when_not_asked_but_still_counts_it() -> None:
    events, usage, _ = await _relay([_chunk("a"), USAGE_CHUNK], include_usage=False)
    assert _data(events) == [_chunk("a"), "[DONE]"]
    assert (usage.prompt_tokens, usage.completion_tokens, usage.finished) == (3, 2, True)


async def test_relay_of_an_error_body_mid_stream() -> None:
    error = ErrorBody(status_code=400, message="too long", param="messages")
    events, usage, upstream = await _relay([_chunk("a"), error, _chunk("never")], include_usage=True)
    data = _data(events)
    assert data[0] == _chunk("a")
    assert json.loads(data[1]) == {"error": {"message": "too long", "type": "invalid_request_error", "param": "messages", "code": None}}
    assert data[2:] == ["[DONE]"]
    assert usage.error == error and not usage.finished
    assert upstream.closed and upstream.num_yielded == 2


async def test_relay_of_an_engine_failure_mid_stream() -> None:
    events, usage, upstream = await _relay([_chunk("a"), _chunk("b"), USAGE_CHUNK], include_usage=True, fail_at=2)
    data = _data(events)
    assert data[:2] == [_chunk("a"), _chunk("b")]
    error = json.loads(data[2])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("service_unavailable", "engine_unavailable")
    assert data[3:] == ["[DONE]"]
    assert usage.error is not None and usage.error.status_code == 503 and not usage.finished
    assert upstream.closed


async def test_relay_closes_the_upstream_when_the_consumer_stops_early() -> None:
    upstream = Upstream([_chunk(str(i)) for i in range(10)])
    rest = upstream.stream()
    relay = relay_sse(await anext(rest), rest, True, StreamUsage())
    assert await anext(relay) == sse_event(_chunk("0"))
    assert await anext(relay) == sse_event(_chunk("1"))
    await relay.aclose()  # the HTTP client went away
    assert upstream.closed
    assert upstream.num_yielded == 2


async def test_relay_prices_the_usage_chunk_from_the_run_stats() -> None:
    upstream = Upstream([_chunk("a"), USAGE_CHUNK, RunStats(wall_s=2.0, replica_tokens=10)])
    rest = upstream.stream()
    seen: list[tuple[int, int, RunStats | None]] = []
    observed: list[str] = []

    def cost(prompt: int, completion: int, stats: RunStats | None) -> float:
        seen.append((prompt, completion, stats))
        return 0.25

    usage = StreamUsage()
    events = [e async for e in relay_sse(await anext(rest), rest, True, usage, cost, observed.append)]
    assert _data(events) == [_chunk("a"), _priced(0.25), "[DONE]"]
    assert seen == [(3, 2, RunStats(wall_s=2.0, replica_tokens=10))]
    assert usage.cost_usd == 0.25 and usage.stats is not None and usage.first_token_s is not None
    assert observed == [_chunk("a"), USAGE_CHUNK]


async def test_relay_prices_a_failed_stream_without_stats() -> None:
    upstream = Upstream([_chunk("a"), USAGE_CHUNK], fail_at=1)
    rest = upstream.stream()
    usage = StreamUsage()
    events = [e async for e in relay_sse(await anext(rest), rest, True, usage, lambda p, c, s: 0.5)]
    assert _data(events)[-1] == "[DONE]" and usage.cost_usd == 0.5 and usage.stats is None


async def test_relay_of_a_single_item_stream() -> None:
    events, usage, _ = await _relay([USAGE_CHUNK], include_usage=False)
    assert events == [SSE_DONE]
    assert usage.finished and usage.prompt_tokens == 3


# --- sse_payloads -------------------------------------------------------------------


def test_sse_payloads_of_one_event() -> None:
    assert sse_payloads('data: {"a": 1}\n\n') == ['{"a": 1}']


def test_sse_payloads_of_several_events_in_one_chunk() -> None:
    chunk = 'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: {"c": "x y"}\n\n'
    assert sse_payloads(chunk) == ['{"a": 1}', '{"b": 2}', '{"c": "x y"}']


def test_sse_payloads_drop_done() -> None:
    assert sse_payloads('data: {"a": 1}\n\ndata: [DONE]\n\n') == ['{"a": 1}']
    assert sse_payloads("data: [DONE]\n\n") == []


def test_sse_payloads_ignore_blank_events() -> None:
    assert sse_payloads("\n\n\n\n") == []
    assert sse_payloads('\n\ndata: {"a": 1}\n\n\n\n') == ['{"a": 1}']
