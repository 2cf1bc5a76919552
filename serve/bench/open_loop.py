"""An open-loop HTTP load generator: ``n`` requests start on a fixed schedule, whatever the
answers to earlier ones, each on a connection of its own.

Every connection is opened, and every request serialised, before the schedule starts, so
starting a request on time costs one socket write. The tenants test's first generator opened
its connections and built its requests with httpx inside the schedule. On 2 cores shared with
the server, the offered rate of a 300/s schedule then depended on the client's share of a CPU:
142 to 299 requests/s in different runs. Replies are parsed with h11, the HTTP/1.1 state
machine httpx itself uses.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11

READ_BYTES = 65536


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class OpenLoopResult:
    replies: list[Reply]  # in schedule order
    offered_per_s: float  # achieved: (n - 1) / the span of the send times


def _request_bytes(conn: h11.Connection, host: str, target: str, headers: Mapping[str, str], payload: bytes) -> bytes:
    head = [("host", host), ("content-type", "application/json"), ("content-length", str(len(payload))),
            ("connection", "close"), *headers.items()]
    return (conn.send(h11.Request(method="POST", target=target, headers=head)) or b"") + \
        (conn.send(h11.Data(data=payload)) or b"") + (conn.send(h11.EndOfMessage()) or b"")


async def _read_reply(conn: h11.Connection, reader: asyncio.StreamReader) -> Reply:
    status, headers, chunks = 0, {}, []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(READ_BYTES))
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode().lower(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return Reply(status, headers, b"".join(chunks))


async def open_loop(
    url: str, body: Mapping[str, Any], n: int, rate_per_s: float,
    headers: Mapping[str, str] | None = None, timeout_s: float = 120.0,
) -> OpenLoopResult:
    """POST ``body`` as JSON to ``url`` ``n`` times, the i-th at ``i / rate_per_s`` seconds
    after the first. Raises ``TimeoutError`` if the replies take longer than ``timeout_s``
    after the last send, and ``h11.ProtocolError`` on a malformed reply."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = json.dumps(body).encode()
    conns = [h11.Connection(h11.CLIENT) for _ in range(n)]
    requests = [_request_bytes(c, parts.netloc, target, headers or {}, payload) for c in conns]
    streams: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    sent = [0.0] * n
    pending = []
    try:
        for _ in range(n):  # one by one, so that every connection opened is closed below
            streams.append(await asyncio.open_connection(host, port))
        t0 = time.perf_counter()
        for i, ((reader, writer), conn) in enumerate(zip(streams, conns, strict=True)):
            delay = t0 + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(requests[i])
            sent[i] = time.perf_counter()
            pending.append(asyncio.create_task(_read_reply(conn, reader)))
        replies = await asyncio.wait_for(asyncio.gather(*pending), timeout_s)
    finally:
        for task in pending:
            task.cancel()
        for _, writer in streams:
            writer.close()
    span = sent[-1] - sent[0]
    return OpenLoopResult(list(replies), (n - 1) / span if span > 0 else float("inf"))
