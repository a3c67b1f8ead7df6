"""Pictures of the phase-1 steps for the guide and the demo report (returned as RGB arrays).

* `alignment_figure`: the frame with its 68 landmarks (jaw in grey: not used for the fit), and the
  aligned crop with the mean-face targets (blue) over the transformed landmarks (green).
* `warp_figure`: a checkerboard through the random warp at three jitter strengths.
* `mask_figure`: landmark hull, learned mask, final blending mask, and the blended crop.
"""

from __future__ import annotations

import cv2
import numpy as np

from common.impl import load

PHASE = "phase1_face_swap"


def _dots(image: np.ndarray, points: np.ndarray, colour, radius: int = 2) -> None:
    for x, y in np.round(points).astype(int):
        cv2.circle(image, (int(x), int(y)), radius, colour, -1, lineType=cv2.LINE_AA)


def alignment_figure(
    frame: np.ndarray, landmarks: np.ndarray, size: int = 256, coverage: float = 0.6
) -> np.ndarray:
    """Frame with landmarks | aligned crop with template and landmarks; both `size` px high."""
    alignment = load(PHASE, "alignment")
    crop, _, crop_points = alignment.align_face(frame, landmarks, size, coverage)
    left = frame.copy()
    _dots(left, landmarks[alignment.JAW], (160, 160, 160), 3)
    _dots(left, landmarks[alignment.ALIGN_POINTS], (40, 220, 40), 3)
    left = cv2.resize(left, (size * left.shape[1] // left.shape[0], size), interpolation=cv2.INTER_AREA)
    right = crop.copy()
    _dots(right, alignment.template_points(size, coverage), (40, 80, 255), 3)
    _dots(right, crop_points[alignment.ALIGN_POINTS], (40, 220, 40), 2)
    return np.concatenate([left, right], axis=1)


def warp_figure(size: int = 160, jitters: tuple[float, ...] = (0.0, 0.02, 0.05), seed: int = 0) -> np.ndarray:
    """Checkerboards warped with increasing jitter, side by side."""
    augment = load(PHASE, "augment")
    pictures = [augment.warp_grid_picture(size, np.random.default_rng(seed), j) for j in jitters]
    gap = np.full((size, 4, 3), 255, np.uint8)
    return np.concatenate([p for picture in pictures for p in (picture, gap)][:-1], axis=1)


def mask_figure(
    crop: np.ndarray, crop_landmarks: np.ndarray, face: np.ndarray, learned: np.ndarray
) -> np.ndarray:
    """hull | learned mask | final mask | alpha blend, for one aligned crop (all crop-sized)."""
    blending = load(PHASE, "blending")
    losses = load(PHASE, "losses")
    size = crop.shape[0]
    hull = losses.hull_mask(crop_landmarks, size)
    edge = max(1, size // 32)
    final = blending.build_mask(crop_landmarks, crop.shape, learned, erode=edge, blur=edge)
    grey = [np.repeat((m[..., None] * 255).astype(np.uint8), 3, axis=2) for m in (hull, learned, final)]
    strip = np.concatenate([*grey, blending.alpha_blend(crop, face, final)], axis=1)
    zoom = max(1, 192 // size)  # small crops are enlarged (pixels kept sharp) so they can be seen
    return cv2.resize(strip, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
