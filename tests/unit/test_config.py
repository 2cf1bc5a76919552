"""serve/config: the schema's rules and the loader's error messages."""

from __future__ import annotations

import pytest
import yaml

from serve.config.loader import DEFAULT_CONFIG_PATH, ConfigError, load_config, parse_config
from serve.config.schema import EngineArgsConfig


def _config(**pool_overrides: object) -> dict:
    pool = {"name": "p1", "engine": {"model": "m"}, **pool_overrides}
    return {"models": [{"name": "chat", "pools": [pool]}]}


def _parse(data: dict) -> object:
    return parse_config(yaml.safe_dump(data))


def test_default_config_loads_and_expands_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("FRUGAL_DATA_DIR", str(tmp_path))
    config = load_config()
    assert [m.name for m in config.models] == ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]
    assert [m.task for m in config.models] == ["chat", "embed"]
    chat_pool = config.models[0].pools[0]
    assert chat_pool.engine.model == f"{tmp_path}/SmolLM2-135M-Instruct"
    assert chat_pool.num_gpus == 0
    assert config.model("all-MiniLM-L6-v2").pools[0].engine.model == f"{tmp_path}/all-MiniLM-L6-v2"
    assert "${FRUGAL_DATA_DIR}/SmolLM2-135M-Instruct" in DEFAULT_CONFIG_PATH.read_text()


def test_data_dir_default_expands_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRUGAL_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", "/home/someone")
    config = parse_config("models: [{name: m, pools: [{name: p, engine: {model: '${FRUGAL_DATA_DIR}/x'}}]}]")
    assert config.models[0].pools[0].engine.model == "/home/someone/.cache/frugal/models/x"


def test_minimal_config_gets_defaults() -> None:
    config = _parse(_config())
    assert config.router.max_request_body_bytes > 0
    assert config.models[0].task == "chat"
    assert config.models[0].pools[0].accelerator_type == "CPU"


def test_unknown_key_is_rejected_with_its_dotted_path() -> None:
    data = _config(engine={"model": "m", "dtyp": "float32"})
    with pytest.raises(ConfigError) as info:
        parse_config(yaml.safe_dump(data), "my.yaml")
    message = str(info.value)
    assert "my.yaml" in message
    assert "models.0.pools.0.engine.dtyp" in message


def test_unknown_top_level_key_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"\bmodls\b"):
        _parse({**_config(), "modls": []})


def test_duplicate_model_names_are_rejected() -> None:
    model = {"name": "chat", "pools": [{"name": "p1", "engine": {"model": "m"}}]}
    other = {"name": "chat", "pools": [{"name": "p2", "engine": {"model": "m"}}]}
    with pytest.raises(ConfigError, match="duplicate model names: \\['chat'\\]"):
        _parse({"models": [model, other]})


def test_duplicate_pool_names_within_a_model_are_rejected() -> None:
    pool = {"name": "p1", "engine": {"model": "m"}}
    with pytest.raises(ConfigError, match=r"models\.0\.pools: .*duplicate pool names: \['p1'\]"):
        _parse({"models": [{"name": "chat", "pools": [pool, pool]}]})


def test_duplicate_pool_names_across_models_are_rejected() -> None:
    a = {"name": "a", "pools": [{"name": "p1", "engine": {"model": "m"}}]}
    b = {"name": "b", "pools": [{"name": "p1", "engine": {"model": "m"}}]}
    with pytest.raises(ConfigError, match=r"pool names must be unique across models: \['p1'\]"):
        _parse({"models": [a, b]})


def test_min_replicas_above_max_is_rejected() -> None:
    data = _config(autoscaling={"min_replicas": 3, "max_replicas": 2})
    with pytest.raises(ConfigError, match=r"models\.0\.pools\.0\.autoscaling: .*min_replicas must not exceed max_replicas"):
        _parse(data)


def test_num_replicas_with_autoscaling_is_rejected() -> None:
    data = _config(num_replicas=2, autoscaling={"min_replicas": 1, "max_replicas": 2})
    with pytest.raises(ConfigError, match="either num_replicas or autoscaling"):
        _parse(data)


def test_bad_values_name_their_path() -> None:
    with pytest.raises(ConfigError, match=r"models\.0\.pools\.0\.engine\.dtype"):
        _parse(_config(engine={"model": "m", "dtype": "int3"}))
    with pytest.raises(ConfigError, match=r"models\.0\.pools\.0\.name"):
        _parse(_config(name="has space"))
    with pytest.raises(ConfigError, match=r"models: "):
        _parse({"models": []})


def test_invalid_yaml_is_reported() -> None:
    with pytest.raises(ConfigError, match="invalid YAML in x.yaml"):
        parse_config("models: [unclosed", "x.yaml")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string", "", "42"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(ConfigError, match="the top level must be a mapping"):
        parse_config(text)


def test_unreadable_file_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def test_load_config_reads_a_file(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_config()))
    assert load_config(path).models[0].pools[0].name == "p1"


def test_engine_kwargs_omit_unset_values_and_merge_extra() -> None:
    args = EngineArgsConfig(model="m", max_model_len=2048, extra={"swap_space": 1, "block_size": 16})
    kwargs = args.to_engine_kwargs()
    assert kwargs["model"] == "m"
    assert kwargs["max_model_len"] == 2048
    assert kwargs["swap_space"] == 1 and kwargs["block_size"] == 16
    for unset in ("tokenizer", "quantization", "max_num_seqs", "gpu_memory_utilization", "seed", "extra"):
        assert unset not in kwargs
    # Defaults that are not None are passed on.
    assert kwargs["dtype"] == "auto" and kwargs["tensor_parallel_size"] == 1 and kwargs["enforce_eager"] is False


def test_extra_repeating_a_typed_argument_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\['dtype', 'max_model_len'\] as typed engine arguments"):
        EngineArgsConfig(model="m", max_model_len=512, extra={"dtype": "float16", "max_model_len": 1})


def test_extra_cannot_bypass_typed_validation() -> None:
    # An unset typed argument given through extra would reach vLLM unvalidated.
    with pytest.raises(ValueError, match="gpu_memory_utilization"):
        EngineArgsConfig(model="m", extra={"gpu_memory_utilization": 5.0})


def test_extra_overlap_is_reported_by_config_path() -> None:
    text = """
models:
  - name: m
    pools:
      - name: p
        engine: {model: x, extra: {max_model_len: -1}}
"""
    with pytest.raises(ConfigError, match=r"models\.0\.pools\.0\.engine\.extra"):
        parse_config(text)
