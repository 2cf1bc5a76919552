"""The configuration schema: one YAML file describes the models, their pools and engines.

Every model forbids unknown keys, so a typo fails validation with the path of the offending
key instead of being ignored. Validation happens once, at the edge (``load_config``); the rest
of the code receives these typed objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator, model_validator

from serve.config.dispatch import (
    DispatchConfig,
    GpuOverrideConfig,
    LatencyTargetConfig,
    ScheduleWindowConfig,
    TiersConfig,
)
from serve.constants import DEFAULT_MAX_REQUEST_BODY_BYTES
from serve.cache.config import CacheConfig
from serve.observability.config import MetricsConfig
from serve.tenants.config import TenantsConfig
from serve.cost.profile import ThroughputProfile


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EngineArgsConfig(StrictModel):
    """Arguments passed through to vLLM's ``AsyncEngineArgs``.

    The common arguments are typed here; any other ``AsyncEngineArgs`` field can be given in
    ``extra`` and is checked against vLLM's own dataclass when the engine is built.
    """

    model: str = Field(description="local path or hub id; ${FRUGAL_DATA_DIR} is expanded")
    tokenizer: str | None = None
    dtype: Literal["auto", "bfloat16", "float16", "float32", "half", "float"] = "auto"
    quantization: str | None = Field(default=None, description="e.g. awq, gptq, fp8, awq_marlin")
    max_model_len: Annotated[int, Field(gt=0)] | None = None
    max_num_seqs: Annotated[int, Field(gt=0)] | None = None
    max_num_batched_tokens: Annotated[int, Field(gt=0)] | None = None
    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] | None = None
    enforce_eager: bool = False
    enable_prefix_caching: bool | None = None
    trust_remote_code: bool = False
    seed: int | None = None
    extra: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _extra_not_typed(cls, extra: dict[str, JsonValue]) -> dict[str, JsonValue]:
        # A typed argument given through `extra` would skip its validation.
        typed = set(cls.model_fields) - {"extra"}
        overlap = sorted(typed & set(extra))
        if overlap:
            raise ValueError(f"set {overlap} as typed engine arguments, not in extra")
        return extra

    def to_engine_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for ``AsyncEngineArgs``, unset values left to vLLM."""
        kwargs = self.model_dump(exclude={"extra"}, exclude_none=True)
        kwargs.update(self.extra)
        return kwargs


class AutoscalingConfig(StrictModel):
    """Ray Serve's autoscaling policy for one pool."""

    min_replicas: Annotated[int, Field(ge=0)] = 1
    max_replicas: Annotated[int, Field(ge=1)] = 1
    initial_replicas: Annotated[int, Field(ge=0)] | None = None
    target_ongoing_requests: Annotated[float, Field(gt=0)] = 16
    upscale_delay_s: Annotated[float, Field(ge=0)] = 30.0
    downscale_delay_s: Annotated[float, Field(ge=0)] = 600.0

    @model_validator(mode="after")
    def _bounds(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class PoolConfig(StrictModel):
    """One pool: a model's engine on one accelerator type, with its replicas.

    Cost fields: a replica costs ``price_usd_per_hour`` if given, else the per-device price
    (``gpu.usd_per_hour``, else the catalogue's for ``capacity``) times its devices
    (``serve.cost.pricing``). ``profile`` is the pool's measured throughput, inline or a JSON
    file (relative paths: the config's directory, then the repository); without it the cost
    model uses a roofline estimate from the catalogue (``serve.cost.pool_profile``).
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    accelerator_type: str = Field(default="CPU", description='"CPU" or a Ray accelerator type, e.g. "A10G"')
    engine: EngineArgsConfig
    num_replicas: Annotated[int, Field(ge=1)] | None = None
    autoscaling: AutoscalingConfig | None = None
    num_cpus: Annotated[float, Field(ge=0)] = 1.0
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 256
    env: dict[str, str] = Field(default_factory=dict, description="environment of the engine replicas")
    capacity: Literal["on_demand", "spot"] = "on_demand"
    gpu: GpuOverrideConfig | None = Field(default=None, description="per-device overrides of the catalogue")
    price_usd_per_hour: Annotated[float, Field(ge=0)] | None = Field(
        default=None, description="the whole replica's price; overrides every other price"
    )
    params_b: Annotated[float, Field(gt=0)] | None = Field(
        default=None, description="parameters in billions, for a model the catalogue does not list"
    )
    profile: ThroughputProfile | str | None = Field(
        default=None, description="measured throughput: inline, or a JSON file path (deployments/profiles/)"
    )
    latency_target: LatencyTargetConfig | None = Field(default=None, description="overrides the model's")
    schedule: list[ScheduleWindowConfig] = Field(
        default_factory=list, description="windows keeping the minimum replicas; outside them the minimum is 0"
    )

    @model_validator(mode="after")
    def _replicas(self) -> PoolConfig:
        if self.num_replicas is not None and self.autoscaling is not None:
            raise ValueError("give either num_replicas or autoscaling, not both")
        if self.schedule and self.autoscaling is not None and self.autoscaling.min_replicas == 0:
            raise ValueError("a schedule keeps min_replicas inside its windows; set min_replicas >= 1")
        return self

    @property
    def min_replicas(self) -> int:
        """The configured minimum (inside schedule windows, if any)."""
        return self.autoscaling.min_replicas if self.autoscaling is not None else (self.num_replicas or 1)

    @property
    def max_replicas(self) -> int:
        return self.autoscaling.max_replicas if self.autoscaling is not None else (self.num_replicas or 1)

    @property
    def num_gpus(self) -> int:
        return 0 if self.accelerator_type == "CPU" else self.engine.tensor_parallel_size


class ModelConfig(StrictModel):
    name: str = Field(min_length=1, description="the name clients send as `model`")
    task: Literal["chat", "embed"] = "chat"
    pools: list[PoolConfig] = Field(min_length=1)
    latency_target: LatencyTargetConfig | None = Field(default=None, description="default for its pools")

    @field_validator("pools")
    @classmethod
    def _unique_pools(cls, pools: list[PoolConfig]) -> list[PoolConfig]:
        names = [p.name for p in pools]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate pool names: {dupes}")
        return pools


class RouterConfig(StrictModel):
    num_replicas: Annotated[int, Field(ge=1)] = 1
    num_cpus: Annotated[float, Field(ge=0)] = 0.5
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 1024
    max_request_body_bytes: Annotated[int, Field(gt=0)] = DEFAULT_MAX_REQUEST_BODY_BYTES


class FrugalConfig(StrictModel):
    """The whole application: the router and every model it serves."""

    router: RouterConfig = Field(default_factory=RouterConfig)
    models: list[ModelConfig] = Field(min_length=1)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    tiers: TiersConfig | None = None
    tenants: TenantsConfig = Field(default_factory=TenantsConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @field_validator("models")
    @classmethod
    def _unique_models(cls, models: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate model names: {dupes}")
        pool_names = [p.name for m in models for p in m.pools]
        dupes = sorted({n for n in pool_names if pool_names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique across models: {dupes}")
        return models

    @model_validator(mode="after")
    def _tenant_models(self) -> FrugalConfig:
        self.tenants.check_models(m.name for m in self.models)
        return self

    @model_validator(mode="after")
    def _cache_models(self) -> FrugalConfig:
        tasks = {m.name: m.task for m in self.models}
        semantic = self.cache.semantic
        if self.cache.enabled and semantic.models:
            if tasks.get(semantic.embedding_model) != "embed":
                raise ValueError(f"cache.semantic.embedding_model {semantic.embedding_model!r} is not a served embedding model")
            unknown = sorted(name for name in semantic.models if tasks.get(name) != "chat")
            if unknown:
                raise ValueError(f"cache.semantic.models {unknown} are not served chat models")
        return self

    @model_validator(mode="after")
    def _tiers(self) -> FrugalConfig:
        if self.tiers is None:
            return self
        tasks = {m.name: m.task for m in self.models}
        for tier, name in self.tiers.models().items():
            if name not in tasks:
                raise ValueError(f"tiers.{tier}: no model named {name!r}; models are {sorted(tasks)}")
            if tasks[name] != "chat":
                raise ValueError(f"tiers.{tier}: {name!r} has task {tasks[name]!r}; tiers need chat models")
        clashes = sorted(set(self.tiers.aliases) & set(tasks))
        if clashes:
            raise ValueError(f"tiers.aliases {clashes} are also model names")
        return self

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)
