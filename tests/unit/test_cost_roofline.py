"""serve/cost/roofline.py and serve/cost/pool_profile.py: the estimate against the reference
figures, its bounds, and how a pool's profile is found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serve.catalog.gpus import GPU_CATALOG
from serve.catalog.models import model_spec, weight_bytes
from serve.config.schema import PoolConfig
from serve.cost.pool_profile import REPO_ROOT, load_profile, pool_kv_bytes_per_token, pool_model_spec, pool_profile
from serve.cost.profile import ProfilePoint, ThroughputProfile
from serve.cost.roofline import roofline_profile

LLAMA_8B = model_spec("meta-llama/Llama-3.1-8B-Instruct")
assert LLAMA_8B is not None


def _llama_h100(**kwargs: object) -> ThroughputProfile:
    return roofline_profile(
        GPU_CATALOG["H100"],
        weight_bytes(LLAMA_8B.params_b, None, "bfloat16"),
        LLAMA_8B.kv_bytes_per_token(),
        params_b=LLAMA_8B.params_b,
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("concurrency", "reference_tokens_per_s"),
    [(1, 154.0), (16, 1384.0), (256, 5300.0)],  # shared/reference/gpu-catalog.md
)
def test_llama_8b_h100_matches_the_reference_figures(concurrency: int, reference_tokens_per_s: float) -> None:
    estimate = _llama_h100().tokens_per_s(concurrency)
    assert 1 / 1.25 < estimate / reference_tokens_per_s < 1.25


def test_single_stream_is_the_bandwidth_roofline_at_75_percent() -> None:
    profile = roofline_profile(GPU_CATALOG["H100"], 16e9, None, params_b=1e-6)  # no compute term to speak of
    assert profile.tokens_per_s(1) == pytest.approx(0.75 * 3350e9 / 16e9, rel=1e-3)


def test_throughput_rises_and_flattens_and_tpot_grows() -> None:
    profile = _llama_h100()
    rates = [p.output_tokens_per_s for p in profile.points]
    assert rates == sorted(rates)
    gains = [b / a for a, b in zip(rates, rates[1:], strict=False)]
    assert gains == sorted(gains, reverse=True)  # diminishing returns
    assert profile.tpot_ms(64) > profile.tpot_ms(1)
    assert profile.points[-1].ttft_ms > profile.points[0].ttft_ms
    assert profile.max_concurrency == 256
    assert profile.source.startswith("roofline: 1 x H100")


def test_batch_is_bounded_by_max_num_seqs_and_kv_capacity() -> None:
    assert _llama_h100(max_num_seqs=48).max_concurrency == 48
    # 2 GB of KV cache at 128 KiB per token is 15,258 tokens: 14 sequences of 1,024.
    assert _llama_h100(kv_cache_bytes=2e9).max_concurrency == 14
    assert _llama_h100(kv_cache_bytes=2e9, context_tokens=4096).max_concurrency == 3


def test_model_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="KV"):
        roofline_profile(GPU_CATALOG["L4"], 141e9, 327680, params_b=70.6)
    with pytest.raises(ValueError, match="do not fit"):
        roofline_profile(GPU_CATALOG["T4"], 20e9, None)


def test_tensor_parallel_adds_bandwidth_and_compute() -> None:
    one = roofline_profile(GPU_CATALOG["A10G"], 16e9, 131072, 1, params_b=8.0)
    two = roofline_profile(GPU_CATALOG["A10G"], 16e9, 131072, 2, params_b=8.0)
    assert two.tokens_per_s(1) == pytest.approx(2 * one.tokens_per_s(1))
    assert two.prefill_tokens_per_s == pytest.approx(2 * one.prefill_tokens_per_s)


def test_prefill_rate_is_compute_bound() -> None:
    # 0.5 x 989 TFLOPS / (2 x 8.03e9 FLOP per token)
    assert _llama_h100().prefill_tokens_per_s == pytest.approx(0.5 * 989e12 / (2 * 8.03e9))


# --- a pool's profile ----------------------------------------------------------------------

MEASURED = ThroughputProfile(
    points=[
        ProfilePoint(concurrency=1, output_tokens_per_s=7.0, ttft_ms=120.0),
        ProfilePoint(concurrency=8, output_tokens_per_s=50.0, ttft_ms=300.0),
    ],
    source="test",
)


def _pool(**fields: object) -> PoolConfig:
    data: dict = {"name": "p", "accelerator_type": "H100", "engine": {"model": "meta-llama/Llama-3.1-8B-Instruct"}}
    data.update(fields)
    return PoolConfig.model_validate(data)


def test_inline_profile_wins() -> None:
    assert pool_profile(_pool(profile=MEASURED.model_dump()), "m") == MEASURED


def test_profile_file_relative_to_the_config_dir(tmp_path: Path) -> None:
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "p.json").write_text(MEASURED.model_dump_json())
    assert pool_profile(_pool(profile="profiles/p.json"), "m", base_dir=tmp_path) == MEASURED
    assert pool_profile(_pool(profile=str(tmp_path / "profiles" / "p.json")), "m") == MEASURED


def test_missing_or_bad_profile_file_names_the_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"not found; tried .*nope\.json"):
        pool_profile(_pool(profile="nope.json"), "m", base_dir=tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps({"points": []}))
    with pytest.raises(ValueError, match=r"invalid profile .*bad\.json"):
        load_profile("bad.json", tmp_path)


def test_relative_profile_falls_back_to_the_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (REPO_ROOT / "serve" / "cost" / "pool_profile.py").is_file()
    monkeypatch.setattr("serve.cost.pool_profile.REPO_ROOT", tmp_path)
    (tmp_path / "p.json").write_text(MEASURED.model_dump_json())
    assert pool_profile(_pool(profile="p.json"), "m", base_dir=tmp_path / "elsewhere") == MEASURED


def test_roofline_estimate_from_the_catalogue() -> None:
    profile = pool_profile(_pool(engine={"model": "meta-llama/Llama-3.1-8B-Instruct", "dtype": "bfloat16"}), "m")
    assert profile == _llama_h100()


def test_fp8_weights_and_kv_cache() -> None:
    engine = {"model": "meta-llama/Llama-3.1-8B-Instruct", "quantization": "fp8", "extra": {"kv_cache_dtype": "fp8"}}
    pool = _pool(engine=engine)
    spec = pool_model_spec(pool, "m")
    assert pool_kv_bytes_per_token(pool, spec) == LLAMA_8B.kv_bytes_per_token() / 2
    # Half the weight bytes: nearly twice the single-stream speed.
    assert pool_profile(pool, "m").tokens_per_s(1) > 1.8 * _llama_h100().tokens_per_s(1)


def test_unknown_model_needs_params_b() -> None:
    with pytest.raises(ValueError, match=r"pool 'p': model 'org/mystery-3b' is not in the catalogue; give params_b"):
        pool_profile(_pool(engine={"model": "org/mystery-3b"}), "mystery")
    profile = pool_profile(_pool(engine={"model": "org/mystery-3b"}, params_b=3.0), "mystery")
    assert profile.max_concurrency == 256  # no KV shape known: max_num_seqs bounds the batch
    # The served model's name is the catalogue fallback.
    assert pool_model_spec(_pool(engine={"model": "/data/x"}), "Qwen2.5-7B-Instruct").params_b == 7.62


def test_cpu_pool_uses_fp32_and_its_kv_space() -> None:
    pool = _pool(
        accelerator_type="CPU",
        engine={"model": "HuggingFaceTB/SmolLM2-135M-Instruct", "max_num_seqs": 64},
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    spec = pool_model_spec(pool, "m")
    kv = pool_kv_bytes_per_token(pool, spec)
    assert kv == 2 * 30 * 3 * 64 * 4  # fp32 K and V
    assert pool_profile(pool, "m").max_concurrency == int(1024**3 / kv // 1024)


def test_pool_too_small_for_its_model_names_the_pool() -> None:
    with pytest.raises(ValueError, match="pool 'p'"):
        pool_profile(_pool(accelerator_type="L4", engine={"model": "meta-llama/Llama-3.3-70B-Instruct"}), "m")
