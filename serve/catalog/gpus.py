"""The accelerator catalogue: memory, bandwidth and prices, each with where it came from.

Every figure here is a default. A pool may override any of them in config
(``PoolConfig.gpu``), because prices move and clouds differ. Sources are in
``../shared/reference/gpu-catalog.md`` (AWS on-demand list prices, NVIDIA data sheets).
Spot prices are not quoted by AWS as a fixed figure; the defaults below take 35% of the
on-demand price (the middle of the "50-90% cheaper" range reported for spot capacity) and
say so in ``spot_source``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SPOT_FRACTION_OF_ON_DEMAND = 0.35


class GpuSpec(BaseModel):
    """One accelerator type, per device (a tensor-parallel replica uses several)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Ray's accelerator type name, or CPU")
    memory_gb: float = Field(gt=0)
    bandwidth_gb_s: float = Field(gt=0, description="memory bandwidth; decode is bound by it")
    dense_fp16_tflops: float | None = Field(
        default=None, gt=0, description="dense fp16/bf16 matrix throughput; prefill and large batches are bound by it"
    )
    on_demand_usd_per_hour: float = Field(ge=0, description="per device")
    spot_usd_per_hour: float = Field(ge=0, description="per device")
    supports_bf16: bool = True
    supports_fp8: bool = False
    source: str = ""
    spot_source: str = ""

    def price_usd_per_hour(self, capacity: str = "on_demand") -> float:
        """Per device, for "on_demand" or "spot" capacity."""
        return self.spot_usd_per_hour if capacity == "spot" else self.on_demand_usd_per_hour


def _spot(on_demand: float) -> float:
    return round(on_demand * SPOT_FRACTION_OF_ON_DEMAND, 4)


_SPOT_NOTE = f"estimate: {SPOT_FRACTION_OF_ON_DEMAND:.0%} of on-demand (spot is commonly 50-90% cheaper)"

GPU_CATALOG: dict[str, GpuSpec] = {
    spec.name: spec
    for spec in (
        GpuSpec(
            name="CPU",
            dense_fp16_tflops=0.16,
            # A 2-vCPU general-purpose instance (this project's CI machine class). Bandwidth is
            # a DDR figure for such a slice; CPU pools are profiled, not estimated, in practice.
            memory_gb=24,
            bandwidth_gb_s=20,
            on_demand_usd_per_hour=0.096,
            spot_usd_per_hour=_spot(0.096),
            supports_bf16=False,
            source=(
                "AWS m5.large-class on-demand list price; bandwidth: DDR4 share of 2 vCPUs; "
                "compute: 2 vCPUs x 2.5 GHz x 32 fp32 FLOP/cycle (AVX2 FMA)"
            ),
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="T4",
            dense_fp16_tflops=65,
            memory_gb=16,
            bandwidth_gb_s=320,
            on_demand_usd_per_hour=0.53,
            spot_usd_per_hour=_spot(0.53),
            supports_bf16=False,
            source="NVIDIA T4 data sheet (65 TFLOPS fp16 tensor); AWS g4dn.xlarge on-demand ~$0.53/h",
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="L4",
            dense_fp16_tflops=121,
            memory_gb=24,
            bandwidth_gb_s=300,
            on_demand_usd_per_hour=0.80,
            spot_usd_per_hour=_spot(0.80),
            supports_fp8=True,
            source="NVIDIA L4 data sheet (121 TFLOPS bf16 dense); AWS g6.xlarge on-demand ~$0.80/h",
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="A10G",
            dense_fp16_tflops=70,
            memory_gb=24,
            bandwidth_gb_s=600,
            on_demand_usd_per_hour=1.01,
            spot_usd_per_hour=_spot(1.01),
            source=(
                "AWS g5 documentation; g5.xlarge on-demand ~$1.01/h; compute: commonly quoted ~70 TFLOPS "
                "fp16 tensor (the A10G trades tensor throughput for CUDA cores vs the A10's 125)"
            ),
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="A100-40G",
            dense_fp16_tflops=312,
            memory_gb=40,
            bandwidth_gb_s=1555,
            on_demand_usd_per_hour=2.74,
            spot_usd_per_hour=_spot(2.74),
            source="NVIDIA A100 data sheet (312 TFLOPS bf16 dense); AWS p4d.24xlarge $21.96/h for 8 GPUs",
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="A100-80G",
            dense_fp16_tflops=312,
            memory_gb=80,
            bandwidth_gb_s=2039,
            on_demand_usd_per_hour=3.43,
            spot_usd_per_hour=_spot(3.43),
            source="NVIDIA A100 SXM 80GB data sheet (312 TFLOPS bf16 dense); AWS p4de.24xlarge $27.45/h for 8 GPUs",
            spot_source=_SPOT_NOTE,
        ),
        GpuSpec(
            name="H100",
            dense_fp16_tflops=989,
            memory_gb=80,
            bandwidth_gb_s=3350,
            on_demand_usd_per_hour=6.88,
            spot_usd_per_hour=_spot(6.88),
            supports_fp8=True,
            source="NVIDIA H100 SXM data sheet (989 TFLOPS bf16 dense); AWS p5.48xlarge $55.04/h for 8 GPUs",
            spot_source=_SPOT_NOTE,
        ),
    )
}


def gpu_spec(name: str) -> GpuSpec:
    """The catalogue entry for ``name``; raises ``KeyError`` naming the known types."""
    try:
        return GPU_CATALOG[name]
    except KeyError:
        raise KeyError(f"unknown accelerator type {name!r}; the catalogue has {sorted(GPU_CATALOG)}") from None
