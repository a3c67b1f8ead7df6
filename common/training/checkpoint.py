"""Checkpoints: write them so a crash never destroys one, read them safely, resume exactly.

Writing. `torch.save` straight onto `model.pt` would leave a half-written file if the process dies
(power cut, out of disk, Ctrl-C) — and the previous good checkpoint would already be gone. So we
write a temporary file in the same folder, flush it to the disk (`fsync`), then `os.replace` it
over the old name. A rename within one file system is atomic: readers see the old file or the new
one, never a mix.

Reading. `torch.load(weights_only=True)` refuses to run arbitrary code hidden in a pickle; it
accepts only tensors and plain containers. A missing, corrupt or truncated file becomes a one-line
`UserError` instead of a traceback.

Resuming. `Checkpointer` stores named modules and optimizers (anything with `state_dict` /
`load_state_dict`: models, optimizers, LR schedulers, GradScalers), the step and epoch, the
position inside the epoch and every random generator's state (`common.training.seed.rng_state`).
Module names become top-level keys, so a phase can match a published layout, e.g. FOMM's
`{"kp_detector", "generator", "discriminator", "optimizer_generator", ..., "epoch"}`.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Protocol

import numpy as np
import torch

from common.atomic import write_atomic
from common.errors import UserError, first_line
from common.training.distributed import gather_objects, get_rank, get_world_size, is_main_process, unwrap
from common.training.seed import rng_state, set_rng_state


class Stateful(Protocol):
    """Anything that can describe and restore itself: modules, optimizers, schedulers, scalers."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state_dict: dict) -> Any: ...


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write `state` with `torch.save` atomically and durably: temp file in the same folder, fsync,
    rename, fsync of the folder (`common.atomic.write_atomic`)."""
    return write_atomic(path, lambda file: torch.save(state, file), durable=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint with `torch.load(weights_only=True)`; `UserError` if it is missing or bad."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's safe unpickler says "Unsupported global" for a class it will not build (a pickled
        # object: the file may be fine, but loading it could run code) and fails otherwise on junk
        if "unsupported global" in str(exc).lower():
            raise UserError(f"checkpoint {path} holds Python objects that a safe load refuses "
                            "(only tensors and plain containers are allowed)") from exc
        raise UserError(f"checkpoint {path} is corrupt or not a PyTorch checkpoint; delete it or pick an "
                        "older one") from exc
    except Exception as exc:  # a damaged file can fail anywhere inside the unpickler
        raise UserError(f"checkpoint {path} is corrupt, truncated or not a PyTorch checkpoint "
                        f"({type(exc).__name__}); delete it or pick an older one") from exc
    if not isinstance(state, dict):
        raise UserError(f"checkpoint {path} holds a {type(state).__name__}, expected a dict")
    return state


def plain(value: Any) -> Any:
    """`value` in a form `weights_only` loading accepts: dataclasses and mappings become dicts,
    paths become strings, NumPy arrays become tensors, NumPy scalars become Python numbers."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


class Checkpointer:
    """Save and restore a run: named modules/optimizers, position in the data, random generators.

    Files are `<directory>/step_00001234.pt`; only the `keep_last` newest are kept (0 keeps all).
    Under DDP every process calls `save` (the generators' states are gathered from all of them)
    and only rank 0 writes.
    """

    RESERVED = ("step", "epoch", "batch_in_epoch", "rng", "extra")
    # Objects a checkpoint may lack: the fp16 loss scaler (`device.grad_scaler`) is saved only by runs
    # in fp16, so resuming a run begun in fp32 or bf16 in fp16 starts it afresh
    OPTIONAL = ("scaler",)
    PATTERN = re.compile(r"step_(\d+)\.pt")

    def __init__(self, directory: str | Path, objects: Mapping[str, Stateful], keep_last: int = 3):
        clashes = [name for name in objects if name in self.RESERVED]
        if clashes:
            raise ValueError(f"names {clashes} are reserved for the checkpoint's own fields")
        self.directory = Path(directory)
        self.objects = dict(objects)
        self.keep_last = keep_last

    def path_for(self, step: int) -> Path:
        return self.directory / f"step_{step:08d}.pt"

    def checkpoints(self) -> list[Path]:
        """Existing checkpoint files, oldest step first."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = self.PATTERN.fullmatch(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return [path for _, path in sorted(found)]

    def latest(self) -> Path | None:
        """The checkpoint with the highest step, or None when there is none yet."""
        files = self.checkpoints()
        return files[-1] if files else None

    def save(
        self,
        step: int,
        epoch: int = 0,
        batch_in_epoch: int = 0,
        extra: dict | None = None,
        *,
        gather_rng: bool = True,
    ) -> Path | None:
        """Write the checkpoint for `step`; returns its path on rank 0, None on the others.

        `extra` holds anything else worth keeping, e.g. the config (passed through `plain`).
        `gather_rng=False` skips the collective gather (used when a Ctrl-C may have stopped the
        processes at different points); the file then holds rank 0's generators only.
        """
        rngs = gather_objects(rng_state()) if gather_rng else [rng_state()]  # one entry per rank
        if not is_main_process():
            return None
        state: dict[str, Any] = {name: unwrap(obj).state_dict() for name, obj in self.objects.items()}
        state.update(step=step, epoch=epoch, batch_in_epoch=batch_in_epoch, rng=rngs)
        state["extra"] = plain(extra or {})
        path = save_checkpoint(self.path_for(step), state)
        if self.keep_last > 0:
            for old in self.checkpoints()[: -self.keep_last]:
                old.unlink(missing_ok=True)
        return path

    def load(self, path: str | Path | None = None, map_location: str | torch.device = "cpu") -> dict:
        """Restore every object and the random generators from `path` (default: the latest). Optimizers
        get their saved state (moments, step counts) but keep the hyperparameters they were built with.

        Returns the whole checkpoint dict (`step`, `epoch`, `batch_in_epoch`, `extra`, ...).
        """
        path = Path(path) if path is not None else self.latest()
        if path is None:
            raise UserError(f"no checkpoint to resume from in {self.directory}")
        state = load_checkpoint(path, map_location)
        for name, obj in self.objects.items():
            if name not in state and name in self.OPTIONAL:
                continue
            if name not in state:
                keys = ", ".join(sorted(k for k in state if k not in self.RESERVED))
                raise UserError(f"checkpoint {path} has no {name!r} entry (it holds: {keys})")
            # An optimizer's state_dict also holds its hyperparameters (lr, betas, weight decay): keep
            # the ones this run was started with, so that `--lr` on a resumed run takes effect
            settings = [{k: v for k, v in group.items() if k != "params"}
                        for group in getattr(obj, "param_groups", [])]
            try:
                unwrap(obj).load_state_dict(state[name])
                for group, setting in zip(getattr(obj, "param_groups", []), settings, strict=True):
                    group.update(setting)
            except (RuntimeError, ValueError, KeyError) as exc:
                hint = f"saved with other settings: use a new run folder or remove {self.directory}"
                message = f"checkpoint {path}: {name!r} does not fit this model ({first_line(exc)}); {hint}"
                raise UserError(message) from exc
        rngs = state.get("rng")
        if rngs:
            same_world = len(rngs) == get_world_size()
            set_rng_state(rngs[get_rank()] if same_world else rngs[0])
        return state


def find_checkpoint(path: str | Path, trained_by: str) -> Path:
    """`path` itself when it is not a folder, else the newest checkpoint of the run folder `path`
    (in its `checkpoints/` subfolder or directly inside it).

    `trained_by` names the script that writes such runs, for the error when the folder holds none;
    a missing file is left to `load_checkpoint`, which says so.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    latest = Checkpointer(path / "checkpoints", {}).latest() or Checkpointer(path, {}).latest()
    if latest is None:
        raise UserError(f"no checkpoint in {path} (train one with {trained_by})")
    return latest
