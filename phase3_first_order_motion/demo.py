"""`make demo` stage for phase 3: a tiny FOMM trained on synthetic talking heads, then animated.

1. train the `tiny` configuration (64 px) on synthetic people for a few minutes of CPU (cached: a rerun
   reuses the checkpoint in `<out>/phase3_first_order_motion/run/`);
2. animate a held-out synthetic person with the motion of another held-out person's clip;
3. draw what the model computes: keypoints on source and driving frame, the K+1 motion masks, the dense
   motion field, the occlusion map, the keypoint heatmaps, the source warped by single sparse motions,
   and the training curves.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from common.cli import call_tool
from common.impl import load
from common.report import ReportItem

PHASE = "phase3_first_order_motion"
QUICK_STEPS, FULL_STEPS = 200, 2000
HELD_OUT_SEED = 90_000  # identities the model never saw in training


# Short CPU runs: Adam at 1e-3 with 50 warm-up steps and a cosine decay to 0 at the last step (the
# published constant 2e-4 is tuned for 100 epochs on VoxCeleb and barely leaves the start in minutes),
# and each network's gradient clipped to norm 10: at this rate the keypoint detector's gradient spikes
# (norms of 10^4 against a usual 10-100, from nearly singular Jacobians) and Adam's beta1 = 0.5 turns one
# spike into a step of ~16 learning rates; without clipping a 600-step run with --seed 1 diverged
# (held-out L1 0.94x the copy baseline, against 0.58x with clipping).
QUICK_OPTIMIZER = ("--lr", "1e-3", "--lr-schedule", "cosine", "--warmup-steps", "50",
                   "--clip-grad-norm", "10")
# Training clips at 5 fps: the synthetic heads move slowly, so 24 frames at 25 fps (one second) differ by
# about 1.2 px at 64 px, much of it under the sensor noise, and the keypoints had little motion to explain
# (they gathered within 1-2 px of each other). 24 frames at 5 fps span 4.8 s and move about 2.9 px.
QUICK_FPS = 5.0


def train_tiny(run_dir: Path, steps: int, identities: int = 12) -> Path:
    """Train (or resume, or reuse) the tiny model on `identities` synthetic people (24 frames each at
    QUICK_FPS) with the quick optimizer settings; returns the newest checkpoint."""
    from phase3_first_order_motion import train

    argv = ["--data", "synthetic", "--config", "tiny", "--steps", str(steps), "--run-dir", str(run_dir),
            "--checkpoint-every", "50", "--preview-every", "50", "--synthetic-videos", str(identities),
            "--synthetic-frames", "24", "--synthetic-fps", str(QUICK_FPS), "--device", "cpu", "--no-progress",
            "--threads", "1", *QUICK_OPTIMIZER]
    threads = torch.get_num_threads()
    try:
        call_tool(train.main, argv)
    finally:
        torch.set_num_threads(threads)  # one thread is robust on a shared machine; restore for later stages
    return sorted((run_dir / "checkpoints").glob("step_*.pt"))[-1]


def held_out_clips(size: int, frames: int) -> tuple:
    from common.synthetic.clip import render_clip
    from common.synthetic.identity import make_identity

    source_person, driving_person = make_identity(HELD_OUT_SEED), make_identity(HELD_OUT_SEED + 1)
    source = render_clip(source_person, 1, size=size, seed=1, speech=False).frames[0]
    driving = render_clip(driving_person, frames, size=size, seed=2)
    return source_person, driving_person, source, driving


def motion_figure(models: dict, source: np.ndarray, driving: np.ndarray) -> Figure:
    """What the model computes for one (source, driving) pair, in two rows.

    Top: keypoints on both frames, the prediction, the strongest mask, the dense motion and occlusion.
    Bottom: the detector's heatmaps H_k of the driving frame, the heatmap differences G(p^D) - G(p^S)
    the dense motion network sees (eq. 6), and the source warped by the sparse motions T_k (eq. 4) of
    the four keypoints that the masks use most.
    """
    x = torch.from_numpy(np.stack([source, driving])).permute(0, 3, 1, 2).float() / 255
    detector = models["kp_detector"]
    logits: dict[str, torch.Tensor] = {}  # the detector returns points only; peek at its heatmap logits
    hook = detector.kp.register_forward_hook(lambda _module, _inputs, output: logits.update(kp=output))
    try:
        with torch.no_grad():
            kp = detector(x)
            kp_s = {k: v[:1] for k, v in kp.items()}
            kp_d = {k: v[1:] for k, v in kp.items()}
            out = models["generator"](x[:1], kp_driving=kp_d, kp_source=kp_s)
    finally:
        hook.remove()
    num_kp, hh, hw = logits["kp"].shape[1:]
    spatial_softmax = load(PHASE, "keypoint_detector").spatial_softmax  # the detector's own (sec. 3.1)
    heatmaps = spatial_softmax(logits["kp"], detector.temperature)  # (2, K, h', w'), each map sums to 1
    size = source.shape[0]
    colors = [matplotlib.colormaps["tab10"](k % 10) for k in range(num_kp)]

    def pixels(value: torch.Tensor) -> np.ndarray:  # [-1, 1] endpoint-inclusive -> pixel centres
        return (value.numpy() + 1) / 2 * (size - 1)

    def extent(cells: int) -> tuple[float, float, float, float]:  # a low-resolution map over the frame
        half = (size - 1) / (cells - 1) / 2  # its first and last cells sit on the first and last pixels
        return (-half, size - 1 + half, size - 1 + half, -half)

    def mark(ax: Axes, value: torch.Tensor, which: list[int] | range) -> None:
        p = pixels(value[0])
        ax.scatter(p[which, 0], p[which, 1], c=[colors[k] for k in which], s=30, edgecolors="white")

    fig = Figure(figsize=(15, 6.6), layout="constrained")
    top, bottom = fig.subplots(2, 6)
    keypoints = range(num_kp)
    for ax, img, pts, title in ((top[0], source, kp_s, "source + keypoints"),
                                (top[1], driving, kp_d, "driving + keypoints")):
        ax.imshow(img)
        mark(ax, pts["value"], keypoints)
        ax.set_title(title)
    top[2].imshow(out["prediction"][0].permute(1, 2, 0).clamp(0, 1).numpy())
    top[2].set_title("prediction")
    mask = out["mask"][0].argmax(0).numpy()
    top[3].imshow(mask, cmap="tab20", vmin=0, vmax=19)
    top[3].set_title("strongest mask (0 = bg)")
    field = out["deformation"][0].numpy()  # (h, w, 2): where each output pixel samples the source
    h = field.shape[0]
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, h)), -1)
    step = max(1, h // 12)
    flow = (field - grid)[::step, ::step]
    top[4].imshow(np.linalg.norm(field - grid, axis=-1), cmap="magma")
    ys, xs = np.mgrid[0:h:step, 0:h:step]
    top[4].quiver(xs, ys, flow[..., 0], flow[..., 1], color="cyan", angles="xy")
    top[4].set_title("motion T(z) - z")
    top[5].imshow(out["occlusion_map"][0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    top[5].set_title("occlusion (dark: inpaint)")

    bottom[0].imshow(heatmaps[1].sum(0).numpy(), cmap="inferno", extent=extent(hw))
    mark(bottom[0], kp_d["value"], keypoints)
    bottom[0].set_title("driving heatmaps (sum)")
    dense = models["generator"].dense_motion_network
    gaussians = dense.heatmap_representation(hh, hw, kp_d, kp_s)[0, 1:, 0].sum(0).numpy()  # (h', w')
    limit = float(np.abs(gaussians).max()) or 1.0
    bottom[1].imshow(gaussians, cmap="coolwarm", vmin=-limit, vmax=limit, extent=extent(hw))
    bottom[1].set_title("G(p^D) - G(p^S)")
    bottom[1].set_xlabel("red: driving, blue: source")
    share = out["mask"][0, 1:].mean(dim=(1, 2))  # (K,) how much of the frame each keypoint's motion gets
    most_used = share.argsort(descending=True)[:4].tolist()  # fewer than 4 keypoints leave panels blank
    for ax, k in zip(bottom[2:], most_used, strict=False):
        warped = out["sparse_deformed"][0, k + 1]  # (3, h, w): S(T_k(z)), channel 0 is the background
        ax.imshow(warped.permute(1, 2, 0).clamp(0, 1).numpy(), extent=extent(warped.shape[-1]))
        mark(ax, kp_d["value"], [k])
        ax.set_title(f"source by T_{k} (mask {share[k]:.0%})")
        ax.set_xlabel(f"dot: p_{k} in the driving frame")
    for ax in (*top, *bottom):
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def run_stage(out_dir: Path, quick: bool = True) -> list[ReportItem]:
    """Train (cached), animate a held-out person, draw the motion; returns the report items."""
    from consent_and_watermark.consent import check_consent, register_synthetic_identity
    from consent_and_watermark.writer import OutputContext, output_context, save_figure, save_video
    from phase3_first_order_motion.animate import Animator, animate

    stage_dir = Path(out_dir)  # tools.demo passes outputs/phase3_first_order_motion
    checkpoint = train_tiny(stage_dir / "run", QUICK_STEPS if quick else FULL_STEPS)
    models, config, _ = load(PHASE, "model").load_fomm(checkpoint)
    # 75 frames = 3 s at 25 fps, long enough for the audio watermark
    source_person, driving_person, source, driving = held_out_clips(config.frame_size, 75)
    ids = [register_synthetic_identity(p.subject_id, p.display_name) for p in (source_person, driving_person)]
    records = check_consent(ids, "animate", outputs=("video",))
    animator = Animator(models, torch.device("cpu"))
    with output_context(OutputContext("animate", tuple(records))):
        frames = np.stack(list(animate(animator, source, driving.frames, adapt_scale=True, batch_size=10)))
        side = np.concatenate([driving.frames, frames], axis=2)  # driving | animated source
        zoom = 2  # 128 px tall, so every frame carries the invisible watermark
        side = side.repeat(zoom, axis=1).repeat(zoom, axis=2)
        video = save_video(stage_dir / "animated.mp4", side, driving.fps, audio=driving.audio,
                           sample_rate=driving.sample_rate)
    figure = save_figure(motion_figure(models, source, driving.frames[len(frames) // 2]),
                         stage_dir / "motion.png")
    items = [
        ReportItem("Animated held-out person", video, "video",
                   f"left: driving clip of {driving_person.display_name}; right: a single photo of "
                   f"{source_person.display_name} animated by its motion (relative transfer, tiny FOMM, "
                   f"{config.frame_size} px, trained {QUICK_STEPS if quick else FULL_STEPS} steps on CPU)"),
        ReportItem("What the model computes", figure, "image",
                   "unsupervised keypoints, the K+1 motion masks, the dense backward motion field and the "
                   "occlusion map for one driving frame; below, the keypoint heatmaps, the Gaussian heatmap "
                   "differences the dense motion network sees, and the source warped by the sparse motions "
                   "T_k of the keypoints the masks use most"),
    ]
    curves = stage_dir / "run" / "metrics.png"
    if curves.is_file():
        items.append(ReportItem("Training curves", curves, "image",
                                "perceptual (pixel-pyramid fallback without VGG19 weights) and equivariance "
                                "losses per step"))
    return items
