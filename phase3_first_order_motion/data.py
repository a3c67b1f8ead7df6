"""Training data for FOMM: videos of one moving object each, sampled as (source, driving) frame pairs.

FOMM learns from reconstruction (paper sec. 3.3): take two frames of the *same* video, use one as the
source S and the other as the driving frame D, and ask the model to render D from S and the keypoints
of both. No labels are needed, only many videos of the same kind of object.

Two sources of videos, all held in memory as (T, size, size, 3) uint8 arrays:

* a folder in the VoxCeleb layout: `DIR/train/<video>.mp4` or `DIR/train/<video>/<frame>.png`
  (and `DIR/test/...` for held-out videos); a folder without the split asked for is used whole (and
  says so: with --split test these may be the very videos trained on);
* `synthetic`: talking heads of people who do not exist (`common.synthetic`), rendered on the fly.

Everything is decoded up front, which suits the tiny configuration and small folders; VoxCeleb-scale
data (~100 GB of frames) needs a streaming reader instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from common.errors import UserError
from common.media import VIDEO_SUFFIXES, read_clip, resize_frames
from common.training.seed import epoch_generator


def load_video_folder(folder: str | Path, size: int, split: str = "train", max_videos: int | None = None,
                      max_frames: int | None = None) -> list[np.ndarray]:
    """Every video of `folder/split` (or of `folder` itself, said on stderr, when it has no `split`/)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--data {folder} is not a folder")
    root = folder / split if (folder / split).is_dir() else folder
    subfolders = {p.name for p in folder.iterdir() if p.is_dir()}
    splits = sorted({"train", "test", "val", "valid", "validation"} & subfolders)
    if root == folder and splits:  # e.g. only train/: that folder is a split, not one clip of frames
        raise UserError(f"--data {folder} has no {split}/ folder, but {', '.join(s + '/' for s in splits)}: "
                        f"point --data at the one to use (e.g. {folder / splits[0]}) or add {split}/")
    if root == folder:
        caveat = "" if split == "train" else f" (maybe the ones trained on: held-out videos go in {split}/)"
        print(f"data: {folder} has no {split}/ folder, so all its videos are used{caveat}", file=sys.stderr)
    entries = sorted(p for p in root.iterdir()  # videos and frame folders; hidden ones are not clips
                     if not p.name.startswith(".") and (p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES))
    videos = [resize_frames(read_clip(p, max_frames), size) for p in entries[:max_videos]]
    videos = [v for v in videos if len(v) >= 2]
    if not videos:
        raise UserError(f"no videos with at least 2 frames in {root} (expected .mp4 files or frame folders)")
    print(f"data: {len(videos)} videos from {root}, {sum(len(v) for v in videos)} frames at {size}px",
          file=sys.stderr)
    return videos


def synthetic_videos(count: int, frames: int, size: int, seed: int = 0,
                     fps: float = 25.0) -> list[np.ndarray]:
    """`count` talking-head clips of different synthetic identities (seeds seed .. seed + count - 1).

    `fps` spaces the frames in time: the heads move slowly (sinusoids of 0.05-0.5 Hz), so 24 frames at
    25 fps span one second in which a 64 px head moves about 1.2 px between two random frames, and at
    5 fps (4.8 s) about 2.9 px.
    """
    from common.synthetic.clip import render_clip
    from common.synthetic.identity import make_identity

    return [render_clip(make_identity(seed + i), frames, size=size, fps=fps, seed=seed + i,
                        speech=False).frames for i in range(count)]


def epoch_batches(videos: list[np.ndarray], batch_size: int, epoch: int, seed: int = 0, repeats: int = 1,
                  flip: bool = True, rank: int = 0, world_size: int = 1) -> Iterator[dict[str, torch.Tensor]]:
    """One epoch of {'source', 'driving'} (B, 3, H, W) batches in [0, 1]: two random frames per item.

    Every video appears `repeats` times per epoch (the published vox config repeats each 75 times).
    Randomness comes only from (seed, epoch), so a resumed run rebuilds the same epoch; with several
    processes each takes every world_size-th batch. Augmentation: one random horizontal flip per pair.
    """
    g = epoch_generator(seed, epoch)
    order = torch.randperm(len(videos) * repeats, generator=g) % len(videos)
    for n, start in enumerate(range(0, len(order) - batch_size + 1, batch_size)):
        pairs = []
        for v in order[start:start + batch_size].tolist():
            a, b = torch.randperm(len(videos[v]), generator=g)[:2].tolist()
            pair = torch.from_numpy(np.array(videos[v][[a, b]])).permute(0, 3, 1, 2).float() / 255
            if flip and torch.rand((), generator=g) < 0.5:
                pair = pair.flip(-1)
            pairs.append(pair)
        if n % world_size == rank:
            batch = torch.stack(pairs)  # (B, 2, 3, H, W)
            yield {"source": batch[:, 0], "driving": batch[:, 1]}
