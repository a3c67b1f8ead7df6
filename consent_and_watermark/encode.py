"""Low-level encoders: pixels and samples to bytes on disk. Only ``writer`` calls these.

Every function writes to a temporary file beside the target and renames it into place, so a crash or a
Ctrl-C never leaves a half-written file and never destroys an earlier good output.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import tempfile
import wave
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from common.parallel import ordered_map

log = logging.getLogger("deepfake.media")

AUDIO_CODEC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


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


def to_i420(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3H/2, W) uint8 planar YUV 4:2:0, the encoder's input (sides made even).

    BT.601 limited range, as libswscale converts rgb24 by default (decoders read it back the same way);
    done here, on a pool of threads, rather than by the encoder, whose thread it would otherwise hold for
    about 2 ms per 720p frame."""
    return cv2.cvtColor(_even(np.ascontiguousarray(rgb, dtype=np.uint8)), cv2.COLOR_RGB2YUV_I420)


def encode_mp4(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    tags: Mapping[str, str] | None = None,
    crf: int = 18,
    preset: str = "veryfast",
) -> Path:
    """Write RGB uint8 frames as H.264 (yuv420p) mp4, with an AAC track when ``audio`` is given.

    ``crf`` and ``preset`` are x264's quality (lower is better, 18 looks lossless) and speed knobs."""
    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            for key, value in (tags or {}).items():
                container.metadata[key] = value
            video = None
            audio_stream = None
            if audio is not None:
                if sample_rate not in AUDIO_CODEC_RATES:
                    audio, sample_rate = _resample_for_aac(audio, sample_rate)
                audio_stream = container.add_stream("aac", rate=sample_rate)
                audio_stream.layout = "mono"
                audio_stream.bit_rate = 128_000
            for planes in ordered_map(to_i420, frames):  # (3H/2, W) each
                if video is None:
                    video = container.add_stream("libx264", rate=rate)
                    video.height, video.width = planes.shape[0] * 2 // 3, planes.shape[1]
                    video.pix_fmt = "yuv420p"
                    video.options = {"crf": str(crf), "preset": preset}
                for packet in video.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")):
                    container.mux(packet)
            if video is None:
                raise ValueError("cannot write a video with no frames")
            for packet in video.encode():
                container.mux(packet)
            if audio_stream is not None:
                _encode_audio(container, audio_stream, audio, sample_rate)
    return path


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
