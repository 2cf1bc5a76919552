"""The cost calculator's input: a workload, a latency target and the catalogue choices.

Validated once at the edge; a bad value fails with a message naming the field
(``format_validation_error``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serve.catalog.gpus import GPU_CATALOG
from serve.catalog.models import BYTES_PER_PARAM, MODEL_CATALOG, model_spec
from serve.constants import HOURS_PER_MONTH, SECONDS_PER_DAY
from serve.dispatch.types import LatencyTarget

DEFAULT_MODEL = "llama-3.1-8b-instruct"
Usd = Annotated[float, Field(ge=0)]


class Workload(BaseModel):
    """A steady workload of one model and the latency it must meet.

    ``requests_per_day`` arrive at a flat rate scaled by ``peak_to_mean`` (the fleet is sized
    for the peak and runs all month). ``ttft_ms`` and ``tpot_ms`` are the target for the
    steady-state figures of the capacity model (``serve.sim.capacity``). ``gpus`` are the
    catalogue types to consider (default: all); ``price_usd_per_hour`` overrides the
    catalogue's per-device price of some of them (e.g. the source documents' A10 at $0.75).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_day: float = Field(gt=0)
    prompt_tokens: int = Field(ge=1, description="mean prompt length, tokens")
    output_tokens: int = Field(ge=1, description="mean completion length, tokens")
    ttft_ms: float = Field(gt=0, description="time to first token target, ms")
    tpot_ms: float = Field(gt=0, description="time per output token target, ms")
    model: str = Field(default=DEFAULT_MODEL, description="a model of the catalogue (serve/catalog/models.py)")
    quantization: str | None = Field(default=None, description="weight format, e.g. awq or fp8; None: 16-bit")
    peak_to_mean: float = Field(default=1.0, ge=1.0, description="peak rate / mean rate; the fleet is sized for the peak")
    gpus: list[str] = Field(default_factory=lambda: list(GPU_CATALOG), min_length=1)
    capacity: Literal["on_demand", "spot"] = "on_demand"
    price_usd_per_hour: dict[str, Usd] = Field(default_factory=dict, description="per-device price overrides")
    hours_per_month: float = Field(default=HOURS_PER_MONTH, gt=0, le=744)

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        spec = model_spec(model)
        if spec is None:
            raise ValueError(f"{model!r} is not in the model catalogue; known: {sorted(MODEL_CATALOG)}")
        if spec.kv_bytes_per_token() is None:
            raise ValueError(f"{model!r} has no KV-cache shape in the catalogue (an embedding model?)")
        return model

    @field_validator("quantization")
    @classmethod
    def _known_quantization(cls, quantization: str | None) -> str | None:
        if quantization is not None and quantization not in BYTES_PER_PARAM:
            raise ValueError(f"unknown quantization {quantization!r}; known: {sorted(BYTES_PER_PARAM)}")
        return quantization

    @field_validator("gpus")
    @classmethod
    def _known_gpus(cls, gpus: list[str]) -> list[str]:
        unknown = sorted(set(gpus) - set(GPU_CATALOG))
        if unknown:
            raise ValueError(f"{unknown} are not in the GPU catalogue; known: {list(GPU_CATALOG)}")
        return list(dict.fromkeys(gpus))

    @model_validator(mode="after")
    def _prices_for_considered_gpus(self) -> Workload:
        unknown = sorted(set(self.price_usd_per_hour) - set(self.gpus))
        if unknown:
            raise ValueError(f"price_usd_per_hour: {unknown} are not among the GPUs considered {self.gpus}")
        return self

    @property
    def target(self) -> LatencyTarget:
        return LatencyTarget(ttft_ms=self.ttft_ms, tpot_ms=self.tpot_ms)

    @property
    def mean_requests_per_s(self) -> float:
        return self.requests_per_day / SECONDS_PER_DAY

    @property
    def peak_requests_per_s(self) -> float:
        return self.mean_requests_per_s * self.peak_to_mean

    @property
    def requests_per_month(self) -> float:
        return self.requests_per_day * self.hours_per_month / 24.0


def format_validation_error(error: ValidationError, what: str = "workload") -> str:
    """One line per problem, each naming its field: ``invalid workload: ttft_ms: ...``."""
    lines = [f"invalid {what}:"]
    for e in error.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {path}: {e['msg']}")
    return "\n".join(lines)
