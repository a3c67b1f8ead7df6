"""Train the SyncNet lip-sync expert (Wav2Lip's `color_syncnet_train.py`), resumably.

    python phase4_audio_driven/train_syncnet.py --run-dir runs/expert --identities 12 --frames 50 \\
        --steps 1500 --lr 1e-3 --warmup-steps 300 --lr-schedule cosine --group 4 --augment --min-shift 3 \\
        --teacher-step 500                                            # synthetic, CPU (make demo's)
    python phase4_audio_driven/train_syncnet.py --data LRS2/main --filelist filelists/train.txt \\
        --width 1 --batch-size 64 --lr 1e-4 --steps 250000 --device cuda --consent LRS2   # the real thing
    torchrun --nproc-per-node 4 phase4_audio_driven/train_syncnet.py ...                   # several GPUs

Each batch holds 5-frame windows of lower-half face crops with either their own 0.2 s of audio
(label 1) or the audio of another window of the same clip (label 0), 50/50. The loss is the BCE of
the cosine similarity of the two embeddings (Wav2Lip eq. 1). At the end the expert is exported in
the published layout as `<run-dir>/lipsync_expert.pth`, and its accuracy on held-out clips (in sync
vs shifted by at least 5 frames) is printed. Run the same command again to resume.

`--group G` (not in the published code) draws --batch-size / G clips with G windows each and pairs
every face window with its own audio and with the audio of each other window of its clip (at least
--min-shift frames away, label 0): G - 1 negatives per window for the encoders' cost of one window,
half the loss on the in-sync pairs and half on the shifted ones (still the BCE of the cosine). Random
50/50 pairs of batch 16 can sit at chance (loss 0.69) for thousands of steps; groups of 4 leave it
within 250 steps, and with --augment they stop learning the training faces by heart.

`--teacher-step N` (not in the published code) also saves the expert as it stood after N steps, as
`<run-dir>/lipsync_teacher.pth`, for train.py's `--expert`. The final expert is the sharper judge but
can be the worse teacher: it gives a young generator's blurry mouths P ~ e^-5 of being in sync, the
sync loss (-log P, weighted 0.03) then outweighs the L1, and the generator learns to please the expert
instead of moving the lips. Earlier in its training the expert is less sure of itself and its gradient
teaches more often than not (benchmarks/wav2lip_sync_quality.py has the figures and their spread).

The published run keeps Adam's learning rate constant; `--warmup-steps N --lr-schedule cosine` ramps it
up over N steps and then lets it follow half a cosine down to 0 at --steps (the CPU presets: a short
run that starts at a higher rate without diverging and ends settled). The rate is a function of the
step, so a resumed run follows the same curve.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
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
from phase4_audio_driven.data import (
    TalkingClip,
    add_data_args,
    load_clips,
    syncnet_batch,
    syncnet_group_batch,
)

HELD_OUT_SEED = 10_000  # synthetic people used only for evaluation


@dataclass
class ExpertConfig:
    """Network size and optimiser (published: width 1, batch 64, Adam lr 1e-4)."""

    width: float = 0.25
    batch_size: int = 16
    lr: float = 1e-4
    batches_per_epoch: int = 50
    min_shift: int = 1  # frames between a negative's audio and its faces (published: any other window)
    paired: bool = False  # each window is shown with its own and with shifted audio
    augment: bool = False  # random colour, framing and audio level per window (data.Augment)
    warmup: int = 0  # steps of linear learning-rate warm-up (published: none)
    cosine: bool = False  # cosine decay to 0 at the last step (published: constant)
    group: int = 0  # windows per clip, every other window's audio a negative (published: 0, random pairs)
    teacher_step: int = 0  # also save the expert after this many steps as lipsync_teacher.pth (0: no)


@torch.no_grad()
def sync_accuracy(
    expert: torch.nn.Module, clips: list[TalkingClip], pairs: int = 128, min_shift: int = 5, seed: int = 0,
    impl: str | None = None
) -> float:
    """Fraction of pairs (half in sync, half shifted >= min_shift frames) the expert classifies right
    (P_sync = cosine > 0.5 means "in sync"; `lip_sync.sync_probability` of `impl`)."""
    expert.eval()
    batch = syncnet_batch(clips, pairs, np.random.default_rng(seed), min_shift=min_shift)
    device = next(expert.parameters()).device
    a, v = expert(batch["audio"].to(device), batch["faces"].to(device))  # (B, 512) each
    prob = load("phase4_audio_driven", "lip_sync", impl).sync_probability(a, v).cpu()  # (B,)
    return float(((prob > 0.5).float() == batch["labels"][:, 0]).float().mean())


def group_loss(sync_loss: Callable[..., torch.Tensor], audio_emb: torch.Tensor, face_emb: torch.Tensor,
               batch: dict, min_shift: int) -> torch.Tensor:
    """Loss of a `syncnet_group_batch`, embeddings (B, 512) each: the mean of `sync_loss` over the B
    in-sync pairs and over every (face, audio) pair of one clip whose windows lie at least `min_shift`
    frames apart (label 0), so that both classes weigh alike, as in a 50/50 batch."""
    device = audio_emb.device
    clip, start = batch["clip"], batch["start"]  # (B,) each
    loss = sync_loss(audio_emb, face_emb, torch.ones(len(start), 1, device=device))
    far = (start[:, None] - start[None, :]).abs() >= max(1, min_shift)  # (B faces, B audio)
    pairs = torch.nonzero((clip[:, None] == clip[None, :]) & far).to(device)  # (P, 2): face, audio
    face_i, audio_i = pairs[:, 0], pairs[:, 1]
    if len(face_i) == 0:
        return loss
    off = sync_loss(audio_emb[audio_i], face_emb[face_i], torch.zeros(len(face_i), 1, device=device))
    return 0.5 * (loss + off)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python phase4_audio_driven/train_syncnet.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = ExpertConfig()
    parser.add_argument(
        "--width",
        type=float,
        default=d.width,
        help=f"channel multiplier; 1 = the published expert (default {d.width})",
    )
    parser.add_argument(
        "--batch-size", type=int, default=d.batch_size, help=f"windows per step (default: {d.batch_size})"
    )
    parser.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr})")
    parser.add_argument(
        "--min-shift",
        type=int,
        default=d.min_shift,
        help="negatives use audio at least this many frames away (default 1)",
    )
    parser.add_argument(
        "--paired",
        action="store_true",
        help="show each face window twice, with its own audio and with shifted audio (hard negatives)",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="random colour, crop shift/zoom and audio gain per window: with --group it keeps the expert "
        "from learning the training faces by heart (the CPU presets use both)",
    )
    parser.add_argument(
        "--eval-identities",
        type=int,
        default=2,
        help="synthetic: held-out people for the final accuracy check (0 = skip; default 2)",
    )
    parser.add_argument(
        "--group",
        type=int,
        default=d.group,
        help="draw --batch-size / G clips with G windows each and use every other window's audio of the "
        "clip as a negative (G - 1 negatives per window for the encoder cost of one; 0 = the published "
        "50/50 random pairs; default 0)",
    )
    parser.add_argument(
        "--teacher-step",
        type=int,
        default=d.teacher_step,
        help="also save the expert as it stood after this many steps as <run-dir>/lipsync_teacher.pth: a "
        "less confident expert is the better teacher for train.py --expert (0 = no; default 0)",
    )
    add_schedule_args(parser)
    add_data_args(parser)
    add_train_args(parser, TrainConfig(run_dir=Path("runs/expert"), max_steps=200,
                                        checkpoint_every=100, preview_every=0))
    add_common_args(parser)
    add_data_consent_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (not 0 < args.width < math.inf or args.batch_size < 2 or args.warmup_steps < 0
            or not 0 <= args.teacher_step <= args.steps):
        raise UserError("--width must be a positive number, --batch-size at least 2, --warmup-steps at "
                        "least 0 and --teacher-step between 0 and --steps")
    if not 0 < args.lr < math.inf or args.steps < 1:
        raise UserError(f"--lr must be a positive number and --steps at least 1, got {args.lr} and "
                        f"{args.steps}")
    if args.group and (args.group < 2 or args.batch_size % args.group or args.paired):
        raise UserError("--group must be at least 2, divide --batch-size, and go without --paired")
    check_data_consent(args, "lipsync", command_line(__file__, argv))
    cfg = ExpertConfig(
        args.width,
        args.batch_size,
        args.lr,
        min_shift=args.min_shift,
        paired=args.paired,
        augment=args.augment,
        warmup=args.warmup_steps,
        cosine=args.lr_schedule == "cosine",
        group=args.group,
        teacher_step=args.teacher_step,
    )
    dist = init_distributed(args.device)
    seed_everything(args.seed + dist.rank)
    lip_sync = load("phase4_audio_driven", "lip_sync", args.impl)
    model = load("phase4_audio_driven", "model", args.impl)
    audio_encoder = load("phase4_audio_driven", "audio_encoder", args.impl)
    clips = load_clips(args, audio_encoder, seed=args.seed)

    expert = lip_sync.SyncNet(cfg.width).to(dist.device)
    optimizer = torch.optim.Adam(expert.parameters(), lr=cfg.lr)
    trained = wrap_ddp(expert, dist.device)
    precision = args.precision
    scaler = grad_scaler(dist.device, precision)  # fp16 only: scales the loss

    def batches(epoch: int):
        rng = np.random.default_rng([args.seed, epoch, dist.rank])
        for _ in range(cfg.batches_per_epoch):
            if cfg.group:
                yield syncnet_group_batch(clips, cfg.batch_size, rng, cfg.group, cfg.augment)
            else:
                yield syncnet_batch(clips, cfg.batch_size, rng, cfg.min_shift, cfg.paired, cfg.augment)

    def step(batch: dict, index: int) -> dict[str, float]:
        lr = cfg.lr * lr_factor(index, args.steps, cfg.warmup, cfg.cosine)
        for group in optimizer.param_groups:
            group["lr"] = lr
        trained.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast(dist.device, precision):
            a, v = trained(batch["audio"].to(dist.device), batch["faces"].to(dist.device))
        if cfg.group:
            loss = group_loss(lip_sync.sync_loss, a.float(), v.float(), batch, cfg.min_shift)
        else:
            loss = lip_sync.sync_loss(a.float(), v.float(), batch["labels"].to(dist.device))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if index + 1 == cfg.teacher_step and is_main_process():
            save_checkpoint(teacher_path, model.checkpoint_dict(
                unwrap(trained), None, cfg.teacher_step, cfg.teacher_step // cfg.batches_per_epoch))
        return {"sync_loss": loss.item(), "lr": lr}

    train_cfg = train_config_from_args(args)
    teacher_path = train_cfg.run_dir / "lipsync_teacher.pth"
    objects: dict = {"expert": trained, "optimizer": optimizer}
    if scaler.is_enabled():
        objects["scaler"] = scaler
    checkpointer = Checkpointer(train_cfg.run_dir / "checkpoints", objects)
    rank0 = is_main_process()  # asked now: after cleanup every process would call itself rank 0
    try:
        result = train_loop(step, batches, train_cfg, checkpointer, extra=asdict(cfg))
    finally:
        cleanup()  # leave the process group init_distributed joined under torchrun (nothing to do otherwise)
    if rank0:
        out = save_checkpoint(
            train_cfg.run_dir / "lipsync_expert.pth",
            model.checkpoint_dict(unwrap(trained), optimizer, result.step, result.epoch),
        )
        if args.data == "synthetic" and args.eval_identities > 0:
            held_out_args = {**vars(args), "cache": None, "identities": args.eval_identities}
            held_out = load_clips(argparse.Namespace(**held_out_args), audio_encoder, seed=HELD_OUT_SEED)
            acc = sync_accuracy(unwrap(trained), held_out, impl=args.impl)
            print(f"held-out accuracy (in sync vs shifted >= 5 frames): {acc:.1%}")
        print(f"expert: {out} (step {result.step})")
        if cfg.teacher_step and result.step >= cfg.teacher_step:
            if teacher_path.is_file():
                print(f"teacher: {teacher_path} (step {cfg.teacher_step})")
            else:
                print(f"no teacher: the run was resumed past step {cfg.teacher_step} without "
                      f"{teacher_path.name} (train a new run folder to get one)")
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    raise SystemExit(run(main))
