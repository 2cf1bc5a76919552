"""Router overhead: requests per second and latency of the whole Ray Serve path when the
engine answers instantly, so every millisecond measured is serving overhead, not inference.

A variant is one application to measure (``VARIANTS``, picked by name). Each runs in turn in
one Ray Serve instance started here, and is driven over HTTP by a closed loop of
``concurrency`` clients (each sends its next request when the last one is answered), at each
concurrency level, for chat completions non-streamed and streamed. A level reports the
latency percentiles of its requests and its throughput (requests answered / wall time); the
highest throughput over the levels is the variant's maximum on this machine.

Variants:

- ``serve-noop``: one plain Ray Serve ingress answering a canned completion (the same bytes
  and SSE events as the fake engine): the floor of Ray Serve's own HTTP path;
- ``router``: Frugal's app (``build_app``) with ``fake_engine_factory`` engines: the router
  (dispatch, pricing, tenants with auth off, metrics) plus the router -> engine call.

- ``cache-hit-memory`` / ``cache-hit-redis``: the router answering every request from the
  response cache (in process / in a redis-server started by the benchmark);
- ``full-miss``: everything on the request path on against that redis-server: auth, Redis
  rate limits and quota, a Redis cache lookup that misses and a store (every prompt is
  unique), billing and the Redis ledger.

The load generator shares the machine with what it measures: on a 2-core machine its own
CPU use lowers the maximum it can observe (``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, computed_field

from serve.bench.load import percentile
from serve.bench.noop import MODEL, PROMPT, NoopIngress
from serve.config.schema import FrugalConfig

Mode = Literal["non_streaming", "streaming"]
MODES: tuple[Mode, ...] = ("non_streaming", "streaming")
POOL = "fake-cpu"


def base_config() -> FrugalConfig:
    """One chat model, one pool, one router replica; nothing reserved on the CPU (the fake
    engine needs none)."""
    return FrugalConfig.model_validate({
        "router": {"num_replicas": 1, "num_cpus": 0},
        "models": [{
            "name": MODEL,
            "task": "chat",
            "pools": [{"name": POOL, "params_b": 0.1, "num_cpus": 0, "engine": {"model": "/fake/never-loaded"}}],
        }],
    })


def _unchanged(config: FrugalConfig, redis_url: str | None) -> FrugalConfig:
    return config


# The full-stack variant's tenant key: a well-formed Frugal key, used only against the
# benchmark's own throwaway redis-server.
BENCH_KEY_ID = "0be0c4000000"  # 12 hex digits, like every key id
BENCH_KEY = f"frg-{BENCH_KEY_ID}.overhead-benchmark-only-secret"


def _cache(config: FrugalConfig, redis_url: str | None) -> FrugalConfig:
    """The response cache on: in process, or in Redis when ``redis_url`` is given."""
    cache = {**config.cache.model_dump(), "enabled": True, "redis_url": redis_url}
    return FrugalConfig.model_validate({**config.model_dump(), "cache": cache})


def _cache_memory(config: FrugalConfig, redis_url: str | None) -> FrugalConfig:
    return _cache(config, None)


def _full_stack(config: FrugalConfig, redis_url: str | None) -> FrugalConfig:
    from serve.bench.targets import full_stack_config
    from serve.tenants.keys import hash_key

    assert redis_url is not None
    return full_stack_config(config, redis_url, BENCH_KEY_ID, hash_key(BENCH_KEY))


@dataclass(frozen=True)
class Variant:
    """One application to measure: ``build`` makes it from the (adjusted) base config.

    ``body`` is merged into every request; ``fresh_prompt`` makes every prompt unique (a cache
    miss each time); ``needs_redis`` runs the variant against the benchmark's redis-server."""

    name: str
    description: str
    build: Callable[[FrugalConfig], Any]
    configure: Callable[[FrugalConfig, str | None], FrugalConfig] = _unchanged
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] = field(default_factory=dict)
    fresh_prompt: bool = False
    needs_redis: bool = False

    def application(self, redis_url: str | None = None) -> Any:
        return self.build(self.configure(base_config(), redis_url))


def build_router_app(config: FrugalConfig) -> Any:
    from serve.builder import build_app
    from serve.engine.fake import fake_engine_factory

    return build_app(config, engine_factory=fake_engine_factory)


def build_noop_app(config: FrugalConfig) -> Any:
    from ray import serve

    # The router's own limit (router.max_ongoing_requests), not Ray's default of 5, which
    # makes a closed loop of 32 clients back off and measures Ray's rejection path instead.
    return serve.deployment(NoopIngress).options(
        name="noop", num_replicas=1, max_ongoing_requests=config.router.max_ongoing_requests,
        ray_actor_options={"num_cpus": 0},
    ).bind()


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("serve-noop", "plain Ray Serve ingress, canned answer (the floor)", build_noop_app),
        Variant("router", "Frugal router + fake engine deployment (auth off, no cache)", build_router_app),
        Variant(
            "cache-hit-memory", "every request a hit in the in-process response cache", build_router_app,
            configure=_cache_memory, body={"temperature": 0},
        ),
        Variant(
            "cache-hit-redis", "every request a hit in the Redis response cache", build_router_app,
            configure=_cache, body={"temperature": 0}, needs_redis=True,
        ),
        Variant(
            "full-miss", "auth + Redis rate limits + Redis cache miss and store + billing + Redis ledger",
            build_router_app, configure=_full_stack, headers={"authorization": f"Bearer {BENCH_KEY}"},
            body={"temperature": 0}, fresh_prompt=True, needs_redis=True,
        ),
    )
}


# --- the closed-loop load generator ----------------------------------------------------------


class LevelStats(BaseModel):
    """One concurrency level of one mode: latencies of the requests completed in the window."""

    concurrency: int
    num_requests: int
    num_errors: int
    wall_s: float
    requests_per_s: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_mean_ms: float
    ttfb_p50_ms: float | None = None  # streaming: time to the first byte of the body
    ttfb_p99_ms: float | None = None


def chat_body(stream: bool, max_tokens: int, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": max_tokens}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body | dict(extra or {})


def _fresh(body: dict[str, Any], n: int) -> dict[str, Any]:
    """``body`` with a prompt no other request of the run has (same length in tokens)."""
    return {**body, "messages": [{"role": "user", "content": f"{PROMPT} n{n}"}]}


async def _one(client: httpx.AsyncClient, url: str, body: dict[str, Any], headers: Mapping[str, str]) -> tuple[float, float | None]:
    """(latency s, time to first body byte s or None) of one request; raises on a bad answer."""
    started = time.perf_counter()
    if not body.get("stream"):
        r = await client.post(url, json=body, headers=dict(headers))
        if r.status_code != 200 or b'"choices"' not in r.content:
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        return time.perf_counter() - started, None
    first: float | None = None
    tail = b""
    async with client.stream("POST", url, json=body, headers=dict(headers)) as r:
        if r.status_code != 200:
            await r.aread()
            raise RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
        async for chunk in r.aiter_bytes():
            if first is None:
                first = time.perf_counter() - started
            tail = (tail + chunk)[-64:]
    if not tail.endswith(b"data: [DONE]\n\n"):
        raise RuntimeError("stream ended without [DONE]")
    return time.perf_counter() - started, first


async def closed_loop(
    url: str,
    body: dict[str, Any],
    concurrency: int,
    duration_s: float,
    warmup_s: float = 1.0,
    headers: Mapping[str, str] | None = None,
    fresh_prompt: bool = False,
) -> LevelStats:
    """``concurrency`` clients send ``body`` back to back for ``warmup_s + duration_s``;
    requests that start within the measured window are counted. ``fresh_prompt``: each
    request's prompt is unique."""
    latencies: list[float] = []
    sent = itertools.count()
    ttfbs: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        start = time.perf_counter()
        window_start, window_end = start + warmup_s, start + warmup_s + duration_s

        async def worker() -> None:
            nonlocal errors
            while (now := time.perf_counter()) < window_end:
                measured = now >= window_start
                try:
                    request = _fresh(body, next(sent)) if fresh_prompt else body
                    latency, ttfb = await _one(client, url, request, headers or {})
                except Exception:
                    errors += measured
                    continue
                if measured:
                    latencies.append(latency)
                    if ttfb is not None:
                        ttfbs.append(ttfb)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        # The last requests end after the window: throughput counts them over their real span.
        wall = max(time.perf_counter() - window_start, 1e-9)
    ms = [v * 1000 for v in latencies]
    return LevelStats(
        concurrency=concurrency,
        num_requests=len(latencies),
        num_errors=errors,
        wall_s=wall,
        requests_per_s=len(latencies) / wall,
        latency_p50_ms=percentile(ms, 50),
        latency_p90_ms=percentile(ms, 90),
        latency_p99_ms=percentile(ms, 99),
        latency_mean_ms=statistics.fmean(ms) if ms else 0.0,
        ttfb_p50_ms=percentile([v * 1000 for v in ttfbs], 50) if ttfbs else None,
        ttfb_p99_ms=percentile([v * 1000 for v in ttfbs], 99) if ttfbs else None,
    )


# --- the run ------------------------------------------------------------------------------------


class ModeResult(BaseModel):
    mode: Mode
    levels: list[LevelStats]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def max_requests_per_s(self) -> float:
        return max((lv.requests_per_s for lv in self.levels), default=0.0)


class VariantResult(BaseModel):
    variant: str
    description: str
    modes: list[ModeResult]


class OverheadReport(BaseModel):
    machine: str
    started: str
    duration_s: float
    warmup_s: float
    max_tokens: int
    levels: list[int]
    variants: list[VariantResult]


def ray_serve(port: int) -> AbstractContextManager[str]:
    """A Ray instance and Serve's HTTP ingress on ``port``, for this process; stopped after."""
    from serve.local_ray import local_serve

    return local_serve(port, namespace="frugal-bench-overhead", log_to_driver=False)


def measure_variant(
    base_url: str,
    variant: Variant,
    levels: list[int],
    duration_s: float,
    warmup_s: float,
    max_tokens: int,
    progress: Callable[[str], None],
    redis_url: str | None = None,
) -> VariantResult:
    """Deploy ``variant`` on the running Serve instance, measure every mode and level, delete it."""
    from ray import serve

    app_name = f"overhead-{variant.name}"
    serve.run(variant.application(redis_url), name=app_name, route_prefix="/")
    try:
        url = f"{base_url}/v1/chat/completions"
        modes = []
        for mode in MODES:
            body = chat_body(mode == "streaming", max_tokens, variant.body)
            fresh = variant.fresh_prompt
            # Warm-up: also fills the cache for the hit variants.
            asyncio.run(closed_loop(url, body, 2, duration_s=0, warmup_s=2.0, headers=variant.headers, fresh_prompt=fresh))
            stats = []
            for c in levels:
                level = asyncio.run(closed_loop(url, body, c, duration_s, warmup_s, variant.headers, fresh))
                progress(
                    f"{variant.name:>10} {mode:>13} c={c:<3} {level.requests_per_s:7.1f} req/s  "
                    f"p50 {level.latency_p50_ms:6.1f} ms  p99 {level.latency_p99_ms:6.1f} ms  errors {level.num_errors}"
                )
                stats.append(level)
            modes.append(ModeResult(mode=mode, levels=stats))
        return VariantResult(variant=variant.name, description=variant.description, modes=modes)
    finally:
        serve.delete(app_name)


def run(
    variant_names: list[str],
    levels: list[int],
    duration_s: float,
    warmup_s: float,
    max_tokens: int,
    port: int = 8200,
    progress: Callable[[str], None] = print,
) -> OverheadReport:
    """Measure every named variant in one Ray Serve instance (started and stopped here)."""
    unknown = [n for n in variant_names if n not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    from tqdm import tqdm

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results = []
    with ExitStack() as stack:
        redis_url = None
        if any(VARIANTS[n].needs_redis for n in variant_names):
            from serve.bench.redis_server import RedisServer

            redis = RedisServer()
            redis.start()
            stack.callback(redis.close)
            redis_url = redis.url
        base_url = stack.enter_context(ray_serve(port))
        bar = stack.enter_context(tqdm(total=len(variant_names) * len(MODES) * len(levels), unit="level"))

        def step(line: str) -> None:
            bar.update()
            progress(line)

        for name in variant_names:
            variant = VARIANTS[name]
            results.append(measure_variant(
                base_url, variant, levels, duration_s, warmup_s, max_tokens, step, redis_url if variant.needs_redis else None
            ))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}"
    return OverheadReport(
        machine=machine, started=started, duration_s=duration_s, warmup_s=warmup_s, max_tokens=max_tokens,
        levels=levels, variants=results,
    )


def table(report: OverheadReport) -> str:
    """A Markdown table: one row per variant, mode and level."""
    rows = ["| variant | mode | concurrency | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|---|"]
    for v in report.variants:
        for m in v.modes:
            for lv in m.levels:
                rows.append(
                    f"| {v.variant} | {m.mode} | {lv.concurrency} | {lv.requests_per_s:.1f} | "
                    f"{lv.latency_p50_ms:.1f} | {lv.latency_p99_ms:.1f} | {lv.num_errors} |"
                )
    return "\n".join(rows)


def plot(report: OverheadReport, path: Path) -> None:
    """Latency (p50 solid, p99 dashed) and throughput against concurrency, per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(MODES), figsize=(11, 7.5), squeeze=False)
    for col, mode in enumerate(MODES):
        lat_ax, rps_ax = axes[0][col], axes[1][col]
        for v in report.variants:
            m = next((m for m in v.modes if m.mode == mode), None)
            if m is None:
                continue
            xs = [lv.concurrency for lv in m.levels]
            (line,) = lat_ax.plot(xs, [lv.latency_p50_ms for lv in m.levels], marker="o", label=f"{v.variant} p50")
            lat_ax.plot(xs, [lv.latency_p99_ms for lv in m.levels], marker="x", linestyle="--", color=line.get_color(),
                        label=f"{v.variant} p99")
            rps_ax.plot(xs, [lv.requests_per_s for lv in m.levels], marker="o", color=line.get_color(), label=v.variant)
        lat_ax.set_title(f"{mode.replace('_', '-')}: latency per request")
        lat_ax.set_ylabel("ms")
        lat_ax.set_yscale("log")
        rps_ax.set_title(f"{mode.replace('_', '-')}: throughput")
        rps_ax.set_ylabel("requests/s")
        for ax in (lat_ax, rps_ax):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrent clients")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle(f"Serving overhead, instant fake engine ({report.machine})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
