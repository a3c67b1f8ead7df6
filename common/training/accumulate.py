"""Gradient accumulation: train with a batch larger than what fits in memory.

Gradients add up: for a loss that is a mean over the batch, L = sum_k (n_k / n) * L_k, where
chunk k holds n_k of the n samples and L_k is its own mean loss. So we run the big batch as
several micro-batches, call `backward` on each weighted loss (the `.grad` buffers sum them), and
take one optimizer step at the end. The result equals one step on the whole batch (up to float
rounding), as long as the model has no batch statistics (BatchNorm sees only the micro-batch).

Typical step function::

    optimizer.zero_grad(set_to_none=True)
    loss = accumulate_gradients(lambda chunk: criterion(model(chunk["x"]), chunk["y"]),
                                batch, micro_batches=4, model=model)
    optimizer.step()

Because the whole accumulation happens inside one step, checkpoints always fall between
optimizer steps and never hold half-accumulated gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel


def batch_size(batch: Any) -> int:
    """Number of samples: the first dimension of the first tensor found in the batch."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0]
    values = list(batch.values()) if isinstance(batch, dict) else batch
    if isinstance(values, list | tuple):
        for value in values:
            with contextlib.suppress(ValueError):  # no tensor in this value: try the next one
                return batch_size(value)
    raise ValueError("the batch holds no tensor, so it has no batch size")


def split_batch(batch: Any, chunks: int) -> list[Any]:
    """Cut every tensor of a (nested dict/list/tuple) batch into `chunks` pieces along dim 0.

    Values that are not tensors (names, flags) are copied into every piece unchanged.
    """
    if isinstance(batch, torch.Tensor):
        return list(torch.tensor_split(batch, chunks, dim=0))
    if isinstance(batch, dict):
        parts = {key: split_batch(value, chunks) for key, value in batch.items()}
        return [{key: parts[key][i] for key in batch} for i in range(chunks)]
    if isinstance(batch, list | tuple):
        parts = [split_batch(value, chunks) for value in batch]
        return [type(batch)(part[i] for part in parts) for i in range(chunks)]
    return [batch] * chunks


def accumulate_gradients(
    loss_fn: Callable[[Any], torch.Tensor],
    batch: Any,
    micro_batches: int = 1,
    *,
    model: torch.nn.Module | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Backpropagate `loss_fn` over `batch` in `micro_batches` pieces; return the whole-batch loss.

    `loss_fn(chunk)` must return the *mean* loss of that chunk (a scalar tensor). Pass the DDP
    `model` so that only the last micro-batch all-reduces gradients across processes (the others
    run under `model.no_sync()`), and an fp16 `scaler` to scale the loss before `backward`.
    The caller zeroes the gradients before and steps the optimizer after.
    """
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")
    total = batch_size(batch)
    chunks = [chunk for chunk in split_batch(batch, min(micro_batches, total)) if batch_size(chunk) > 0]
    loss_sum = 0.0
    for index, chunk in enumerate(chunks):
        weight = batch_size(chunk) / total  # n_k / n
        is_last = index == len(chunks) - 1
        skip_sync = isinstance(model, DistributedDataParallel) and not is_last
        with model.no_sync() if skip_sync else contextlib.nullcontext():
            loss = loss_fn(chunk) * weight
            (scaler.scale(loss) if scaler is not None else loss).backward()
        loss_sum += loss.item()
    return loss_sum

