"""Does a pool's model fit its GPUs? The rule, per device of one replica:

    weights / (tensor_parallel_size x pipeline_parallel_size)
  + RUNTIME_RESERVE_BYTES_PER_DEVICE          (CUDA context, activations, CUDA graphs)
  + KV cache for one max_model_len sequence   (vLLM refuses to start without room for one)
  <= gpu_memory_utilization x device memory

Weights are ``params x bytes per parameter`` for the pool's quantization (or dtype), split over
the replica's devices (tensor x pipeline parallel); params come from the model catalogue or the
pool's ``params_b``. Device memory is the GPU catalogue's figure (or the pool's ``gpu.memory_gb``)
in decimal GB, at or below what each card reports. The KV term is the model's KV bytes per token
(``serve.cost.pool_profile``: 1 byte per value for an fp8 ``kv_cache_dtype``) times this device's
share of the KV heads, ``ceil(kv_heads / TP) / kv_heads`` (vLLM replicates heads when TP exceeds
them), over the pipeline stages; it is left out when the model's KV shape or ``max_model_len`` is
unknown. What is left is the KV room; ``kv_capacity_tokens`` says how many tokens fit in it.

vLLM measures the real reserve when it starts (a profiling forward pass); this check exists to
catch a config that cannot work before a GPU is paid for, not to predict vLLM's numbers exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from serve.catalog.gpus import GpuSpec
from serve.catalog.models import ModelSpec
from serve.config.schema import FrugalConfig, PoolConfig
from serve.constants import DEFAULT_GPU_MEMORY_UTILIZATION
from serve.cost.pool_profile import pool_kv_bytes_per_token, pool_model_spec, pool_weight_bytes
from serve.cost.pricing import pool_gpu_spec, pool_num_devices

BYTES_PER_GB = 1e9
# The CUDA context (~0.5 GB), activations of one 8k-token prefill chunk of an 8B model (~0.5 GB)
# and captured CUDA graphs (a few hundred MB): an estimate, deliberately on the high side.
RUNTIME_RESERVE_BYTES_PER_DEVICE = 1.5e9


@dataclass(frozen=True)
class MemoryFit:
    """One replica's memory per device, in bytes."""

    pool_name: str
    accelerator_type: str
    tensor_parallel_size: int
    budget_bytes: float  # gpu_memory_utilization x device memory
    weight_bytes: float  # this device's share of the weights
    reserve_bytes: float
    kv_bytes_per_token: float | None  # this device's share
    max_model_len: int | None

    @property
    def kv_room_bytes(self) -> float:
        return self.budget_bytes - self.weight_bytes - self.reserve_bytes

    @property
    def kv_capacity_tokens(self) -> int | None:
        if not self.kv_bytes_per_token:
            return None
        return max(0, int(self.kv_room_bytes // self.kv_bytes_per_token))

    @property
    def one_sequence_kv_bytes(self) -> float:
        if self.kv_bytes_per_token is None or self.max_model_len is None:
            return 0.0
        return self.kv_bytes_per_token * self.max_model_len

    @property
    def fits(self) -> bool:
        return self.weight_bytes + self.reserve_bytes + self.one_sequence_kv_bytes <= self.budget_bytes

    def explain(self) -> str:
        """The numbers behind ``fits``, in GB."""
        gb = BYTES_PER_GB
        kv = (
            f" + KV for one {self.max_model_len}-token sequence {self.one_sequence_kv_bytes / gb:.2f} GB"
            if self.one_sequence_kv_bytes
            else ""
        )
        need = self.weight_bytes + self.reserve_bytes + self.one_sequence_kv_bytes
        return (
            f"needs {need / gb:.2f} GB per {self.accelerator_type} (weights {self.weight_bytes / gb:.2f} GB"
            f" at tensor_parallel_size {self.tensor_parallel_size} + runtime reserve {self.reserve_bytes / gb:.2f} GB"
            f"{kv}); its memory budget is {self.budget_bytes / gb:.2f} GB"
        )


def kv_bytes_per_token_per_device(pool: PoolConfig, spec: ModelSpec) -> float | None:
    whole = pool_kv_bytes_per_token(pool, spec)
    if whole is None or spec.num_kv_heads is None:
        return None
    tensor_parallel = pool.engine.tensor_parallel_size
    pipeline_parallel = pool_num_devices(pool) // tensor_parallel
    heads_here = math.ceil(spec.num_kv_heads / tensor_parallel)
    return whole * heads_here / spec.num_kv_heads / pipeline_parallel


def memory_fit(pool: PoolConfig, gpu: GpuSpec, spec: ModelSpec) -> MemoryFit:
    """The per-device arithmetic of the rule above for one pool on one GPU type."""
    engine = pool.engine
    utilization = engine.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION
    return MemoryFit(
        pool_name=pool.name,
        accelerator_type=gpu.name,
        tensor_parallel_size=engine.tensor_parallel_size,
        budget_bytes=utilization * gpu.memory_gb * BYTES_PER_GB,
        weight_bytes=pool_weight_bytes(pool, spec) / pool_num_devices(pool),
        reserve_bytes=RUNTIME_RESERVE_BYTES_PER_DEVICE,
        kv_bytes_per_token=kv_bytes_per_token_per_device(pool, spec),
        max_model_len=engine.max_model_len,
    )


def pool_memory_fit(pool: PoolConfig, model_name: str) -> MemoryFit:
    """``memory_fit`` for the pool's device (catalogue plus ``pool.gpu``) and model (catalogue,
    by engine model or ``model_name``, plus ``pool.params_b``). Raises ``ValueError`` naming the
    pool when either is unknown or the quantization has no known weight size."""
    gpu = pool_gpu_spec(pool)
    spec = pool_model_spec(pool, model_name)
    try:
        return memory_fit(pool, gpu, spec)
    except KeyError as e:
        raise ValueError(f"pool {pool.name!r}: {e.args[0]}") from None


def check_pool_memory(pool: PoolConfig, model_name: str) -> list[str]:
    """Problems with one GPU pool's memory (none for CPU pools)."""
    if pool.num_gpus == 0:
        return []
    try:
        fit = pool_memory_fit(pool, model_name)
    except ValueError as e:
        return [f"{e}; its memory cannot be checked"]
    if fit.fits:
        return []
    return [f"pool {pool.name!r}: too little GPU memory for {pool.engine.model!r}: {fit.explain()}"]


def check_memory(config: FrugalConfig) -> list[str]:
    return [
        problem for model in config.models for pool in model.pools for problem in check_pool_memory(pool, model.name)
    ]
