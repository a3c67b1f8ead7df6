"""Learning-rate schedules, as a function of the step alone (so a resumed run follows the same curve).

The published recipes keep Adam's rate constant over days of GPU training. Short CPU presets start
higher, which needs a *warm-up* (a linear ramp, so the first steps' large, noisy gradients do not
throw the weights far), and end settled with a *cosine decay* (half a cosine from 1 to 0 over the run;
Loshchilov & Hutter 2017, "SGDR"). Every trainer with a schedule takes the same flags
(`add_schedule_args`): `--lr-schedule constant|cosine` and `--warmup-steps N`.
"""

from __future__ import annotations

import argparse
import math

SCHEDULES = ("constant", "cosine")


def lr_factor(step: int, total: int, warmup: int = 0, cosine: bool = False) -> float:
    """Multiplier of the base learning rate for 0-based `step` of `total` steps: a linear warm-up over
    `warmup` steps times, with `cosine`, 0.5 (1 + cos(pi step / total)) (reaching 0 at `total`)."""
    factor = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if cosine and total > 0:
        factor *= 0.5 * (1.0 + math.cos(math.pi * min(1.0, step / total)))
    return factor


def add_schedule_args(parser: argparse.ArgumentParser) -> None:
    """`--lr-schedule` (`--cosine` for short) and `--warmup-steps` (also spelt `--warmup`)."""
    group = parser.add_argument_group("learning-rate schedule (published runs: constant, no warm-up)")
    group.add_argument("--lr-schedule", choices=SCHEDULES, default="constant",
                       help="constant, or cosine: half a cosine from --lr down to 0 at --steps (short runs "
                            "converge faster) (default: constant)")
    group.add_argument("--cosine", dest="lr_schedule", action="store_const", const="cosine",
                       help="short for --lr-schedule cosine")
    group.add_argument("--warmup-steps", "--warmup", dest="warmup_steps", type=int, default=0,
                       help="ramp the learning rate up linearly over this many first steps, with either "
                            "schedule (default: 0)")
