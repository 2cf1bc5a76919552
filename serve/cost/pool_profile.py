"""A configured pool's throughput profile: measured if the config gives one, else the roofline
estimate from the pool's device, model and engine arguments."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from serve.catalog.models import ModelSpec, bytes_per_param, model_spec
from serve.config.schema import PoolConfig
from serve.constants import DEFAULT_GPU_MEMORY_UTILIZATION, DEFAULT_MAX_NUM_SEQS, ROOFLINE_CONTEXT_TOKENS
from serve.cost.pricing import CPU_ACCELERATOR_TYPE, pool_gpu_spec, pool_num_devices
from serve.cost.profile import ThroughputProfile
from serve.cost.roofline import roofline_profile

REPO_ROOT = Path(__file__).resolve().parents[2]
# vLLM's CPU backend takes its KV-cache size from this variable, in GiB.
CPU_KV_SPACE_ENV = "VLLM_CPU_KVCACHE_SPACE"
GIB = 1024**3


def profile_path_candidates(path: str, base_dir: Path | None = None) -> list[Path]:
    """Where a profile path may be: itself if absolute, else under ``base_dir`` (the config
    file's directory) and then under the repository root."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return [p]
    return [d / p for d in (base_dir, REPO_ROOT) if d is not None]


def load_profile(path: str, base_dir: Path | None = None) -> ThroughputProfile:
    """Read a profile JSON (as ``scripts/profile_pool.py`` writes it).

    Raises ``ValueError`` naming the paths tried when none exists, or the file when it is
    not a valid profile."""
    candidates = profile_path_candidates(path, base_dir)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ValueError(f"profile {path!r} not found; tried {[str(c) for c in candidates]}")
    try:
        return ThroughputProfile.model_validate(json.loads(found.read_text()))
    except (json.JSONDecodeError, ValidationError) as e:
        raise ValueError(f"invalid profile {found}: {e}") from e


def pool_model_spec(pool: PoolConfig, model_id: str) -> ModelSpec:
    """The catalogue entry for the pool's engine model (or else ``model_id``), with
    ``pool.params_b`` overriding its size. Raises ``ValueError`` naming the pool when the
    model is unknown and ``params_b`` is not given."""
    spec = model_spec(pool.engine.model) or model_spec(model_id)
    if pool.params_b is not None:
        return spec.model_copy(update={"params_b": pool.params_b}) if spec else ModelSpec(params_b=pool.params_b)
    if spec is None:
        raise ValueError(
            f"pool {pool.name!r}: model {pool.engine.model!r} is not in the catalogue; give params_b "
            "(or a measured profile)"
        )
    return spec


def _is_fp32(pool: PoolConfig) -> bool:
    # "auto" on CPU is fp32 unless the CPU has AVX512-BF16 (serve/engine/vllm_engine.py); the
    # estimate takes the slower case.
    dtype = pool.engine.dtype
    return dtype in ("float32", "float") or (dtype == "auto" and pool.accelerator_type == CPU_ACCELERATOR_TYPE)


def pool_weight_bytes(pool: PoolConfig, spec: ModelSpec) -> float:
    if pool.engine.quantization is None and _is_fp32(pool):
        return spec.params_b * 1e9 * 4.0
    return spec.params_b * 1e9 * bytes_per_param(pool.engine.quantization, pool.engine.dtype)


def pool_kv_bytes_per_token(pool: PoolConfig, spec: ModelSpec) -> float | None:
    kv_dtype = str(pool.engine.extra.get("kv_cache_dtype", "auto"))
    if kv_dtype.startswith("fp8"):
        bytes_per_value = 1.0
    elif _is_fp32(pool):
        bytes_per_value = 4.0
    else:
        bytes_per_value = 2.0
    return spec.kv_bytes_per_token(bytes_per_value)


def pool_profile(pool: PoolConfig, model_id: str, base_dir: Path | None = None) -> ThroughputProfile:
    """The pool's measured profile (``pool.profile``: inline, or a file resolved as in
    ``load_profile``), else the roofline estimate for its device, model and engine arguments.

    ``model_id`` (the served model's name) is the catalogue fallback when the engine's model
    path does not name a catalogued model. Raises ``ValueError`` naming the pool when neither
    a profile nor the facts for an estimate are available, or the model does not fit.
    """
    if isinstance(pool.profile, ThroughputProfile):
        return pool.profile
    if isinstance(pool.profile, str):
        return load_profile(pool.profile, base_dir)
    spec = pool_model_spec(pool, model_id)
    engine = pool.engine
    context = min(ROOFLINE_CONTEXT_TOKENS, engine.max_model_len or ROOFLINE_CONTEXT_TOKENS)
    try:
        kv_cache_bytes = None
        if pool.accelerator_type == CPU_ACCELERATOR_TYPE and CPU_KV_SPACE_ENV in pool.env:
            kv_cache_bytes = float(pool.env[CPU_KV_SPACE_ENV]) * GIB
        return roofline_profile(
            pool_gpu_spec(pool),
            pool_weight_bytes(pool, spec),
            pool_kv_bytes_per_token(pool, spec),
            num_devices=pool_num_devices(pool),
            max_num_seqs=engine.max_num_seqs or DEFAULT_MAX_NUM_SEQS,
            params_b=spec.params_b,
            context_tokens=context,
            gpu_memory_utilization=engine.gpu_memory_utilization or DEFAULT_GPU_MEMORY_UTILIZATION,
            kv_cache_bytes=kv_cache_bytes,
        )
    except ValueError as e:
        raise ValueError(f"pool {pool.name!r}: {e}") from e
