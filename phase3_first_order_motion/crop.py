"""Crop the face of any video the way FOMM's VoxCeleb preprocessing does, ready for train.py / animate.py.

    python phase3_first_order_motion/crop.py --input talk.mp4 --output talk_crop.mp4 [--size 256]

The published preprocessing (AliaksandrSiarohin/video-preprocessing, crop_vox) keeps the camera still
and lets the head move inside a fixed box:

  1. detect the face every `--detect-every` frames (here dlib's HOG detector, the detector of phase 1);
  2. take the union of all boxes of the clip (the area the head moves in);
  3. enlarge it by `--increase` of its width and height on each side, make it square around its centre,
     and clip it to the frame;
  4. cut that square from every frame and resize it to `--size` x `--size`.

The video is read twice, one frame at a time (memory stays flat however long it is): a first pass finds
the faces and keeps only their boxes, a second cuts and writes.

A fixed box matters: FOMM learns motion from how the face moves inside the frame, so a crop that
follows the face would erase the head motion. The audio is kept. The output goes through the
provenance writer (marked as produced by this project; the visible label is off by default here
because a crop is not synthetic: turn it on with --label).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common.cli import check_output, run
from common.errors import UserError
from common.media import iter_video, read_audio, resize_frames, video_info


def union_box(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    """The smallest box (left, top, right, bottom) holding every box."""
    b = np.array(boxes)
    return int(b[:, 0].min()), int(b[:, 1].min()), int(b[:, 2].max()), int(b[:, 3].max())


def square_box(box: tuple[int, int, int, int], increase: float, width: int, height: int) -> tuple[int, ...]:
    """Enlarge by `increase` of the size on each side, square it around its centre, keep it in the frame."""
    left, top, right, bottom = box
    w, h = right - left, bottom - top
    left, right = left - increase * w, right + increase * w
    top, bottom = top - increase * h, bottom + increase * h
    side = min(max(right - left, bottom - top), width, height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(round(min(max(cx - side / 2, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), height - side)))
    return x0, y0, x0 + int(side), y0 + int(side)


def crop_box(frames: Iterable[np.ndarray], every: int = 5,
             increase: float = 0.1) -> tuple[int, int, int, int]:
    """The fixed crop box of a clip from faces found every `every` frames; `frames`: a (T, H, W, 3) array
    or any iterable of (H, W, 3) frames (a stream, e.g. `iter_video`: only the boxes are kept)."""
    from common.dlib_models import detect_faces

    boxes, shape = [], None
    for i, frame in enumerate(frames):
        shape = frame.shape
        if i % every == 0 and (found := detect_faces(frame)):
            boxes.append(found[0])
    if shape is None:
        raise UserError("no frame of the video could be decoded")
    if not boxes:
        raise UserError("no face found in the video; crop it by hand or try a larger, frontal face")
    return square_box(union_box(boxes), increase, shape[1], shape[0])


def cropped(frames: Iterable[np.ndarray], box: tuple[int, int, int, int], size: int) -> Iterator[np.ndarray]:
    """Each frame cut to `box` (left, top, right, bottom) and resized to `size` x `size`, one at a time."""
    x0, y0, x1, y1 = box
    for frame in frames:
        yield resize_frames(frame[None, y0:y1, x0:x1], size)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python phase3_first_order_motion/crop.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", required=True, type=Path, help="any video with one face")
    parser.add_argument("--output", required=True, type=Path, help="the cropped .mp4")
    parser.add_argument("--size", type=int, default=256,
                        help="output side in pixels, even: H.264 video needs even sides (default: 256, "
                        "the side of vox-256)")
    parser.add_argument("--detect-every", "--every", type=int, default=5, metavar="N",
                        help="run the face detector on every N-th frame only; the crop box holds all the "
                        "boxes found (default: 5)")
    parser.add_argument("--increase", type=float, default=0.1,
                        help="margin added on each side, as a share of the face box's width (left, right) "
                        "and height (top, bottom) (default: 0.1)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="crop only the first N frames (the audio is cut to match) (default: all)")
    parser.add_argument("--label", action="store_true",
                        help="draw the visible SYNTHETIC label (off by default: a crop is not synthetic)")
    args = parser.parse_args(argv)
    from consent_and_watermark.writer import save_video

    if args.output.suffix.lower() != ".mp4":
        raise UserError(f"--output {args.output} must end in .mp4")
    if args.detect_every < 1 or args.size < 16:
        raise UserError("--detect-every must be >= 1 and --size >= 16")
    if args.size % 2:
        raise UserError(f"--size must be even (H.264 video needs even sides), got {args.size}")
    if not 0 <= args.increase < math.inf:
        raise UserError(f"--increase must be 0 or a positive number of box sizes, got {args.increase}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UserError(f"--max-frames must be at least 1, got {args.max_frames}")
    check_output(args.output, inputs=(args.input,))
    info = video_info(args.input)
    total = info.frames_to_read(args.max_frames) or None  # for the progress bars
    # pass 1: the faces' boxes (every --detect-every'th frame); the box holds them all, so it is known
    # only once the whole video has been seen
    frames = tqdm(iter_video(args.input, max_frames=args.max_frames), total=total, unit="frame",
                  desc="finding the face", disable=None, leave=False)
    try:
        box = x0, y0, x1, y1 = crop_box(frames, args.detect_every, args.increase)
    except UserError as err:  # say which file
        raise UserError(f"--input {args.input}: {err}") from err
    print(f"crop box: x {x0}-{x1}, y {y0}-{y1} of {info.width}x{info.height}", file=sys.stderr)
    audio, rate = read_audio(args.input) if info.has_audio else (None, None)
    if audio is not None and args.max_frames is not None:
        audio = audio[: int(round(args.max_frames / info.fps * rate))]
    # pass 2: cut and write, one frame at a time
    count = 0

    def counted(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        nonlocal count
        for frame in frames:
            count += 1
            yield frame

    frames = cropped(counted(iter_video(args.input, max_frames=args.max_frames)), box, args.size)
    path = save_video(args.output, frames, info.fps, audio=audio, sample_rate=rate, label=args.label,
                      total=total)
    print(f"wrote {path} ({count} frames, {args.size}x{args.size})")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(main))
