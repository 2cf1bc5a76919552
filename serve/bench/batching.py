"""The side-by-side benchmark: at several stream counts, aggregate output tokens/s and the
latency percentiles of vLLM's serving benchmark (TTFT, TPOT, end to end), in one run, for

- ``vllm``: vLLM's own OpenAI server (``python -m vllm.entrypoints.openai.api_server``);
- ``frugal``: Frugal's router as configured (the default: auth off, in-process cache);
- ``frugal-full``: Frugal with everything on the request path on, against a redis-server
  started here: auth, Redis rate limits and quota, the Redis response cache (a miss and a
  store per request: prompts are unique), billing and the Redis ledger;

all with the same single engine and identical engine arguments. Each metric is reported as a
ratio to bare vLLM."""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from serve.bench.load import LevelResult, run_level  # noqa: E402
from serve.bench.targets import chat_only_config, frugal_server, full_stack_server, vllm_server  # noqa: E402
from serve.config.schema import FrugalConfig  # noqa: E402


class TargetResult(BaseModel):
    target: str
    levels: list[LevelResult]

    def ratio_to_single(self) -> dict[int, float]:
        base = next((lv.output_tokens_per_s for lv in self.levels if lv.concurrency == 1), None)
        return {lv.concurrency: lv.output_tokens_per_s / base for lv in self.levels} if base else {}


class BatchingReport(BaseModel):
    machine: str
    started: str = ""
    model: str
    max_tokens: int
    requests_per_stream: int
    targets: list[TargetResult]


TARGETS = ("vllm", "frugal", "frugal-full")
BASELINE = "vllm"


def measure(
    base_url: str,
    model: str,
    levels: list[int],
    requests_per_stream: int,
    max_tokens: int,
    log: Callable[[str], None],
    headers: dict[str, str] | None = None,
) -> list[LevelResult]:
    from serve.bench.cpu_share import cpu_share

    results = []
    for c in levels:
        with cpu_share() as share:
            r = asyncio.run(run_level(base_url, model, c, requests_per_stream, max_tokens, headers))
        r = r.model_copy(update={"cpu_percent": share.means()})
        log(
            f"  {c:>3} streams: {r.output_tokens_per_s:7.1f} tok/s  TTFT p50 {r.ttft_p50_ms:6.0f} ms  "
            f"TPOT p50 {r.tpot_p50_ms:5.0f} ms  e2e p50 {r.e2e_p50_ms:6.0f} ms  errors {r.num_errors}"
        )
        results.append(r)
    return results


@contextmanager
def _target(target: str, config: FrugalConfig, port: int, out_dir: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(base URL, request headers) of a running ``target``; stopped on exit."""
    if target == "vllm":
        with vllm_server(config.models[0], port + 1, out_dir / "vllm-server.log") as url:
            yield url, {}
    elif target == "frugal":
        with frugal_server(config, port, out_dir / "frugal-server.log") as url:
            yield url, {}
    elif target == "frugal-full":
        with full_stack_server(config, port + 2, out_dir / "frugal-full-server.log") as (url, headers):
            yield url, headers
    else:
        raise ValueError(f"unknown target {target!r} ({', '.join(TARGETS)})")


def run(
    config: FrugalConfig,
    model: str,
    targets: list[str],
    levels: list[int],
    requests_per_stream: int,
    max_tokens: int,
    out_dir: Path,
    port: int = 8100,
    log: Callable[[str], None] = print,
) -> BatchingReport:
    """Each target in turn, in this process's run: start it, measure every level, stop it."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown} ({', '.join(TARGETS)})")
    config = chat_only_config(config, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        log(f"[{target}] starting")
        with _target(target, config, port, out_dir) as (url, headers):
            log(f"[{target}] ready at {url}")
            levels_measured = measure(url, model, levels, requests_per_stream, max_tokens, log, headers)
            results.append(TargetResult(target=target, levels=levels_measured))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    return BatchingReport(
        machine=machine, model=model, max_tokens=max_tokens, requests_per_stream=requests_per_stream,
        started=time.strftime("%Y-%m-%d %H:%M:%S"), targets=results,
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


RATIO_METRICS: tuple[tuple[str, str], ...] = (
    ("output_tokens_per_s", "output tok/s"),
    ("requests_per_s", "req/s"),
    ("ttft_p50_ms", "TTFT p50"),
    ("ttft_p99_ms", "TTFT p99"),
    ("tpot_p50_ms", "TPOT p50"),
    ("tpot_p99_ms", "TPOT p99"),
    ("e2e_p50_ms", "e2e p50"),
    ("e2e_p99_ms", "e2e p99"),
)


def ratios(report: BatchingReport, target: str, baseline: str = BASELINE) -> dict[int, dict[str, float]]:
    """Per concurrency: each metric of ``target`` divided by the same metric of ``baseline``
    (throughput: higher is better; latencies: lower is better)."""
    by_name = {t.target: t for t in report.targets}
    if target not in by_name or baseline not in by_name:
        return {}
    base = {lv.concurrency: lv for lv in by_name[baseline].levels}
    out: dict[int, dict[str, float]] = {}
    for lv in by_name[target].levels:
        b = base.get(lv.concurrency)
        if b is None:
            continue
        out[lv.concurrency] = {
            name: getattr(lv, name) / getattr(b, name) if getattr(b, name) else float("nan") for name, _ in RATIO_METRICS
        }
    return out


def plot(report: BatchingReport, path: Path) -> None:
    """Throughput, scaling from one stream, TTFT p50 and each metric's ratio to bare vLLM."""
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (ax_tok, ax_scale), (ax_ttft, ax_ratio) = axes
    for t in report.targets:
        xs = [lv.concurrency for lv in t.levels]
        ax_tok.plot(xs, [lv.output_tokens_per_s for lv in t.levels], marker="o", label=t.target)
        scale = t.ratio_to_single()
        ax_scale.plot(xs, [scale.get(x, 0) for x in xs], marker="o", label=t.target)
        ax_ttft.plot(xs, [lv.ttft_p50_ms for lv in t.levels], marker="o", label=f"{t.target} p50")
        ax_ttft.plot(xs, [lv.tpot_p50_ms for lv in t.levels], marker="x", linestyle="--", label=f"{t.target} TPOT p50")
    has_baseline = any(t.target == BASELINE for t in report.targets)
    for t in report.targets:
        if t.target == BASELINE or not has_baseline:
            continue
        r = ratios(report, t.target)
        xs = sorted(r)
        ax_ratio.plot(xs, [r[x]["output_tokens_per_s"] for x in xs], marker="o", label=f"{t.target}: tok/s")
        ax_ratio.plot(xs, [r[x]["ttft_p50_ms"] for x in xs], marker="x", linestyle="--", label=f"{t.target}: TTFT p50")
        ax_ratio.plot(xs, [r[x]["tpot_p50_ms"] for x in xs], marker="s", linestyle=":", label=f"{t.target}: TPOT p50")
    ax_ratio.axhline(1.0, color="grey", linewidth=0.8)
    ax_ratio.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
    ax_tok.set_ylabel("aggregate output tokens/s")
    ax_scale.set_ylabel("throughput / single-stream throughput")
    ax_ttft.set_ylabel("ms")
    ax_ttft.set_yscale("log")
    ax_ttft.set_title("TTFT p50 (solid) and TPOT p50 (dashed)", fontsize=9)
    ax_ratio.set_ylabel(f"Frugal / bare {BASELINE}")
    ax_ratio.set_title("ratio to bare vLLM (tok/s: higher is better; latency: lower)", fontsize=9)
    if not has_baseline:  # nothing to divide by: an empty panel that says so
        ax_ratio.clear()
        ax_ratio.axis("off")
        ax_ratio.text(0.5, 0.5, f"no bare {BASELINE} target in this run", ha="center", va="center")
    for ax in axes.flat:
        if ax is ax_ratio and not has_baseline:
            continue
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{report.model}, {report.max_tokens} output tokens, {report.machine}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(report: BatchingReport) -> str:
    """Markdown: per target and level the absolute figures, then the ratios to bare vLLM."""
    rows = [
        "| target | streams | tok/s | x 1 stream | req/s | TTFT p50 ms | TTFT p99 ms | TPOT p50 ms | TPOT p99 ms | e2e p50 ms | e2e p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for t in report.targets:
        scale = t.ratio_to_single()
        for lv in t.levels:
            rows.append(
                f"| {t.target} | {lv.concurrency} | {lv.output_tokens_per_s:.1f} | {scale.get(lv.concurrency, 0):.1f}x | "
                f"{lv.requests_per_s:.2f} | {lv.ttft_p50_ms:.0f} | {lv.ttft_p99_ms:.0f} | {lv.tpot_p50_ms:.1f} | "
                f"{lv.tpot_p99_ms:.1f} | {lv.e2e_p50_ms:.0f} | {lv.e2e_p99_ms:.0f} | {lv.num_errors} |"
            )
    others = [t.target for t in report.targets if t.target != BASELINE]
    if others and any(t.target == BASELINE for t in report.targets):
        rows += ["", f"Ratios to bare {BASELINE} (same run):", ""]
        rows.append("| target | streams | " + " | ".join(label for _, label in RATIO_METRICS) + " | added TTFT p50 ms |")
        rows.append("|---|---|" + "---|" * (len(RATIO_METRICS) + 1))
        base = {lv.concurrency: lv for t in report.targets if t.target == BASELINE for lv in t.levels}
        for target in others:
            mine = {lv.concurrency: lv for t in report.targets if t.target == target for lv in t.levels}
            for c, r in sorted(ratios(report, target).items()):
                added = mine[c].ttft_p50_ms - base[c].ttft_p50_ms
                rows.append(
                    f"| {target} | {c} | " + " | ".join(f"{r[name]:.2f}" for name, _ in RATIO_METRICS) + f" | {added:+.0f} |"
                )
    return "\n".join(rows + cpu_table(report))


def cpu_table(report: BatchingReport) -> list[str]:
    """Markdown rows: mean CPU % per process role (100 = one core) at each target and level."""
    roles = sorted({role for t in report.targets for lv in t.levels for role in lv.cpu_percent})
    if not roles:
        return []
    rows = ["", "CPU per process while each level ran (mean %, 100 = one core):", ""]
    rows.append("| target | streams | " + " | ".join(roles) + " | total |")
    rows.append("|---|---|" + "---|" * (len(roles) + 1))
    for t in report.targets:
        for lv in t.levels:
            cells = [f"{lv.cpu_percent[r]:.0f}" if r in lv.cpu_percent else "" for r in roles]
            rows.append(f"| {t.target} | {lv.concurrency} | " + " | ".join(cells) + f" | {sum(lv.cpu_percent.values()):.0f} |")
    return rows
