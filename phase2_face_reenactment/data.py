"""Training data for phase 2: synthetic faces with exact landmarks, and frame pairs for X2Face.

* Landmark CNN: frames of synthetic people (`common.synthetic`: people who do not exist, with the
  exact 68 landmarks the renderer drew), cut into face crops around their landmarks with random
  scale, shift, rotation and lighting, so that the network also copes with a rough crop from a
  detector box or from the previous frame.
* X2Face: two frames of the same clip (the same identity), one as the source and one as the driving
  frame; from synthetic clips or from a folder of videos or frame folders (each clip one person).

Every batch of an epoch depends only on (seed, epoch), so a resumed run sees the very same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from common.errors import UserError
from common.media import VIDEO_SUFFIXES, read_clip, resize_frames
from common.synthetic import make_identity, render_clip

TRAIN_SEEDS = range(1000, 1100)  # synthetic identities for training
HELD_OUT_SEEDS = range(2000, 2100)  # never trained on: benchmarks and the demo use these


@dataclass
class FaceFrames:
    """Frames `(N, S, S, 3)` uint8 with their landmarks `(N, 68, 2)` and the clip each came from `(N,)`."""

    images: np.ndarray
    landmarks: np.ndarray
    clip: np.ndarray


def synthetic_faces(seeds, frames: int, size: int, clip_seed: int = 0) -> FaceFrames:
    """Render `frames` frames of each synthetic identity in `seeds` (silent, moving, talking mouths)."""
    images, landmarks, clips = [], [], []
    for index, seed in enumerate(seeds):
        clip = render_clip(make_identity(int(seed)), frames, size=size, seed=clip_seed, speech=False)
        images.append(clip.frames)
        landmarks.append(clip.landmarks)
        clips.append(np.full(frames, index))
    return FaceFrames(np.concatenate(images), np.concatenate(landmarks), np.concatenate(clips))


# ----------------------------------------------------------------------------------------------
# Landmark crops
# ----------------------------------------------------------------------------------------------


def jittered_crop(image: np.ndarray, landmarks: np.ndarray, lmk, cfg, rng: np.random.Generator | None):
    """One training crop `(S, S, 3)` uint8 and its landmarks `(68, 2)` in crop pixels.

    `lmk` is the landmark_detector module (solutions or templates); `rng=None` gives the plain crop.
    """
    centre, side = lmk.landmark_crop_box(landmarks, cfg.crop_scale)
    angle = 0.0
    if rng is not None:
        side *= rng.uniform(0.85, 1.2)
        centre = centre + rng.uniform(-0.08, 0.08, 2) * side
        angle = rng.uniform(-12.0, 12.0)
    matrix = lmk.crop_matrix(centre, side, cfg.input_size, angle)
    # bilinear, as LandmarkCNN.predict crops at inference (warpAffine has no area filter: INTER_AREA
    # would silently act as bilinear too)
    crop = cv2.warpAffine(image, matrix, (cfg.input_size, cfg.input_size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if rng is not None:  # lighting: contrast and brightness
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-25, 25), 0, 255)
        crop = crop.astype(np.uint8)
    return crop, landmarks @ matrix[:, :2].T + matrix[:, 2]


def landmark_batches(faces: FaceFrames, lmk, cfg, batch_size: int, seed: int,
                     epoch: int) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of jittered crops: {"image" (B, 3, S, S) float in [0, 1], "landmarks" (B, 68, 2)}."""
    rng = np.random.default_rng([seed, epoch, 0xFACE])
    order = rng.permutation(len(faces.images))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        crops, points = zip(*(jittered_crop(faces.images[i], faces.landmarks[i], lmk, cfg, rng)
                              for i in order[start:start + batch_size]), strict=True)
        yield {"image": torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float().div(255),
               "landmarks": torch.tensor(np.stack(points), dtype=torch.float32)}


# ----------------------------------------------------------------------------------------------
# X2Face pairs
# ----------------------------------------------------------------------------------------------


def video_clips(data: str, size: int, identities: int, frames: int) -> list[np.ndarray]:
    """`synthetic` (training identities rendered in memory), or a folder whose videos (or sub-folders
    of frame images) are one clip each, resized to `size`."""
    if data == "synthetic":
        return [render_clip(make_identity(int(s)), frames, size=size, seed=0, speech=False).frames
                for s in list(TRAIN_SEEDS)[:identities]]
    folder = Path(data)
    if not folder.is_dir():
        raise UserError(f"--data must be 'synthetic' or a folder of videos, got {data}")
    paths = sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise UserError(f"{folder} holds no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) or frame folders")
    clips = [resize_frames(read_clip(p, frames), size) for p in paths]
    clips = [clip for clip in clips if len(clip) >= 2]
    if not clips:
        raise UserError(f"every video in {folder} has fewer than 2 frames")
    return clips


PAIRS_PER_CLIP = 16  # (source, driving) pairs an epoch draws from each clip


def pair_batches(clips: list[np.ndarray], batch_size: int, seed: int, epoch: int,
                 pairs_per_clip: int = PAIRS_PER_CLIP) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of (source, driving) pairs, each two different frames of one clip, `(B, 3, S, S)`."""
    rng = np.random.default_rng([seed, epoch, 0x2FACE])
    items = [(c, *rng.choice(len(clips[c]), 2, replace=False)) for c in range(len(clips))
             for _ in range(pairs_per_clip)]
    order = rng.permutation(len(items))

    def stack(frames: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div(255)

    for start in range(0, len(order) - batch_size + 1, batch_size):
        chosen = [items[i] for i in order[start:start + batch_size]]
        yield {"source": stack([clips[c][a] for c, a, _ in chosen]),
               "driving": stack([clips[c][b] for c, _, b in chosen])}
