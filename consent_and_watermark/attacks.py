"""The edits and re-encodings a watermark should survive, all in memory (nothing is written to disk).

Each image attack takes an (H, W, 3) uint8 RGB image and a numpy Generator (for the random ones) and
returns the attacked image; ``h264_round_trip`` encodes a list of frames as H.264 and decodes them
again. Used by ``benchmarks/watermark_robustness.py`` (the robustness table of issue 3) and by the
provenance demo's chart, so that both measure the same edits.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import av
import cv2
import numpy as np
from PIL import Image


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """JPEG at ``quality`` with 4:2:0 chroma subsampling, decoded again."""
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, "JPEG", quality=quality, subsampling=2)  # media-write-ok: in-memory attack
    return np.asarray(Image.open(buf).convert("RGB"))


def centre_crop(x: np.ndarray, area: float, resize_back: bool) -> np.ndarray:
    """The centred crop keeping ``area`` of the pixels, optionally resized back to the full size."""
    h, w = x.shape[:2]
    ch, cw = round(h * area**0.5), round(w * area**0.5)
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crop = x[y0 : y0 + ch, x0 : x0 + cw]
    if resize_back:
        return cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(crop)


def rotate(x: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation about the centre, same size, black corners."""
    h, w = x.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(x, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def half_and_back(x: np.ndarray) -> np.ndarray:
    """Downscaled to half size (area averaging) and upscaled back (bilinear)."""
    h, w = x.shape[:2]
    small = cv2.resize(x, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def add_noise(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise of sigma 5 grey levels."""
    return np.clip(x + rng.normal(0, 5.0, x.shape), 0, 255).round().astype(np.uint8)


def contrast(x: np.ndarray, factor: float) -> np.ndarray:
    """Contrast scaled by ``factor`` about the image mean."""
    mean = x.mean()
    return np.clip((x.astype(np.float32) - mean) * factor + mean, 0, 255).round().astype(np.uint8)


ATTACKS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "none": lambda x, r: x,
    "jpeg90": lambda x, r: jpeg(x, 90),
    "jpeg70": lambda x, r: jpeg(x, 70),
    "jpeg50": lambda x, r: jpeg(x, 50),
    "resize0.5+back": lambda x, r: half_and_back(x),
    "crop90%": lambda x, r: centre_crop(x, 0.90, False),
    "crop75%": lambda x, r: centre_crop(x, 0.75, False),
    "crop90%+resize": lambda x, r: centre_crop(x, 0.90, True),
    "crop75%+resize": lambda x, r: centre_crop(x, 0.75, True),
    "noise5": add_noise,
    "bright+20": lambda x, r: np.clip(x.astype(np.int16) + 20, 0, 255).astype(np.uint8),
    "contrast0.8": lambda x, r: contrast(x, 0.8),
    "blur3x3": lambda x, r: cv2.GaussianBlur(x, (3, 3), 0),
    "rotate2": lambda x, r: rotate(x, 2.0),
    "hflip": lambda x, r: np.ascontiguousarray(x[:, ::-1]),
}


def h264_round_trip(frames: list[np.ndarray], crf: int, fps: int = 30) -> list[np.ndarray]:
    """Encode RGB frames as H.264 yuv420p in memory and decode them again."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:  # media-write-ok: in-memory attack buffer
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        return [f.to_ndarray(format="rgb24") for f in inp.decode(video=0)]
