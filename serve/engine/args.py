"""Check a pool's engine arguments against the installed vLLM, without starting an engine.

The check uses only vLLM's argument parser and its list of quantization method names, which
are the same in the CPU and CUDA builds, so a GPU config can be checked on a CPU machine.
vLLM is imported inside the function: importing this module starts nothing.
"""

from __future__ import annotations

from serve.config.schema import EngineArgsConfig


def check_engine_args(args: EngineArgsConfig) -> list[str]:
    """The problems vLLM would have with ``args`` (an empty list if there are none): engine
    arguments that ``vllm serve`` does not know, and an unknown quantization method."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser
    from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    # The same namespace VLLMEngine._cli_args builds: the defaults of `vllm serve`.
    namespace = make_arg_parser(FlexibleArgumentParser()).parse_args([])
    problems = [
        f"unknown vLLM engine argument {key!r}" for key in args.to_engine_kwargs() if not hasattr(namespace, key)
    ]
    if args.quantization is not None and args.quantization not in QUANTIZATION_METHODS:
        problems.append(
            f"unknown quantization method {args.quantization!r}; vLLM knows {sorted(QUANTIZATION_METHODS)}"
        )
    return problems
