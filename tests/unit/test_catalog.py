"""serve/catalog: every default carries its source, and lookups find model variants."""

from __future__ import annotations

import pytest

from serve.builder import ray_accelerator_types
from serve.catalog.gpus import GPU_CATALOG, gpu_spec
from serve.catalog.models import MODEL_CATALOG, bytes_per_param, model_spec, weight_bytes


@pytest.mark.parametrize("name", sorted(GPU_CATALOG))
def test_gpu_entries_are_complete(name: str) -> None:
    spec = GPU_CATALOG[name]
    assert spec.name == name
    assert spec.source and spec.spot_source
    assert spec.dense_fp16_tflops is not None and spec.dense_fp16_tflops > 0
    assert 0 < spec.spot_usd_per_hour < spec.on_demand_usd_per_hour
    assert spec.price_usd_per_hour("spot") == spec.spot_usd_per_hour
    assert spec.price_usd_per_hour() == spec.on_demand_usd_per_hour
    # Every GPU name is one Ray can place replicas on.
    assert name == "CPU" or name in ray_accelerator_types()


def test_unknown_gpu_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="H100"):
        gpu_spec("H1000")


@pytest.mark.parametrize(
    ("model_id", "params_b"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", 8.03),
        ("/data/models/Qwen2.5-1.5B-Instruct/", 1.54),
        ("Qwen/Qwen2.5-1.5B-Instruct-AWQ", 1.54),
        ("neuralmagic/Llama-3.1-8B-Instruct-FP8-dynamic", 8.03),
        ("hugging-quants/Llama-3.3-70B-Instruct-GPTQ-INT4", 70.6),
        ("org/unknown-model", None),
    ],
)
def test_model_lookup(model_id: str, params_b: float | None) -> None:
    spec = model_spec(model_id)
    assert (spec.params_b if spec else None) == params_b


def test_kv_bytes_and_weights() -> None:
    llama = MODEL_CATALOG["llama-3.1-8b-instruct"]
    assert llama.kv_bytes_per_token() == 2 * 32 * 8 * 128 * 2  # 128 KiB
    assert MODEL_CATALOG["all-minilm-l6-v2"].kv_bytes_per_token() is None
    assert weight_bytes(8.03, "awq") == pytest.approx(8.03e9 * 0.5625)
    assert bytes_per_param(None, "float32") == 4.0
    with pytest.raises(KeyError, match="int3"):
        bytes_per_param("int3")
