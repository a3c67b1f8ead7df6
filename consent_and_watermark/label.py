"""The visible "SYNTHETIC" label: white text on a dark box in the bottom-left corner.

The label is for people (the watermark and metadata are for machines). It is drawn *before* the
invisible watermark, so the watermark covers the labelled pixels too, and after any metric was
computed. Cropping or painting over it removes it: it informs honest viewers, it stops nobody.

The patch is rendered once per frame size with Pillow and alpha-blended with numpy, so labelling
each frame of a video costs one small blend.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TEXT = "SYNTHETIC"
MIN_SIDE = 32  # below this the label would cover the whole picture: skip it
BOX_ALPHA = 0.6  # opacity of the dark box; the text itself is opaque


@lru_cache(maxsize=8)
def _patch(height: int, width: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Render the label for an ``(height, width)`` frame: colour (h, w, 3), alpha (h, w, 1), top, left."""
    size = max(8, round(min(height, width) * 0.06))  # text height ~6 % of the shorter side
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(TEXT)
    pad = max(2, size // 4)
    w, h = min(width, right - left + 2 * pad), min(height, bottom - top + 2 * pad)
    colour = Image.new("RGB", (w, h), (0, 0, 0))
    alpha = Image.new("L", (w, h), round(255 * BOX_ALPHA))
    ImageDraw.Draw(colour).text((pad - left, pad - top), TEXT, font=font, fill=(255, 255, 255))
    ImageDraw.Draw(alpha).text((pad - left, pad - top), TEXT, font=font, fill=255)
    margin = pad
    y0, x0 = max(0, height - h - margin), min(margin, width - w)
    colour_arr = np.asarray(colour, dtype=np.float32)  # (h, w, 3)
    alpha_arr = np.asarray(alpha, dtype=np.float32)[:, :, None] / 255.0  # (h, w, 1)
    return colour_arr, alpha_arr, y0, x0


def draw_label(rgb: np.ndarray) -> np.ndarray:
    """Return a copy of an ``(H, W, 3)`` uint8 image with the label blended in (unchanged if tiny)."""
    height, width = rgb.shape[:2]
    out = np.array(rgb, dtype=np.uint8, copy=True)
    if min(height, width) < MIN_SIDE:
        return out
    colour, alpha, y0, x0 = _patch(height, width)
    h, w = alpha.shape[:2]
    region = out[y0 : y0 + h, x0 : x0 + w].astype(np.float32)  # (h, w, 3)
    out[y0 : y0 + h, x0 : x0 + w] = np.rint(alpha * colour + (1.0 - alpha) * region).astype(np.uint8)
    return out
