"""The chokepoint: every image, video, sound and figure the project writes passes through here.

First version: plain atomic writes. The provenance issue fills in the marking pipeline (watermark,
metadata, C2PA manifest, provenance log, visible label) behind the same functions.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from consent_and_watermark import encode


def save_image(path: str | Path, rgb: np.ndarray, *, label: bool | None = None) -> Path:
    """Write an ``(H, W, 3)`` uint8 RGB image (.png or .jpg) and return its path."""
    return encode.encode_image(path, rgb)


def save_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    audio: np.ndarray | None = None,
    sample_rate: int | None = None,
    label: bool | None = None,
) -> Path:
    """Write RGB uint8 frames as an H.264 mp4, with the audio track muxed in when given."""
    return encode.encode_mp4(path, frames, fps, audio=audio, sample_rate=sample_rate)


def save_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write float32 mono samples as a 16-bit WAV file."""
    return encode.encode_wav(path, samples, sample_rate)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Render a matplotlib figure to PNG through the same path as every other image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    buffer.seek(0)
    rgb = np.asarray(Image.open(buffer).convert("RGB"))
    return save_image(path, rgb, label=False)
