"""FOMM animation throughput: our batched `animate` against the published one-frame-per-call demo loop.

    python benchmarks/fomm_throughput.py --threads 1 --channels-last       # CPU, fp32, vox-256
    python benchmarks/fomm_throughput.py --device cuda --precision bf16 --channels-last --batch-size 64 \\
        --frames 256 --compile

Both paths use the same modules and weights (vox-256 architecture, seeded random weights: speed does not
depend on the weights) and the same driving frames:

* baseline: the published demo loop: keypoints of the source once, then for every frame one keypoint
  detector call, normalize_kp and one generator call (batch 1, fp32, frames copied to the device and
  the prediction back one by one);
* ours: `phase3_first_order_motion.animate.Animator.render`, as animate.py calls it: `--batch-size`
  uint8 frames per call (default as animate.py's: 2 on a CPU, 8 on a GPU) converted on the device and
  returned as uint8, the source encoded once, optional bf16/fp16 autocast, channels_last and
  torch.compile (compiled during the warm-up, which runs one batch of the timed size).

The driving frames are uint8 for both (the baseline gets them as float32, as the published demo
does). The max |difference| compares the baseline's predictions with ours before rounding to uint8
(an untimed pass through the same networks).

Prints frames per second of each, the speed-up, the max |difference| of our predictions to the fp32
baseline's, and the device (CPU model / GPU name). TF32 is off, so fp32 on the GPU means fp32.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from common.impl import load
from common.training.device import PRECISIONS, pick_device
from phase3_first_order_motion.animate import Animator, default_batch_size

PHASE = "phase3_first_order_motion"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def baseline_loop(models: dict, source: torch.Tensor, driving: torch.Tensor,
                  device: torch.device) -> torch.Tensor:
    """The published demo's make_animation: one driving frame per call, fp32. Returns CPU predictions."""
    normalize_kp = load(PHASE, "motion_transfer").normalize_kp
    kp_detector, generator = models["kp_detector"], models["generator"]
    src = source.to(device)
    kp_source = kp_detector(src)
    kp_initial = kp_detector(driving[:1].to(device))
    out = []
    for i in range(driving.shape[0]):
        frame = driving[i:i + 1].to(device)
        kp_norm = normalize_kp(kp_source=kp_source, kp_driving=kp_detector(frame),
                               kp_driving_initial=kp_initial, adapt_movement_scale=True,
                               use_relative_movement=True, use_relative_jacobian=True)
        out.append(generator(src, kp_driving=kp_norm, kp_source=kp_source)["prediction"].cpu())
    return torch.cat(out)


@torch.no_grad()
def batched(animator: Animator, source_u8: np.ndarray, driving_u8: np.ndarray,
            batch_size: int) -> np.ndarray:
    """Our path as animate.py runs it: Animator.render on uint8 frames, `batch_size` per call.

    Returns the animated frames (T, H, W, 3) uint8."""
    animator.set_source(source_u8)
    kp_initial = animator.initial_keypoints(driving_u8[0])
    out = [animator.render(driving_u8[i:i + batch_size], kp_initial, relative=True, adapt_scale=True)
           for i in range(0, len(driving_u8), batch_size)]
    return np.concatenate(out)


@torch.no_grad()
def predictions(animator: Animator, source_u8: np.ndarray, driving: torch.Tensor,
                batch_size: int) -> torch.Tensor:
    """Our predictions before rounding to uint8 (float32, CPU), to compare with the baseline's."""
    animator.set_source(source_u8)
    kp_initial = animator._keypoints(animator._images_from_float(driving[:1]))
    out = []
    for i in range(0, driving.shape[0], batch_size):
        images = animator._images_from_float(driving[i:i + batch_size])
        out.append(animator.predict(images, kp_initial, relative=True, adapt_scale=True).float().cpu())
    return torch.cat(out)


def timed(fn, device: torch.device) -> tuple[torch.Tensor, float, float]:
    """(result, wall seconds, CPU seconds of this process). On a shared CPU the CPU time is the fairer
    figure: wall time then also counts the time other processes held the cores."""
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=("vox-256", "tiny"), default="vox-256")
    parser.add_argument("--frames", type=int, default=16, help="driving frames timed per path")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="frames per call of ours (default: animate.py's, 2 on a CPU, 8 on a GPU)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile ours (warm-up compiles)")
    parser.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after timing, profile one batch of ours and print its N costliest ops")
    args = parser.parse_args(argv)
    if args.frames < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("--frames and --batch-size must be at least 1")
    if args.threads < 0 or args.profile < 0:
        parser.error("--threads and --profile cannot be negative")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = pick_device(args.device)
    batch_size = default_batch_size(device) if args.batch_size is None else args.batch_size
    torch.manual_seed(0)
    model = load(PHASE, "model")
    config = model.get_config(args.config)
    models = model.build_fomm(config)
    for name in ("kp_detector", "generator"):
        models[name].eval().to(device)
    size = config.frame_size
    g = torch.Generator().manual_seed(1)
    # smooth random images: a low-resolution noise field upsampled, so keypoints move between frames
    low = torch.rand(args.frames + 1, 3, 8, 8, generator=g)
    frames = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic").clamp(0, 1)
    frames_u8 = (frames.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()  # (T+1, H, W, 3)
    source_u8, driving_u8 = frames_u8[0], frames_u8[1:]
    source = torch.from_numpy(source_u8).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    driving = torch.from_numpy(driving_u8).permute(0, 3, 1, 2).float() / 255  # (T, 3, H, W)

    baseline_loop(models, source, driving[:2], device)  # warm-up (cuDNN autotune, allocator)
    reference, t_base, c_base = timed(lambda: baseline_loop(models, source, driving, device), device)
    animator = Animator(models, device, args.precision, args.channels_last, args.compile)
    batched(animator, source_u8, driving_u8[:batch_size], batch_size)  # warm-up at the timed shapes
    _, t_ours, c_ours = timed(lambda: batched(animator, source_u8, driving_u8, batch_size), device)
    ours = predictions(animator, source_u8, driving, batch_size)  # untimed: the same networks, unrounded

    n = driving.shape[0]
    print(f"device: {device_name(device)} ({device.type}, {torch.get_num_threads()} CPU threads), "
          f"config {args.config} ({size}x{size}), {n} driving frames")
    layout = (", channels_last" if args.channels_last else "") + (", compiled" if args.compile else "")
    for name, wall, cpu in (("baseline (1 frame per call, fp32)", t_base, c_base),
                            (f"ours (batch {batch_size}, {args.precision}{layout})", t_ours, c_ours)):
        print(f"{name:42s} {n / wall:8.2f} frames/s wall, {cpu / n:7.3f} CPU-s/frame")
    print(f"speed-up: {t_base / t_ours:.2f}x wall clock, {c_base / c_ours:.2f}x in process CPU time")
    print(f"max |ours - baseline fp32|: {float((ours - reference).abs().max()):.3e} "
          f"(mean {float((ours - reference).abs().mean()):.3e})")
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.profile:
        profile(animator, source_u8, driving_u8[:batch_size], batch_size, device, args.profile)
    return 0


def profile(animator: Animator, source_u8: np.ndarray, driving_u8: np.ndarray, batch_size: int,
            device: torch.device, rows: int) -> None:
    """Print the `rows` ops (kernels on a GPU) that took the most time during one batch of ours."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities, record_shapes=True) as prof:
        batched(animator, source_u8, driving_u8, batch_size)
        sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60))
    print("by input shapes (which layer):")
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=key, row_limit=rows,
                                                             max_name_column_width=40,
                                                             max_shapes_column_width=70))


if __name__ == "__main__":
    raise SystemExit(main())
