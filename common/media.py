"""Reading images, videos and audio into the project's in-memory conventions.

- images: ``(H, W, 3)`` uint8 RGB (grayscale and RGBA inputs are converted);
- video: ``(T, H, W, 3)`` uint8 RGB frames plus ``fps``, and the audio track if there is one;
- audio: float32 mono samples in [-1, 1] plus ``sample_rate``;
- one clip of a data folder (`read_clip`): a video file or a folder of frame images, as video frames;
  `resize_frames` brings frames to a model's square frame size.

Decoding goes through PyAV (FFmpeg's libraries), so anything FFmpeg reads works. Writing is *not* here:
every file the project writes goes through ``consent_and_watermark.writer``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from common.errors import UserError

log = logging.getLogger("deepfake.media")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


@dataclass
class Video:
    """A decoded video: frames, frame rate and (optionally) its audio track."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float
    audio: np.ndarray | None = None  # (N,) float32 mono
    sample_rate: int | None = None


@dataclass
class VideoInfo:
    """What a video holds, read from its header without decoding every frame."""

    width: int  # as displayed: a phone video stored sideways with a rotation tag reads upright
    height: int
    fps: float
    frames: int  # as declared by the container, else its packets counted; 0 when unreadable
    duration: float
    has_audio: bool

    def frames_to_read(self, max_frames: int | None = None) -> int:
        """How many frames a read of at most `max_frames` should give, as far as the header knows (an
        estimate: sizes a buffer or a progress bar; 0 when unknown)."""
        return self.frames if max_frames is None else min(self.frames, max_frames)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}")
    if path.is_dir():
        raise UserError(f"expected a file but got a folder: {path}")
    return path


def is_image_path(path: str | Path) -> bool:
    """True when the suffix names an image format (used by tools that take an image or a video); a
    GIF is an image when it holds one frame (a still), a video when it is animated."""
    path = Path(path)
    if path.suffix.lower() == ".gif" and path.is_file():
        try:
            with Image.open(path) as img:
                return getattr(img, "n_frames", 1) == 1
        except (UnidentifiedImageError, OSError):
            return False  # not a readable GIF: reading it as a video says what is wrong
    return path.suffix.lower() in IMAGE_SUFFIXES


def clip_path(entry: str | Path) -> Path:
    """What to read for one entry of a folder of clips: a video file, a folder of frame images, or a
    clip's own folder as `python -m common.synthetic` writes it (its `frames/` images, else its one
    video file, e.g. `synthetic-000000/video.mp4`). Anything else is returned as it is."""
    entry = Path(entry)
    if not entry.is_dir() or any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
        return entry
    frames = entry / "frames"
    if frames.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in frames.iterdir()):
        return frames
    videos = [p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    return videos[0] if len(videos) == 1 else entry


_WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # 16-bit grey PNG/TIFF (or 32-bit int)


def _as_rgb8(img: Image.Image) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB from any PIL image. 16-bit grey is scaled by 255/65535: PIL's own
    conversion clips it at 255, which turns a 16-bit photo all white. 32-bit float grey (TIFF) in [0, 1]
    is scaled by 255 (PIL's conversion would make it black), one in [0, 255] kept, a larger one read as
    16-bit levels. (16-bit colour PNG/TIFF already open as 8-bit RGB: Pillow keeps the high byte.)"""
    if img.mode in _WIDE_GREY_MODES or img.mode == "F":
        wide = np.nan_to_num(np.asarray(img).astype(np.float64))  # (H, W)
        peak = float(wide.max(initial=0.0))
        scale = 1 / 257  # integer modes: 16-bit levels
        if img.mode == "F":  # float: [0, 1], or 8-bit levels, or else 16-bit ones
            scale = 255.0 if peak <= 1.0 else 1.0 if peak <= 255.0 else 1 / 257
        grey = np.clip(np.rint(wide * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def read_image(path: str | Path, upright: bool = True) -> np.ndarray:
    """Read an image file as ``(H, W, 3)`` uint8 RGB (grey, RGBA, palette and 16-bit images included),
    turned as its EXIF orientation says (a phone photo); ``upright=False`` gives the pixels as stored
    (what a watermark detector must read: the mark was put into those)."""
    path = _existing(path)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = _as_rgb8(ImageOps.exif_transpose(img) if upright else img)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as err:
        raise UserError(f"cannot read image {path}: {err}") from err
    return np.ascontiguousarray(rgb)


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise UserError(f"cannot read media file {path}: {err}") from err


def _upright(rgb: np.ndarray, rotation: float) -> np.ndarray:
    """A decoded frame ``(H, W, 3)`` turned as its display matrix says (``VideoFrame.rotation``: degrees
    counter-clockwise; phones store portrait video sideways with -90 or 90). FFmpeg's command line does
    this by itself, the library does not. Quarter turns only; other angles are left alone."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _rotation(path: Path) -> float:
    """The first frame's display rotation in degrees (0 without one, or when nothing decodes)."""
    with _open(path) as container:
        if not container.streams.video:  # audio only: nothing is turned
            return 0.0
        try:
            frame = next(container.decode(container.streams.video[0]), None)
        except av.error.FFmpegError:
            return 0.0
        return float(frame.rotation) if frame is not None else 0.0


def _frame_rate(stream: av.video.stream.VideoStream) -> Fraction:
    """The stream's frame rate: its average (frames over duration, also right for a variable-rate
    clip), else the codec's, else 25."""
    return stream.average_rate or stream.guessed_rate or Fraction(25)


def is_turned(path: str | Path) -> bool:
    """True when a file is shown turned or mirrored from how its pixels are stored: a photo's EXIF
    orientation other than 1, a video's display rotation other than 0."""
    path = _existing(path)
    if is_image_path(path):
        try:
            with Image.open(path) as img:
                return img.getexif().get(0x0112, 1) not in (0, 1)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            return False
    try:
        return round(_rotation(path)) % 360 != 0
    except UserError:
        return False


def video_info(path: str | Path) -> VideoInfo:
    """Size (as displayed), frame rate, frame count and whether there is audio; decodes one frame at
    most (the display rotation is a property of frames)."""
    path = _existing(path)
    with _open(path) as container:
        if not container.streams.video:
            raise UserError(f"{path} has no video stream")
        stream = container.streams.video[0]
        rate = _frame_rate(stream)
        duration = float(container.duration / av.time_base) if container.duration else 0.0
        frames = int(stream.frames or 0)
        if frames == 0:  # Matroska and WebM declare no count: count the packets (read, not decoded)
            try:
                frames = sum(1 for packet in container.demux(stream) if packet.size)
            except av.error.FFmpegError:
                frames = 0  # a damaged file: decoding it will say so
        width, height = stream.codec_context.width, stream.codec_context.height
        has_audio = bool(container.streams.audio)
    if round(_rotation(path) / 90) % 2:  # a quarter turn swaps the sides
        width, height = height, width
    return VideoInfo(width=width, height=height, fps=float(rate), frames=frames, duration=duration,
                     has_audio=has_audio)


def iter_video(path: str | Path, max_frames: int | None = None, upright: bool = True) -> Iterator[np.ndarray]:
    """Yield the frames of a video one at a time as ``(H, W, 3)`` uint8 RGB (memory stays flat), turned
    as the display rotation says (``upright=False``: as stored, see `read_image`).

    The frames come at the constant rate `video_info` reports, as a player shows them: a phone's
    variable-rate clip (frames further apart when it is dark) has each frame placed at its own time,
    repeated to fill a gap or dropped when two fall on one frame slot, so that frame i is the picture
    at i / fps seconds and the sound stays in sync (what ffmpeg's constant-rate output does).
    """
    path = _existing(path)
    # Bound here: a generator left open when the program ends is closed after module globals are
    # cleared, and `except av.error...` would then fail on `av` being None.
    decode_error = av.error.FFmpegError
    with _open(path) as container:
        if not container.streams.video:
            raise UserError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate, base = _frame_rate(stream), stream.time_base
        count = repeated = dropped = 0  # frames yielded; copies and drops for the constant rate
        start = previous = None
        try:
            for frame in container.decode(stream):
                if frame.pts is None or base is None:
                    slot = count  # no timestamps: every frame is the next one
                else:
                    start = frame.pts if start is None else start
                    slot = round((frame.pts - start) * base * rate)  # the frame's place at the constant rate
                if slot < count:  # a second frame on a slot already shown
                    dropped += 1
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                rgb = _upright(rgb, frame.rotation) if upright else rgb
                while count < slot and previous is not None:  # a gap: the last picture stays on screen
                    yield previous
                    count, repeated = count + 1, repeated + 1
                    if max_frames is not None and count >= max_frames:
                        return
                yield rgb
                count, previous = count + 1, rgb
                if max_frames is not None and count >= max_frames:
                    return
        except decode_error as err:
            raise UserError(f"cannot decode video {path}: {err}") from err
        if repeated or dropped:
            log.warning("%s has a variable frame rate: read at a constant %.4g fps (%d frames repeated, %d "
                        "dropped) to stay in sync with its sound", path.name, float(rate), repeated, dropped)


def _stack_frames(frames: Iterator[np.ndarray], expected: int, path: Path) -> np.ndarray:
    """``(T, H, W, 3)`` from frames of one size, filled in place into one array sized from `expected`
    (the header's count, which may be wrong: the array grows, or is cut to the frames read), so the
    frames are never held twice, as a list and a stack would be."""
    out, count = None, 0
    for frame in frames:
        if out is None:
            try:  # pages are only taken as frames fill them
                out = np.empty((max(expected, 1), *frame.shape), frame.dtype)
            except (MemoryError, ValueError):  # a header claiming far too many frames: grow from a few
                out = np.empty((16, *frame.shape), frame.dtype)
        elif frame.shape != out.shape[1:]:
            raise UserError(f"the frames of {path} change size ({out.shape[2]}x{out.shape[1]} to "
                            f"{frame.shape[1]}x{frame.shape[0]})")
        if count == len(out):  # more frames than declared: grow by a quarter (mremap, mostly no copy)
            out.resize((count + max(count // 4, 16), *out.shape[1:]), refcheck=False)
        out[count] = frame
        count += 1
    if out is None:
        raise UserError(f"video has no frames: {path}")
    if count < len(out):  # fewer than declared: give the rest back
        out.resize((count, *out.shape[1:]), refcheck=False)
    return out


def read_video(path: str | Path, max_frames: int | None = None, with_audio: bool = True) -> Video:
    """Decode a whole video: frames, fps and (if present) its audio track as float32 mono. The frames
    are decoded straight into one array (memory: the frames once); a tool that only passes over the
    frames should use `iter_video` instead, which holds one at a time."""
    path = _existing(path)
    info = video_info(path)
    frames = _stack_frames(iter_video(path, max_frames=max_frames), info.frames_to_read(max_frames), path)
    audio, rate = (None, None)
    if with_audio and info.has_audio:
        audio, rate = read_audio(path)
    return Video(frames=frames, fps=info.fps, audio=audio, sample_rate=rate)


def _natural_key(path: Path) -> list:
    """Sort key comparing runs of digits as numbers: frame_2 < frame_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def read_clip(entry: str | Path, max_frames: int | None = None) -> np.ndarray:
    """One clip of a data folder as ``(T, H, W, 3)`` uint8 RGB, without its audio: a video file, or a
    folder of frame images in name order (`clip_path` resolves a clip folder as `common.synthetic`
    writes it). A folder without frame images, or whose images differ in size, is a UserError."""
    path = clip_path(entry)
    if not path.is_dir():
        return read_video(path, max_frames=max_frames, with_audio=False).frames
    # natural order: frame_2.png before frame_10.png (names without zero-padding, as ffmpeg's %d writes)
    names = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    names = names[:max_frames]
    if not names:
        raise UserError(f"{path} holds no frame images")
    frames = [read_image(p) for p in names]
    if len({frame.shape for frame in frames}) > 1:
        raise UserError(f"the frame images of {path} differ in size")
    return np.stack(frames)


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, size, size, 3)`` uint8 (a non-square frame is stretched).

    Shrinking averages the source pixels each output pixel covers (area), which does not alias;
    enlarging interpolates bilinearly. Frames already of that size come back unchanged."""
    if frames.shape[1:3] == (size, size):
        return frames
    interpolation = cv2.INTER_AREA if frames.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (size, size), interpolation=interpolation) for frame in frames])


PADDING_S = 0.1  # read_audio trims at most this much decoded past a stream's stated duration


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode the audio of any file FFmpeg reads (wav, mp3, m4a, mp4...): its default stream, as a
    player would choose (the first when none is marked default); a log line names the others.

    Returns float32 mono samples in [-1, 1] and the sample rate. Stereo is averaged to mono. When
    ``sample_rate`` is given and differs from the file's, the audio is resampled and a log line says so.
    """
    path = _existing(path)
    with _open(path) as container:
        streams = container.streams.audio
        if not streams:
            raise UserError(f"{path} has no audio stream")
        stream = next((s for s in streams if s.disposition & av.stream.Disposition.default), streams[0])
        if len(streams) > 1:
            log.warning("%s has %d audio streams: using #%d (the default), the others are left out",
                        path.name, len(streams), stream.index)
        source_rate = stream.codec_context.sample_rate
        target_rate = sample_rate or source_rate
        # Packed (interleaved) float, averaged over the channels by us (FFmpeg's own downmix lowers
        # the level by 3 dB). Not planar: PyAV crashes converting a planar frame of 8 or more channels.
        channels = len(stream.layout.channels)
        resampler = av.AudioResampler(format="flt", layout=stream.layout.name, rate=target_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1, channels).mean(axis=1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels).mean(axis=1))
        except av.error.FFmpegError as err:
            raise UserError(f"cannot decode audio in {path}: {err}") from err
        # AAC and MP3 decode whole frames of 1024 / 1152 samples: the last one's padding is not sound
        duration = float(stream.duration * stream.time_base) if stream.duration else None
    if not chunks:
        raise UserError(f"audio stream of {path} holds no samples")
    if target_rate != source_rate:
        log.warning("resampled audio of %s from %d Hz to %d Hz", path.name, source_rate, target_rate)
    samples = np.concatenate(chunks).astype(np.float32)
    expected = round(duration * target_rate) if duration is not None else len(samples)
    if 0 < len(samples) - expected <= PADDING_S * target_rate:  # more is no padding: an estimated duration
        samples = samples[:expected]
    return np.clip(samples, -1.0, 1.0), int(target_rate)
