"""Cloud versus own hardware over 1-3 years, and how many months a saving takes to pay back.

Own hardware: ``n`` devices bought up front (the GPU's price plus a host share: server,
network, rack), then each month their electricity (TDP x average draw x PUE) and operations
(maintenance, support, space, as a yearly fraction of the purchase). Cloud: the fleet's
monthly bill. Both run the same fleet all month, so the comparison holds for a steady
workload; a cloud fleet that scales down at night costs less than its peak fleet.

Every default is an assumption a user should override with their own quotes; where a figure
came from is in its ``source``. Purchase prices of datacenter GPUs are not published as list
prices, so the figures below are market ranges reported in 2025-26, taken at their middle.

Payback (the source documents' ROI model): months = one-off investment / monthly saving,
with saving = monthly cost before - monthly cost after.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from serve.constants import (
    DEFAULT_ELECTRICITY_USD_PER_KWH,
    DEFAULT_HOST_OVERHEAD_FRACTION,
    DEFAULT_OPS_FRACTION_PER_YEAR,
    DEFAULT_POWER_DRAW_FRACTION,
    DEFAULT_PUE,
    HOURS_PER_MONTH,
)

WATTS_PER_KW = 1000.0
MONTHS_PER_YEAR = 12


class HardwareCost(BaseModel):
    """Buying and powering one device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purchase_usd: float = Field(ge=0, description="one device, without its host")
    tdp_watts: float = Field(gt=0, description="board power limit")
    source: str


HARDWARE: dict[str, HardwareCost] = {
    "CPU": HardwareCost(
        purchase_usd=1_000, tdp_watts=100,
        source="assumption: a share of a small server for a 2-vCPU slice (no public figure)",
    ),
    "T4": HardwareCost(
        purchase_usd=2_400, tdp_watts=70,
        source=(
            "price: middle of INR 1.8-2.2 lakh (~$2,200-2,600) reported by clarifai.com/blog/t4-vs-l4; "
            "TDP: NVIDIA T4 data sheet (70 W)"
        ),
    ),
    "L4": HardwareCost(
        purchase_usd=3_300, tdp_watts=72,
        source=(
            "price: middle of INR 2.6-3 lakh (~$3,100-3,600) reported by clarifai.com/blog/t4-vs-l4; "
            "TDP: NVIDIA L4 data sheet (72 W)"
        ),
    ),
    "A10G": HardwareCost(
        purchase_usd=3_500, tdp_watts=150,
        source="assumption: the A10G is AWS-only; taken as its retail sibling, the A10 (150 W data sheet TDP), at ~$3,500",
    ),
    "A100-40G": HardwareCost(
        purchase_usd=8_000, tdp_watts=400,
        source="assumption: low end of the $8-15K used A100 range (mercatus-ai.com); TDP: A100 SXM4 data sheet (400 W)",
    ),
    "A100-80G": HardwareCost(
        purchase_usd=11_500, tdp_watts=400,
        source=(
            "price: middle of $8-15K refurbished/used A100 80GB (mercatus-ai.com, 2026); "
            "TDP: A100 SXM4 data sheet (400 W)"
        ),
    ),
    "H100": HardwareCost(
        purchase_usd=27_500, tdp_watts=700,
        source=(
            "price: middle of $25,000-30,000 new (awesomeagents.ai/hardware/nvidia-h100); "
            "TDP: H100 SXM data sheet (700 W)"
        ),
    ),
}


class TcoAssumptions(BaseModel):
    """The own-hardware side's assumptions; every field may be overridden."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    electricity_usd_per_kwh: float = Field(default=DEFAULT_ELECTRICITY_USD_PER_KWH, ge=0)
    pue: float = Field(default=DEFAULT_PUE, ge=1.0, description="facility power / IT power")
    power_draw_fraction: float = Field(default=DEFAULT_POWER_DRAW_FRACTION, gt=0, le=1,
                                       description="average draw serving inference / TDP")
    host_overhead_fraction: float = Field(default=DEFAULT_HOST_OVERHEAD_FRACTION, ge=0,
                                          description="server, network and rack, per GPU price")
    ops_fraction_per_year: float = Field(default=DEFAULT_OPS_FRACTION_PER_YEAR, ge=0,
                                         description="maintenance, support, space: share of the purchase per year")
    hardware: dict[str, HardwareCost] = Field(default_factory=lambda: dict(HARDWARE))
    years: list[int] = Field(default_factory=lambda: [1, 2, 3], min_length=1)

    def device(self, gpu: str) -> HardwareCost:
        try:
            return self.hardware[gpu]
        except KeyError:
            raise ValueError(f"no purchase price or power for {gpu!r}; give one (known: {sorted(self.hardware)})") from None


class TcoYear(BaseModel):
    model_config = ConfigDict(extra="forbid")

    years: int
    cloud_usd: float
    own_usd: float


class TcoComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gpu: str
    num_devices: int
    cloud_monthly_usd: float
    own_capex_usd: float
    own_monthly_usd: float  # electricity + operations
    own_power_monthly_usd: float
    breakeven_months: float | None  # None: owning never catches up
    rows: list[TcoYear]
    hardware_source: str


def compare_tco(
    gpu: str, num_devices: int, cloud_monthly_usd: float, assumptions: TcoAssumptions | None = None
) -> TcoComparison:
    """Cloud at ``cloud_monthly_usd`` vs buying ``num_devices`` of ``gpu``, for each of
    ``assumptions.years``. Raises ``ValueError`` for an unknown device or a negative count."""
    a = assumptions or TcoAssumptions()
    if num_devices < 0 or cloud_monthly_usd < 0:
        raise ValueError("num_devices and cloud_monthly_usd must not be negative")
    device = a.device(gpu)
    capex = num_devices * device.purchase_usd * (1.0 + a.host_overhead_fraction)
    kw = num_devices * device.tdp_watts * a.power_draw_fraction * a.pue / WATTS_PER_KW
    power_monthly = kw * HOURS_PER_MONTH * a.electricity_usd_per_kwh
    own_monthly = power_monthly + capex * a.ops_fraction_per_year / MONTHS_PER_YEAR
    return TcoComparison(
        gpu=gpu,
        num_devices=num_devices,
        cloud_monthly_usd=cloud_monthly_usd,
        own_capex_usd=capex,
        own_monthly_usd=own_monthly,
        own_power_monthly_usd=power_monthly,
        breakeven_months=payback_months(capex, cloud_monthly_usd, own_monthly),
        rows=[
            TcoYear(years=y, cloud_usd=cloud_monthly_usd * MONTHS_PER_YEAR * y,
                    own_usd=capex + own_monthly * MONTHS_PER_YEAR * y)
            for y in a.years
        ],
        hardware_source=device.source,
    )


def payback_months(investment_usd: float, monthly_cost_before_usd: float, monthly_cost_after_usd: float) -> float | None:
    """Months until a one-off ``investment_usd`` is repaid by the monthly saving
    (before - after). None when there is no saving. Raises ``ValueError`` for negative input."""
    if investment_usd < 0 or monthly_cost_before_usd < 0 or monthly_cost_after_usd < 0:
        raise ValueError("investment and monthly costs must not be negative")
    saving = monthly_cost_before_usd - monthly_cost_after_usd
    if saving <= 0:
        return None
    return investment_usd / saving
