"""Measure a live pool into a ``ThroughputProfile`` (``scripts/profile_pool.py`` is the CLI).

Decode throughput and short-prompt TTFT come from ``serve.bench.load.run_level`` at each
concurrency (streams sending back to back through the router's OpenAI API, fixed output
length). The prefill rate comes from the difference between a long and a short prompt's
time to a single output token. The router picks the pool by model name, so profile a model
that has one pool (or whose other pools are scaled to zero), scaled to one replica, or pass
``num_replicas`` to convert to per-replica figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import httpx

from serve.bench.load import LevelResult, run_level
from serve.cost.profile import ProfilePoint, ThroughputProfile

DEFAULT_CONCURRENCIES = (1, 2, 4, 8, 16, 32)
# Filler for the long prompt of the prefill measurement: about one token per word.
_FILLER_WORD = "lighthouse "
_REQUEST_TIMEOUT_S = 600.0


def profile_from_levels(
    levels: Sequence[LevelResult],
    source: str,
    prefill_tokens_per_s: float | None = None,
    num_replicas: int = 1,
) -> ThroughputProfile:
    """One profile point per level: concurrency and throughput divided by ``num_replicas``
    (the replicas the pool had while measured), TTFT the level's median.

    Raises ``ValueError`` naming the level when it had errors or produced no tokens (such a
    measurement is not the pool's capacity), or when a level's concurrency does not divide
    evenly over the replicas."""
    if num_replicas < 1:
        raise ValueError("num_replicas must be at least 1")
    points = []
    for level in sorted(levels, key=lambda lv: lv.concurrency):
        if level.num_errors or level.output_tokens <= 0 or level.output_tokens_per_s <= 0:
            raise ValueError(
                f"level at concurrency {level.concurrency}: {level.num_errors} errors, "
                f"{level.output_tokens} tokens; fix the service and measure again"
            )
        if level.concurrency % num_replicas:
            raise ValueError(f"concurrency {level.concurrency} does not divide over {num_replicas} replicas")
        points.append(
            ProfilePoint(
                concurrency=level.concurrency // num_replicas,
                output_tokens_per_s=level.output_tokens_per_s / num_replicas,
                ttft_ms=level.ttft_p50_ms,
            )
        )
    return ThroughputProfile(points=points, prefill_tokens_per_s=prefill_tokens_per_s, source=source)


def prefill_rate(short: tuple[int, float], long: tuple[int, float]) -> float:
    """Prompt tokens per second from two (prompt tokens, seconds to one output token)
    measurements: the extra tokens over the extra time. Raises ``ValueError`` when the long
    prompt was not longer and slower."""
    (short_tokens, short_s), (long_tokens, long_s) = short, long
    if long_tokens <= short_tokens or long_s <= short_s:
        raise ValueError(
            f"cannot derive a prefill rate: {short_tokens} tokens in {short_s:.3f} s vs {long_tokens} in {long_s:.3f} s"
        )
    return (long_tokens - short_tokens) / (long_s - short_s)


async def _one_token(client: httpx.AsyncClient, url: str, model: str, prompt: str) -> tuple[int, float]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": 1, "temperature": 0}
    t0 = time.perf_counter()
    r = await client.post(url, json=body)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return int(r.json()["usage"]["prompt_tokens"]), elapsed


async def measure_prefill_rate(base_url: str, model: str, long_prompt_words: int = 1500, repeats: int = 3) -> float:
    """Prompt tokens per second of the pool serving ``model``, alone (run it while idle).
    Each prompt is sent ``repeats`` times after one warm-up; the medians are compared."""
    url = f"{base_url}/v1/chat/completions"
    prompts = ("Say hi.", "Count the words: " + _FILLER_WORD * long_prompt_words)
    async with httpx.AsyncClient(timeout=_REQUEST_TIMEOUT_S) as client:
        medians = []
        for prompt in prompts:
            await _one_token(client, url, model, prompt)
            samples = [await _one_token(client, url, model, prompt) for _ in range(repeats)]
            medians.append((samples[0][0], statistics.median(s for _, s in samples)))
    return prefill_rate(medians[0], medians[1])


async def measure_levels(
    base_url: str,
    model: str,
    concurrencies: Sequence[int] = DEFAULT_CONCURRENCIES,
    requests_per_stream: int = 2,
    max_tokens: int = 64,
) -> list[LevelResult]:
    """``run_level`` at each concurrency in turn."""
    return [await run_level(base_url, model, c, requests_per_stream, max_tokens) for c in concurrencies]


def profile_source(command: str, when: datetime | None = None) -> str:
    """The ``source`` of a measured profile: the command and the UTC date it ran."""
    when = when or datetime.now(timezone.utc)
    return f"measured: {command} ({when.strftime('%Y-%m-%d %H:%M UTC')})"


def write_profile(profile: ThroughputProfile, out_dir: Path, pool: str) -> Path:
    """Write ``<out_dir>/<pool>.json`` (the path a pool's ``profile`` field names)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{pool}.json"
    path.write_text(profile.model_dump_json(indent=2) + "\n")
    return path
