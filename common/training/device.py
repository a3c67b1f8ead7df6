"""Where tensors live and at which precision the forward pass runs.

`pick_device` turns the `--device` flag into a `torch.device` (or a clear `UserError`).
`autocast` wraps a forward pass in mixed precision: on a GPU, matrix multiplies and convolutions
run in bfloat16 (same exponent range as float32, so no loss scaling is needed) while reductions
and the loss stay in float32. On the CPU we train in plain float32.

GPUs older than Ampere (compute capability below 8.0: V100, T4, the RTX 20 series) have no bfloat16
arithmetic, so `"auto"` picks float16 there. float16 keeps only 5 exponent bits: gradients below
~6e-8 round to zero. `grad_scaler` returns the cure, a `torch.amp.GradScaler`: it multiplies the
loss by a large factor S before `backward` (so the gradients are S times larger and stay
representable), divides them by S again before the optimizer step, skips a step whose gradients
overflowed to inf/NaN and then halves S, and doubles S after 2000 clean steps. Every trainer calls
it the same way; for fp32 and bf16 the scaler is disabled and each call passes straight through::

    scaler = grad_scaler(device, precision)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)  # only where the gradients are read (clipping)
    scaler.step(optimizer)      # optimizer.step(), unless the gradients hold inf/NaN
    scaler.update()             # once per training step, after every optimizer's step
"""

from __future__ import annotations

import argparse
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
    """bf16 on a CUDA GPU with bfloat16 arithmetic (Ampere or newer), fp16 on an older one, else fp32.

    Older cards report bf16 as "supported" because PyTorch can emulate it, slowly; the compute
    capability says whether the tensor cores do it.
    """
    if device.type != "cuda":
        return "fp32"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16"


def add_precision_arg(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The `--precision` flag every trainer shares."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="autocast precision: auto = bf16 on a CUDA GPU of the Ampere generation or "
                        "newer, fp16 (with loss scaling) on an older one, else fp32 (default: auto). bf16 "
                        "training on a CPU can be far slower than fp32: one step of the tiny FOMM took 6 s "
                        "in fp32 and over 300 s in bf16 on a 2-core AMD EPYC; fp16 needs a GPU")


def resolve_precision(device: torch.device, precision: Precision | str = "auto") -> str:
    """The precision `autocast` will use: `"auto"` resolved; anything unknown, or fp16 on a CPU, refused."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}: choose auto, fp32, bf16 or fp16")
    if device.type == "cpu" and precision == "fp16":
        raise UserError("fp16 autocast needs a GPU; use --precision bf16 or fp32 on the CPU")
    return default_precision(device) if precision == "auto" else precision


def grad_scaler(device: torch.device, precision: Precision | str = "auto") -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 (see the module docstring); a pass-through otherwise."""
    enabled = resolve_precision(device, precision) == "fp16"
    return torch.amp.GradScaler(device.type, enabled=enabled)


def autocast(device: torch.device, precision: Precision | str = "auto") -> contextlib.AbstractContextManager:
    """Context manager for the forward pass and loss: mixed precision, or nothing for fp32.

    `"auto"` means `default_precision(device)`: bf16 on a recent GPU, fp16 on an older one, fp32 on
    the CPU. fp16 has a narrow exponent range, so small gradients underflow to zero: train it with
    `grad_scaler` (above). bf16 needs no scaler.
    """
    precision = resolve_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
