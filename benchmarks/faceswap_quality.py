"""Phase-1 benchmark: train the 64 px CPU preset briefly on two held-out synthetic people, then measure.

    python benchmarks/faceswap_quality.py                       # ~5 min training + measurements
    python benchmarks/faceswap_quality.py --train-seconds 60    # a quick look

Figures (issue 6 targets for the CPU quick preset in brackets):

* reconstruction SSIM on held-out frames of each person, inside the face (landmark hull) and on the
  whole aligned crop [>= 0.80];
* identity transfer: share of swapped frames whose dlib descriptor is nearer the source person (the
  face donor) than the target person (whose video is swapped) [>= 90 %];
* expression preservation: NME between dlib's landmarks on each swapped frame and on its target frame,
  normalised by the inter-ocular distance [<= 0.08];
* temporal jitter of the landmarks on a still-head clip, raw vs One-Euro smoothed [smoothed <= 50 %];
* throughput of the whole swap (decode, detect, swap, blend, marked encode) at 256x256 and 1280x720
  [>= 10 fps at 720p on 2 cores].

The people (seeds 201, 202) are used by no test and no demo. Torch runs on `--threads` threads (1 by
default, since the machine is shared); the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import dlib_models
from common.cli import run
from common.impl import load
from common.metrics import ssim
from common.synthetic.animation import MotionConfig
from common.synthetic.clip import render_clip
from common.synthetic.identity import make_identity
from consent_and_watermark import writer
from consent_and_watermark.consent import register_synthetic_identity

PHASE = "phase1_face_swap"
SEEDS = (201, 202)  # source (face donor), target (the video being swapped)


def train_for(sets, seconds: float, batch_size: int, seed: int, lr: float):
    """Train the cpu64 preset until the time budget is spent; returns (model, steps)."""
    autoencoder, training = load(PHASE, "autoencoder"), load(PHASE, "training")
    torch.manual_seed(seed)
    model = autoencoder.FaceSwapAutoencoder(autoencoder.PRESETS["cpu64"])
    trainer = training.FaceSwapTrainer(model, torch.device("cpu"), lr=lr)
    batches = training.Batches(tuple(sets), batch_size, seed)
    start, steps, epoch = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        for batch in batches(epoch):
            trainer.step(batch, steps)
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        epoch += 1
    return model.eval(), steps


@torch.no_grad()
def reconstruction_ssim(model, faces, identity: int) -> tuple[float, float]:
    """Mean SSIM (face region, whole crop) of decoding held-out crops with their own decoder."""
    losses = load(PHASE, "losses")
    x = torch.from_numpy(faces.crops).permute(0, 3, 1, 2).float() / 255
    recon = (model(x, identity)[0].permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    hulls = np.stack([losses.hull_mask(points, faces.size) for points in faces.landmarks])[..., None]
    inside = (hulls * recon + (1 - hulls) * faces.crops).round().astype(np.uint8)
    return float(np.mean(ssim(inside, faces.crops))), float(np.mean(ssim(recon, faces.crops)))


def inter_ocular(landmarks: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks[36:42].mean(axis=0) - landmarks[42:48].mean(axis=0)))


def identity_and_expression(swapped: np.ndarray, targets: np.ndarray, refs: tuple[np.ndarray, np.ndarray]):
    """Share of frames nearer the source's descriptor, and the mean landmark NME vs the target frames."""
    nearer, nme, measured = 0, [], 0
    for out, target in zip(swapped, targets, strict=True):
        got, want = dlib_models.largest_face_landmarks(out), dlib_models.largest_face_landmarks(target)
        if got is None or want is None:
            continue
        measured += 1
        descriptor = dlib_models.face_descriptor(out, got)
        distances = [np.linalg.norm(descriptor - ref, axis=1).min() for ref in refs]
        nearer += distances[0] < distances[1]
        nme.append(np.linalg.norm(got - want, axis=1).mean() / inter_ocular(want))
    return nearer / max(measured, 1), float(np.mean(nme)) if nme else float("nan"), measured


def jitter(fps: float = 25.0, frames: int = 60) -> tuple[float, float]:
    """Mean frame-to-frame landmark motion (px, per inter-ocular distance) on a still head: raw, smoothed."""
    smoothing = load(PHASE, "smoothing")
    still = MotionConfig(
        yaw_deg=0,
        pitch_deg=0,
        roll_deg=0,
        shift=0,
        zoom=0,
        smile=0,
        brow=0,
        blink_interval_s=(1e6, 1e6),
        gaze=0,
    )
    clip = render_clip(make_identity(SEEDS[1]), frames, 256, fps=fps, seed=3, speech=False, motion=still)
    raw = np.stack([dlib_models.largest_face_landmarks(f) for f in clip.frames])
    flt = smoothing.OneEuroFilter(min_cutoff=1.0, beta=0.05)
    smooth = np.stack([flt(points, i / fps) for i, points in enumerate(raw)])
    iod = inter_ocular(raw[0])

    def motion(track: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(track[10:], axis=0), axis=2).mean() / iod)

    return motion(raw), motion(smooth)


def throughput(
    model, extra: dict, width: int, height: int, frames: int, workdir: Path
) -> tuple[float, float]:
    """fps of swap only, and of decode + swap + marked encode, on a clip of width x height."""
    from phase1_face_swap.swap_video import swapped_stream

    face_swap = load(PHASE, "face_swap")
    clip = render_clip(make_identity(SEEDS[1]), frames, min(width, height), seed=4)
    canvas = np.zeros((frames, height, width, 3), np.uint8)
    canvas[:] = clip.frames[:, :1, :1]  # the clip's background colour
    left = (width - clip.frames.shape[2]) // 2
    canvas[:, :, left : left + clip.frames.shape[2]] = clip.frames
    source = writer.save_video(
        workdir / f"in_{height}.mp4",
        canvas,
        clip.fps,
        audio=clip.audio,
        sample_rate=clip.sample_rate,
        label=False,
    )
    from common import media

    swapper = face_swap.FaceSwapper(model, face_swap.SwapConfig(coverage=extra["coverage"]))
    decoded = list(media.iter_video(source))
    face_swap.FaceSwapper(model, face_swap.SwapConfig(coverage=extra["coverage"]))(decoded[0], 0.0)  # warm-up
    start = time.perf_counter()
    for i, frame in enumerate(decoded):
        swapper(frame, i / clip.fps)
    swap_fps = frames / (time.perf_counter() - start)

    swapper = face_swap.FaceSwapper(model, face_swap.SwapConfig(coverage=extra["coverage"]))
    start = time.perf_counter()
    audio, rate = media.read_audio(source)
    writer.save_video(
        workdir / f"out_{height}.mp4",
        swapped_stream(swapper, media.iter_video(source), clip.fps),
        clip.fps,
        audio=audio,
        sample_rate=rate,
    )
    return swap_fps, frames / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-seconds", type=float, default=300.0, help="training budget (default 300)")
    parser.add_argument("--frames", type=int, default=150, help="training frames per person")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--lr", type=float, default=5e-4, help="Adam learning rate (train.py's default)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared machine)")
    parser.add_argument("--throughput-frames", type=int, default=40)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    scratch = tempfile.mkdtemp(prefix="faceswap-bench-")  # its own ledger, keys and log, not the user's
    atexit.register(shutil.rmtree, scratch, True)
    os.environ.setdefault("DEEPFAKE_DATA_DIR", os.path.join(scratch, "data"))
    os.environ.setdefault("DEEPFAKE_CONFIG_DIR", os.path.join(scratch, "config"))
    faceset = load(PHASE, "faceset")
    people = [make_identity(seed) for seed in SEEDS]
    for person in people:
        register_synthetic_identity(person.subject_id, person.display_name)

    def faces_of(person, frames: int, seed: int):
        clip = render_clip(person, frames, 256, seed=seed)
        return clip, faceset.to_faceset(faceset.extract_faces(clip.frames, 64), 0.6, person.display_name)

    sets = [faces_of(person, args.frames, seed=1)[1] for person in people]
    model, steps = train_for(sets, args.train_seconds, args.batch_size, seed=0, lr=args.lr)
    print(
        f"load average {os.getloadavg()[0]:.1f}; trained {steps} steps in {args.train_seconds:.0f} s "
        f"(batch {args.batch_size}, lr {args.lr:g}, {args.threads} torch thread(s))"
    )

    held = [faces_of(person, 40, seed=9) for person in people]  # frames never trained on
    for (_, faces), person, identity in zip(held, people, (0, 1), strict=True):
        inside, whole = reconstruction_ssim(model, faces, identity)
        print(f"reconstruction SSIM {person.display_name}: face {inside:.3f}, whole crop {whole:.3f}")

    face_swap = load(PHASE, "face_swap")
    target_clip = held[1][0]
    refs = tuple(
        np.stack(
            [dlib_models.face_descriptor(f, dlib_models.largest_face_landmarks(f)) for f in clip.frames[::8]]
        )
        for clip, _ in held
    )
    for color in ("reinhard", "hist", "none"):
        swapper = face_swap.FaceSwapper(model, face_swap.SwapConfig(color=color))
        swapped = np.stack([swapper(f, i / target_clip.fps)[0] for i, f in enumerate(target_clip.frames)])
        share, nme, measured = identity_and_expression(swapped, target_clip.frames, refs)
        print(
            f"colour {color}: identity transfer {100 * share:.0f} % of {measured} swapped frames nearer the "
            f"source person; expression NME (vs target landmarks / inter-ocular) {nme:.3f}"
        )
    raw, smooth = jitter()
    print(
        f"still-head landmark jitter per frame (/ inter-ocular): raw {raw:.4f}, One-Euro {smooth:.4f} "
        f"({100 * smooth / raw:.0f} %)"
    )
    extra = {"coverage": 0.6}
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((256, 256), (1280, 720)):
            swap_fps, total_fps = throughput(model, extra, width, height, args.throughput_frames, Path(tmp))
            print(
                f"throughput {width}x{height}: swap {swap_fps:.1f} fps; "
                f"decode + swap + marked encode {total_fps:.1f} fps"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
