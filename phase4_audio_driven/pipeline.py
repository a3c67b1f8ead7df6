"""The Wav2Lip inference pipeline around the networks: find the face, crop, generate, paste back.

Shared by the `wav2lip.py` command line, the training scripts (the same crops), the demo stage and
the benchmarks. Frames are (H, W, 3) uint8 RGB as everywhere in the project; the networks take BGR
(the published checkpoints were trained on OpenCV frames), so the flip happens here and only here.

    frames --dlib HOG boxes (downscaled copy)--> pads, fill gaps, temporal smoothing --> crops 96x96
    audio --mel (80, T)--> one 16-column window per output frame (audio_encoder.mel_chunks)
    [crop with lower half zeroed | crop] + window --Wav2Lip--> new 96x96 face --resize, paste--> frame
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import torch

from common import dlib_models
from common.errors import UserError
from common.parallel import ordered_map

log = logging.getLogger("deepfake.phase4")

FACE_SIZE = 96  # the published networks' crop size
SILENCE_PEAK = 1e-4  # audio whose peak stays below this (of full scale 1) is silence
Box = tuple[int, int, int, int]  # (left, top, right, bottom) pixels
T = TypeVar("T")


class NoFaceError(UserError):
    """Not one frame shows a face the detector finds (a tool may add what it knows of the cause)."""


class NoFramesError(UserError):
    """The frames to look at were none (a tool adds which file)."""


NO_FACE = "no face found in any frame: use a clip where a frontal face is clearly visible"


@dataclass(frozen=True)
class BoxConfig:
    """How face boxes are found and adjusted."""

    pads: tuple[int, int, int, int] = (0, 10, 0, 0)  # top, bottom, left, right pixels (published default)
    chin_margin: float = 0.15  # dlib's HOG boxes stop above the chin: extend the bottom by this x height
    smooth_window: int = 5  # frames averaged per box (published: 5); 1 = no smoothing
    detect_max_side: int = 480  # detection runs on a copy at most this large (speed)
    detect_every: int = 1  # run the detector on every k-th frame, interpolate the boxes between (speed)


def detect_box(rgb: np.ndarray, cfg: BoxConfig = BoxConfig(),
               detect: Callable[[np.ndarray], list[Box]] = dlib_models.detect_faces) -> Box | None:
    """The largest face's box in full-resolution pixels, or None. Detection runs on a downscaled copy,
    by `detect` (dlib's HOG detector in this process, or `DetectorProcesses.detect`)."""
    h, w = rgb.shape[:2]
    scale = min(1.0, cfg.detect_max_side / max(h, w))
    size = (round(w * scale), round(h * scale))
    small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    boxes = detect(small)
    if not boxes:
        return None
    left, top, right, bottom = (v / scale for v in boxes[0])
    bottom += cfg.chin_margin * (bottom - top)
    pt, pb, pl, pr = cfg.pads
    box = (int(max(0, left - pl)), int(max(0, top - pt)), int(min(w, right + pr)), int(min(h, bottom + pb)))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise UserError(f"--pads {' '.join(map(str, cfg.pads))} leave nothing of a {right - left:.0f} x "
                        f"{bottom - top:.0f} px face box: use smaller negative pads")
    return box


def settle_boxes(detections: Iterable[tuple[T, Box | None]], window: int,
                 detect_every: int = 1, first_box: Box | None = None) -> Iterator[tuple[T, np.ndarray]]:
    """The box rule, in one pass over (item, detected box or None) pairs; yields (item, box (4,) float).

    * A frame without a face reuses the last box; frames before the first face use the first one
      (they wait for it: all of them are held until it comes, unless `first_box` gives it up front,
      as `stream_video_boxes` does for a video whose face appears late or never).
    * Each box is the mean of itself and the next `window - 1` (the published get_smoothened_boxes);
      the last `window - 1` frames use the last full window. So the stream runs `window - 1` frames
      behind its input, and a whole clip is never held in memory.

    `detect_every` > 1 says the boxes of most frames were interpolated (`interpolate_skipped`), so the
    count of frames without a face in the closing warning is a lower bound, and it says so. The warning
    comes when the stream ends or is closed (a caller that needs fewer frames than the clip has: it then
    counts the frames read).
    """
    window = max(1, window)
    pending: deque[tuple[T, np.ndarray]] = deque()  # items whose box waits for the next ones
    recent: deque[np.ndarray] = deque(maxlen=window)  # the last `window` gap-filled boxes
    before_first: list[T] = []  # items before the first face (none when `first_box` is given)
    last = None if first_box is None else np.asarray(first_box, np.float64)
    total = missing = 0
    try:
        for item, box in detections:
            total += 1
            missing += box is None
            if box is None and last is None:
                before_first.append(item)
                continue
            if box is not None:
                if last is None:
                    pending.extend((waiting, np.asarray(box, np.float64)) for waiting in before_first)
                    recent.extend(b for _, b in pending)
                    before_first.clear()
                last = np.asarray(box, np.float64)
            pending.append((item, last))
            recent.append(last)
            while len(pending) >= window:
                mean = np.mean([b for _, b in itertools.islice(pending, window)], axis=0)  # (4,)
                yield pending.popleft()[0], mean
        if total == 0:
            raise NoFramesError("no frame could be decoded")
        if last is None:
            raise NoFaceError(NO_FACE)
        tail = np.mean(recent, axis=0)  # the last full window (all boxes, in a clip shorter than it)
        for item, _ in pending:
            yield item, tail
    finally:
        if missing and last is not None:
            sampled = (f" (at least: the detector looked at one frame in {detect_every})"
                       if detect_every > 1 else "")
            log.warning("no face in %d of %d frames%s: those frames reuse the last box", missing, total,
                        sampled)


def stream_boxes(frames: Iterable[np.ndarray], cfg: BoxConfig = BoxConfig(), smooth: bool = True,
                 detect: Callable[[np.ndarray], list[Box]] = dlib_models.detect_faces,
                 first: tuple[int, Box] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(frame, box (4,) int) for every frame, in one pass: detection on a pool of threads, then the box
    rule of `settle_boxes` (fill gaps, smooth over `cfg.smooth_window` frames unless `smooth` is False).

    `detect` finds the faces in one downscaled frame: dlib's detector in this process by default, or
    `common.detector_processes.DetectorProcesses.detect` for a long video (dlib holds the interpreter
    lock, so the threads alone detect one frame at a time; worker processes do not share it).

    `first` (index, box), from `first_face` on an earlier read of the same frames, says where the first
    face is: the frames before it are not held until it comes, nor looked at again."""
    every = max(1, cfg.detect_every)

    def found(item: tuple[int, np.ndarray]) -> tuple[np.ndarray, Box | None | _Skipped]:
        i, frame = item
        if i % every:
            return frame, SKIPPED
        if first is not None and i <= first[0]:  # known from the earlier read
            return frame, first[1] if i == first[0] else None
        return frame, detect_box(frame, cfg, detect)

    detections = ordered_map(found, enumerate(frames))
    yield from _settled(interpolate_skipped(detections), cfg, smooth, None if first is None else first[1])


def first_face(frames: Iterable[np.ndarray], cfg: BoxConfig = BoxConfig(),
               detect: Callable[[np.ndarray], list[Box]] = dlib_models.detect_faces) -> tuple[int, Box]:
    """(index, box) of the first frame where `stream_boxes` finds a face (it looks at every
    `cfg.detect_every`-th frame), reading the frames only up to it and keeping none of them.
    No frames, or no face in any: the one-line errors of `settle_boxes`."""
    every = max(1, cfg.detect_every)
    seen = 0

    def looked_at() -> Iterator[tuple[int, np.ndarray]]:
        nonlocal seen
        for i, frame in enumerate(frames):
            seen += 1
            if i % every == 0:
                yield i, frame

    results = ordered_map(lambda item: (item[0], detect_box(item[1], cfg, detect)), looked_at())
    try:
        for i, box in results:
            if box is not None:
                return i, box
    finally:
        results.close()
    if seen == 0:
        raise NoFramesError("no frame could be decoded")
    raise NoFaceError(NO_FACE)


def stream_video_boxes(open_frames: Callable[[], Iterator[np.ndarray]], cfg: BoxConfig = BoxConfig(),
                       smooth: bool = True,
                       detect: Callable[[np.ndarray], list[Box]] = dlib_models.detect_faces,
                       ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`stream_boxes` of frames that can be read twice (`open_frames()` starts a new read of a video
    file): the first read stops at the first face (`first_face`), the second streams the frames with
    their boxes. Memory stays flat however late the face appears: the frames before it, which take its
    box, are read again instead of being held (a face-free minute of 720p would be 4 GB)."""
    frames = open_frames()
    try:
        first = first_face(frames, cfg, detect)
    finally:
        getattr(frames, "close", lambda: None)()  # a generator over an open file: close it now
    yield from stream_boxes(open_frames(), cfg, smooth, detect, first)


class _Skipped:
    """The detector did not look at this frame (`BoxConfig.detect_every`)."""


SKIPPED = _Skipped()


def interpolate_skipped(
    detections: Iterable[tuple[T, Box | None | _Skipped]],
) -> Iterator[tuple[T, tuple[float, ...] | None]]:
    """Fill the boxes of skipped frames from the detected frames around them, in one pass.

    Between two frames with a face, each box corner moves linearly (a head moves little in a few
    frames; the boxes are smoothed afterwards anyway). Next to a frame without a face the skipped
    frames take the box of the side that has one (or none: `settle_boxes` then fills the gap). Skipped
    frames after the last detected frame (the end of the stream is not known in advance) keep its box.
    So the stream runs at most `detect_every - 1` frames behind its input.
    """
    waiting: list[T] = []  # skipped items since the last detected one
    previous: Box | None = None  # the box of the last detected frame
    for item, box in detections:
        if isinstance(box, _Skipped):
            waiting.append(item)
            continue
        for j, skipped in enumerate(waiting, start=1):
            if previous is not None and box is not None:
                w = j / (len(waiting) + 1)  # share of the way from the previous detection to this one
                yield skipped, tuple((1 - w) * a + w * b for a, b in zip(previous, box, strict=True))
            else:
                yield skipped, previous if previous is not None else box
        waiting.clear()
        previous = box
        yield item, box
    for skipped in waiting:
        yield skipped, previous


def _settled(detections: Iterable[tuple[np.ndarray, Box | None]], cfg: BoxConfig, smooth: bool,
             first_box: Box | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    window = cfg.smooth_window if smooth else 1
    for frame, box in settle_boxes(detections, window, cfg.detect_every, first_box):
        yield frame, np.round(box).astype(np.int64)


def face_boxes(frames: Iterable[np.ndarray], cfg: BoxConfig = BoxConfig(), smooth: bool = True,
               detect: Callable[[np.ndarray], list[Box]] = dlib_models.detect_faces) -> np.ndarray:
    """Boxes (T, 4) int for every frame (see `stream_boxes`)."""
    return np.stack([box for _, box in stream_boxes(frames, cfg, smooth, detect)])


def crop(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face crop resized to (96, 96, 3) uint8 RGB."""
    left, top, right, bottom = (int(v) for v in box)
    return cv2.resize(rgb[top:bottom, left:right], (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)


def is_silent(wav: np.ndarray) -> bool:
    """True for audio whose peak stays below `SILENCE_PEAK`: a mouth driven by it stays closed, and sync
    scores measured against it mean nothing."""
    return len(wav) == 0 or float(np.max(np.abs(wav))) < SILENCE_PEAK


def to_network(crops_rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 96, 96, 3) uint8 RGB -> (N, 3, 96, 96) float BGR in [0, 1] on `device`, the published input
    convention. The uint8 crops travel and are converted there: on a GPU no float work is left to the
    CPU, whose idle intra-op threads would otherwise spin after every batch (see `lip_sync`)."""
    bgr = np.ascontiguousarray(crops_rgb[..., ::-1])
    return torch.from_numpy(bgr).to(device).permute(0, 3, 1, 2).float() / 255.0


def from_network(x: torch.Tensor) -> np.ndarray:
    """(N, 3, 96, 96) BGR in [0, 1] -> (N, 96, 96, 3) uint8 RGB."""
    bgr = (x.detach().float().clamp(0, 1) * 255.0).round().byte().permute(0, 2, 3, 1).cpu().numpy()
    return np.ascontiguousarray(bgr[..., ::-1])


def generator_input(crops_rgb: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 96, 96, 3) crops -> (N, 6, 96, 96) on `device`: [crop with rows 48..95 zeroed | crop]
    (inference.py)."""
    faces = to_network(crops_rgb, device)
    masked = faces.clone()
    masked[:, :, FACE_SIZE // 2 :] = 0
    return torch.cat([masked, faces], dim=1)


def paste(
    rgb: np.ndarray, box: np.ndarray, face_rgb: np.ndarray, seam: float = 0.1, edge: float = 0.1
) -> np.ndarray:
    """Put the lower half of a generated 96x96 face back into its box, returning a new frame.

    Only the mouth region is replaced: rows below the middle of the box, blended in over a band of
    `seam` x box height, so the eyes and the upper face stay the original's. The left, right and bottom
    sides fade back to the original over `edge` x the box's width or height, so the crop leaves no hard
    border where the generator's background and neck differ from the frame's. (The published inference
    pastes the whole crop with hard edges; its upper half is a reconstruction of the masked input.)"""
    left, top, right, bottom = (int(v) for v in box)
    h, w = bottom - top, right - left
    rows = (np.arange(h) + 0.5) / h  # 0 at the top of the box, 1 at the bottom
    cols = (np.arange(w) + 0.5) / w  # 0 at the left side, 1 at the right
    alpha = np.clip((rows - (0.5 - seam / 2)) / seam, 0.0, 1.0) * np.clip((1 - rows) / edge, 0.0, 1.0)  # (h,)
    beta = np.clip(np.minimum(cols, 1 - cols) / edge, 0.0, 1.0)  # (w,)
    first = int(np.argmax(alpha > 0))  # rows above it keep the original
    weight = np.outer(alpha[first:], beta).astype(np.float32)  # (h - first, w)
    face = cv2.resize(face_rgb, (w, h), interpolation=cv2.INTER_LINEAR)[first:]
    out = rgb.copy()
    region = out[top + first:bottom, left:right]
    # one OpenCV call (it releases the interpreter lock, so a pool of threads pastes frames in parallel)
    region[:] = cv2.blendLinear(face, np.ascontiguousarray(region), weight, 1 - weight)
    return out


def lip_sync(
    generator: torch.nn.Module,
    source: Iterator[tuple[np.ndarray, np.ndarray]],
    chunks: np.ndarray,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield one edited frame per mel window. `source` yields (frame, box (4,)) for window i (the caller
    loops or repeats frames), `chunks` (N, 80, 16) are the mel windows.

    Cropping and the generator run in one thread, pasting on a pool of threads
    (`common.parallel.ordered_map`), so on a GPU machine the CPU work overlaps the network's. On a GPU
    the crops are converted to floats there (`to_network`): PyTorch's CPU threads spin for a while after
    each parallel operation, and on 2 cores a batch of 32 converted on the CPU cost 26 ms of CPU with
    two threads against 2.7 with one, most of it spinning while the cores had other work."""
    generator.eval()
    dtype = next(generator.parameters()).dtype

    def generated() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(frame, box, new 96x96 face) for every window, a batch of generator calls at a time."""
        for start in range(0, len(chunks), batch_size):
            stop = min(start + batch_size, len(chunks))
            frames, boxes = zip(*(next(source) for _ in range(start, stop)), strict=True)
            crops = np.stack([crop(f, b) for f, b in zip(frames, boxes, strict=True)])  # (n, 96, 96, 3)
            mel = torch.from_numpy(np.ascontiguousarray(chunks[start:stop])).unsqueeze(1)  # (n, 1, 80, 16)
            faces = generator_input(crops, device)  # (n, 6, 96, 96)
            with torch.no_grad():  # this runs in ordered_map's feeder thread: grad mode is per thread
                out = generator(mel.to(device).to(dtype), faces.to(dtype))  # (n, 3, 96, 96)
            yield from zip(frames, boxes, from_network(out), strict=True)

    yield from ordered_map(lambda item: paste(*item), generated(), ahead=2 * batch_size)
