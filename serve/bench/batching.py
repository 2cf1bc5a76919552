"""The batching benchmark: aggregate output tokens/s at several stream counts, for Frugal
and for vLLM's own OpenAI server with identical engine arguments, in one run."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from serve.bench.load import LevelResult, run_level  # noqa: E402
from serve.bench.targets import chat_only_config, frugal_server, vllm_server  # noqa: E402
from serve.config.schema import FrugalConfig  # noqa: E402


class TargetResult(BaseModel):
    target: str
    levels: list[LevelResult]

    def ratio_to_single(self) -> dict[int, float]:
        base = next((lv.output_tokens_per_s for lv in self.levels if lv.concurrency == 1), None)
        return {lv.concurrency: lv.output_tokens_per_s / base for lv in self.levels} if base else {}


class BatchingReport(BaseModel):
    machine: str
    model: str
    max_tokens: int
    requests_per_stream: int
    targets: list[TargetResult]


def measure(base_url: str, model: str, levels: list[int], requests_per_stream: int, max_tokens: int, log: Callable[[str], None]) -> list[LevelResult]:
    results = []
    for c in levels:
        r = asyncio.run(run_level(base_url, model, c, requests_per_stream, max_tokens))
        log(f"  {c:>3} streams: {r.output_tokens_per_s:7.1f} tok/s  TTFT p50 {r.ttft_p50_ms:6.0f} ms  errors {r.num_errors}")
        results.append(r)
    return results


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
    config = chat_only_config(config, model)
    out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        log(f"[{target}] starting")
        if target == "frugal":
            server = frugal_server(config, port, out_dir / "frugal-server.log")
        elif target == "vllm":
            server = vllm_server(config.models[0], port + 1, out_dir / "vllm-server.log")
        else:
            raise ValueError(f"unknown target {target!r} (frugal, vllm)")
        with server as url:
            log(f"[{target}] ready at {url}")
            results.append(TargetResult(target=target, levels=measure(url, model, levels, requests_per_stream, max_tokens, log)))
    machine = f"{platform.machine()}, {__import__('os').cpu_count()} cores"
    return BatchingReport(machine=machine, model=model, max_tokens=max_tokens, requests_per_stream=requests_per_stream, targets=results)


def plot(report: BatchingReport, path: Path) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for t in report.targets:
        xs = [lv.concurrency for lv in t.levels]
        ax1.plot(xs, [lv.output_tokens_per_s for lv in t.levels], marker="o", label=t.target)
        ratios = t.ratio_to_single()
        ax2.plot(xs, [ratios.get(x, 0) for x in xs], marker="o", label=t.target)
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent streams")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_ylabel("aggregate output tokens/s")
    ax2.set_ylabel("throughput / single-stream throughput")
    fig.suptitle(f"{report.model}, {report.max_tokens} output tokens, {report.machine}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(report: BatchingReport) -> str:
    levels = [lv.concurrency for lv in report.targets[0].levels]
    header = "| streams | " + " | ".join(f"{t.target} tok/s | {t.target} ratio" for t in report.targets) + " |"
    sep = "|---|" + "---|---|" * len(report.targets)
    rows = []
    for i, c in enumerate(levels):
        cells = []
        for t in report.targets:
            lv = t.levels[i]
            cells.append(f"{lv.output_tokens_per_s:.1f} | {t.ratio_to_single().get(c, 0):.1f}x")
        rows.append(f"| {c} | " + " | ".join(cells) + " |")
    return "\n".join([header, sep, *rows])
