"""Low-level encoders: pixels and samples to bytes on disk. Only ``writer`` calls these.

Every function writes to a temporary file beside the target and renames it into place, so a crash or a
Ctrl-C never leaves a half-written file and never destroys an earlier good output.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import wave
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from common.atomic import atomic_path
from common.errors import UserError
from common.parallel import ordered_map, worker_count

log = logging.getLogger("deepfake.media")

ENV_SEGMENTS = "DEEPFAKE_ENCODE_SEGMENTS"
SEGMENT_FRAMES = 48  # frames per independently encoded run (each opens with an IDR frame)
AUDIO_CODEC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def encode_image(
    path: str | Path, rgb: np.ndarray, text: Mapping[str, str] | None = None,
    exif: bytes | None = None, xmp: str | None = None, quality: int = 95,
) -> Path:
    """Write an RGB uint8 image as PNG (lossless) or JPEG (4:2:0, ``quality``) by the suffix.

    ``text`` becomes PNG iTXt chunks; ``xmp`` is embedded as XMP (PNG iTXt ``XML:com.adobe.xmp`` or the
    JPEG APP1 XMP segment); ``exif`` is raw EXIF bytes (JPEG and PNG).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    image = Image.fromarray(np.ascontiguousarray(rgb), mode="RGB")
    with atomic_path(path) as tmp:
        if suffix == ".png":
            info = PngInfo()
            for key, value in (text or {}).items():
                info.add_itxt(key, value)
            if xmp:
                info.add_itxt("XML:com.adobe.xmp", xmp)
            image.save(tmp, format="PNG", pnginfo=info, exif=exif or b"", compress_level=1)
        elif suffix in (".jpg", ".jpeg"):
            extra = {"xmp": xmp.encode("utf-8")} if xmp else {}
            image.save(tmp, format="JPEG", quality=quality, subsampling="4:2:0", exif=exif or b"", **extra)
        else:
            raise ValueError(f"unsupported image format {suffix!r} (use .png or .jpg)")
    return path


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in 4:2:0 needs even sizes: repeat the last row/column when a side is odd."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def padding_note(frame: np.ndarray) -> str | None:
    """What `_even` does to frames of this size, in words for the user and the log, or None."""
    height, width = frame.shape[:2]
    if height % 2 == 0 and width % 2 == 0:
        return None
    return (f"frames of {width}x{height} px written as {width + width % 2}x{height + height % 2} "
            "(H.264 4:2:0 needs even sides: the last column/row is repeated)")


def to_i420(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3H/2, W) uint8 planar YUV 4:2:0, the encoder's input (sides made even).

    BT.601 limited range, as libswscale converts rgb24 by default (decoders read it back the same way);
    done here, on a pool of threads, rather than by the encoder, whose thread it would otherwise hold for
    about 2 ms per 720p frame."""
    return cv2.cvtColor(_even(np.ascontiguousarray(rgb, dtype=np.uint8)), cv2.COLOR_RGB2YUV_I420)


def encode_segments() -> int:
    """Parallel x264 encoders per video: $DEEPFAKE_ENCODE_SEGMENTS if set, else 1 (one encoder)."""
    value = os.environ.get(ENV_SEGMENTS, "").strip()
    if value and not (value.isascii() and value.isdigit()):  # "²" is a digit to str.isdigit, not to int()
        raise UserError(f"${ENV_SEGMENTS} must be a whole number of encoders, got {value!r}")
    return max(1, int(value or 1))


SMALL_FRAME_CRF = 12  # x264 quality for frames of at most SMALL_FRAME_AREA pixels (see video_crf)
SMALL_FRAME_AREA = 256 * 256


def video_crf(shape: tuple[int, ...]) -> int:
    """x264 CRF for frames of this (H, W, ...) shape: 18 (looks lossless), but 12 for frames of at most
    256 x 256 px. Those carry the watermark in a few tiles, and a short clip has few frames to add up: a
    one-frame 160-px synthetic face read up to 0.379 of its chips wrong after CRF 18 (the bound accepts
    ~0.378; a test failed about once in eight runs), 0.35 at most after CRF 12 (150 payloads). The price
    is bytes on small videos only."""
    return SMALL_FRAME_CRF if shape[0] * shape[1] <= SMALL_FRAME_AREA else 18


def check_audio_track(audio: np.ndarray, sample_rate: int | None) -> None:
    """Refuse an audio track an mp4 cannot carry, before anything is written: one without its sample
    rate, or one without samples (the AAC stream would be left out of the file without a word)."""
    if not sample_rate:
        raise ValueError("an audio track needs its sample_rate")
    if np.size(audio) == 0:
        raise ValueError("the audio track is empty (0 samples): pass audio=None for a video without sound")


def encode_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    tags: Mapping[str, str] | None = None,
    crf: int = 18,
    preset: str = "veryfast",
    segments: int | None = None,
) -> Path:
    """Write RGB uint8 frames as H.264 (yuv420p) mp4, with an AAC track when ``audio`` is given.

    ``crf`` and ``preset`` are x264's quality (lower is better, 18 looks lossless) and speed knobs.
    ``segments`` (default ``encode_segments()``) > 1 encodes runs of ``SEGMENT_FRAMES`` frames on that
    many independent x264 encoders at once and joins their packets into the one stream: x264's own
    threads stopped scaling near 265 fps on 16 cores (720p, veryfast), independent encoders need no
    coordination. The price is an IDR frame opening every run (bytes; same quality at the same CRF). On
    2 cores it buys nothing (720p: 251 fps with one encoder, 233 with two, 241 with four; 0.54 -> 1.24 MB
    for 160 frames): it is meant for many-core machines, and is off unless asked for."""
    path = Path(path)
    if audio is not None:
        check_audio_track(audio, sample_rate)
    rate = Fraction(fps).limit_denominator(1001)
    segments = encode_segments() if segments is None else max(1, segments)
    options = {"crf": str(crf), "preset": preset}
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            for key, value in (tags or {}).items():
                container.metadata[key] = value
            audio_stream = None
            if audio is not None:
                if sample_rate not in AUDIO_CODEC_RATES:
                    audio, sample_rate = _resample_for_aac(audio, sample_rate)
                audio_stream = container.add_stream("aac", rate=sample_rate)
                audio_stream.layout = "mono"
                audio_stream.bit_rate = 128_000
            planes = _one_size(ordered_map(to_i420, frames))  # (3H/2, W) each
            if segments == 1:
                encoded = _encode_video(container, planes, rate, options)
            else:
                encoded = _encode_video_segments(container, planes, rate, options, segments)
            if not encoded:
                raise ValueError("cannot write a video with no frames")
            if audio_stream is not None:
                _encode_audio(container, audio_stream, audio, sample_rate)
    return path


def _video_stream(container, rate: Fraction, options: dict, planes: np.ndarray):
    """The container's H.264 stream for frames shaped like ``planes`` (3H/2, W)."""
    video = container.add_stream("libx264", rate=rate)
    video.height, video.width = planes.shape[0] * 2 // 3, planes.shape[1]
    video.pix_fmt = "yuv420p"
    video.options = dict(options)
    return video


def _one_size(planes: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The (3H/2, W) frames as they come, refusing one whose size differs from the first one's: the
    encoder would rescale it silently, and the watermark embedded at its own size with it."""
    first = None
    for index, frame in enumerate(planes):
        first = frame.shape if first is None else first
        if frame.shape != first:
            (h, w), (h0, w0) = ((s[0] * 2 // 3, s[1]) for s in (frame.shape, first))
            raise UserError(f"frame {index} of the video is {w}x{h} px, the frames before it {w0}x{h0}: a "
                            "video's frames must all be one size")
        yield frame


def _encode_video(container, planes: Iterator[np.ndarray], rate: Fraction, options: dict) -> int:
    """One encoder, frame by frame; returns the number of frames."""
    video, count = None, 0
    for frame in planes:
        if video is None:
            video = _video_stream(container, rate, options, frame)
        for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="yuv420p")):
            container.mux(packet)
        count += 1
    if video is not None:
        for packet in video.encode():
            container.mux(packet)
    return count


def _encode_run(run: list[np.ndarray], rate: Fraction, options: dict, threads: int) -> list:
    """Encode one run of (3H/2, W) frames on its own x264 encoder -> its packets (pts from 0)."""
    codec = av.CodecContext.create("libx264", "w")
    codec.height, codec.width = run[0].shape[0] * 2 // 3, run[0].shape[1]
    codec.pix_fmt = "yuv420p"
    codec.time_base, codec.framerate = 1 / rate, rate
    codec.options = dict(options)
    codec.thread_count = threads
    codec.flags |= av.codec.context.Flags.global_header  # headers once, in the container, not per run
    packets = []
    for index, planes in enumerate(run):
        frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
        frame.pts, frame.time_base = index, 1 / rate
        packets += codec.encode(frame)
    return packets + codec.encode(None)


def _encode_video_segments(
    container, planes: Iterator[np.ndarray], rate: Fraction, options: dict, segments: int
) -> int:
    """Runs of SEGMENT_FRAMES frames on ``segments`` encoders at once, muxed in order; returns the count.

    Every encoder has the container stream's settings, so their sequence and picture parameter sets
    are the ones in the mp4 header; each run's timestamps are shifted by the frames before it (with
    B-frames, x264's decode times start two frames early, which still follows the previous run's).
    """
    threads = max(1, worker_count() // segments)
    video, count, run = None, 0, []
    pending: deque = deque()  # (first frame index, future of packets), in order

    def mux(first: int, packets: list) -> None:
        for packet in packets:
            packet.pts += first
            packet.dts += first
            packet.time_base, packet.stream = 1 / rate, video
            container.mux(packet)

    with ThreadPoolExecutor(segments) as pool:
        for frame in planes:
            if video is None:
                video = _video_stream(container, rate, options, frame)
            run.append(frame)
            count += 1
            if len(run) == SEGMENT_FRAMES:
                pending.append((count - len(run), pool.submit(_encode_run, run, rate, options, threads)))
                run = []
                while len(pending) > segments:  # bounded look-ahead: at most ~2 x segments runs in memory
                    first, future = pending.popleft()
                    mux(first, future.result())
        if run:
            pending.append((count - len(run), pool.submit(_encode_run, run, rate, options, threads)))
        while pending:
            first, future = pending.popleft()
            mux(first, future.result())
    return count


def _resample_for_aac(audio: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    """AAC takes a fixed set of rates: resample to the nearest one above ``rate`` (and say so)."""
    from scipy.signal import resample_poly

    target = min((r for r in AUDIO_CODEC_RATES if r >= rate), default=AUDIO_CODEC_RATES[-1])
    log.warning("AAC cannot store %d Hz: resampled the audio track to %d Hz", rate, target)
    divisor = np.gcd(int(rate), target)
    resampled = resample_poly(np.asarray(audio, dtype=np.float64), target // divisor, int(rate) // divisor)
    return resampled.astype(np.float32), target


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int) -> None:
    samples = np.clip(np.asarray(audio, dtype=np.float32).reshape(1, -1), -1.0, 1.0)
    chunk = 1024
    for start in range(0, samples.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]),
                                           format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def _info_chunk(info: Mapping[str, str]) -> bytes:
    """A RIFF ``LIST/INFO`` chunk: 4-letter ids (e.g. ICMT, ISFT) with NUL-terminated text."""
    body = b"INFO"
    for key, value in info.items():
        data = value.encode("utf-8") + b"\0"
        if len(data) % 2:
            data += b"\0"
        body += key.encode("ascii")[:4].ljust(4) + struct.pack("<I", len(data)) + data
    return b"LIST" + struct.pack("<I", len(body)) + body


def encode_wav(
    path: str | Path, samples: np.ndarray, sample_rate: int, info: Mapping[str, str] | None = None
) -> Path:
    """Write float mono samples as 16-bit PCM WAV, with an optional RIFF INFO chunk of text tags."""
    path = Path(path)
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(sample_rate))
        wav.writeframes(pcm.tobytes())
    data = buffer.getvalue()
    if info:
        extra = _info_chunk(info)
        data = data[:4] + struct.pack("<I", len(data) - 8 + len(extra)) + data[8:] + extra
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
