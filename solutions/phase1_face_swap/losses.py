"""Training losses of the face-swap autoencoder: masked reconstruction, SSIM, eye/mouth weighting.

A plain per-pixel loss spends most of its effort on the background and the skin, where errors are
cheap to fix, while people judge a face by its eyes and mouth. So, as in later DeepFakes/faceswap
versions, the loss is

    L = sum(W * |y_hat - y|) / sum(W)  +  lambda_ssim * (1 - SSIM(y_hat, y))  +  lambda_mask * |m_hat - m|^2

where the weight map W is 0 outside the face (the landmark hull), 1 on the face and larger on the
eyes and the mouth; m is the landmark-hull mask the learned mask m_hat is trained to predict.

SSIM (Wang et al. 2004, "Image quality assessment: from error visibility to structural
similarity", IEEE TIP 13(4)) compares local means, variances and covariance in a Gaussian window:

    SSIM = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))  (13)

with C1 = (0.01 L)^2, C2 = (0.03 L)^2 and L = 1 for images in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from solutions.phase1_face_swap.alignment import LEFT_EYE, MOUTH, RIGHT_EYE


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Normalised 1-D Gaussian `(size,)` (SSIM's 11-tap, sigma 1.5 window)."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image: x, y (B, C, H, W) in [0, 1] -> (B,). Statistics over 'valid' windows only."""
    # TODO p1.loss.ssim: Local Gaussian-weighted means, variances and covariance, then Wang et al. eq. 13.
    # Hint: build a (C, 1, k, k) kernel from the outer product of gaussian_window; filter with
    # Hint: F.conv2d(t, kernel, groups=C) (no padding); mu_x = filt(x), sigma_x^2 = filt(x*x) - mu_x^2,
    # Hint: sigma_xy = filt(x*y) - mu_x*mu_y; C1 = 0.01**2, C2 = 0.03**2; average the SSIM map over (C, H',
    # Hint: W').
    # Hint: tests compare with skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, ...).
    # BEGIN SOLUTION p1.loss.ssim
    channels = x.shape[1]
    g = gaussian_window(window, sigma).to(x)
    kernel = (g[:, None] * g[None, :]).expand(channels, 1, window, window)  # (C, 1, k, k)

    def filt(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = filt(x), filt(y)
    var_x = filt(x * x) - mu_x**2
    var_y = filt(y * y) - mu_y**2
    cov = filt(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean(dim=(1, 2, 3))
    # END SOLUTION


def masked_loss(
    pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, kind: str = "l1"
) -> torch.Tensor:
    """Weighted mean error: pred, target (B, C, H, W), weight (B, 1, H, W) >= 0 -> scalar.

    `kind` is "l1" (absolute error) or "mse" (squared error). Pixels with weight 0 do not count.
    """
    # TODO p1.loss.masked: The weighted average of the per-pixel error, normalised by the total weight.
    # Hint: err = |pred - target| (l1) or (pred - target)^2 (mse); loss = sum(weight * err) / (sum(weight) *
    # Hint: C)
    # Hint: (weight broadcasts over the C channels); add a tiny epsilon to the denominator for empty masks.
    # Hint: with weight = 1 everywhere it equals F.l1_loss / F.mse_loss;
    # Hint: tests/phase1_face_swap/test_losses.py.
    # BEGIN SOLUTION p1.loss.masked
    err = (pred - target).abs() if kind == "l1" else (pred - target) ** 2
    weight = weight.expand_as(err)
    return (weight * err).sum() / weight.sum().clamp_min(1e-8)
    # END SOLUTION


def hull_mask(landmarks: np.ndarray, size: int) -> np.ndarray:
    """Convex hull of the 68 landmarks as a float32 `(size, size)` mask in {0, 1}."""
    mask = np.zeros((size, size), dtype=np.float32)
    hull = cv2.convexHull(np.round(landmarks).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 1.0)
    return mask


def face_weight_map(landmarks: np.ndarray, size: int, eye_mouth_weight: float = 3.0) -> np.ndarray:
    """Loss weights `(size, size)`: 0 off the face, 1 on it, `eye_mouth_weight` on the eyes and mouth.

    The eye and mouth regions are their landmark hulls grown by a few pixels (the lids and lips
    around the points matter too).
    """
    weight = hull_mask(landmarks, size)
    parts = np.zeros_like(weight)
    for group in (RIGHT_EYE, LEFT_EYE, MOUTH):
        cv2.fillConvexPoly(parts, cv2.convexHull(np.round(landmarks[group]).astype(np.int32)), 1.0)
    grow = max(size // 32, 1) * 2 + 1
    parts = cv2.dilate(parts, np.ones((grow, grow), np.uint8))
    return np.where(parts > 0, eye_mouth_weight, weight).astype(np.float32)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                        ssim_weight: float = 0.5, kind: str = "l1") -> torch.Tensor:
    """Masked L1/MSE plus `ssim_weight * (1 - SSIM)` on the masked images (background ignored)."""
    face = (weight > 0).to(pred)
    structural = 1 - ssim(pred * face, target * face).mean()
    return masked_loss(pred, target, weight, kind) + ssim_weight * structural
