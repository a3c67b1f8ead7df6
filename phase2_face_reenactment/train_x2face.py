"""Train X2Face self-supervised on videos: two frames of one person, rebuild the second from the first.

    python phase2_face_reenactment/train_x2face.py --run-dir runs/x2face --steps 2000
    python phase2_face_reenactment/train_x2face.py --data /data/videos --size 128 --steps 50000 --consent ID

Each step takes (source, driving) pairs, two frames of the same clip (Wiles et al. 2018, sec. 3.3):
the embedding network samples the source into a canonical face, the driving network samples that
into the driving frame's pose and expression, and the L1 distance to the real driving frame is the
whole loss. `--data synthetic` (default) renders clips of synthetic people (people who do not exist);
a folder of videos works too (each video one person: the pairs must share an identity). Run the same
command again to resume; Ctrl-C saves first. Previews show source | driving | canonical | generated.
reenact.py uses the result with `--method x2face --checkpoint RUN_DIR`.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from common.cli import add_common_args, add_data_consent_args, check_data_consent, command_line, run
from common.errors import UserError
from common.impl import load, use_impl
from common.training import (
    Checkpointer,
    TrainConfig,
    add_train_args,
    autocast,
    grad_scaler,
    pick_device,
    seed_everything,
    train_config_from_args,
    train_loop,
)
from phase2_face_reenactment import data

PHASE = "phase2_face_reenactment"
DEFAULTS = TrainConfig(run_dir=Path("runs/phase2_x2face"), max_steps=2000, checkpoint_every=250,
                       preview_every=250)


@dataclass
class X2FaceTrainSettings:
    """Data and optimisation settings (defaults: 64 px synthetic faces, minutes on a CPU)."""

    data: str = "synthetic"
    identities: int = 24  # synthetic identities (ignored for a folder)
    frames: int = 40  # frames per clip
    batch_size: int = 16
    lr: float = 1e-3
    precision: str = "auto"
    seed: int = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase2_face_reenactment/train_x2face.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d = X2FaceTrainSettings()
    parser.add_argument("--data", default=d.data,
                        help="'synthetic', or a folder of videos or of frame folders, one person each "
                             f"(default: {d.data})")
    parser.add_argument("--identities", type=int, default=d.identities,
                        help=f"synthetic identities (default: {d.identities})")
    parser.add_argument("--frames", type=int, default=d.frames,
                        help=f"frames per clip, read or rendered (default: {d.frames})")
    parser.add_argument("--size", type=int, default=64,
                        help="face size in pixels, a multiple of 16 (default: 64)")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"frame pairs per step (default: {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr:g})")
    add_train_args(parser, DEFAULTS)
    add_common_args(parser)
    add_data_consent_args(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any clip is read or rendered, flags the run would fail on late or misuse silently."""
    if args.size % 16 or args.size < 32:
        raise UserError("--size must be a multiple of 16, at least 32")
    if args.steps < 1 or args.batch_size < 1:
        raise UserError("--steps and --batch-size must be at least 1")
    if args.frames < 2:
        raise UserError(f"--frames must be at least 2 (a pair is two frames of one clip), got {args.frames}")
    if args.data == "synthetic" and not 1 <= args.identities <= len(data.TRAIN_SEEDS):
        raise UserError(f"--identities must be between 1 and {len(data.TRAIN_SEEDS)}, got {args.identities}")
    if not 0 < args.lr < math.inf:
        raise UserError(f"--lr must be a positive number, got {args.lr}")


def train(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Build the data and the model, then hand over to the shared training loop (`argv`: the command
    line the provenance log records, when not sys.argv)."""
    check_args(args)
    check_data_consent(args, "reenact", command_line(__file__, argv))
    x2face = load(PHASE, "x2face")
    settings = X2FaceTrainSettings(args.data, args.identities, args.frames, args.batch_size, args.lr,
                                   args.precision, args.seed)
    seed_everything(settings.seed)
    device = pick_device(args.device)
    cfg = x2face.X2FaceConfig(size=args.size)
    print(f"preparing clips from {settings.data} ...", flush=True)
    clips = data.video_clips(settings.data, cfg.size, settings.identities, settings.frames)
    pairs = data.PAIRS_PER_CLIP * len(clips)  # what an epoch draws
    if settings.batch_size > pairs:  # not one whole batch in an epoch
        raise UserError(f"--batch-size {settings.batch_size} is more than the {pairs} pairs an epoch "
                        f"draws from {len(clips)} clip(s) ({data.PAIRS_PER_CLIP} each): use a smaller batch "
                        "or more clips")
    model = x2face.X2Face(cfg).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), settings.lr, betas=(0.5, 0.999))
    scaler = grad_scaler(device, settings.precision)  # fp16 only: scales the loss
    first = next(data.pair_batches(clips, 1, settings.seed, 0))
    preview_pair = first["source"].to(device), first["driving"].to(device)

    def step_fn(batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        with autocast(device, settings.precision):
            source, driving = batch["source"].to(device), batch["driving"].to(device)
            losses = x2face.reconstruction_loss(model, source, driving)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"].float()).backward()
        scaler.step(optimizer)
        scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    def batches(epoch: int):
        return data.pair_batches(clips, settings.batch_size, settings.seed, epoch)

    @torch.no_grad()
    def preview(step: int) -> np.ndarray:
        model.eval()
        out = model(*preview_pair)
        model.train()
        row = torch.cat([preview_pair[0], preview_pair[1], out["canonical"], out["generated"]], dim=3)[0]
        zoom = max(1, math.ceil(128 / row.shape[1]))  # the invisible watermark needs >= 128 px a side
        row = row.repeat_interleave(zoom, dim=1).repeat_interleave(zoom, dim=2)
        return (row.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    cfg_loop = train_config_from_args(args, DEFAULTS)
    objects: dict = {"model": model, "optimizer": optimizer}
    if scaler.is_enabled():
        objects["scaler"] = scaler
    checkpointer = Checkpointer(cfg_loop.run_dir / "checkpoints", objects)
    extra = {"x2face": {**asdict(cfg), "channels": list(cfg.channels)}, "train": asdict(settings)}
    result = train_loop(step_fn, batches, cfg_loop, checkpointer, preview_fn=preview, extra=extra)
    print(f"step {result.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()))
    return 130 if result.interrupted else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_impl(args.impl)
    return train(args, argv)


if __name__ == "__main__":
    raise SystemExit(run(main))
