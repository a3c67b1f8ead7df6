"""Numbers that say how good a generated image or video is.

* `psnr`               — pixel fidelity, 10·log10(R² / MSE) in dB (higher is better).
* `ssim`               — structural similarity (Wang et al. 2004), equal to scikit-image's with
                         a Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03.
* `identity_distance`  — distance between dlib's 128-D face descriptors (< 0.6: same person).
* `landmark_nme`       — landmark error normalised by the inter-ocular distance.
* `warping_error`      — temporal flicker: how much frame t+1 differs from frame t moved along
                         the optical flow (Farnebäck 2003, OpenCV).

Images are `(H, W, C)` arrays, uint8 (range 255) or float (range 1.0 unless `data_range` says
otherwise); any leading dimensions are a batch, and the result then has that batch shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter

from common import dlib_models

Box = tuple[int, int, int, int]


def _data_range(image: np.ndarray, data_range: float | None) -> float:
    if data_range is not None:
        return float(data_range)
    if np.issubdtype(image.dtype, np.integer):
        return float(np.iinfo(image.dtype).max)  # 255 for uint8
    return 1.0


def _check_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim < 3:
        raise ValueError(f"expected (..., H, W, C) images, got shape {a.shape}")
    return a, b


def _scalar_or_batch(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


def psnr(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, PSNR = 10·log10(R² / MSE); `inf` for identical images."""
    a, b = _check_pair(a, b)
    r = _data_range(a, data_range)
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(-3, -2, -1))  # batch shape
    with np.errstate(divide="ignore"):
        return _scalar_or_batch(10.0 * np.log10(r**2 / mse))


# SSIM constants (Wang et al. 2004, section III-C): Gaussian window σ = 1.5, cut at 3.5σ (11×11).
SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(a: np.ndarray, b: np.ndarray, data_range: float | None = None) -> float | np.ndarray:
    """Mean structural similarity over pixels and channels (1 = identical).

    Wang et al. (2004) eq. 13, with local statistics taken under a Gaussian window:
        SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
    C1 = (K1 R)², C2 = (K2 R)². As in scikit-image, borders (half a window, 5 px) are left out
    of the mean and the variances are population variances (no n / (n - 1) correction).
    """
    a, b = _check_pair(a, b)
    r = _data_range(a, data_range)
    x, y = a.astype(np.float64), b.astype(np.float64)
    height, width = x.shape[-3], x.shape[-2]
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # window radius: 5
    if min(height, width) < 2 * pad + 1:
        raise ValueError(f"SSIM needs images of at least {2 * pad + 1}x{2 * pad + 1} pixels")

    # Blur only the two spatial axes (σ = 0 leaves batch and channel axes alone).
    sigma = [0.0] * x.ndim
    sigma[-3] = sigma[-2] = SSIM_SIGMA

    def blur(image: np.ndarray) -> np.ndarray:
        return gaussian_filter(image, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = (SSIM_K1 * r) ** 2, (SSIM_K2 * r) ** 2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    ssim_map = numerator / denominator  # (..., H, W, C)
    inner = ssim_map[..., pad : height - pad, pad : width - pad, :]  # (..., H - 10, W - 10, C)
    return _scalar_or_batch(inner.mean(axis=(-3, -2, -1)))


def identity_embedding(rgb: np.ndarray, box: Box | None = None) -> np.ndarray | None:
    """dlib's 128-D descriptor `(128,)` of the face in `box` (default: the largest face HOG finds).

    Returns None when no box is given and no face is found.
    """
    if box is None:
        boxes = dlib_models.detect_faces(rgb)
        if not boxes:
            return None
        box = boxes[0]
    return dlib_models.face_descriptor(rgb, box)


def identity_distance(
    a: np.ndarray, b: np.ndarray, box_a: Box | None = None, box_b: Box | None = None
) -> float:
    """Euclidean distance between the identity descriptors of two faces (NaN if a face is missing).

    dlib's model puts two photos of one person closer than about 0.6. A face swap aims for a
    small distance to the *source* identity; reenactment aims to keep it to the *target*.
    """
    emb_a, emb_b = identity_embedding(a, box_a), identity_embedding(b, box_b)
    if emb_a is None or emb_b is None:
        return float("nan")
    return float(np.linalg.norm(emb_a - emb_b))


# iBUG 68-point indices of the outer eye corners (the "inter-ocular" normaliser of 300-W).
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45


def landmark_nme(pred: np.ndarray, gt: np.ndarray) -> float | np.ndarray:
    """Normalised mean error: mean point-to-point distance / distance between gt points 36 and 45.

    `pred`, `gt`: `(..., 68, 2)` pixel coordinates; returns one number per face.
    """
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-2:] != (68, 2):
        raise ValueError(f"expected matching (..., 68, 2) landmarks, got {pred.shape} and {gt.shape}")
    errors = np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)  # (...,)
    inter_ocular = np.linalg.norm(gt[..., LEFT_EYE_OUTER, :] - gt[..., RIGHT_EYE_OUTER, :], axis=-1)
    return _scalar_or_batch(errors / inter_ocular)


# Farnebäck parameters (OpenCV's sample values): pyramid scale, levels, window, iterations,
# polynomial neighbourhood and its Gaussian σ.
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
             "flags": 0}


def _gray_u8(frame: np.ndarray, data_range: float) -> np.ndarray:
    scaled = np.clip(frame.astype(np.float32) * (255.0 / data_range), 0, 255).astype(np.uint8)
    return cv2.cvtColor(scaled, cv2.COLOR_RGB2GRAY) if scaled.ndim == 3 else scaled


def warping_error(frames: np.ndarray | Sequence[np.ndarray], data_range: float | None = None) -> float:
    """Mean |frame[t+1] - warp(frame[t])| over valid pixels and all pairs, in units of `data_range`.

    For each pair we estimate the backward flow F from frame t+1 to frame t, so that pixel p of
    frame t+1 came from p + F(p) in frame t, and sample frame t there (bilinear). Pixels whose
    source lies outside the image are not counted. A perfectly stable video scores 0; flicker,
    popping textures and jitter that the flow cannot explain raise it.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (3, 4) or frames.shape[0] < 2:
        raise ValueError(f"expected (T, H, W[, C]) frames with T >= 2, got shape {frames.shape}")
    r = _data_range(frames, data_range)
    height, width = frames.shape[1:3]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    errors = []
    for previous, current in zip(frames[:-1], frames[1:], strict=True):
        flow = cv2.calcOpticalFlowFarneback(_gray_u8(current, r), _gray_u8(previous, r), None, **FARNEBACK)
        map_x, map_y = grid_x + flow[..., 0], grid_y + flow[..., 1]  # (H, W) source positions in frame t
        warped = cv2.remap(previous.astype(np.float32) / r, map_x, map_y, cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT)
        valid = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)  # (H, W)
        diff = np.abs(current.astype(np.float32) / r - warped)
        diff = diff.mean(axis=-1) if diff.ndim == 3 else diff  # average the channels
        if valid.any():
            errors.append(float(diff[valid].mean()))
    return float(np.mean(errors)) if errors else float("nan")
