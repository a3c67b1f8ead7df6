"""The Wav2Lip inference pipeline around the networks: find the face, crop, generate, paste back.

Shared by the `wav2lip.py` command line, the training scripts (the same crops), the demo stage and
the benchmarks. Frames are (H, W, 3) uint8 RGB as everywhere in the project; the networks take BGR
(the published checkpoints were trained on OpenCV frames), so the flip happens here and only here.

    frames --dlib HOG boxes (downscaled copy)--> pads, fill gaps, temporal smoothing --> crops 96x96
    audio --mel (80, T)--> one 16-column window per output frame (audio_encoder.mel_chunks)
    [crop with lower half zeroed | crop] + window --Wav2Lip--> new 96x96 face --resize, paste--> frame
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from common import dlib_models
from common.errors import UserError
from common.parallel import ordered_map

log = logging.getLogger("deepfake.phase4")

FACE_SIZE = 96  # the published networks' crop size
Box = tuple[int, int, int, int]  # (left, top, right, bottom) pixels


@dataclass(frozen=True)
class BoxConfig:
    """How face boxes are found and adjusted."""

    pads: tuple[int, int, int, int] = (0, 10, 0, 0)  # top, bottom, left, right pixels (published default)
    chin_margin: float = 0.15  # dlib's HOG boxes stop above the chin: extend the bottom by this x height
    smooth_window: int = 5  # frames averaged per box (published: 5); 1 = no smoothing
    detect_max_side: int = 480  # detection runs on a copy at most this large (speed)


def detect_box(rgb: np.ndarray, cfg: BoxConfig = BoxConfig()) -> Box | None:
    """The largest face's box in full-resolution pixels, or None. Detection runs on a downscaled copy."""
    h, w = rgb.shape[:2]
    scale = min(1.0, cfg.detect_max_side / max(h, w))
    small = rgb if scale == 1.0 else cv2.resize(rgb, (round(w * scale), round(h * scale)), cv2.INTER_AREA)
    boxes = dlib_models.detect_faces(small)
    if not boxes:
        return None
    left, top, right, bottom = (v / scale for v in boxes[0])
    bottom += cfg.chin_margin * (bottom - top)
    pt, pb, pl, pr = cfg.pads
    return (
        int(max(0, left - pl)),
        int(max(0, top - pt)),
        int(min(w, right + pr)),
        int(min(h, bottom + pb)),
    )


def fill_missing(boxes: list[Box | None]) -> tuple[np.ndarray, int]:
    """Frames without a face reuse the last box (frames before the first face use the first one).
    Returns boxes (T, 4) float and the number of frames that had no face."""
    found = [b for b in boxes if b is not None]
    if not found:
        raise UserError("no face found in any frame: use a clip where a frontal face is clearly visible")
    out, last = [], found[0]
    for b in boxes:
        last = b if b is not None else last
        out.append(last)
    return np.asarray(out, dtype=np.float64), sum(b is None for b in boxes)


def smooth_boxes(boxes: np.ndarray, window: int) -> np.ndarray:
    """Average each box with the next `window - 1` ones (the published get_smoothened_boxes), (T, 4)."""
    if window <= 1:
        return boxes
    out = boxes.copy()
    for i in range(len(boxes)):
        start = min(i, max(0, len(boxes) - window))  # the last windows stay inside the clip
        out[i] = boxes[start : start + window].mean(axis=0)
    return out


def face_boxes(frames: Iterable[np.ndarray], cfg: BoxConfig = BoxConfig(), smooth: bool = True) -> np.ndarray:
    """Boxes (T, 4) int for every frame: detect (frames on a pool of threads), fill gaps, smooth over time."""
    raw = list(ordered_map(lambda frame: detect_box(frame, cfg), frames))
    if not raw:
        raise UserError("the video has no frames")
    boxes, missing = fill_missing(raw)
    if missing:
        log.warning("no face in %d of %d frames: those frames reuse the last box", missing, len(raw))
    boxes = smooth_boxes(boxes, cfg.smooth_window if smooth else 1)
    return np.round(boxes).astype(np.int64)


def crop(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face crop resized to (96, 96, 3) uint8 RGB."""
    left, top, right, bottom = (int(v) for v in box)
    return cv2.resize(rgb[top:bottom, left:right], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def to_network(crops_rgb: np.ndarray) -> torch.Tensor:
    """(N, 96, 96, 3) uint8 RGB -> (N, 3, 96, 96) float BGR in [0, 1], the published input convention."""
    bgr = np.ascontiguousarray(crops_rgb[..., ::-1])
    return torch.from_numpy(bgr).permute(0, 3, 1, 2).float() / 255.0


def from_network(x: torch.Tensor) -> np.ndarray:
    """(N, 3, 96, 96) BGR in [0, 1] -> (N, 96, 96, 3) uint8 RGB."""
    bgr = (x.detach().float().clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.ascontiguousarray(bgr[..., ::-1])


def generator_input(crops_rgb: np.ndarray) -> torch.Tensor:
    """(N, 96, 96, 3) crops -> (N, 6, 96, 96): [crop with rows 48..95 zeroed | crop] (inference.py)."""
    faces = to_network(crops_rgb)
    masked = faces.clone()
    masked[:, :, FACE_SIZE // 2 :] = 0
    return torch.cat([masked, faces], dim=1)


def paste(rgb: np.ndarray, box: np.ndarray, face_rgb: np.ndarray, seam: float = 0.1) -> np.ndarray:
    """Put the lower half of a generated 96x96 face back into its box, returning a new frame.

    Only the mouth region is replaced: rows below the middle of the box, blended in over a band of
    `seam` x box height, so the eyes and the upper face stay the original's. (The published
    inference pastes the whole crop; its upper half is a reconstruction of the masked input.)"""
    left, top, right, bottom = (int(v) for v in box)
    h, w = bottom - top, right - left
    out = rgb.copy()
    face = cv2.resize(face_rgb, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    rows = (np.arange(h) + 0.5) / h  # 0 at the top of the box, 1 at the bottom
    alpha = np.clip((rows - (0.5 - seam / 2)) / seam, 0.0, 1.0)[:, None, None]  # (h, 1, 1)
    region = out[top:bottom, left:right].astype(np.float32)
    out[top:bottom, left:right] = np.round(alpha * face + (1 - alpha) * region).astype(np.uint8)
    return out


def lip_sync(
    generator: torch.nn.Module,
    source: Iterator[np.ndarray],
    boxes: np.ndarray,
    chunks: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield one edited frame per mel window. `source` yields the frame for window i (the caller loops
    or repeats frames), `boxes` (N, 4) the box of each, `chunks` (N, 80, 16) the mel windows.

    Decoding, cropping and the generator run in one thread, pasting on a pool of threads
    (`common.parallel.ordered_map`), so on a GPU machine the CPU work overlaps the network's."""
    generator.eval()
    dtype = next(generator.parameters()).dtype

    def generated() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(frame, box, new 96x96 face) for every window, a batch of generator calls at a time."""
        for start in range(0, len(chunks), batch_size):
            stop = min(start + batch_size, len(chunks))
            frames = [next(source) for _ in range(start, stop)]
            crops = np.stack([crop(f, boxes[i]) for i, f in zip(range(start, stop), frames, strict=True)])
            mel = torch.from_numpy(np.ascontiguousarray(chunks[start:stop])).unsqueeze(1)  # (n, 1, 80, 16)
            faces = generator_input(crops)  # (n, 6, 96, 96)
            with torch.no_grad():  # this runs in ordered_map's feeder thread: grad mode is per thread
                out = generator(mel.to(device, dtype), faces.to(device, dtype))  # (n, 3, 96, 96)
            yield from zip(frames, boxes[start:stop], from_network(out), strict=True)

    yield from ordered_map(lambda item: paste(*item), generated(), ahead=2 * batch_size)
