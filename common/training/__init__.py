"""Training utilities shared by every phase (not a student exercise).

One concept per module, read them in this order:

* `seed`        — seed every generator; save/restore their states for exact resume.
* `device`      — `--device` flag to `torch.device`; bf16/fp16 autocast; the fp16 loss scaler.
* `accumulate`  — gradient accumulation over micro-batches.
* `checkpoint`  — atomic saves, safe loads, `Checkpointer` for whole runs.
* `metrics_log` — `metrics.csv` and its plot.
* `schedule`    — learning-rate warm-up and cosine decay.
* `distributed` — torchrun / DDP helpers (Gloo on CPU, NCCL on GPU).
* `loop`        — `train_loop`: steps, checkpoints, previews, resume, Ctrl-C.
"""

from common.training.accumulate import accumulate_gradients, split_batch
from common.training.checkpoint import Checkpointer, find_checkpoint, load_checkpoint, plain, save_checkpoint
from common.training.device import add_precision_arg, autocast, default_precision, grad_scaler, pick_device
from common.training.distributed import (
    DistInfo,
    average_gradients,
    cleanup,
    distributed_sampler,
    init_distributed,
    is_main_process,
    unwrap,
    wrap_ddp,
)
from common.training.loop import LoopResult, TrainConfig, add_train_args, train_config_from_args, train_loop
from common.training.metrics_log import MetricsLog, plot_metrics
from common.training.seed import epoch_generator, rng_state, seed_everything, set_rng_state

__all__ = [
    "Checkpointer",
    "DistInfo",
    "LoopResult",
    "MetricsLog",
    "TrainConfig",
    "accumulate_gradients",
    "add_precision_arg",
    "add_train_args",
    "autocast",
    "average_gradients",
    "cleanup",
    "default_precision",
    "distributed_sampler",
    "epoch_generator",
    "find_checkpoint",
    "grad_scaler",
    "init_distributed",
    "is_main_process",
    "load_checkpoint",
    "pick_device",
    "plain",
    "plot_metrics",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "split_batch",
    "train_config_from_args",
    "train_loop",
    "unwrap",
    "wrap_ddp",
]
