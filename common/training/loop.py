"""The training loop every phase's `train.py` shares: steps, checkpoints, previews, curves, Ctrl-C.

The phase writes the interesting part, one optimisation step::

    def step_fn(batch, step: int) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = criterion(model(batch["x"].to(device)), batch["y"].to(device))
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

with its data, one epoch at a time (a `DataLoader` works; see "Resuming" for the generator)::

    def batches(epoch: int):
        return DataLoader(dataset, batch_size=8, shuffle=True, generator=epoch_generator(seed, epoch))

and this module does the bookkeeping around it::

    checkpointer = Checkpointer(cfg.run_dir / "checkpoints", {"model": model, "optimizer": optimizer})
    result = train_loop(step_fn, batches, cfg, checkpointer, preview_fn=preview)
    return 130 if result.interrupted else 0   # 130 = "stopped by Ctrl-C" for the shell

What happens, in order, for each step:
1. take the next batch (`batches(epoch)` is called again for every epoch);
2. `step_fn(batch, step)` trains on it and returns scalar metrics;
3. rank 0 appends the metrics to `metrics.csv`, and every `preview_every` steps and at the last step
   saves `preview_fn(step)` (an RGB uint8 image) to `previews/` through the provenance writer (one
   that cannot be written is a warning: the run goes on);
4. every `checkpoint_every` steps, and at the end, a checkpoint is written (and `metrics.png` drawn).

Resuming: with `resume=True` the loop restarts from the newest checkpoint in the run folder:
weights, optimizer, step, epoch, position within the epoch, and random generators. For the
result to be *identical* to an uninterrupted run, `batches(epoch)` must depend only on the epoch
(shuffle and augment with `common.training.seed.epoch_generator(seed, epoch)`, not the global
generators); the loop then rebuilds the epoch and skips the batches it has already trained on.
Under DDP, give the DataLoader `sampler=distributed_sampler(dataset, seed=seed)` and call
`sampler.set_epoch(epoch)` inside `batches` instead of `shuffle=True`.

Ctrl-C: the first press lets the current step finish, saves a checkpoint and returns with
`interrupted=True`. A second press (or a KeyboardInterrupt raised elsewhere) stops at once and
still saves, but the step in flight may have been half applied.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from common.cli import check_folder
from common.errors import UserError, first_line
from common.training.checkpoint import Checkpointer, plain
from common.training.device import add_precision_arg
from common.training.distributed import any_process, is_main_process
from common.training.metrics_log import MetricsLog, plot_metrics
from consent_and_watermark import writer

log = logging.getLogger(__name__)

StepFn = Callable[[Any, int], Mapping[str, float]]  # (batch, step) -> {"loss": 0.12, ...}
BatchesFn = Callable[[int], Iterable[Any]]  # epoch -> that epoch's batches
PreviewFn = Callable[[int], np.ndarray]  # step -> (H, W, 3) uint8 RGB image


@dataclass
class TrainConfig:
    """How long to train and how often to write things. Defaults suit a quick CPU run."""

    run_dir: Path = Path("runs/default")  # checkpoints/, previews/, metrics.csv, metrics.png
    max_steps: int = 100  # total optimizer steps, counted across resumes
    checkpoint_every: int = 50  # steps between checkpoints (0: only at the end and on Ctrl-C)
    preview_every: int = 25  # steps between preview images (0: never)
    log_every: int = 1  # steps between rows of metrics.csv
    resume: bool = True  # continue from the newest checkpoint in run_dir (False: refuse to touch one)
    progress: bool | None = None  # progress bar: None shows it only when stderr is a terminal


@dataclass
class LoopResult:
    """Where the loop stopped."""

    step: int
    epoch: int
    interrupted: bool
    checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)  # the last step's metrics


def _run_dir(value: str) -> Path:
    """--run-dir: refused at once when it is (or runs through) a file, not after the data is ready."""
    try:
        check_folder(value, "--run-dir")
    except UserError as err:  # argparse names the flag itself: "argument --run-dir: <why>"
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from err
    return Path(value)


def add_train_args(parser: argparse.ArgumentParser, defaults: TrainConfig | None = None, *,
                   steps: bool = True) -> None:
    """The training-loop flags every `train.py` shares (defaults from the phase's `TrainConfig`).

    `steps=False` leaves out `--steps`, for a trainer that counts its length another way (phase 1's
    `--epochs`)."""
    d = defaults or TrainConfig()
    group = parser.add_argument_group("training loop")
    group.add_argument("--run-dir", type=_run_dir, default=d.run_dir,
                       help=f"folder for checkpoints, previews and curves; run again to resume "
                       f"(default: {d.run_dir})")
    if steps:
        group.add_argument("--steps", type=int, default=d.max_steps,
                           help=f"total optimizer steps, counted across resumes (default: {d.max_steps})")
    group.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every,
                       help=f"steps between checkpoints, 0 = only at the end (default: {d.checkpoint_every})")
    group.add_argument("--preview-every", type=int, default=d.preview_every,
                       help=f"steps between preview images, 0 = never (default: {d.preview_every})")
    add_precision_arg(group)
    group.add_argument("--no-resume", dest="resume", action="store_false",
                       help="refuse to continue a run whose folder already holds checkpoints")
    group.add_argument("--no-progress", dest="progress", action="store_false", default=d.progress,
                       help="hide the progress bar (it is hidden anyway when stderr is not a terminal)")


def train_config_from_args(args: argparse.Namespace, defaults: TrainConfig | None = None) -> TrainConfig:
    """A `TrainConfig` from the flags of `add_train_args` (fields without a flag keep `defaults`)."""
    d = defaults or TrainConfig()
    return dataclasses.replace(
        d, run_dir=args.run_dir, max_steps=getattr(args, "steps", d.max_steps),
        checkpoint_every=args.checkpoint_every, preview_every=args.preview_every,
        resume=args.resume, progress=args.progress,
    )


class _CtrlC:
    """First Ctrl-C sets `requested`; the second raises KeyboardInterrupt as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous: Any = None

    def __enter__(self) -> _CtrlC:
        if threading.current_thread() is threading.main_thread():  # only the main thread gets signals
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("Ctrl-C: finishing this step and saving a checkpoint (press again to stop at once)")

    def __exit__(self, *exc: object) -> None:
        if self._installed and self._previous is not None:  # None: a handler set outside Python
            signal.signal(signal.SIGINT, self._previous)


def _stream(batches: BatchesFn, epoch: int, skip: int) -> Iterator[tuple[int, int, Any]]:
    """Endless `(epoch, index_in_epoch, batch)`, starting `skip` batches into `epoch`."""
    while True:
        empty = True
        for index, batch in enumerate(batches(epoch)):
            empty = False
            if index >= skip:
                yield epoch, index, batch
        if empty:
            raise UserError(f"the training data is empty: no batches in epoch {epoch}")
        epoch, skip = epoch + 1, 0


def _warn_changed_settings(saved: dict | None, current: dict | None) -> None:
    """Say which settings differ from the run being resumed: the run goes on with the new ones, on the
    weights, optimizer state and data position of the old (a run folder is not a fresh start)."""
    if not saved or not current:
        return
    saved, current = plain(saved), plain(current)  # as stored: tuples as lists, paths as strings
    changed = [f"{key} {saved[key]!r} -> {current[key]!r}"
               for key in sorted(saved.keys() & current.keys()) if saved[key] != current[key]]
    if changed:
        log.warning("resuming a run trained with other settings (%s); it continues with the new ones "
                    "(choose another run folder to start afresh)", ", ".join(changed))


def _save_preview(path: Path, rgb: np.ndarray) -> None:
    """A preview is there to be looked at: one that cannot be written (a full disk, a consent record
    without image outputs) is a warning, not the end of the run and of its unsaved steps."""
    try:
        writer.save_image(path, rgb)
    except (UserError, OSError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
        log.warning("preview %s not written (%s); training goes on", path.name, reason)


def train_loop(
    step_fn: StepFn,
    batches: BatchesFn,
    cfg: TrainConfig,
    checkpointer: Checkpointer,
    *,
    preview_fn: PreviewFn | None = None,
    extra: dict | None = None,
) -> LoopResult:
    """Run `step_fn` until `cfg.max_steps`, resuming, checkpointing and logging as described above.

    `extra` (e.g. `dataclasses.asdict(config)`) is stored in every checkpoint.
    Under DDP every process runs the loop; only rank 0 writes files or shows progress, and
    `preview_fn` runs on rank 0 only (so it must use the unwrapped model, never the DDP one).
    Every process must see the same `run_dir` (on several machines: a shared file system),
    so that they all resume from the same checkpoint.
    """
    run_dir = Path(cfg.run_dir)
    main = is_main_process()
    metrics_log = MetricsLog(run_dir / "metrics.csv")

    step, epoch, skip = 0, 0, 0
    saved_at: int | None = None  # step of the newest checkpoint on disk
    checkpoint = checkpointer.latest()
    if checkpoint is not None and not cfg.resume:
        raise UserError(f"{checkpointer.directory} already holds checkpoints (newest: {checkpoint.name}); "
                        "resume that run or choose another run folder")
    if checkpoint is not None:
        state = checkpointer.load(checkpoint)  # weights, optimizer, random generators
        step, epoch, skip = int(state["step"]), int(state["epoch"]), int(state["batch_in_epoch"])
        saved_at = step
        log.info("resuming from %s (step %d, epoch %d)", checkpoint, step, epoch)
        _warn_changed_settings(state.get("extra"), extra)
    if main:
        metrics_log.truncate_after(step)  # rows logged after the last checkpoint were lost with the run

    show_bar = cfg.progress if cfg.progress is not None else sys.stderr.isatty()
    bar = tqdm(total=cfg.max_steps, initial=step, unit="step", disable=not (show_bar and main))
    stream = _stream(batches, epoch, skip)
    position = skip  # batches of the current epoch already trained on
    metrics: dict[str, float] = {}
    interrupted = False

    def save(gather_rng: bool = True) -> None:
        nonlocal saved_at, checkpoint
        checkpoint = checkpointer.save(step, epoch, position, extra, gather_rng=gather_rng)
        saved_at = step
        if main and metrics_log.path.is_file():
            plot_metrics(metrics_log.path, run_dir / "metrics.png")

    with _CtrlC() as ctrl_c:
        try:
            while step < cfg.max_steps:
                epoch, index, batch = next(stream)
                started = time.perf_counter()
                metrics = {name: float(value) for name, value in step_fn(batch, step).items()}
                step, position = step + 1, index + 1
                bar.update(1)
                bar.set_postfix({name: f"{value:.4g}" for name, value in metrics.items()})

                if main and (step % cfg.log_every == 0 or step == cfg.max_steps):
                    row = {"epoch": epoch, "step_seconds": time.perf_counter() - started, **metrics}
                    metrics_log.append(step, row)
                if main and preview_fn is not None and cfg.preview_every and (
                        step % cfg.preview_every == 0 or step == cfg.max_steps):  # and the last one
                    _save_preview(run_dir / "previews" / f"step_{step:08d}.png", preview_fn(step))
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    save()
                if any_process(ctrl_c.requested):  # every process must stop at the same step
                    interrupted = True
                    break
        except KeyboardInterrupt:
            interrupted = True
            save(gather_rng=False)  # the other processes may be anywhere: no collective calls
        else:
            if saved_at != step:
                save()
        finally:
            bar.close()

    if interrupted:
        log.warning("stopped at step %d; run the same command again to resume", step)
    return LoopResult(step=step, epoch=epoch, interrupted=interrupted, checkpoint=checkpoint, metrics=metrics)
