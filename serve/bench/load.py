"""A streaming load generator for OpenAI-compatible chat endpoints.

``N`` concurrent streams each send chat completions back to back with a fixed output length
(``ignore_eos``), so every target produces the same tokens. Output tokens are counted from
the usage chunk of each stream; aggregate throughput = tokens / wall time of the level, and
each request's TTFT, TPOT and end-to-end latency are kept for percentiles.
The client reads raw SSE lines (no per-chunk JSON parsing) to keep its own CPU cost low on
a machine it shares with the server.
"""

from __future__ import annotations

import asyncio
import json
import math
import time

import httpx
from pydantic import BaseModel

MAX_ERROR_SAMPLES = 5
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


class LevelResult(BaseModel):
    """One concurrency level: throughput and the latency percentiles vLLM's serving benchmark
    reports (TTFT, TPOT = decode time per output token after the first, end to end)."""

    concurrency: int
    num_requests: int
    num_errors: int
    output_tokens: int
    wall_s: float
    output_tokens_per_s: float
    requests_per_s: float = 0.0
    ttft_p50_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float = 0.0
    tpot_p99_ms: float = 0.0
    e2e_p50_ms: float = 0.0
    e2e_p99_ms: float = 0.0
    # mean CPU % per serving process role while the level ran (100 = one core), when sampled
    cpu_percent: dict[str, float] = {}
    error_samples: list[str] = []  # the first few failures, as "ExceptionType: message"


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[rank]


def percentile_ms(values_s: list[float], p: float) -> float:
    """``percentile`` of seconds, in milliseconds."""
    return 1000 * percentile(values_s, p)


async def _one_stream(client: httpx.AsyncClient, url: str, body: dict, headers: dict[str, str]) -> tuple[int, float, float]:
    """Returns (completion tokens, time to first content chunk, end to end), in seconds."""
    t0 = time.perf_counter()
    ttft = None
    last_data = ""
    async with client.stream("POST", url, json=body, headers=headers) as r:
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
    e2e = time.perf_counter() - t0
    usage = json.loads(last_data[len("data: ") :]).get("usage") or {}
    return int(usage.get("completion_tokens", 0)), ttft if ttft is not None else e2e, e2e


async def run_level(
    base_url: str,
    model: str,
    concurrency: int,
    requests_per_stream: int,
    max_tokens: int,
    headers: dict[str, str] | None = None,
    tag: str = "",
) -> LevelResult:
    """``concurrency`` streams each send ``requests_per_stream`` requests back to back. Every
    prompt ends with a unique suffix (the same sequence for every target, from ``tag``), so a
    response cache misses and every answer is generated."""
    url = f"{base_url}/v1/chat/completions"
    tokens, errors = 0, 0
    error_samples: list[str] = []
    ttfts: list[float] = []
    tpots: list[float] = []
    e2es: list[float] = []
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:

        async def worker(stream: int) -> None:
            nonlocal tokens, errors
            for i in range(requests_per_stream):
                body = {
                    "model": model,
                    "messages": [{"role": "user", "content": f"{PROMPT} ({tag}c{concurrency}-s{stream}-r{i})"}],
                    "max_tokens": max_tokens,
                    "ignore_eos": True,
                    "temperature": 0,
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                try:
                    n, ttft, e2e = await _one_stream(client, url, body, headers or {})
                except Exception as exc:
                    errors += 1
                    if len(error_samples) < MAX_ERROR_SAMPLES:
                        error_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                    continue
                tokens += n
                ttfts.append(ttft)
                e2es.append(e2e)
                if n > 1:
                    tpots.append((e2e - ttft) / (n - 1))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(s) for s in range(concurrency)))
        wall = time.perf_counter() - t0
    return LevelResult(
        concurrency=concurrency,
        num_requests=concurrency * requests_per_stream,
        num_errors=errors,
        error_samples=error_samples,
        output_tokens=tokens,
        wall_s=wall,
        output_tokens_per_s=tokens / wall if wall else 0.0,
        requests_per_s=len(e2es) / wall if wall else 0.0,
        ttft_p50_ms=percentile_ms(ttfts, 50),
        ttft_p99_ms=percentile_ms(ttfts, 99),
        tpot_p50_ms=percentile_ms(tpots, 50),
        tpot_p99_ms=percentile_ms(tpots, 99),
        e2e_p50_ms=percentile_ms(e2es, 50),
        e2e_p99_ms=percentile_ms(e2es, 99),
    )
