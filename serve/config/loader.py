"""Load and validate a config file, reporting errors by the path of the offending key."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from serve.config.schema import FrugalConfig
from serve.constants import DATA_DIR_ENV, DATA_DIR_PLACEHOLDER, DEFAULT_DATA_DIR

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "deployments" / "default.yaml"


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and each bad path."""


def _format(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {path}: {e['msg']}")
    return "\n".join(lines)


def _expand(text: str) -> str:
    data_dir = os.path.expanduser(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR))
    return text.replace(DATA_DIR_PLACEHOLDER, data_dir)


def _inline_profiles(config: FrugalConfig, base_dir: Path | None, source: str) -> FrugalConfig:
    """Replace each pool's profile file path by the profile it holds, so the deployed config
    is self-contained (replicas never read files relative to a working directory)."""
    from serve.cost.pool_profile import load_profile

    models = []
    for model in config.models:
        pools = []
        for i, pool in enumerate(model.pools):
            if isinstance(pool.profile, str):
                try:
                    pool = pool.model_copy(update={"profile": load_profile(pool.profile, base_dir)})
                except ValueError as e:
                    raise ConfigError(f"invalid config {source}:\n  models.{model.name}.pools.{i}.profile: {e}") from e
            pools.append(pool)
        models.append(model.model_copy(update={"pools": pools}))
    return config.model_copy(update={"models": models})


def parse_config(text: str, source: str = "<string>", base_dir: Path | None = None) -> FrugalConfig:
    try:
        raw = yaml.safe_load(_expand(text))
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {source}: {e}") from e
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {source}: the top level must be a mapping")
    try:
        config = FrugalConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format(e, source)) from e
    return _inline_profiles(config, base_dir, source)


def load_config(path: str | Path | None = None) -> FrugalConfig:
    path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    return parse_config(text, str(path), path.resolve().parent)
