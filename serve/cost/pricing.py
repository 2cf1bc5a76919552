"""What a pool's replica is and costs: the catalogue's device with the pool's overrides, and the
hourly price of one replica (all its devices)."""

from __future__ import annotations

from serve.catalog.gpus import GPU_CATALOG, GpuSpec
from serve.config.schema import PoolConfig

CPU_ACCELERATOR_TYPE = "CPU"


def pool_num_devices(pool: PoolConfig) -> int:
    """Devices one replica occupies: tensor x pipeline parallel size (1 for a CPU pool)."""
    if pool.accelerator_type == CPU_ACCELERATOR_TYPE:
        return 1
    pipeline = pool.engine.extra.get("pipeline_parallel_size", 1)
    pipeline = pipeline if isinstance(pipeline, int) and pipeline >= 1 else 1
    return pool.engine.tensor_parallel_size * pipeline


def pool_gpu_spec(pool: PoolConfig) -> GpuSpec:
    """The pool's device: the catalogue entry for its accelerator type with ``pool.gpu``'s
    overrides applied (a price override sets the price of the pool's ``capacity``).

    Raises ``ValueError`` naming the pool when the accelerator type is not in the catalogue
    and ``pool.gpu`` does not give memory, bandwidth and price.
    """
    override = pool.gpu
    base = GPU_CATALOG.get(pool.accelerator_type)
    if base is None:
        if override is None or None in (override.memory_gb, override.bandwidth_gb_s, override.usd_per_hour):
            raise ValueError(
                f"pool {pool.name!r}: accelerator {pool.accelerator_type!r} is not in the catalogue "
                f"({sorted(GPU_CATALOG)}); give gpu.memory_gb, gpu.bandwidth_gb_s and gpu.usd_per_hour"
            )
        price = float(override.usd_per_hour)  # type: ignore[arg-type]
        return GpuSpec(
            name=pool.accelerator_type,
            memory_gb=override.memory_gb,  # type: ignore[arg-type]
            bandwidth_gb_s=override.bandwidth_gb_s,  # type: ignore[arg-type]
            dense_fp16_tflops=override.dense_fp16_tflops,
            on_demand_usd_per_hour=price,
            spot_usd_per_hour=price,
            source=f"pool {pool.name} config",
            spot_source=f"pool {pool.name} config",
        )
    if override is None:
        return base
    updates: dict[str, object] = {
        field: value
        for field, value in (
            ("memory_gb", override.memory_gb),
            ("bandwidth_gb_s", override.bandwidth_gb_s),
            ("dense_fp16_tflops", override.dense_fp16_tflops),
        )
        if value is not None
    }
    if override.usd_per_hour is not None:
        price_field = "spot_usd_per_hour" if pool.capacity == "spot" else "on_demand_usd_per_hour"
        updates[price_field] = override.usd_per_hour
    if updates:
        updates["source"] = f"{base.source}; overridden by pool {pool.name}: {sorted(updates)}"
    # model_copy skips validation; re-validate so an override cannot produce a bad spec.
    return GpuSpec.model_validate({**base.model_dump(), **updates})


def pool_price_usd_per_hour(pool: PoolConfig) -> float:
    """One replica's hourly price: ``pool.price_usd_per_hour`` if set, else the device's price
    for the pool's capacity (on-demand or spot) times ``pool_num_devices``."""
    if pool.price_usd_per_hour is not None:
        return pool.price_usd_per_hour
    return pool_gpu_spec(pool).price_usd_per_hour(pool.capacity) * pool_num_devices(pool)
