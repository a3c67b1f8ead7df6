"""Several processes, one model: data-parallel training with torch.distributed (DDP).

Launch the same script once per GPU (or CPU process) with `torchrun`::

    torchrun --nproc_per_node 4 phase3_first_order_motion/train.py ...          # one machine
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 ...  # two machines

`torchrun` sets RANK (this process among all), WORLD_SIZE (how many), LOCAL_RANK (this process on
its machine), MASTER_ADDR and MASTER_PORT. Every process holds a full copy of the model and trains
on its own slice of each batch; during `backward`, DDP averages the gradients of all processes
(an all-reduce), so every copy takes the same optimizer step. With WORLD_SIZE processes of
batch b, that is one step on a batch of WORLD_SIZE * b. A step that runs a module more than once
per `backward`, which DDP does not allow, calls `average_gradients` after `backward` instead.

Backends: NCCL talks between NVIDIA GPUs, Gloo between CPU processes. Without torchrun every
helper here falls back to a single process, so the same script runs on a laptop unchanged.
Only rank 0 (`is_main_process()`) writes checkpoints, previews, metrics and progress bars, and
`cleanup()` leaves the process group when the run ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler

from common.training.device import pick_device


@dataclass(frozen=True)
class DistInfo:
    """Who this process is: its rank among `world_size` processes and the device it drives."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that `torchrun` set up, or describe a lone process without it.

    On GPUs each process drives `cuda:LOCAL_RANK` and talks NCCL; on CPUs it talks Gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo(rank=0, world_size=1, local_rank=0, device=pick_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    chosen = pick_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)  # one GPU per process on each machine
        torch.cuda.set_device(chosen)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def is_distributed() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0: the one process that writes files and prints progress."""
    return get_rank() == 0


def wrap_ddp(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Wrap `model` (already on `device`) in DDP when distributed; return it unchanged otherwise."""
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DDP wrapper (its state_dict keys have no `module.` prefix)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def average_gradients(module: torch.nn.Module) -> None:
    """Data parallelism by hand: replace each gradient of `module` by its mean over the processes.

    Call it between `backward` and the optimizer step. DDP does the same all-reduce inside
    `backward`, but allows one forward per backward; a step that runs a module several times
    (phase 1: once per identity; FOMM: the keypoint detector three times) averages here instead.
    Does nothing for one process.
    """
    if not is_distributed():
        return
    world_size = get_world_size()
    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad)  # the sum over the processes, on every process
            param.grad /= world_size


def distributed_sampler(
    dataset: Dataset, *, shuffle: bool = True, seed: int = 0
) -> DistributedSampler | None:
    """A sampler giving each process a disjoint slice of the dataset, or None for one process.

    Call `sampler.set_epoch(epoch)` before each epoch so the shuffle changes between epochs
    (the order depends only on `seed + epoch`, the same on every process).
    """
    if not is_distributed():
        return None
    return DistributedSampler(
        dataset, num_replicas=get_world_size(), rank=get_rank(), shuffle=shuffle, seed=seed
    )


def any_process(flag: bool) -> bool:
    """True if `flag` is true on any process; every process must call it at the same point."""
    if not is_distributed():
        return flag
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def gather_objects(obj: Any) -> list[Any]:
    """`obj` from every process, indexed by rank (a one-element list for one process)."""
    if not is_distributed():
        return [obj]
    gathered: list[Any] = [None] * get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def cleanup() -> None:
    """Leave the process group (call once at the end of training)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
