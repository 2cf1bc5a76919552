"""The quantisation benchmark: one chat model served full-precision and 4-bit by offline vLLM
engines with identical engine arguments, compared on weights memory, single-stream and
batched output tokens/s, and greedy answer agreement on a fixed prompt set.

Each pool is measured by its own call of ``measure_pool`` (one engine at a time, so the
two never share the CPU), and its result is saved as ``run-<label>.json``; ``build_report``
then compares the saved runs against the reference. vLLM is imported inside functions, and
``measure_pool`` must be called under ``if __name__ == "__main__":`` (vLLM spawns its engine
core).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

DEFAULT_MAX_TOKENS = 32
DEFAULT_NUM_SINGLE_REQUESTS = 2
DEFAULT_BATCH_CONCURRENCY = 16
DEFAULT_AGREEMENT_MAX_TOKENS = 16
FIRST_N_TOKENS: tuple[int, ...] = (1, 4, 8, 16)
KV_CACHE_SPACE_GIB = "1"

_COUNTRIES = (
    "France", "Germany", "Italy", "Spain", "Portugal", "Japan", "China", "India", "Brazil", "Canada",
    "Australia", "Egypt", "Kenya", "Mexico", "Russia", "Norway", "Sweden", "Greece", "Turkey", "Argentina",
)  # fmt: skip
_TERMS = (
    "photosynthesis", "gravity", "a black hole", "inflation", "DNA", "an atom", "a volcano",
    "democracy", "the internet", "a vaccine",
)  # fmt: skip
_WORDS = ("happy", "fast", "big", "smart", "cold", "brave", "quiet", "angry", "tiny", "bright")
_TOPICS = ("the sea", "autumn", "a cat", "the moon", "coffee", "rain", "mountains", "a city at night", "spring", "snow")


def agreement_prompts() -> list[str]:
    """The fixed prompt set (60 prompts: facts, arithmetic, definitions, synonyms, poems)."""
    prompts = [f"What is the capital of {c}?" for c in _COUNTRIES]
    prompts += [f"What is {a} plus {b}? Answer with the number." for a, b in zip(range(3, 40, 4), range(7, 90, 9))]
    prompts += [f"Explain what {t} is in one sentence." for t in _TERMS]
    prompts += [f"Give one synonym for the word '{w}'." for w in _WORDS]
    prompts += [f"Write a short poem about {t}." for t in _TOPICS]
    return prompts


class SpeedResult(BaseModel):
    concurrency: int
    num_requests: int
    output_tokens: int
    elapsed_s: float
    output_tokens_per_s: float


class MemoryResult(BaseModel):
    """Memory of the loaded model in the engine worker, after vLLM's post-load processing.

    ``tensor_bytes``: the parameters and buffers the model still holds (each storage once).
    ``prepacked_bytes``: linear weights that vLLM's CPU path moved into oneDNN handles, where
    no tensor shows them, counted from their shapes and dtype. ``weights_bytes`` is the sum.
    RSS is measured on the worker process (it also holds the KV cache and the runtime)."""

    tensor_bytes: int
    prepacked_bytes: int
    worker_rss_bytes_loaded: int
    worker_rss_bytes_after: int | None = None

    @property
    def weights_bytes(self) -> int:
        return self.tensor_bytes + self.prepacked_bytes


class Generation(BaseModel):
    prompt: str
    text: str
    token_ids: list[int]


class PoolRun(BaseModel):
    """One pool's measurements; fields are filled by the phases that ran."""

    label: str
    model_dir: str
    dtype: str
    quantization: str | None = None
    engine_start_s: float | None = None
    # 1-minute load average when the measurements started and ended: the CPU is shared.
    load_average_1m: tuple[float, float] | None = None
    memory: MemoryResult | None = None
    single: SpeedResult | None = None
    batched: SpeedResult | None = None
    generations: list[Generation] = Field(default_factory=list)


class Agreement(BaseModel):
    reference: str
    candidate: str
    num_prompts: int
    exact_match_rate: float
    mean_common_prefix_tokens: float
    first_n_match_rate: dict[int, float]


class QuantReport(BaseModel):
    machine: str
    runs: list[PoolRun]
    agreement: list[Agreement]


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def compare(reference: PoolRun, candidate: PoolRun, first_n: Sequence[int] = FIRST_N_TOKENS) -> Agreement:
    """Greedy answer agreement of ``candidate`` with ``reference`` over their common prompts.

    ``exact_match_rate``: share of prompts with identical token sequences.
    ``first_n_match_rate[n]``: share of prompts whose first n tokens agree (a sequence that
    ends earlier agrees on its first n tokens only if the other is identical that far and ends
    at the same place). ``mean_common_prefix_tokens``: the tokens generated before the first
    difference, averaged. Raises ValueError if the runs share no prompt."""
    ref = {g.prompt: g.token_ids for g in reference.generations}
    pairs = [(ref[g.prompt], g.token_ids) for g in candidate.generations if g.prompt in ref]
    if not pairs:
        raise ValueError(f"{reference.label} and {candidate.label} have no prompt in common")

    def agree_first(a: list[int], b: list[int], n: int) -> bool:
        return a[:n] == b[:n]

    return Agreement(
        reference=reference.label,
        candidate=candidate.label,
        num_prompts=len(pairs),
        exact_match_rate=sum(a == b for a, b in pairs) / len(pairs),
        mean_common_prefix_tokens=sum(common_prefix(a, b) for a, b in pairs) / len(pairs),
        first_n_match_rate={n: sum(agree_first(a, b, n) for a, b in pairs) / len(pairs) for n in first_n},
    )


def _model_bytes(model: Any) -> tuple[int, int, int]:
    """(tensor bytes, prepacked bytes, pid) of the model: runs inside the engine worker."""
    seen: set[int] = set()
    tensor_bytes = 0
    for t in list(model.parameters()) + list(model.buffers()):
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen:  # tied weights share one storage
            continue
        seen.add(ptr)
        tensor_bytes += t.untyped_storage().nbytes()
    prepacked = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        # vLLM's CPU unquantised linear keeps its weight in a oneDNN handle (cpu_linear) and
        # leaves an empty parameter behind.
        if hasattr(module, "cpu_linear") and weight is not None and weight.numel() == 0:
            rows = getattr(module, "output_size_per_partition", 0)
            cols = getattr(module, "input_size_per_partition", 0)
            prepacked += rows * cols * weight.element_size()
    return tensor_bytes, prepacked, os.getpid()


def _rss(pid: int) -> int:
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def _timed_chat(llm: Any, prompts: Sequence[str], params: Any) -> tuple[list[Any], float]:
    start = time.perf_counter()
    outputs = llm.chat([[{"role": "user", "content": p}] for p in prompts], params, use_tqdm=False)
    return outputs, time.perf_counter() - start


def _speed(outputs: list[Any], elapsed_s: float, concurrency: int) -> SpeedResult:
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    return SpeedResult(
        concurrency=concurrency,
        num_requests=len(outputs),
        output_tokens=tokens,
        elapsed_s=elapsed_s,
        output_tokens_per_s=tokens / elapsed_s,
    )


def measure_pool(
    run: PoolRun,
    phases: Sequence[str],
    max_tokens: int = DEFAULT_MAX_TOKENS,
    num_single_requests: int = DEFAULT_NUM_SINGLE_REQUESTS,
    batch_concurrency: int = DEFAULT_BATCH_CONCURRENCY,
    agreement_max_tokens: int = DEFAULT_AGREEMENT_MAX_TOKENS,
    prompt_slice: slice = slice(None),
    log: Callable[[str], None] = print,
) -> PoolRun:
    """Start one offline vLLM engine for ``run.model_dir`` and run ``phases`` ("speed":
    single-stream then batched throughput with a fixed output length; "agreement": greedy
    answers to ``agreement_prompts()[prompt_slice]``, so a slow pool can answer the set over
    several short runs). Returns ``run`` updated; the engine is shut down."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", KV_CACHE_SPACE_GIB)
    os.environ["VLLM_ALLOW_INSECURE_SERIALIZATION"] = "1"  # apply_model sends a function
    from vllm import LLM, SamplingParams

    prompts = agreement_prompts()
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    llm = LLM(
        model=run.model_dir,
        dtype=run.dtype,
        max_model_len=2048,
        max_num_seqs=max(batch_concurrency, 32),
        enforce_eager=True,
        seed=0,
    )
    try:
        update: dict[str, Any] = {"engine_start_s": time.perf_counter() - start}
        update["quantization"] = llm.llm_engine.vllm_config.model_config.quantization
        tensor_bytes, prepacked_bytes, worker_pid = llm.apply_model(_model_bytes)[0]
        memory = MemoryResult(
            tensor_bytes=tensor_bytes, prepacked_bytes=prepacked_bytes, worker_rss_bytes_loaded=_rss(worker_pid)
        )
        log(f"{run.label}: engine up in {update['engine_start_s']:.0f} s, weights {memory.weights_bytes / 2**20:.0f} MiB")
        fixed = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
        if "speed" in phases:
            _timed_chat(llm, prompts[:1], SamplingParams(temperature=0.0, max_tokens=4))  # warm-up
            outs, elapsed = [], 0.0
            for p in prompts[:num_single_requests]:
                o, t = _timed_chat(llm, [p], fixed)
                outs += o
                elapsed += t
            update["single"] = _speed(outs, elapsed, concurrency=1)
            log(f"{run.label}: 1 stream {update['single'].output_tokens_per_s:.1f} tok/s")
            o, t = _timed_chat(llm, prompts[:batch_concurrency], fixed)
            update["batched"] = _speed(o, t, concurrency=batch_concurrency)
            log(f"{run.label}: {batch_concurrency} streams {update['batched'].output_tokens_per_s:.1f} tok/s")
        if "agreement" in phases:
            greedy = SamplingParams(temperature=0.0, max_tokens=agreement_max_tokens)
            asked = prompts[prompt_slice]
            outs, t = _timed_chat(llm, asked, greedy)
            update["generations"] = [
                Generation(prompt=p, text=o.outputs[0].text, token_ids=list(o.outputs[0].token_ids))
                for p, o in zip(asked, outs)
            ]
            log(f"{run.label}: {len(outs)} greedy answers in {t:.0f} s")
        memory.worker_rss_bytes_after = _rss(worker_pid)
        update["memory"] = memory
        update["load_average_1m"] = (load_start, os.getloadavg()[0])
        return run.model_copy(update=update)
    finally:
        llm.llm_engine.engine_core.shutdown()


def merge(old: PoolRun | None, new: PoolRun) -> PoolRun:
    """``new`` with the phases it did not run taken from ``old`` (same label); generations
    are united by prompt (``new`` wins) and kept in the order of ``agreement_prompts()``."""
    if old is None:
        return new
    kept = {k: v for k, v in new.model_dump().items() if v not in (None, [])}
    merged = PoolRun.model_validate({**old.model_dump(), **kept})
    by_prompt = {g.prompt: g for g in old.generations} | {g.prompt: g for g in new.generations}
    order = {p: i for i, p in enumerate(agreement_prompts())}
    generations = sorted(by_prompt.values(), key=lambda g: order.get(g.prompt, len(order)))
    return merged.model_copy(update={"generations": generations})


def run_path(out_dir: Path, label: str) -> Path:
    return out_dir / f"run-{label}.json"


def load_run(path: Path) -> PoolRun | None:
    return PoolRun.model_validate_json(path.read_text()) if path.is_file() else None


def build_report(runs: list[PoolRun], reference: str) -> QuantReport:
    """Compare every run with generations against the ``reference`` run."""
    ref = next((r for r in runs if r.label == reference), None)
    if ref is None:
        raise ValueError(f"no run labelled {reference!r}; have {[r.label for r in runs]}")
    agreement = [compare(ref, r) for r in runs if r.label != reference and r.generations and ref.generations]
    machine = f"{platform.machine()} {os.cpu_count()} cpus, {platform.processor() or platform.system()}"
    return QuantReport(machine=machine, runs=runs, agreement=agreement)


def table(report: QuantReport) -> str:
    """A Markdown table: one row per pool."""
    agree = {a.candidate: a for a in report.agreement}
    lines = [
        "| pool | dtype | quantization | weights MiB | worker RSS MiB | 1 stream tok/s | batched tok/s | exact match | first 8 tokens agree |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.runs:
        a = agree.get(r.label)
        mem = r.memory
        lines.append(
            "| "
            + " | ".join(
                [
                    r.label,
                    r.dtype,
                    r.quantization or "none",
                    f"{mem.weights_bytes / 2**20:.0f}" if mem else "-",
                    f"{(mem.worker_rss_bytes_after or mem.worker_rss_bytes_loaded) / 2**20:.0f}" if mem else "-",
                    f"{r.single.output_tokens_per_s:.1f}" if r.single else "-",
                    f"{r.batched.output_tokens_per_s:.1f} ({r.batched.concurrency})" if r.batched else "-",
                    f"{a.exact_match_rate:.0%}" if a else "reference",
                    f"{a.first_n_match_rate.get(8, float('nan')):.0%}" if a else "reference",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def plot(report: QuantReport, path: Path) -> None:
    """Four panels: weights memory, single-stream and batched tok/s, answer agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.label for r in report.runs]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4))
    panels = [
        ("weights (MiB)", [r.memory.weights_bytes / 2**20 if r.memory else 0 for r in report.runs]),
        ("1 stream (output tok/s)", [r.single.output_tokens_per_s if r.single else 0 for r in report.runs]),
        ("batched (output tok/s)", [r.batched.output_tokens_per_s if r.batched else 0 for r in report.runs]),
    ]
    for ax, (title, values) in zip(axes, panels):
        ax.bar(labels, values, color=["tab:blue", "tab:orange", "tab:green"][: len(labels)])
        ax.set_title(title)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.1f}", (i, v), ha="center", va="bottom")
    ax = axes[3]
    for a in report.agreement:
        ns = sorted(a.first_n_match_rate)
        ax.plot(ns, [a.first_n_match_rate[n] for n in ns], marker="o", label=f"{a.candidate} vs {a.reference}")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("first n output tokens")
    ax.set_title("greedy answers agreeing")
    ax.legend(fontsize=8)
    fig.suptitle(report.machine)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
