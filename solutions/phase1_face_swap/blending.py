"""Putting the swapped face back: colour transfer, the blending mask, alpha and Poisson blending.

The decoder draws the new face under *its* training light; pasted raw, it shows as a patch with a
hard edge. Three steps hide the seam:

1. **Colour transfer** onto the target's skin tones, measured inside the face mask:
   * Reinhard et al. 2001 ("Color Transfer between Images", IEEE CG&A 21(5)): in a decorrelated
     colour space (here CIELAB), shift and scale each channel so its mean and standard deviation
     match the target's: `out = (src - mu_src) * (sigma_tgt / sigma_src) + mu_tgt`  (eq. 10-11).
   * Histogram matching: map each channel through the source CDF and the inverse target CDF, so
     the whole distribution matches, not just two moments.
2. **The mask**: the convex hull of the landmarks intersected with the decoder's learned mask (which
   knows about hair, glasses, hands in front of the face), **eroded** so the edge sits inside the
   face, and **blurred** so it fades out instead of cutting.
3. **Blending**: alpha `out = m * face + (1 - m) * frame`, or Poisson image editing (Perez et al.
   2003) via `cv2.seamlessClone`, which matches gradients inside the mask to the face and values on
   its border to the frame.

Images are `(H, W, 3)` uint8 RGB; masks `(H, W)` float32 in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np


def _region(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """Boolean (H, W) region where statistics are measured (everywhere when no mask)."""
    if mask is None:
        return np.ones(shape[:2], dtype=bool)
    region = np.asarray(mask) > 0.5
    return region if region.any() else np.ones(shape[:2], dtype=bool)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 CIELAB (L in [0, 100], a and b about [-128, 127])."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """float32 CIELAB -> uint8 RGB (out-of-gamut colours clipped)."""
    rgb = cv2.cvtColor(lab.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)


def reinhard_transfer(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Give `source` the LAB mean and standard deviation of `target` (both measured inside `mask`).

    `source`, `target`: (H, W, 3) uint8 RGB of the same size (e.g. the decoded face and the original
    aligned crop); `mask` (H, W) or None. Returns the recoloured source, uint8 RGB.
    """
    # TODO p1.blend.reinhard: Match the per-channel LAB mean and std of source to target's, inside the mask.
    # Hint: Reinhard et al. 2001 eq. 10-11: lab_s = rgb_to_lab(source), lab_t = rgb_to_lab(target);
    # Hint: region = _region(mask, source.shape); mu and sigma per channel over lab[region] (shape (3,));
    # Hint: out = (lab_s - mu_s) * (sigma_t / sigma_s) + mu_t for the whole image, then lab_to_rgb.
    # Hint: pitfall: a flat source channel has sigma_s = 0: floor it (e.g. 1e-6). Checked with skimage's
    # Hint: rgb2lab.
    # BEGIN SOLUTION p1.blend.reinhard
    region = _region(mask, source.shape)
    lab_s, lab_t = rgb_to_lab(source), rgb_to_lab(target)  # (H, W, 3)
    mu_s, sigma_s = lab_s[region].mean(axis=0), lab_s[region].std(axis=0)  # (3,)
    mu_t, sigma_t = lab_t[region].mean(axis=0), lab_t[region].std(axis=0)
    return lab_to_rgb((lab_s - mu_s) * (sigma_t / np.maximum(sigma_s, 1e-6)) + mu_t)
    # END SOLUTION


def histogram_match(source: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Map each RGB channel of `source` so its histogram (inside `mask`) matches `target`'s.

    Returns uint8 RGB; every pixel of the image is remapped with the lookup built inside the mask.
    """
    # TODO p1.blend.hist_match: Per channel, map each source value through its CDF and the inverse target CDF.
    # Hint: for a channel: s_vals, s_counts = np.unique(src[region], return_counts=True); the same for target;
    # Hint: s_q = cumsum(s_counts) / total, t_q likewise; mapped = np.interp(s_q, t_q, t_vals) (value per
    # Hint: s_val);
    # Hint: build a 256-entry lookup with np.interp(arange(256), s_vals, mapped) and apply it to the channel.
    # Hint: equals skimage.exposure.match_histograms on the region; tests/phase1_face_swap/test_blending.py.
    # BEGIN SOLUTION p1.blend.hist_match
    region = _region(mask, source.shape)
    out = np.empty_like(source)
    for c in range(3):
        s_vals, s_counts = np.unique(source[..., c][region], return_counts=True)
        t_vals, t_counts = np.unique(target[..., c][region], return_counts=True)
        s_quantiles = np.cumsum(s_counts) / s_counts.sum()
        t_quantiles = np.cumsum(t_counts) / t_counts.sum()
        mapped = np.interp(s_quantiles, t_quantiles, t_vals)  # target value at each source value's quantile
        lookup = np.interp(np.arange(256), s_vals, mapped)  # (256,)
        out[..., c] = np.clip(np.round(lookup[source[..., c]]), 0, 255).astype(np.uint8)
    return out
    # END SOLUTION


def build_mask(landmarks: np.ndarray, shape: tuple[int, ...], learned: np.ndarray | None = None,
               erode: int = 3, blur: int = 5) -> np.ndarray:
    """Blending mask `(H, W)` float32 in [0, 1]: landmark hull ∩ learned mask, eroded, then blurred.

    `landmarks` (68, 2) in the same pixel frame as `shape`; `learned` (H, W) in [0, 1] or None;
    `erode` and `blur` in pixels. The blur never reaches outside the hull when blur <= erode.
    """
    # TODO p1.blend.mask: Fill the landmark hull, intersect with the learned mask, erode, then Gaussian-blur.
    # Hint: hull = cv2.convexHull(int32 points); cv2.fillConvexPoly on a float32 zeros((H, W)) with 1.0;
    # Hint: intersection = np.minimum(hull, learned) (fuzzy AND); erode with cv2.erode and a (2e+1)^2 kernel
    # Hint: of ones; blur with cv2.GaussianBlur(m, (2b+1, 2b+1), 0) when b > 0; clip to [0, 1].
    # Hint: tests check the mask is 0 outside the hull and 1 deep inside it.
    # BEGIN SOLUTION p1.blend.mask
    mask = np.zeros(shape[:2], dtype=np.float32)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks).astype(np.int32)), 1.0)
    if learned is not None:
        mask = np.minimum(mask, learned.astype(np.float32))
    if erode > 0:
        mask = cv2.erode(mask, np.ones((2 * erode + 1, 2 * erode + 1), np.uint8))
    if blur > 0:
        mask = cv2.GaussianBlur(mask, (2 * blur + 1, 2 * blur + 1), 0)
    return np.clip(mask, 0.0, 1.0)
    # END SOLUTION


def alpha_blend(frame: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`mask * face + (1 - mask) * frame`, uint8 RGB; where mask == 0 the frame is returned unchanged."""
    # TODO p1.blend.alpha: Per-pixel linear interpolation between frame and face, weighted by the mask.
    # Hint: mask (H, W) -> (H, W, 1) to broadcast over RGB; compute in float, round, cast back to uint8.
    # Hint: pitfall: pixels with mask 0 must come out bit-identical to the frame (the test checks it).
    # BEGIN SOLUTION p1.blend.alpha
    alpha = mask.astype(np.float32)[..., None]  # (H, W, 1)
    mixed = alpha * face.astype(np.float32) + (1 - alpha) * frame.astype(np.float32)
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)
    # END SOLUTION


def poisson_blend(frame: np.ndarray, face: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Poisson (seamless) cloning of `face` into `frame` inside `mask` with OpenCV (Perez et al. 2003).

    Falls back to the frame unchanged when the mask is empty. The mask is kept one pixel away from
    the image border, which `cv2.seamlessClone` requires.
    """
    binary = (mask > 0.5).astype(np.uint8) * 255
    binary[[0, -1], :] = 0
    binary[:, [0, -1]] = 0
    if not binary.any():
        return frame.copy()
    x, y, w, h = cv2.boundingRect(binary)
    centre = (x + w // 2, y + h // 2)
    return cv2.seamlessClone(face, frame, binary, centre, cv2.NORMAL_CLONE)


COLOR_TRANSFERS = {"reinhard": reinhard_transfer, "hist": histogram_match}
