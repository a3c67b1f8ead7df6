"""Train the DeepFakes face-swap autoencoder (or its FaceSwap-GAN variant) on two people.

    python phase1_face_swap/train.py --source faces/A --target faces/B --epochs 20 \\
        --consent ID_A --consent ID_B
    python phase1_face_swap/train.py --source data/personA --target data/personB --epochs 50 \\
        --preset gpu128 --consent ID_A --consent ID_B
    torchrun --nproc_per_node 4 phase1_face_swap/train.py --source faces/A --target faces/B --epochs 50 ...

Training a swap model is already making a deepfake of two people (its previews are swaps), so consent
comes first, as in swap_video.py: a record that allows "swap" and image outputs (the previews) for
each of them, checked before any face is loaded.

`--source` and `--target` are folders written by extract.py, or folders (or single files) of images
and videos, which are then extracted in memory. The run folder collects checkpoints (resumed
automatically when you run the same command again), preview grids (rows: input, reconstruction,
swap, for each person) and metrics.csv/metrics.png. Swap with swap_video.py --checkpoint RUN_DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from common.cli import add_common_args, add_consent_args, check_folder, command_line, consent_roles, run
from common.errors import UserError
from common.impl import load, use_impl
from common.training import (
    Checkpointer,
    LoopResult,
    TrainConfig,
    add_train_args,
    average_gradients,
    cleanup,
    init_distributed,
    is_main_process,
    load_checkpoint,
    seed_everything,
    train_loop,
)
from consent_and_watermark import writer

if TYPE_CHECKING:  # type hints only: the code loads solutions or templates with load()
    from solutions.phase1_face_swap.faceset import FaceSet

PHASE = "phase1_face_swap"


def check_resume(run_dir: Path, autoencoder: dict, gan: bool) -> None:
    """Refuse to resume a run whose checkpoint was made for another model (clear error, nothing written)."""
    latest = Checkpointer(run_dir / "checkpoints", {}).latest()
    if latest is None:
        return
    extra = load_checkpoint(latest).get("extra", {})
    saved = extra.get("autoencoder", {})
    if json.dumps(saved, sort_keys=True) != json.dumps(autoencoder, sort_keys=True):  # tuples saved as lists
        raise UserError(
            f"{run_dir} holds a checkpoint for a {saved.get('resolution')} px model with other settings "
            f"than this {autoencoder['resolution']} px run; pick another --run-dir or the same --preset"
        )
    if bool(extra.get("gan")) != gan:
        raise UserError(
            f"{run_dir} was trained {'with' if extra.get('gan') else 'without'} --gan; keep the flag"
        )


# The training loop's defaults here (checkpoints, previews, run folder); --epochs sets the length
LOOP_DEFAULTS = TrainConfig(run_dir=Path("runs/phase1_face_swap"), checkpoint_every=100, preview_every=50)


def train(
    source: Path | FaceSet,
    target: Path | FaceSet,
    run_dir: Path,
    *,
    preset: str = "cpu64",
    steps: int = 200,
    batch_size: int = 16,
    lr: float = 5e-4,
    gan: bool = False,
    device: str = "auto",
    precision: str = "auto",
    seed: int = 0,
    progress: bool | None = None,
    preview_every: int = LOOP_DEFAULTS.preview_every,
    checkpoint_every: int = LOOP_DEFAULTS.checkpoint_every,
    resume: bool = True,
    coverage: float = 0.6,
    max_frames: int | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> LoopResult:
    """Train on two face sources (paths or `FaceSet`s); returns the training loop's result.

    Used by this CLI and by the phase-1 demo. `steps` counts optimizer steps over the whole run.
    Under torchrun each process averages its gradients with the others' after every `backward`
    (`average_gradients`: the step runs the model once per identity, which DDP does not allow).
    """
    faceset = load(PHASE, "faceset")
    training = load(PHASE, "training")
    autoencoder = load(PHASE, "autoencoder")
    cfg = autoencoder.PRESETS[preset]
    seed_everything(seed)
    info = init_distributed(device)
    if info.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    check_resume(run_dir, asdict(cfg), gan)
    sets = tuple(
        faces.resized(cfg.resolution)
        if isinstance(faces, faceset.FaceSet)
        else faceset.load_faceset(faces, cfg.resolution, coverage, max_frames)
        for faces in (source, target)
    )
    logging.getLogger(__name__).info("training on %d and %d faces", len(sets[0]), len(sets[1]))
    model = autoencoder.FaceSwapAutoencoder(cfg)
    trainer = training.FaceSwapTrainer(model, info.device, gan=gan, lr=lr, precision=precision)
    batches = training.Batches(sets, batch_size, seed + info.rank)  # each process its own samples

    def step_fn(batch: tuple[dict, dict], step: int) -> dict[str, float]:
        return trainer.step(batch, step, average_gradients)

    checkpointer = Checkpointer(run_dir / "checkpoints", trainer.stateful())
    loop_cfg = TrainConfig(
        run_dir=run_dir,
        max_steps=steps,
        checkpoint_every=checkpoint_every,
        preview_every=preview_every,
        resume=resume,
        progress=progress,
    )
    extra = {
        "autoencoder": asdict(cfg),
        "preset": preset,
        "coverage": coverage,
        "gan": gan,
        "lr": lr,
        "batch_size": batch_size,
        "identities": list(names),
        "impl": faceset.__name__.split(".")[0],
    }
    return train_loop(
        step_fn, batches, loop_cfg, checkpointer, preview_fn=lambda step: trainer.preview(sets), extra=extra
    )


def check_args(args: argparse.Namespace) -> None:
    """Refuse, before any face is loaded, flags the run would fail on late or misuse silently."""
    if args.epochs < 1 or args.batch_size < 1:
        raise UserError("--epochs and --batch-size must be at least 1")
    if not 0 < args.lr < math.inf:
        raise UserError(f"--lr must be a positive number, got {args.lr}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not 0.1 <= args.coverage <= 1.0:  # as extract.py: nan fails this too
        raise UserError(f"--coverage must be between 0.1 and 1, got {args.coverage}")
    if args.source.resolve() == args.target.resolve():
        raise UserError(f"--source and --target are both {args.source}: a swap needs the faces of two "
                        "different people")
    check_folder(args.run_dir, "--run-dir")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python phase1_face_swap/train.py",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source", required=True, type=Path, help="person A: extract.py folder, images or videos"
    )
    parser.add_argument("--target", required=True, type=Path, help="person B: the same kinds of input")
    parser.add_argument("--epochs", type=int, default=10,
                        help="passes over the larger face set, of its size // --batch-size steps each "
                        "(default 10)")
    parser.add_argument(
        "--preset",
        choices=("cpu64", "gpu128"),
        default="cpu64",
        help="model size: cpu64 (64 px, minutes on a CPU) or gpu128 (128 px, the classic size) "
        "(default: cpu64)",
    )
    parser.add_argument("--batch-size", type=int, default=16,
                        help="faces of each person per step (default: 16)")
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (default: 0.0005)")
    parser.add_argument(
        "--gan",
        action="store_true",
        help="FaceSwap-GAN: patch discriminator, adversarial loss and mask regularisation",
    )
    parser.add_argument(
        "--max-frames", type=int, default=None, help="read at most this many frames per video"
    )
    parser.add_argument("--coverage", type=float, default=0.6,
                        help="alignment coverage, as in extract.py (default: 0.6)")
    add_train_args(parser, LOOP_DEFAULTS, steps=False)
    add_common_args(parser)
    add_consent_args(parser, roles=("person A (--source)", "person B (--target)"))
    args = parser.parse_args(argv)
    check_args(args)
    writer.begin_run("swap", args.consent, visible_label=not args.no_visible_label, outputs=("image",),
                     argv=command_line(__file__, argv), roles=consent_roles(args))
    use_impl(args.impl)
    faceset = load(PHASE, "faceset")
    autoencoder = load(PHASE, "autoencoder")
    training = load(PHASE, "training")
    resolution = autoencoder.PRESETS[args.preset].resolution
    sets = [
        faceset.load_faceset(p, resolution, args.coverage, args.max_frames)
        for p in (args.source, args.target)
    ]
    steps = args.epochs * training.steps_per_epoch(sets, args.batch_size)
    try:
        result = train(
            *sets,
            args.run_dir,
            preset=args.preset,
            steps=steps,
            batch_size=args.batch_size,
            lr=args.lr,
            gan=args.gan,
            device=args.device,
            precision=args.precision,
            seed=args.seed,
            progress=args.progress,
            preview_every=args.preview_every,
            checkpoint_every=args.checkpoint_every,
            resume=args.resume,
            coverage=args.coverage,
            names=(args.source.name, args.target.name),
        )
        if is_main_process():
            print(f"step {result.step}: checkpoint {result.checkpoint}")
    finally:
        cleanup()  # leave the process group train() joined under torchrun (nothing to do otherwise)
    return 130 if result.interrupted else 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    raise SystemExit(run(main))
