"""The open-loop generator against a small local HTTP server: replies (content-length and
chunked) come back in schedule order with their status, headers and body, every request is
sent with its headers and JSON body, and the schedule sets the offered rate."""

from __future__ import annotations

import asyncio
import json

import pytest

from serve.bench.open_loop import open_loop


async def _serve(seen: list[dict]) -> asyncio.AbstractServer:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        body = json.loads(await reader.readexactly(int(headers["content-length"])))
        seen.append({"line": lines[0], "headers": headers, "body": body})
        n = len(seen)
        if n % 2:
            payload = json.dumps({"n": n}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload)
        else:
            writer.write(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\ntransfer-encoding: chunked\r\n\r\n"
                         b"5\r\n{\"n\":\r\n2\r\n0}\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _run(n: int, rate: float):
    seen: list[dict] = []
    server = await _serve(seen)
    port = server.sockets[0].getsockname()[1]
    async with server:
        result = await open_loop(f"http://127.0.0.1:{port}/p/v1/chat?x=1", {"model": "m"}, n, rate,
                                 headers={"authorization": "Bearer k"})
    return result, seen


def test_replies_come_back_in_order_with_status_headers_and_body():
    result, seen = asyncio.run(_run(6, rate=200))
    assert [r.status for r in result.replies] == [200, 429] * 3
    assert result.replies[0].json() == {"n": 1} and result.replies[1].json() == {"n": 0}
    assert result.replies[1].headers["retry-after"] == "1"
    assert all(s["line"] == "POST /p/v1/chat?x=1 HTTP/1.1" for s in seen)
    assert all(s["headers"]["authorization"] == "Bearer k" and s["body"] == {"model": "m"} for s in seen)


def test_the_schedule_sets_the_offered_rate():
    result, _ = asyncio.run(_run(21, rate=100))  # 20 intervals of 10 ms
    assert 60 <= result.offered_per_s <= 101


def test_a_server_that_never_answers_times_out():
    async def run():
        async def silent(reader, writer):
            await asyncio.sleep(10)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        async with server:
            port = server.sockets[0].getsockname()[1]
            await open_loop(f"http://127.0.0.1:{port}/", {}, 2, 100, timeout_s=0.2)

    with pytest.raises(TimeoutError):
        asyncio.run(run())
