"""Build the three Wav2Lip networks and read / write checkpoints in the published layout.

The released files (`wav2lip.pth`, `wav2lip_gan.pth`, `lipsync_expert.pth`, `visual_quality_disc.pth`)
are `torch.save` dicts {state_dict, optimizer, global_step, global_epoch}. Generator keys probably carry a
`module.` prefix (trained under DataParallel) and the expert's probably do not, so the loader accepts
both. Everything is read with `torch.load(weights_only=True)`: a checkpoint is data, never code.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.errors import UserError, first_line
from solutions.phase4_audio_driven.lip_sync import SyncNet
from solutions.phase4_audio_driven.wav2lip import Wav2Lip, Wav2LipDiscQual


def build_wav2lip(width: float = 1.0) -> tuple[Wav2Lip, SyncNet, Wav2LipDiscQual]:
    """(generator, syncnet expert, visual-quality discriminator), freshly initialised.
    width 1.0 (the default) builds the published networks; smaller widths train faster on a CPU."""
    return Wav2Lip(width), SyncNet(width), Wav2LipDiscQual(width)


def strip_module_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove one leading `module.` (added by DataParallel / DDP) from every key that has it."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of a file: {state_dict, ...} or a bare state_dict wrapped as {state_dict}."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such checkpoint: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(
            f"cannot read checkpoint {path} as plain tensors (whole-module or TorchScript files are not "
            f"accepted; save model.state_dict()): {first_line(err)}"
        ) from err
    if not isinstance(data, dict):
        raise UserError(f"checkpoint {path} holds a {type(data).__name__}, not a state_dict")
    if "state_dict" not in data:
        data = {"state_dict": data}
    data["state_dict"] = strip_module_prefix(data["state_dict"])
    return data


def load_weights(model: nn.Module, path: str | Path) -> dict:
    """Load a published or project checkpoint into `model` (strict); returns the whole checkpoint dict."""
    ckpt = read_checkpoint(path)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        first = first_line(err)
        raise UserError(f"checkpoint {path} does not fit {type(model).__name__}: {first}") from err
    return ckpt


def checkpoint_dict(
    model: nn.Module, optimizer: torch.optim.Optimizer | None, global_step: int, global_epoch: int
) -> dict:
    """The published container, ready for `torch.save` (keys without `module.`). A network narrower
    than the published one also records its `width` under `config` (published files have no such key)."""
    ckpt = {
        "state_dict": strip_module_prefix(model.state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "global_step": int(global_step),
        "global_epoch": int(global_epoch),
    }
    width = getattr(model, "width", 1.0)
    if width != 1.0:
        ckpt["config"] = {"width": float(width)}
    return ckpt


def checkpoint_width(path: str | Path) -> float:
    """The width multiplier a checkpoint was trained with (1.0 for the published files)."""
    config = read_checkpoint(path).get("config") or {}
    return float(config.get("width", 1.0))


def load_generator(path: str | Path) -> Wav2Lip:
    """A Wav2Lip generator of the right width with the checkpoint's weights, in eval mode."""
    generator = Wav2Lip(checkpoint_width(path))
    load_weights(generator, path)
    return generator.eval()


def load_syncnet(path: str | Path) -> SyncNet:
    """A frozen SyncNet expert from a checkpoint (e.g. `lipsync_expert.pth`), in eval mode."""
    expert = SyncNet(checkpoint_width(path))
    load_weights(expert, path)
    for p in expert.parameters():
        p.requires_grad_(False)
    return expert.eval()
