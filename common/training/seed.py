"""Randomness under control: seed everything, and save/restore every random number generator.

Training draws random numbers from four generators: Python's `random`, NumPy's global generator,
torch's CPU generator and the torch generator of the GPU in use. Dropout, augmentation and weight init all
use them. To make a run repeatable we seed all four; to *resume* a run exactly we store their full
states in the checkpoint and put them back.

Checkpoints are read with `torch.load(weights_only=True)`, which only accepts tensors and plain
containers (dict, list, tuple, str, int, float, bool, None). So every state below is converted to
that form: NumPy's `uint32` key array and Python's 625-int tuple become int64 tensors.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's `random`, NumPy's global generator and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # NumPy's legacy seed must fit in 32 bits
    torch.manual_seed(seed)  # also seeds every CUDA device


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A private torch generator for one epoch's data order and augmentation.

    Give it to `DataLoader(..., generator=...)` (or sample with it yourself): the batches of epoch
    `epoch` then depend only on `(seed, epoch)`, not on how many random numbers the model used, so
    a resumed run can rebuild the epoch and skip the batches it already trained on.
    """
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def rng_state() -> dict:
    """Every global generator's state, in a form `torch.load(weights_only=True)` accepts."""
    version, py_state, gauss_next = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_cached = np.random.get_state()
    state = {
        "python": {
            "version": version,
            "state": torch.tensor(py_state, dtype=torch.int64),  # (625,) 32-bit words + position
            "gauss_next": gauss_next,
        },
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),  # (624,) uint32 -> int64
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),  # (5056,) uint8
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # The current GPU only: asking for every GPU would open a CUDA context on each of them
        # from every DDP process. Under DDP each process drives one GPU anyway.
        state["cuda"] = torch.cuda.get_rng_state()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Put back generator states saved by `rng_state` (GPU states only where GPUs are present)."""
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    npy = state["numpy"]
    np.random.set_state(
        (npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
         npy["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"].cpu())
