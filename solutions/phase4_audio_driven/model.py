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

from common.errors import UserError
from common.training.checkpoint import load_checkpoint
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
    data = load_checkpoint(path)  # weights_only; says whether a bad file is damaged or holds objects
    if "state_dict" not in data:
        data = {"state_dict": data}
    state = data["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        held = ", ".join(map(str, state)) if isinstance(state, dict) else type(state).__name__
        raise UserError(f"checkpoint {path} holds no state_dict of tensors ({held[:120]}); a training "
                        "run's checkpoints/step_*.pt are not network files: pass its wav2lip.pth or "
                        "lipsync_expert.pth")
    config = data.get("config") or {}
    width = config.get("width", 1.0) if isinstance(config, dict) else None
    if not isinstance(width, (int, float)) or not width > 0:
        raise UserError(f"checkpoint {path} has a damaged config entry: {str(data.get('config'))[:80]}")
    data["state_dict"] = strip_module_prefix(state)
    return data


# A key only one network's state_dict has, to say what a file that does not fit holds instead.
SIGNATURE_KEYS = {
    "output_block.1.weight": "a Wav2Lip generator",
    "binary_pred.0.weight": "a visual-quality discriminator",
    "face_encoder.0.conv_block.0.weight": "a SyncNet expert",
}


def mismatch(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> str:
    """Why `state_dict` does not load into `model`, in a few words."""
    want = model.state_dict()
    missing = [k for k in want if k not in state_dict]
    unexpected = [k for k in state_dict if k not in want]
    resized = [k for k in want if k in state_dict and state_dict[k].shape != want[k].shape]
    if missing and unexpected:
        held = next((name for key, name in SIGNATURE_KEYS.items() if key in state_dict), "other keys")
        return (f"it holds {held} ({len(unexpected)} keys {type(model).__name__} does not have, e.g. "
                f"{unexpected[0]}; {len(missing)} of its keys missing, e.g. {missing[0]})")
    if missing or unexpected:
        keys, how = (missing, "missing") if missing else (unexpected, "not in the network")
        return f"{len(keys)} keys {how}, e.g. {keys[0]}"
    k = resized[0]
    return (f"{len(resized)} tensors of another size (another --width?), e.g. {k}: "
            f"{tuple(state_dict[k].shape)} in the file, {tuple(want[k].shape)} in the network")


def load_weights(model: nn.Module, path: str | Path, ckpt: dict | None = None) -> dict:
    """Load a published or project checkpoint into `model` (strict); returns the whole checkpoint dict.
    `ckpt` is the file's contents when the caller has read it already (`read_checkpoint(path)`)."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        raise UserError(
            f"checkpoint {path} does not fit {type(model).__name__}: {mismatch(model, ckpt['state_dict'])}"
        ) from err
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


def checkpoint_width(path: str | Path, ckpt: dict | None = None) -> float:
    """The width multiplier a checkpoint was trained with (1.0 for the published files)."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt  # checked there: a dict with a positive width
    return float((ckpt.get("config") or {}).get("width", 1.0))


def load_generator(path: str | Path) -> Wav2Lip:
    """A Wav2Lip generator of the right width with the checkpoint's weights, in eval mode."""
    ckpt = read_checkpoint(path)
    generator = Wav2Lip(checkpoint_width(path, ckpt))
    load_weights(generator, path, ckpt)
    return generator.eval()


def load_syncnet(path: str | Path) -> SyncNet:
    """A frozen SyncNet expert from a checkpoint (e.g. `lipsync_expert.pth`), in eval mode."""
    ckpt = read_checkpoint(path)
    expert = SyncNet(checkpoint_width(path, ckpt))
    load_weights(expert, path, ckpt)
    for p in expert.parameters():
        p.requires_grad_(False)
    return expert.eval()
