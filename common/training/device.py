"""Where tensors live and at which precision the forward pass runs.

`pick_device` turns the `--device` flag into a `torch.device` (or a clear `UserError`).
`autocast` wraps a forward pass in mixed precision: on a GPU, matrix multiplies and convolutions
run in bfloat16 (same exponent range as float32, so no loss scaling is needed) while reductions
and the loss stay in float32. On the CPU we train in plain float32.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from common.errors import UserError

Precision = Literal["auto", "fp32", "bf16", "fp16"]
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(name: str = "auto") -> torch.device:
    """`"auto"` (GPU if any, else Apple's MPS, else CPU), `"cpu"`, `"cuda"`, `"cuda:N"` or `"mps"`."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise UserError("device 'mps' is not available on this machine; use --device cpu")
        return torch.device("mps")
    if name == "cuda" or name.startswith("cuda:"):
        index_text = name.partition(":")[2]
        if index_text and not index_text.isdigit():
            raise UserError(f"unknown device {name!r}: write cuda:N with a GPU number N")
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} asked for, but no CUDA GPU is available; use --device cpu")
        index = int(index_text) if index_text else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise UserError(f"device {name!r} does not exist: this machine has {count} GPU(s), "
                            f"cuda:0 to cuda:{count - 1}")
        return torch.device(name)
    raise UserError(f"unknown device {name!r}: choose auto, cpu, cuda, cuda:N or mps")


def default_precision(device: torch.device) -> str:
    """bf16 on a GPU that supports it, fp32 everywhere else."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast(device: torch.device, precision: Precision | str = "auto") -> contextlib.AbstractContextManager:
    """Context manager for the forward pass and loss: mixed precision, or nothing for fp32.

    `"auto"` means `default_precision(device)`: bf16 on a GPU, fp32 on the CPU.
    fp16 has a narrow exponent range, so small gradients underflow to zero; train it with a
    `torch.amp.GradScaler` (see `common.training.accumulate`). bf16 needs no scaler.
    """
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: choose auto, fp32, bf16 or fp16")
    if precision == "auto":
        precision = default_precision(device)
    if precision == "fp32":
        return contextlib.nullcontext()
    if device.type == "cpu" and precision == "fp16":
        raise UserError("fp16 autocast needs a GPU; use --precision bf16 or fp32 on the CPU")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
