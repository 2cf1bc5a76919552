"""A streaming load generator for OpenAI-compatible chat endpoints.

``N`` concurrent streams each send chat completions back to back with a fixed output length
(``ignore_eos``), so every target produces the same tokens. Output tokens are counted from
the usage chunk of each stream; aggregate throughput = tokens / wall time of the level.
The client reads raw SSE lines (no per-chunk JSON parsing) to keep its own CPU cost low on
a machine it shares with the server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
from pydantic import BaseModel

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


class LevelResult(BaseModel):
    concurrency: int
    num_requests: int
    num_errors: int
    output_tokens: int
    wall_s: float
    output_tokens_per_s: float
    ttft_p50_ms: float
    ttft_p99_ms: float


async def _one_stream(client: httpx.AsyncClient, url: str, body: dict) -> tuple[int, float]:
    """Returns (completion tokens, time to first content chunk in seconds)."""
    t0 = time.perf_counter()
    ttft = None
    last_data = ""
    async with client.stream("POST", url, json=body) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            if ttft is None and '"content":"' in line and '"content":""' not in line:
                ttft = time.perf_counter() - t0
            if line != "data: [DONE]":
                last_data = line
    usage = json.loads(last_data[len("data: ") :]).get("usage") or {}
    return int(usage.get("completion_tokens", 0)), ttft if ttft is not None else time.perf_counter() - t0


async def run_level(base_url: str, model: str, concurrency: int, requests_per_stream: int, max_tokens: int) -> LevelResult:
    url = f"{base_url}/v1/chat/completions"
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens, errors, ttfts = 0, 0, []
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def worker() -> None:
            nonlocal tokens, errors
            for _ in range(requests_per_stream):
                try:
                    n, ttft = await _one_stream(client, url, body)
                    tokens += n
                    ttfts.append(ttft)
                except Exception:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    ttfts.sort()
    return LevelResult(
        concurrency=concurrency,
        num_requests=concurrency * requests_per_stream,
        num_errors=errors,
        output_tokens=tokens,
        wall_s=wall,
        output_tokens_per_s=tokens / wall if wall else 0.0,
        ttft_p50_ms=1000 * statistics.median(ttfts) if ttfts else 0.0,
        ttft_p99_ms=1000 * ttfts[min(len(ttfts) - 1, int(0.99 * len(ttfts)))] if ttfts else 0.0,
    )
