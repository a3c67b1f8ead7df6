"""Train the Wav2Lip generator against a frozen lip-sync expert (`wav2lip_train.py` / `hq_wav2lip_train.py`).

    python phase4_audio_driven/train.py --expert runs/expert/lipsync_teacher.pth --run-dir runs/w2l \\
        --identities 12 --frames 50 --steps 300 --lr 2e-3 --sync-threshold inf --mouth-weight 4   # CPU
    python phase4_audio_driven/train.py --expert lipsync_expert.pth --data LRS2/main --consent LRS2 \\
        --filelist filelists/train.txt --width 1 --batch-size 16 --disc --steps 300000 --device cuda
    torchrun --nproc-per-node 4 phase4_audio_driven/train.py ...

Each step takes windows of 5 frames: the target frames with their lower half zeroed, a reference window
of the same face (another moment, so the mouth shape cannot be copied) and one mel window per frame.
The loss (Prajwal et al. 2020, Sec. 3.3-3.4):

    L = (1 - s_w - s_g) L1 + s_w E_sync + s_g L_gen

E_sync is the frozen expert's BCE on the generated window; s_w stays 0 until the expert's loss on
held-out windows drops below 0.75 (checked every --eval-every steps), then 0.03 (--sync-weight). With --disc a
visual-quality discriminator joins (s_g = 0.07). Previews show target, masked input, reference and
output. The generator is exported as `<run-dir>/wav2lip.pth` in the published layout. `--warmup-steps` and
`--lr-schedule` shape the learning rate as in train_syncnet.py (published: constant).

`--mouth-weight W` (not in the paper; default 1, the plain L1) weighs the L1 of the masked lower half
W times the upper half's, which the masked input already shows.
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
from common.impl import load
from common.training import (
    Checkpointer,
    TrainConfig,
    add_train_args,
    autocast,
    cleanup,
    grad_scaler,
    init_distributed,
    is_main_process,
    save_checkpoint,
    seed_everything,
    train_config_from_args,
    train_loop,
    unwrap,
    wrap_ddp,
)
from common.training.schedule import add_schedule_args, lr_factor
from phase4_audio_driven.data import add_data_args, generator_batch, load_clips
from phase4_audio_driven.pipeline import from_network


@dataclass
class GeneratorConfig:
    """Network size, optimiser and loss schedule (published: width 1, batch 16, lr 1e-4, eval 3000)."""

    width: float = 0.25
    batch_size: int = 4  # windows of 5 frames
    lr: float = 1e-4
    disc: bool = False
    sync_threshold: float = 0.75
    eval_every: int = 25
    sync_weight: float = 0.03  # s_w once switched on (published 0.03)
    batches_per_epoch: int = 50
    warmup: int = 0  # steps of linear learning-rate warm-up (published: none)
    cosine: bool = False  # cosine decay to 0 at the last step (published: constant)
    mouth_weight: float = 1.0  # L1 weight of the lower half vs the upper half (published: 1, plain L1)
    disc_lr: float | None = None  # discriminator Adam rate; None: the generator's (published: both 1e-4)


class SyncWeight:
    """The sync-loss weight s_w, saved in checkpoints so that a resumed run keeps its schedule: 0 until
    the expert's loss on generated held-out windows first drops below --sync-threshold, then on for good
    (`wav2lip.sync_weight`)."""

    def __init__(self) -> None:
        self.value = 0.0

    def state_dict(self) -> dict:
        """{'value': s_w}, what the Checkpointer stores."""
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        """Restore s_w from a checkpoint's {'value': s_w}."""
        self.value = float(state["value"])


def preview_image(batch: dict, generated: torch.Tensor) -> np.ndarray:
    """Rows: target, masked input, reference, generated (first window, 5 frames), (384, 480, 3) RGB."""
    rows = [batch["target"][0], batch["faces"][0, :3], batch["faces"][0, 3:], generated[0]]  # (3, 5, 96, 96)
    tiles = [from_network(r.permute(1, 0, 2, 3)) for r in rows]  # (5, 96, 96, 3)
    return np.concatenate([np.concatenate(list(t), axis=1) for t in tiles], axis=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase4_audio_driven/train.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = GeneratorConfig()
    parser.add_argument(
        "--expert", required=True, help="trained SyncNet checkpoint (train_syncnet.py output)"
    )
    parser.add_argument("--width", type=float, default=d.width,
                        help=f"channel multiplier; 1 = published (default {d.width})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help=f"5-frame windows per step (default {d.batch_size})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    parser.add_argument("--disc", action="store_true", help="add the visual-quality discriminator (hq)")
    parser.add_argument(
        "--disc-lr",
        type=float,
        default=None,
        help="the discriminator's Adam learning rate (default: --lr; the published hparams keep both at "
        "1e-4). At the CPU presets' 2e-3 a narrow discriminator goes silent: it outputs 0.5 for every "
        "face (loss 2 ln 2 = 1.386) and teaches nothing",
    )
    parser.add_argument(
        "--sync-threshold",
        type=float,
        default=d.sync_threshold,
        help=f"turn the sync loss on once the held-out expert loss is below this "
        f"(default: {d.sync_threshold:g})",
    )
    parser.add_argument(
        "--sync-weight",
        type=float,
        default=d.sync_weight,
        help=f"weight s_w of the expert sync loss once it is on (default: {d.sync_weight:g}, as published)",
    )
    parser.add_argument(
        "--mouth-weight",
        type=float,
        default=d.mouth_weight,
        help="weigh the L1 of the lower half of the face (the masked half, where the mouth must follow "
        "the audio) this many times the upper half's (not in the paper; default 1 = the published plain "
        "L1)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=d.eval_every,
        help=f"steps between held-out sync evaluations (default {d.eval_every})",
    )
    add_schedule_args(parser)
    add_data_args(parser)
    add_train_args(parser, TrainConfig(run_dir=Path("runs/w2l"), max_steps=200, checkpoint_every=100,
                                        preview_every=50))
    add_common_args(parser)
    add_data_consent_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 < args.width < math.inf or args.batch_size < 1 or args.eval_every < 1 or args.warmup_steps < 0:
        raise UserError("--width must be a positive number, --batch-size and --eval-every at least 1, "
                        "--warmup-steps at least 0")
    if not 0 < args.lr < math.inf or args.steps < 1:
        raise UserError(f"--lr must be a positive number and --steps at least 1, got {args.lr} and "
                        f"{args.steps}")
    if not 0 <= args.sync_weight < 1:
        raise UserError(f"--sync-weight must be in [0, 1), got {args.sync_weight}")
    if not 0 < args.mouth_weight < math.inf:  # written so that nan fails too
        raise UserError(f"--mouth-weight must be a positive number, got {args.mouth_weight}")
    if args.disc_lr is not None and not 0 < args.disc_lr < math.inf:
        raise UserError(f"--disc-lr must be a positive number, got {args.disc_lr}")
    if math.isnan(args.sync_threshold):  # inf is fine: the sync loss is on from the first check
        raise UserError("--sync-threshold must be a number (inf: on from the first check), got nan")
    check_data_consent(args, "lipsync", command_line(__file__, argv))
    cfg = GeneratorConfig(
        args.width, args.batch_size, args.lr, args.disc, args.sync_threshold, args.eval_every,
        sync_weight=args.sync_weight, warmup=args.warmup_steps, cosine=args.lr_schedule == "cosine",
        mouth_weight=args.mouth_weight, disc_lr=args.disc_lr,
    )
    dist = init_distributed(args.device)
    seed_everything(args.seed + dist.rank)
    w2l = load("phase4_audio_driven", "wav2lip", args.impl)
    loss_cfg = w2l.LossConfig(
        sync_weight_final=cfg.sync_weight, sync_threshold=cfg.sync_threshold, mouth_weight=cfg.mouth_weight
    )
    model = load("phase4_audio_driven", "model", args.impl)
    audio_encoder = load("phase4_audio_driven", "audio_encoder", args.impl)
    expert = model.load_syncnet(args.expert).to(dist.device)  # frozen: eval mode, no gradients
    clips = load_clips(args, audio_encoder, seed=args.seed)
    train_clips, val_clips = (clips[:-1], clips[-1:]) if len(clips) > 1 else (clips, clips)
    val_batch = generator_batch(val_clips, max(2, cfg.batch_size), np.random.default_rng(12345))

    generator = w2l.Wav2Lip(cfg.width).to(dist.device)
    optimizer = torch.optim.Adam(generator.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    gen = wrap_ddp(generator, dist.device)
    objects: dict = {"generator": gen, "optimizer": optimizer}
    scaler = grad_scaler(dist.device, args.precision)  # fp16 only: scales the losses
    if scaler.is_enabled():
        objects["scaler"] = scaler
    disc = disc_opt = None
    disc_lr = cfg.lr if cfg.disc_lr is None else cfg.disc_lr
    if cfg.disc:
        disc = wrap_ddp(w2l.Wav2LipDiscQual(cfg.width).to(dist.device), dist.device)
        disc_opt = torch.optim.Adam(disc.parameters(), lr=disc_lr, betas=(0.5, 0.999))
        objects.update(disc=disc, disc_optimizer=disc_opt)
    s_w = SyncWeight()
    objects["sync_weight"] = s_w

    def on(batch: dict, key: str) -> torch.Tensor:
        return batch[key].to(dist.device)

    @torch.no_grad()
    def held_out_sync_loss() -> float:
        generator.eval()
        g = generator(on(val_batch, "audio"), on(val_batch, "faces"))
        return float(w2l.expert_sync_loss(expert, on(val_batch, "mel"), g))

    def batches(epoch: int):
        rng = np.random.default_rng([args.seed, epoch, dist.rank])
        for _ in range(cfg.batches_per_epoch):
            yield generator_batch(train_clips, cfg.batch_size, rng)

    def step(batch: dict, index: int) -> dict[str, float]:
        factor = lr_factor(index, args.steps, cfg.warmup, cfg.cosine)  # one schedule for both networks
        lr = cfg.lr * factor
        for group in optimizer.param_groups:
            group["lr"] = lr
        for group in disc_opt.param_groups if disc_opt is not None else []:
            group["lr"] = disc_lr * factor
        gen.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(dist.device, args.precision):
            g = gen(on(batch, "audio"), on(batch, "faces"))  # (B, 3, 5, 96, 96)
            prob = disc(g) if disc is not None else None
        g = g.float()
        sync = w2l.expert_sync_loss(expert, on(batch, "mel"), g) if s_w.value > 0 else g.new_zeros(())
        losses = w2l.generator_loss(
            g, on(batch, "target"), sync, None if prob is None else prob.float(), s_w.value, loss_cfg
        )
        scaler.scale(losses["total"]).backward()
        scaler.step(optimizer)
        if disc is not None:
            disc_opt.zero_grad(set_to_none=True)
            d_loss = w2l.discriminator_loss(lambda x: disc(x).float(), g, on(batch, "target"))
            scaler.scale(d_loss).backward()
            scaler.step(disc_opt)
            losses["disc"] = d_loss
        scaler.update()
        metrics = {k: float(v.detach()) for k, v in losses.items()}
        if (index + 1) % cfg.eval_every == 0:
            val = held_out_sync_loss()
            s_w.value = w2l.sync_weight(s_w.value, val, loss_cfg)
            metrics["val_sync"] = val
        metrics["sync_weight"] = s_w.value
        metrics["lr"] = lr
        return metrics

    @torch.no_grad()
    def preview(_: int) -> np.ndarray:
        generator.eval()
        return preview_image(val_batch, generator(on(val_batch, "audio"), on(val_batch, "faces")).cpu())

    train_cfg = train_config_from_args(args)
    checkpointer = Checkpointer(train_cfg.run_dir / "checkpoints", objects)
    rank0 = is_main_process()  # asked now: after cleanup every process would call itself rank 0
    try:
        result = train_loop(step, batches, train_cfg, checkpointer, preview_fn=preview, extra=asdict(cfg))
    finally:
        cleanup()  # leave the process group init_distributed joined under torchrun (nothing to do otherwise)
    if rank0:
        out = save_checkpoint(
            train_cfg.run_dir / "wav2lip.pth",
            model.checkpoint_dict(unwrap(gen), optimizer, result.step, result.epoch),
        )
        if disc is not None:
            save_checkpoint(
                train_cfg.run_dir / "visual_quality_disc.pth",
                model.checkpoint_dict(unwrap(disc), disc_opt, result.step, result.epoch),
            )
        print(f"generator: {out} (step {result.step}, sync weight {s_w.value:g})")
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    raise SystemExit(run(main))
