"""Train the phase-2 landmark CNN on synthetic faces with exact landmarks (landmark_detector.py).

    python phase2_face_reenactment/train_landmarks.py --run-dir runs/landmarks --steps 1500

Each step takes a batch of jittered face crops of synthetic people (people who do not exist; the
renderer knows where it drew every landmark) and minimises the L1 error of the soft-argmax points
plus a heatmap cross-entropy (Adam at a constant learning rate). Run the same command again
to resume; Ctrl-C saves a checkpoint first. The run folder holds checkpoints, previews (crop with the
truth in red and the prediction in green, through the provenance writer), metrics.csv and
metrics.png. reenact.py uses the result with `--landmarks cnn --landmark-checkpoint RUN_DIR`, and
benchmarks/reenact_quality.py compares it with dlib's predictor on held-out identities.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from common.cli import add_common_args, run
from common.errors import UserError, first_line
from common.impl import load, use_impl
from common.synthetic import check_frame_size
from common.training import (
    Checkpointer,
    TrainConfig,
    add_train_args,
    autocast,
    find_checkpoint,
    grad_scaler,
    load_checkpoint,
    pick_device,
    seed_everything,
    train_config_from_args,
    train_loop,
)
from phase2_face_reenactment import data

if TYPE_CHECKING:  # type hints only: the code loads solutions or templates with load()
    from solutions.phase2_face_reenactment.landmark_detector import LandmarkDetector

PHASE = "phase2_face_reenactment"
DEFAULTS = TrainConfig(run_dir=Path("runs/phase2_landmarks"), max_steps=1500, checkpoint_every=250,
                       preview_every=250)


@dataclass
class LandmarkTrainSettings:
    """Data and optimisation settings (defaults: a few minutes on a laptop CPU)."""

    identities: int = 32  # synthetic training identities
    frames: int = 30  # frames rendered per identity
    render_size: int = 160  # synthetic frame size before cropping
    batch_size: int = 16
    lr: float = 2e-3
    precision: str = "auto"
    seed: int = 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase2_face_reenactment/train_landmarks.py", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    d = LandmarkTrainSettings()
    parser.add_argument("--identities", type=int, default=d.identities,
                        help=f"synthetic training identities (default: {d.identities})")
    parser.add_argument("--frames", type=int, default=d.frames,
                        help=f"frames rendered per identity (default: {d.frames})")
    parser.add_argument("--render-size", type=int, default=d.render_size,
                        help=f"synthetic frame size, 64-2048 px (default: {d.render_size})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"crops per step (default: {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default: {d.lr:g})")
    parser.add_argument("--input-size", type=int, default=96,
                        help="crop size the network sees, a multiple of 8 (default: 96)")
    add_train_args(parser, DEFAULTS)
    add_common_args(parser)
    return parser


def draw_points(crop: np.ndarray, points: np.ndarray, colour: tuple[int, int, int], zoom: int) -> np.ndarray:
    """Dots on an enlarged copy of a crop (for previews)."""
    for x, y in points * zoom + (zoom - 1) / 2:
        cv2.circle(crop, (int(round(x)), int(round(y))), max(1, zoom // 2), colour, -1, cv2.LINE_AA)
    return crop


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any face is rendered, flags the run would fail on late or misuse silently."""
    if args.input_size % 8 or args.input_size < 32:
        raise UserError("--input-size must be a multiple of 8, at least 32")
    check_frame_size(args.render_size, "--render-size")
    if args.steps < 1 or args.batch_size < 1 or args.frames < 1:
        raise UserError("--steps, --batch-size and --frames must be at least 1")
    if not 1 <= args.identities <= len(data.TRAIN_SEEDS):
        raise UserError(f"--identities must be between 1 and {len(data.TRAIN_SEEDS)}, got {args.identities}")
    if args.identities * args.frames < args.batch_size:
        raise UserError("--identities x --frames must be at least --batch-size")
    if not 0 < args.lr < math.inf:
        raise UserError(f"--lr must be a positive number, got {args.lr}")


def train(args: argparse.Namespace) -> int:
    """Build the data and the model, then hand over to the shared training loop."""
    check_args(args)
    lmk = load(PHASE, "landmark_detector")
    settings = LandmarkTrainSettings(args.identities, args.frames, args.render_size, args.batch_size, args.lr,
                                     args.precision, args.seed)
    seed_everything(settings.seed)
    device = pick_device(args.device)
    cfg = lmk.LandmarkConfig(input_size=args.input_size)
    print(f"rendering {settings.identities} x {settings.frames} synthetic frames ...", flush=True)
    faces = data.synthetic_faces(list(data.TRAIN_SEEDS)[: settings.identities], settings.frames,
                                 settings.render_size)
    net = lmk.LandmarkNet(cfg).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), settings.lr)
    scaler = grad_scaler(device, settings.precision)  # fp16 only: scales the loss
    preview_crop, preview_points = data.jittered_crop(faces.images[0], faces.landmarks[0], lmk, cfg, None)

    def step_fn(batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        with autocast(device, settings.precision):
            logits = net(batch["image"].to(device))
        losses = lmk.landmark_loss(logits.float(), batch["landmarks"].to(device), cfg)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        return {k: float(v.detach()) for k, v in losses.items()}

    def batches(epoch: int):
        return data.landmark_batches(faces, lmk, cfg, settings.batch_size, settings.seed, epoch)

    def preview(step: int) -> np.ndarray:
        net.eval()
        predicted = lmk.LandmarkDetector(net, device).predict_crops(preview_crop[None])[0]
        net.train()
        zoom = max(1, int(np.ceil(192 / cfg.input_size)))
        big = np.ascontiguousarray(preview_crop.repeat(zoom, axis=0).repeat(zoom, axis=1))
        return draw_points(draw_points(big, preview_points, (255, 0, 0), zoom), predicted, (0, 255, 0), zoom)

    cfg_loop = train_config_from_args(args, DEFAULTS)
    objects: dict = {"model": net, "optimizer": optimizer}
    if scaler.is_enabled():
        objects["scaler"] = scaler
    checkpointer = Checkpointer(cfg_loop.run_dir / "checkpoints", objects)
    extra = {"landmarks": {**asdict(cfg), "channels": list(cfg.channels)}, "train": asdict(settings)}
    result = train_loop(step_fn, batches, cfg_loop, checkpointer, preview_fn=preview, extra=extra)
    print(f"step {result.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items()))
    return 130 if result.interrupted else 0


def load_detector(path: Path, device: torch.device | str = "cpu") -> LandmarkDetector:
    """A `LandmarkDetector` from a checkpoint file or a run folder (its newest checkpoint)."""
    path = find_checkpoint(path, "train_landmarks.py")
    state = load_checkpoint(path)  # UserError for a missing, truncated or foreign file
    settings = dict(state.get("extra", {}).get("landmarks", {}))
    if "model" not in state or not settings:
        raise UserError(f"{path} is not a landmark-CNN checkpoint (no model or landmark settings)")
    lmk = load(PHASE, "landmark_detector")
    settings["channels"] = tuple(settings["channels"])
    net = lmk.LandmarkNet(lmk.LandmarkConfig(**settings))
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as err:
        raise UserError(f"{path} does not fit its own settings ({first_line(err)})") from err
    return lmk.LandmarkDetector(net.to(device), device)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_impl(args.impl)
    return train(args)


if __name__ == "__main__":
    raise SystemExit(run(main))
