"""Simulated pools: what a pool is to the simulator, and the study's pools built from the
GPU and model catalogues with roofline profiles.

A pool's autoscaling settings are derived from its profile the way a user would set them
(``autoscaling_target``): the concurrency at which one replica serves the workload's typical
request fastest while still meeting the latency target becomes ``max_ongoing_requests``
(Ray's per-replica cap; beyond it requests wait at the router rather than slow every stream
on the replica), and the concurrency at which it delivers ``target_fraction`` (95%) of that
throughput becomes ``target_ongoing_requests``.

Cold starts (``COLD_START_S_BY_GPU``) are the time from "scale up" to a serving replica:
instance start, container and weight load. Single-GPU instances (T4, L4, A10G: g4dn, g6, g5
.xlarge) are taken as 90 s; the 8-GPU A100 and H100 instances (p4d, p4de, p5), which take
longer to provision, as 120 s (``serve.constants.DEFAULT_COLD_START_S``). Billing runs from the
scale-up request to the replica's stop, so a cold start is paid for.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from serve.catalog.gpus import gpu_spec
from serve.catalog.models import model_spec, weight_bytes
from serve.config.schema import AutoscalingConfig
from serve.constants import DEFAULT_COLD_START_S
from serve.cost.profile import ThroughputProfile
from serve.cost.roofline import kv_capacity_tokens, roofline_profile
from serve.dispatch.types import LatencyTarget, PoolState
from serve.sim.autoscaler import RayScalingOptions, WorkModel
from serve.sim.capacity import best_operating_point, max_admitted, operating_point

STUDY_MODEL = "llama-3.1-8b-instruct"
STUDY_GPUS: tuple[str, ...] = ("T4", "L4", "A10G", "A100-40G", "A100-80G", "H100")
# bf16 Llama-3.1-8B (16 GB) does not fit a 16 GB T4 with room for KV cache; it runs the AWQ
# 4-bit build there (e.g. hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4).
QUANTIZATION_BY_GPU: dict[str, str] = {"T4": "awq"}
COLD_START_S_BY_GPU: dict[str, float] = {
    "T4": 90.0,
    "L4": 90.0,
    "A10G": 90.0,
    "A100-40G": DEFAULT_COLD_START_S,
    "A100-80G": DEFAULT_COLD_START_S,
    "H100": DEFAULT_COLD_START_S,
}
DEFAULT_TARGET_FRACTION = 0.95
DEFAULT_MAX_REPLICAS = 4000


class SimPoolSpec(BaseModel):
    """One simulated pool: a model on one accelerator type, its replicas' performance and
    price, its latency target and its Ray Serve autoscaling settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    accelerator_type: str
    model: str
    price_usd_per_hour: float = Field(ge=0, description="one replica, all its devices")
    num_devices: int = Field(default=1, ge=1)
    profile: ThroughputProfile
    kv_capacity_tokens: float = Field(gt=0)
    target: LatencyTarget | None = None
    autoscaling: AutoscalingConfig
    scaling: RayScalingOptions = Field(default_factory=RayScalingOptions)
    max_ongoing_requests: int = Field(ge=1, description="Ray's per-replica cap; the rest wait at the router")
    cold_start_s: float = Field(ge=0)
    typical_output_tokens: float = Field(
        default=256.0, gt=0, description="the workload's mean output; prices a request for the work-rate autoscaler"
    )

    def work_model(self) -> WorkModel:
        """Replica-seconds per request at the autoscaling target (``autoscaler.WorkModel``):
        the prompt's prefill, plus the output's share of a replica decoding
        ``target_ongoing_requests`` streams."""
        prefill = 1.0 / self.profile.prefill_tokens_per_s if self.profile.prefill_tokens_per_s else 0.0
        decode_tokens_per_s = self.profile.tokens_per_s(self.autoscaling.target_ongoing_requests)
        return WorkModel(prefill, max(self.typical_output_tokens - 1.0, 0.0) / decode_tokens_per_s)

    def pool_state(self) -> PoolState:
        """A fresh ``PoolState`` (no replica ready) for dispatch policies."""
        return PoolState(
            name=self.name,
            model=self.model,
            price_usd_per_hour=self.price_usd_per_hour,
            profile=self.profile,
            target=self.target,
            replicas=0,
            starting=0,
            min_replicas=self.autoscaling.min_replicas,
            max_replicas=self.autoscaling.max_replicas,
            cold_start_s=self.cold_start_s,
            target_ongoing_requests=self.autoscaling.target_ongoing_requests,
        )


def autoscaling_target(
    profile: ThroughputProfile,
    kv_capacity_tokens: float,
    prompt_tokens: float,
    output_tokens: float,
    target: LatencyTarget | None,
    target_fraction: float = DEFAULT_TARGET_FRACTION,
) -> tuple[int, int]:
    """``(slo_concurrency, target_ongoing_requests)`` for requests of this size.

    ``slo_concurrency`` is the concurrency of the replica's best operating point within the
    target (``capacity.best_operating_point``; the KV-cache limit if none meets it). The
    autoscaling target is the smallest concurrency at which a replica delivers
    ``target_fraction`` of that point's request rate: headroom is taken in *throughput*,
    because near saturation many more requests in flight add little throughput (10% fewer
    requests in flight than the slots would leave only ~2% spare throughput on a saturated
    replica, and queues would grow on any fluctuation).
    """
    best = best_operating_point(profile, kv_capacity_tokens, prompt_tokens, output_tokens, target)
    if best is None:
        c = max_admitted(profile, kv_capacity_tokens, prompt_tokens, output_tokens)
        return c, c
    wanted = target_fraction * best.requests_per_s
    for c in range(1, best.concurrency + 1):
        if operating_point(profile, prompt_tokens, output_tokens, c).requests_per_s >= wanted:
            return best.concurrency, c
    return best.concurrency, best.concurrency


def catalogue_pool(
    gpu_name: str,
    *,
    target: LatencyTarget,
    context_tokens: int,
    typical_prompt_tokens: float,
    typical_output_tokens: float,
    model_id: str = STUDY_MODEL,
    quantization: str | None = None,
    target_fraction: float = DEFAULT_TARGET_FRACTION,
    min_replicas: int = 0,
    max_replicas: int = DEFAULT_MAX_REPLICAS,
    cold_start_s: float | None = None,
    scaling: RayScalingOptions | None = None,
) -> SimPoolSpec:
    """A pool of ``model_id`` on one ``gpu_name`` device per replica, with the catalogue's
    on-demand price and a roofline profile at ``context_tokens`` of average context.

    The autoscaling target and per-replica cap come from ``autoscaling_target`` for the typical
    request. A pool that misses the target even for one typical request
    at a time gets the KV-cache limit for that request as both (dispatch should avoid it).
    Raises ``KeyError`` for an unknown GPU or model, ``ValueError`` if the model does not fit.
    """
    gpu = gpu_spec(gpu_name)
    spec = model_spec(model_id)
    if spec is None:
        raise KeyError(f"model {model_id!r} is not in the catalogue")
    w_bytes = weight_bytes(spec.params_b, quantization)
    kv_bytes = spec.kv_bytes_per_token()
    if kv_bytes is None:
        raise ValueError(f"model {model_id!r} has no KV-cache shape in the catalogue")
    profile = roofline_profile(gpu, w_bytes, kv_bytes, params_b=spec.params_b, context_tokens=context_tokens)
    kv_tokens = kv_capacity_tokens(gpu, w_bytes, kv_bytes)
    slo_concurrency, target_ongoing = autoscaling_target(
        profile, kv_tokens, typical_prompt_tokens, typical_output_tokens, target, target_fraction
    )
    autoscaling = AutoscalingConfig(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        initial_replicas=min_replicas,
        target_ongoing_requests=target_ongoing,
    )
    return SimPoolSpec(
        name=f"{gpu_name}{'-' + quantization if quantization else ''}",
        accelerator_type=gpu_name,
        model=model_id,
        price_usd_per_hour=gpu.on_demand_usd_per_hour,
        profile=profile,
        kv_capacity_tokens=kv_tokens,
        target=target,
        autoscaling=autoscaling,
        scaling=scaling or RayScalingOptions(),
        max_ongoing_requests=max(1, math.ceil(slo_concurrency)),
        typical_output_tokens=typical_output_tokens,
        cold_start_s=COLD_START_S_BY_GPU.get(gpu_name, DEFAULT_COLD_START_S) if cold_start_s is None else cold_start_s,
    )


def study_pools(
    target: LatencyTarget,
    context_tokens: int,
    typical_prompt_tokens: float,
    typical_output_tokens: float,
    gpus: tuple[str, ...] = STUDY_GPUS,
    **options: object,
) -> list[SimPoolSpec]:
    """One pool per GPU type for the study's model (AWQ where ``QUANTIZATION_BY_GPU`` says)."""
    return [
        catalogue_pool(
            g,
            target=target,
            context_tokens=context_tokens,
            typical_prompt_tokens=typical_prompt_tokens,
            typical_output_tokens=typical_output_tokens,
            quantization=QUANTIZATION_BY_GPU.get(g),
            **options,  # type: ignore[arg-type]
        )
        for g in gpus
    ]
