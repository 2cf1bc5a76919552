"""A throughput profile estimated from hardware figures, for pools not yet measured.

The model (all times per decode step of a batch of ``c`` sequences on one replica of ``n``
devices):

    step(c) = W / (e * B * n)                 weights are read once per step, shared by the batch
            + c * ctx * K / (e * B * n)       each sequence reads its KV cache
            + c * 2 * P / (u * F * n)         each sequence's matrix work
    tokens_per_s(c) = c / step(c)             one token per sequence per step

W weight bytes, K KV-cache bytes per token, ctx average context tokens, P parameters,
B memory bandwidth and F dense fp16 FLOP/s per device, e the fraction of bandwidth decode
reaches (0.75: measured single-stream runs), u the fraction of compute a decode step's
per-sequence work reaches (0.11, calibrated below). This is the saturation curve
``T(c) = T_max * c / (c + c_half)`` with ``T_max = 1 / per-sequence cost`` and
``c_half = weight time / per-sequence cost``: near-linear growth while the weight read
dominates, flattening as per-sequence work takes over. Beyond ``c_max`` = min(max_num_seqs,
KV-cache capacity / ctx) a replica is saturated and further requests wait.

Calibration (constants in ``serve.constants``): Llama-3.1-8B bf16 on one H100 gives 151 tok/s
at 1 stream, 1,665 at 16 and 4,420 at 256 (vLLM's default max_num_seqs), against the
reference 154, 1,384 and ~5,300 (``shared/reference/gpu-catalog.md``): within 1.25x.

Time to first token for a short prompt at concurrency ``c`` is taken as 1.5 steps (the
prompt joins the batch at the next step boundary, half a step away on average, and its first
token comes out of that step). Prefill runs at ``uP * F * n / (2 * P)`` prompt tokens/s
(compute-bound, uP = 0.5), which ``ThroughputProfile.ttft_ms`` adds per prompt token.

The estimate ignores tensor-parallel communication, scheduler and sampling overheads and
CPU-side costs; on CPU pools, whose per-step overhead dominates small models, it is
optimistic, so profile them (``scripts/profile_pool.py``).
"""

from __future__ import annotations

from serve.catalog.gpus import GpuSpec
from serve.constants import (
    DEFAULT_FLOPS_PER_BANDWIDTH_BYTE,
    DEFAULT_GPU_MEMORY_UTILIZATION,
    DEFAULT_MAX_NUM_SEQS,
    ROOFLINE_BANDWIDTH_EFFICIENCY,
    ROOFLINE_CONTEXT_TOKENS,
    ROOFLINE_DECODE_COMPUTE_UTILISATION,
    ROOFLINE_PREFILL_COMPUTE_UTILISATION,
)
from serve.cost.profile import ProfilePoint, ThroughputProfile

GB = 1e9
TFLOPS = 1e12
# Steps from a short prompt's arrival to its first token (see the module docstring).
TTFT_STEPS = 1.5


def _levels(max_concurrency: int) -> list[int]:
    """1, 2, 4, ... below ``max_concurrency``, then ``max_concurrency`` itself."""
    levels, c = [], 1
    while c < max_concurrency:
        levels.append(c)
        c *= 2
    return [*levels, max_concurrency]


def kv_capacity_tokens(
    gpu: GpuSpec,
    weight_bytes: float,
    kv_bytes_per_token: float,
    num_devices: int = 1,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    kv_cache_bytes: float | None = None,
) -> float:
    """Tokens of KV cache one replica holds: the memory vLLM may use, minus the weights
    (or ``kv_cache_bytes`` when the engine is told its KV space, as on CPU)."""
    if kv_cache_bytes is None:
        kv_cache_bytes = gpu.memory_gb * GB * num_devices * gpu_memory_utilization - weight_bytes
    return kv_cache_bytes / kv_bytes_per_token


def roofline_profile(
    gpu: GpuSpec,
    weight_bytes: float,
    kv_bytes_per_token: float | None,
    num_devices: int = 1,
    max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
    *,
    params_b: float | None = None,
    context_tokens: int = ROOFLINE_CONTEXT_TOKENS,
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
    kv_cache_bytes: float | None = None,
    bandwidth_efficiency: float = ROOFLINE_BANDWIDTH_EFFICIENCY,
    decode_compute_utilisation: float = ROOFLINE_DECODE_COMPUTE_UTILISATION,
    prefill_compute_utilisation: float = ROOFLINE_PREFILL_COMPUTE_UTILISATION,
) -> ThroughputProfile:
    """The estimated profile of one replica (formula in the module docstring).

    ``params_b`` defaults to ``weight_bytes / 2e9`` (16-bit weights); give it for quantised
    models, whose matrix work is that of their parameter count. Without
    ``kv_bytes_per_token`` the KV-cache terms are dropped and ``max_num_seqs`` alone bounds
    the batch. Raises ``ValueError`` when the weights leave no room for KV cache.
    """
    if weight_bytes <= 0 or num_devices < 1 or max_num_seqs < 1 or context_tokens < 1:
        raise ValueError("weight_bytes, num_devices, max_num_seqs and context_tokens must be positive")
    params = params_b * 1e9 if params_b is not None else weight_bytes / 2.0
    bandwidth = bandwidth_efficiency * gpu.bandwidth_gb_s * GB * num_devices  # bytes/s
    tflops = gpu.dense_fp16_tflops or gpu.bandwidth_gb_s * DEFAULT_FLOPS_PER_BANDWIDTH_BYTE / 1000
    flops = tflops * TFLOPS * num_devices  # FLOP/s

    max_concurrency = max_num_seqs
    kv_per_seq_s = 0.0
    if kv_bytes_per_token is not None:
        capacity = kv_capacity_tokens(
            gpu, weight_bytes, kv_bytes_per_token, num_devices, gpu_memory_utilization, kv_cache_bytes
        )
        if capacity < context_tokens:
            raise ValueError(
                f"{weight_bytes / GB:.1f} GB of weights leave room for {max(capacity, 0):.0f} tokens of KV "
                f"cache on {num_devices} x {gpu.name} ({gpu.memory_gb} GB), fewer than one {context_tokens}-token "
                "sequence"
            )
        max_concurrency = max(1, min(max_num_seqs, int(capacity // context_tokens)))
        kv_per_seq_s = context_tokens * kv_bytes_per_token / bandwidth
    elif weight_bytes > gpu.memory_gb * GB * num_devices * gpu_memory_utilization:
        raise ValueError(f"{weight_bytes / GB:.1f} GB of weights do not fit on {num_devices} x {gpu.name}")

    weights_s = weight_bytes / bandwidth
    per_seq_s = kv_per_seq_s + 2.0 * params / (decode_compute_utilisation * flops)

    def step_s(c: int) -> float:
        return weights_s + c * per_seq_s

    points = [
        ProfilePoint(concurrency=c, output_tokens_per_s=c / step_s(c), ttft_ms=1000.0 * TTFT_STEPS * step_s(c))
        for c in _levels(max_concurrency)
    ]
    prefill_tokens_per_s = prefill_compute_utilisation * flops / (2.0 * params)
    return ThroughputProfile(
        points=points,
        prefill_tokens_per_s=prefill_tokens_per_s,
        source=(
            f"roofline: {num_devices} x {gpu.name}, {weight_bytes / GB:.2f} GB weights, "
            f"{params / 1e9:.2f}B params, ctx {context_tokens}, max_num_seqs {max_num_seqs}"
        ),
    )
