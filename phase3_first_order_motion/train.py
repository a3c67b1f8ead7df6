"""Train the First Order Motion Model by reconstruction (Siarohin et al., NeurIPS 2019, sec. 3.3).

    python phase3_first_order_motion/train.py --data synthetic --config tiny --steps 300
    python phase3_first_order_motion/train.py --data /data/vox --config vox-256 --batch-size 16 --consent ID
    torchrun --nproc_per_node 4 phase3_first_order_motion/train.py --data /data/vox --config vox-256 \\
        --consent ID

Each step takes two frames of the same video, S and D, and minimises

    L = L_perceptual(D_hat, D)                                  (VGG19 pyramid, or pixels: see losses.py)
      + 10 |p^D - Y(p^{Y(D)})|_1 + 10 |I - (J^D)^-1 (dY/dp) J^{Y(D)}|_1   (equivariance, eq. 11-13)
      [+ LSGAN + feature matching with --adversarial]

with Adam (lr 2e-4, betas 0.5/0.999) on the keypoint detector and generator. The run folder holds
checkpoints in the published layout (`kp_detector`, `generator`, `optimizer_*`, `epoch`, ...; animate.py
reads them), previews (source | driving | prediction | warped source, through the provenance writer),
metrics.csv and metrics.png. Run the same command again to resume; Ctrl-C saves first.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.distributed as dist

from common.cli import add_common_args, add_data_consent_args, check_data_consent, command_line, run
from common.errors import UserError
from common.impl import current_impl, load, use_impl
from common.training import (
    Checkpointer,
    TrainConfig,
    add_train_args,
    autocast,
    average_gradients,
    cleanup,
    grad_scaler,
    init_distributed,
    load_checkpoint,
    seed_everything,
    train_config_from_args,
    train_loop,
)
from common.training.schedule import add_schedule_args, lr_factor

if TYPE_CHECKING:  # type hints only: the code loads solutions or templates with load()
    from solutions.phase3_first_order_motion.model import FOMMConfig

PHASE = "phase3_first_order_motion"


@dataclass
class TrainSettings:
    """What the optimisation does: published vox-256 values (Adam 2e-4, betas 0.5 / 0.999), except the
    CPU-friendly batch size and the schedule: the published run divides the rate by 10 at epochs 60 and
    90 (MultiStepLR); here it stays constant unless --lr-schedule cosine."""

    batch_size: int = 8
    lr: float = 2e-4
    lr_schedule: str = "constant"  # or "cosine": linear warm-up, then cosine decay to 0 at max_steps
    warmup_steps: int = 0
    max_steps: int = 0  # the cosine schedule's length (train.py passes --steps)
    equivariance_value: float = 10.0
    equivariance_jacobian: float = 10.0
    adversarial: bool = False  # LSGAN + feature matching (the vox-adv configuration)
    generator_gan: float = 1.0
    feature_matching: float = 10.0
    repeats: int = 75  # each video appears this many times per epoch
    clip_grad_norm: float = 0.0  # > 0: rescale each network's gradient to at most this norm (not published)
    precision: str = "auto"
    seed: int = 0


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The Adam learning rate of `step` (0-based): constant, or (cosine) a linear warm-up over
    `warmup_steps` times a cosine decay that reaches 0 at `max_steps` (common.training.schedule)."""
    s = settings
    return s.lr * lr_factor(step, s.max_steps, s.warmup_steps, cosine=s.lr_schedule == "cosine")


class FOMMTrainer:
    """The modules, optimizers and losses of one run, with the step and preview functions of the loop."""

    def __init__(self, config: FOMMConfig, settings: TrainSettings, device: torch.device,
                 world_size: int = 1) -> None:
        model, losses = load(PHASE, "model"), load(PHASE, "losses")
        self.config, self.settings, self.device = config, settings, device
        built = model.build_fomm(config)
        self.kp_detector = built["kp_detector"].to(device).train()
        self.generator = built["generator"].to(device).train()
        self.discriminator = built["discriminator"].to(device).train()
        def adam(module: torch.nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam(module.parameters(), settings.lr, betas=(0.5, 0.999))

        # the published checkpoint names: {"optimizer_kp_detector": "kp_detector", ...}
        self.optimizers = {key: adam(getattr(self, name)) for key, name in model.OPTIMIZERS.items()}
        self.scaler = grad_scaler(device, settings.precision)  # fp16 only: scales the losses
        if world_size > 1:  # every process starts from rank 0's weights (DDP does this when wrapping)
            for module in (self.kp_detector, self.generator, self.discriminator):
                for tensor in module.state_dict().values():
                    dist.broadcast(tensor, src=0)
        self.perceptual = losses.PerceptualPyramidLoss().to(device)
        self.losses = losses
        self.preview_pair: dict[str, torch.Tensor] | None = None

    def stateful(self) -> dict:
        """Everything a checkpoint holds, under the published names."""
        objects = {"kp_detector": self.kp_detector, "generator": self.generator,
                   "discriminator": self.discriminator, **self.optimizers}
        if self.scaler.is_enabled():  # fp16 runs only: the published layout has no scaler
            objects["scaler"] = self.scaler
        return objects

    def step(self, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
        """One optimisation step on `source`, `driving` (B, 3, H, W) frame pairs; returns the losses.

        Under torchrun each network's gradients are averaged over the processes by hand
        (`average_gradients`): the keypoint detector runs three times per step, which DDP's
        one-forward-per-backward bookkeeping does not allow. BatchNorm statistics stay per process.
        In fp16 the averaged gradients are still scaled (`grad_scaler`): an overflow on one process
        reaches every process, so they all skip the step together; clipping reads them unscaled.
        """
        s, losses = self.settings, self.losses
        lr = learning_rate(s, step)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        source, driving = batch["source"].to(self.device), batch["driving"].to(self.device)
        if self.preview_pair is None:
            self.preview_pair = {"source": source[:1].clone(), "driving": driving[:1].clone()}
        with autocast(self.device, s.precision):
            kp_source = self.kp_detector(source)  # "value" (B, K, 2) in [-1, 1] [, "jacobian" (B, K, 2, 2)]
            kp_driving = self.kp_detector(driving)
            out = self.generator(source, kp_driving=kp_driving, kp_source=kp_source)
            prediction = out["prediction"].float()  # (B, 3, H, W) in [0, 1]: D_hat
            metrics = {"perceptual": self.perceptual(prediction, driving)}
            transform = losses.RandomTPS(driving.shape[0], device=self.device)
            kp_transformed = self.kp_detector(transform.transform_frame(driving))  # keypoints of Y(D)
        eq = losses.equivariance_loss({k: v.float() for k, v in kp_driving.items()},
                                      {k: v.float() for k, v in kp_transformed.items()}, transform)
        metrics["equivariance_value"] = s.equivariance_value * eq["value"]
        if "jacobian" in eq:  # keypoints without Jacobians (estimate_jacobian=False) have no such term
            metrics["equivariance_jacobian"] = s.equivariance_jacobian * eq["jacobian"]
        if s.adversarial:
            with autocast(self.device, s.precision):
                real = self.discriminator({"prediction_1": driving})
                fake = self.discriminator({"prediction_1": prediction})
            gan = losses.gan_losses(real, fake, self.discriminator.scales)
            metrics["generator_gan"] = s.generator_gan * gan["generator_gan"]
            metrics["feature_matching"] = s.feature_matching * gan["feature_matching"]
        total = sum(metrics.values())
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        scaler = self.scaler
        scaler.scale(total).backward()
        average_gradients(self.kp_detector)
        average_gradients(self.generator)
        if s.clip_grad_norm > 0:
            for module, name in ((self.kp_detector, "optimizer_kp_detector"),
                                 (self.generator, "optimizer_generator")):
                scaler.unscale_(self.optimizers[name])
                torch.nn.utils.clip_grad_norm_(module.parameters(), s.clip_grad_norm)
        scaler.step(self.optimizers["optimizer_kp_detector"])
        scaler.step(self.optimizers["optimizer_generator"])
        if s.adversarial:
            self.optimizers["optimizer_discriminator"].zero_grad(set_to_none=True)
            with autocast(self.device, s.precision):
                real = self.discriminator({"prediction_1": driving})
                fake = self.discriminator({"prediction_1": prediction.detach()})
            d_loss = losses.gan_losses(real, fake, self.discriminator.scales)["discriminator"]
            scaler.scale(d_loss).backward()
            average_gradients(self.discriminator)
            scaler.step(self.optimizers["optimizer_discriminator"])
            metrics["discriminator"] = d_loss
        scaler.update()
        metrics = {k: float(v.detach()) for k, v in metrics.items()}
        metrics["total"] = float(total.detach())
        return metrics

    @torch.no_grad()
    def preview(self, step: int) -> np.ndarray:
        """source | driving | prediction | source warped by the motion field, as one (H, 4W, 3) image."""
        if self.preview_pair is None:
            raise UserError("no batch seen yet, nothing to preview")
        self.kp_detector.eval()
        self.generator.eval()
        source, driving = self.preview_pair["source"], self.preview_pair["driving"]
        out = self.generator(source, kp_driving=self.kp_detector(driving), kp_source=self.kp_detector(source))
        self.kp_detector.train()
        self.generator.train()
        row = torch.cat([source, driving, out["prediction"], out["deformed"]], dim=3)[0]
        zoom = max(1, math.ceil(128 / row.shape[1]))  # the invisible watermark needs >= 128 px a side
        row = row.repeat_interleave(zoom, dim=1).repeat_interleave(zoom, dim=2)
        return (row.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def check_resumable(checkpointer: Checkpointer, config: FOMMConfig) -> None:
    """A run folder whose newest checkpoint holds another network configuration (e.g. made before the
    tiny configuration changed) is one clear error, not a state_dict size mismatch."""
    latest = checkpointer.latest()
    if latest is None:
        return
    stored = (load_checkpoint(latest).get("extra") or {}).get("model_params")
    if stored is not None and stored != config.model_params():
        raise UserError(f"{latest} holds another FOMM configuration than --config asks for (an older "
                        f"run?); choose another --run-dir or delete {checkpointer.directory}")


def load_videos(data: str, size: int, split: str, seed: int, count: int, frames: int,
                fps: float = 25.0) -> list[np.ndarray]:
    """`synthetic` (in-memory synthetic talking heads) or a folder of videos."""
    data_mod = load_data_module()
    if data == "synthetic":
        offset = 0 if split == "train" else 10_000  # held-out people for testing
        return data_mod.synthetic_videos(count, frames, size, seed=seed + offset, fps=fps)
    return data_mod.load_video_folder(data, size, split=split)


def load_data_module():
    from phase3_first_order_motion import data

    return data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python phase3_first_order_motion/train.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True,
                        help="'synthetic' or a folder of videos (VoxCeleb layout: train/ and test/ holding "
                             ".mp4 files or folders of frames)")
    parser.add_argument("--config", choices=("tiny", "vox-256"), default="tiny",
                        help="network size: tiny (64 px, CPU minutes) or vox-256 (the published model) "
                             "(default: tiny)")
    parser.add_argument("--batch-size", type=int, default=TrainSettings.batch_size,
                        help=f"frame pairs per step (default: {TrainSettings.batch_size})")
    parser.add_argument("--lr", type=float, default=TrainSettings.lr,
                        help=f"Adam learning rate (default: {TrainSettings.lr:g})")
    add_schedule_args(parser)
    parser.add_argument("--adversarial", action="store_true",
                        help="add the LSGAN + feature-matching losses of the vox-adv configuration")
    parser.add_argument("--clip-grad-norm", type=float, default=TrainSettings.clip_grad_norm,
                        help="rescale the keypoint detector's and the generator's gradients to at most this "
                             "norm each (default: 0 = off, as published). With Adam's beta1 = 0.5 one "
                             "gradient spike (a nearly singular Jacobian) moves the weights ~16 learning "
                             "rates at once")
    parser.add_argument("--repeats", type=int, default=TrainSettings.repeats,
                        help=f"times each video is used per epoch (default: {TrainSettings.repeats})")
    parser.add_argument("--synthetic-videos", type=int, default=16,
                        help="with --data synthetic: identities (default: 16)")
    parser.add_argument("--synthetic-frames", type=int, default=32,
                        help="with --data synthetic: frames each (default: 32)")
    parser.add_argument("--synthetic-fps", type=float, default=25.0,
                        help="with --data synthetic: clip frame rate, lower for more motion between frames "
                             "(default: 25)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default). On a busy machine 1 is often faster: "
                             "threads that wait for each other's cores spin instead of working")
    add_train_args(parser, TrainConfig(run_dir=Path("runs/fomm"), max_steps=300, checkpoint_every=100,
                                       preview_every=50))
    add_common_args(parser)
    add_data_consent_args(parser)
    return parser


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any video is read or rendered, flags the run would fail on late or change silently."""
    lowest = {"--batch-size": (args.batch_size, 1), "--steps": (args.steps, 1),
              "--repeats": (args.repeats, 1), "--warmup-steps": (args.warmup_steps, 0),
              "--threads": (args.threads, 0), "--synthetic-videos": (args.synthetic_videos, 1),
              "--synthetic-frames": (args.synthetic_frames, 2)}
    for flag, (value, low) in lowest.items():
        if value < low:
            raise UserError(f"{flag} must be at least {low}, got {value}")
    for flag, value in (("--lr", args.lr), ("--synthetic-fps", args.synthetic_fps)):
        if not 0 < value < math.inf:
            raise UserError(f"{flag} must be a positive number, got {value}")
    if not 0 <= args.clip_grad_norm < math.inf:
        raise UserError(f"--clip-grad-norm must be 0 (off) or a positive number, got {args.clip_grad_norm}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    use_impl(args.impl)
    check_args(args)
    check_data_consent(args, "animate", command_line(__file__, argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    info = init_distributed(args.device)
    seed_everything(args.seed + info.rank)
    config = load(PHASE, "model").get_config(args.config)
    videos = load_videos(args.data, config.frame_size, "train", args.seed, args.synthetic_videos,
                         args.synthetic_frames, args.synthetic_fps)
    repeats = max(args.repeats, math.ceil(args.batch_size * info.world_size / len(videos)))
    settings = TrainSettings(batch_size=args.batch_size, lr=args.lr, lr_schedule=args.lr_schedule,
                             warmup_steps=args.warmup_steps, max_steps=args.steps,
                             adversarial=args.adversarial, repeats=repeats, precision=args.precision,
                             clip_grad_norm=args.clip_grad_norm,
                             seed=args.seed)
    trainer = FOMMTrainer(config, settings, info.device, info.world_size)
    checkpointer = Checkpointer(args.run_dir / "checkpoints", trainer.stateful())
    check_resumable(checkpointer, config)
    data_mod = load_data_module()

    def batches(epoch: int):
        return data_mod.epoch_batches(videos, settings.batch_size, epoch, settings.seed, settings.repeats,
                                      rank=info.rank, world_size=info.world_size)

    cfg = train_config_from_args(args, TrainConfig(run_dir=args.run_dir))
    extra = {"model_params": config.model_params(), "frame_size": config.frame_size, "config": args.config,
             "settings": asdict(settings)}
    try:
        result = train_loop(trainer.step, batches, cfg, checkpointer, preview_fn=trainer.preview, extra=extra)
    finally:
        cleanup()  # leave the process group init_distributed joined under torchrun (nothing to do otherwise)
    if result.checkpoint is not None:
        print(f"checkpoint: {result.checkpoint} (step {result.step}); animate with: "
              f"python {PHASE}/animate.py --checkpoint {result.checkpoint}"
              f"{'' if current_impl() == 'solutions' else ' --impl ' + current_impl()} ...", file=sys.stderr)
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    raise SystemExit(run(main))
