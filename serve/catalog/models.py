"""Model facts the cost model and placement checks need: parameters and KV-cache shape.

Weights read per decoded token dominate decode time (the roofline), and weights plus KV cache
must fit in an accelerator's memory. Figures are from each model's published config.json.
A pool whose model is not listed gives ``params_b`` (and optionally the KV shape) in config.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    params_b: float = Field(gt=0, description="parameters, billions")
    num_layers: int | None = Field(default=None, gt=0)
    num_kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)

    def kv_bytes_per_token(self, bytes_per_value: float = 2.0) -> float | None:
        """K and V for every layer, for one token; None if the shape is unknown."""
        if self.num_layers is None or self.num_kv_heads is None or self.head_dim is None:
            return None
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * bytes_per_value


# Keyed by the last path component of the model id, lower-cased, so a hub id, a local path
# and an AWQ/FP8 variant's name all find the base entry (see ``model_spec``).
MODEL_CATALOG: dict[str, ModelSpec] = {
    "smollm2-135m-instruct": ModelSpec(params_b=0.135, num_layers=30, num_kv_heads=3, head_dim=64),
    "all-minilm-l6-v2": ModelSpec(params_b=0.0227, num_layers=6),
    "bge-base-en-v1.5": ModelSpec(params_b=0.109, num_layers=12),
    "qwen2.5-1.5b-instruct": ModelSpec(params_b=1.54, num_layers=28, num_kv_heads=2, head_dim=128),
    "qwen2.5-7b-instruct": ModelSpec(params_b=7.62, num_layers=28, num_kv_heads=4, head_dim=128),
    "llama-3.1-8b-instruct": ModelSpec(params_b=8.03, num_layers=32, num_kv_heads=8, head_dim=128),
    "llama-3.1-70b-instruct": ModelSpec(params_b=70.6, num_layers=80, num_kv_heads=8, head_dim=128),
    "llama-3.3-70b-instruct": ModelSpec(params_b=70.6, num_layers=80, num_kv_heads=8, head_dim=128),
}

# Suffixes that name a quantised variant of a catalogued model.
_VARIANT_SUFFIXES = ("-awq", "-gptq", "-fp8", "-int4", "-int8", "-gptq-int4", "-gptq-int8", "-4bit", "-fp8-dynamic")

# Bytes stored per parameter. 4-bit formats carry a scale (and zero point) per group of 128
# weights, about 0.06 bytes per parameter more than the packed nibbles.
BYTES_PER_PARAM: dict[str, float] = {
    "float32": 4.0,
    "float": 4.0,
    "bfloat16": 2.0,
    "float16": 2.0,
    "half": 2.0,
    "auto": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "awq": 0.5625,
    "awq_marlin": 0.5625,
    "gptq": 0.5625,
    "gptq_marlin": 0.5625,
    "bitsandbytes": 0.5625,
}


def model_spec(model_id: str) -> ModelSpec | None:
    """The catalogue entry for a hub id or local path, quantised variants included."""
    key = model_id.rstrip("/").rsplit("/", 1)[-1].lower()
    if key in MODEL_CATALOG:
        return MODEL_CATALOG[key]
    for suffix in sorted(_VARIANT_SUFFIXES, key=len, reverse=True):
        if key.endswith(suffix) and key[: -len(suffix)] in MODEL_CATALOG:
            return MODEL_CATALOG[key[: -len(suffix)]]
    return None


def bytes_per_param(quantization: str | None, dtype: str = "auto") -> float:
    """Bytes per parameter for vLLM's ``quantization`` (if any) or else ``dtype``."""
    if quantization:
        try:
            return BYTES_PER_PARAM[quantization]
        except KeyError:
            raise KeyError(f"no weight size known for quantization {quantization!r}") from None
    return BYTES_PER_PARAM.get(dtype, 2.0)


def weight_bytes(params_b: float, quantization: str | None, dtype: str = "auto") -> float:
    return params_b * 1e9 * bytes_per_param(quantization, dtype)
