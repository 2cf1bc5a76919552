"""A client that reads a stream slowly (a 4 KiB receive window, nothing read for seconds) costs
the router bounded memory, does not stall other clients, and still gets its whole answer."""

from __future__ import annotations

import json
import socket
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest

NUM_SLOW = 3
MAX_TOKENS = 600
STALL_S = 8.0
ROUTER_RSS_GROWTH_LIMIT = 64 * 2**20


def _router_process():
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "ServeReplica:frugal-test:router" in cmdline:
            return proc
    pytest.fail("no router replica process of the test application")


class SlowReader:
    """A raw HTTP/1.1 streaming request on a socket with a tiny receive buffer, read only
    when told to."""

    def __init__(self, base_url: str, body: dict) -> None:
        url = urlsplit(base_url)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((url.hostname, url.port))
        data = json.dumps(body).encode()
        self.sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data
        )
        self.received = bytearray()

    def read_some(self, n: int = 256) -> None:
        self.received += self.sock.recv(n)

    def read_all(self, timeout_s: float) -> bytes:
        self.sock.settimeout(timeout_s)
        while chunk := self.sock.recv(65536):
            self.received += chunk
        self.sock.close()
        return bytes(self.received)


def _http_body(raw: bytes) -> tuple[str, str]:
    """(status line, body) of a raw HTTP/1.1 response, de-chunked."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode()
    if b"transfer-encoding: chunked" not in head.lower():
        return status, rest.decode()
    body = bytearray()
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2:]
    return status, body.decode()


def test_slow_stream_readers_cost_bounded_memory_and_block_no_one(service, chat_model):
    router = _router_process()
    rss_before = router.memory_info().rss
    body = {
        "model": chat_model, "messages": [{"role": "user", "content": "Write a long story."}], "stream": True,
        "max_tokens": MAX_TOKENS, "ignore_eos": True, "temperature": 0.8, "stream_options": {"include_usage": True},
    }
    readers = [SlowReader(service.base_url, body) for _ in range(NUM_SLOW)]
    for r in readers:
        r.read_some()  # the status line: the stream has started

    peak = [rss_before]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.is_set():
            peak[0] = max(peak[0], router.memory_info().rss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    # While the slow readers read nothing, another client is served as usual.
    t0 = time.perf_counter()
    quick = httpx.post(
        f"{service.base_url}/v1/chat/completions", timeout=120,
        json={"model": chat_model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8},
    )
    quick_s = time.perf_counter() - t0
    assert quick.status_code == 200, quick.text
    time.sleep(max(0.0, STALL_S - quick_s))

    answers = [_http_body(r.read_all(timeout_s=180)) for r in readers]
    sampling.set()
    sampler.join()
    growth = peak[0] - rss_before
    print(f"router RSS {rss_before / 2**20:.0f} MiB, peak growth {growth / 2**20:.1f} MiB with {NUM_SLOW} stalled "
          f"readers; a concurrent request took {quick_s:.2f} s")
    assert quick_s < 60
    assert growth < ROUTER_RSS_GROWTH_LIMIT
    for status, text in answers:
        assert status.startswith("HTTP/1.1 200"), (status, text[:200])
        assert "data: [DONE]" in text
        usage = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {") and '"usage"' in line]
        assert usage and usage[-1]["usage"]["completion_tokens"] == MAX_TOKENS
