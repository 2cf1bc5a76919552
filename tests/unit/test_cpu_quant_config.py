"""The CPU config with a 4-bit and a full-precision pool of the same model validates and
builds (no Ray, no engine), and names the two models scripts/prepare_models.py builds."""

from __future__ import annotations

from pathlib import Path

from serve.builder import build_app
from serve.config.loader import DEFAULT_CONFIG_PATH, load_config
from serve.dispatch.state import pool_state_template

CPU_QUANT = Path(DEFAULT_CONFIG_PATH).parent / "cpu-quant.yaml"


def test_two_pools_of_one_model_one_of_them_4bit():
    config = load_config(str(CPU_QUANT))
    (model,) = config.models
    pools = {p.name: p for p in model.pools}
    assert set(pools) == {"smollm2-4bit-cpu", "smollm2-cpu"}
    assert pools["smollm2-4bit-cpu"].engine.model.endswith("SmolLM2-135M-Instruct-4bit")
    assert pools["smollm2-cpu"].engine.model.endswith("SmolLM2-135M-Instruct")
    price = {name: pool_state_template(model, pool).price_usd_per_hour for name, pool in pools.items()}
    assert price["smollm2-4bit-cpu"] < price["smollm2-cpu"]  # the catalogue's CPU price for the full pool
    assert build_app(config) is not None
