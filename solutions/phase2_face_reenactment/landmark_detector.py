"""A 68-point landmark detector written from scratch: heatmap regression with a small CNN.

dlib's predictor (an ensemble of regression trees, Kazemi & Sullivan 2014) stays the default for real
footage. This file shows how the modern detectors work (Newell et al. 2016, "Stacked Hourglass
Networks"; Sun et al. 2018, "Integral Human Pose Regression"), small enough to train on a CPU:

    face crop (B, 3, S, S), S = 96, the face centred and scaled to a fixed share of the crop
      -> strided convolutions, stride 8        (B, C, S/8, S/8)
      -> a few dilated 3x3 convolutions        (context: where is the chin relative to the eyes?)
      -> upsample x2 and a 1x1 convolution     (B, 68, S/4, S/4) one logit map per landmark
      -> softmax over space                    (B, 68, 24, 24) a probability map per landmark
      -> soft-argmax: its expected position    (B, 68, 2) sub-pixel (x, y) in heatmap pixels

Training uses the synthetic faces' exact landmarks: an L1 loss on the soft-argmax coordinates
(integral regression) plus a cross-entropy between each probability map and a Gaussian around the
true point (it gives useful gradients while the coordinates are still far off).

Coordinates: heatmap pixel (i, j) has its centre at x = j, y = i; a heatmap pixel is `stride` crop
pixels wide, so crop x = stride * (heatmap x + 0.5) - 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from solutions.phase1_face_swap.alignment import invert_affine, transform_points


@dataclass
class LandmarkConfig:
    """Network and crop sizes (defaults: trains on a laptop CPU in minutes)."""

    input_size: int = 96  # crop side in pixels
    channels: tuple[int, int, int] = (32, 64, 96)  # widths of the three stride-2 stages
    context_layers: int = 3  # dilated 3x3 convolutions at stride 8
    crop_scale: float = 1.35  # crop side / the landmarks' larger bounding-box side
    sigma: float = 1.0  # Gaussian target width, heatmap pixels
    beta: float = 1.0  # softmax sharpness of the soft-argmax
    heatmap_weight: float = 0.1  # weight of the heatmap cross-entropy next to the coordinate L1

    @property
    def stride(self) -> int:
        return 4


# ----------------------------------------------------------------------------------------------
# Heatmaps: targets and decoding
# ----------------------------------------------------------------------------------------------


def gaussian_heatmaps(points: torch.Tensor, height: int, width: int, sigma: float) -> torch.Tensor:
    """Target maps `(B, K, H, W)`: exp(-|p - x|^2 / (2 sigma^2)) around each point `(B, K, 2)` (x, y)."""
    # TODO p2.lmk.heatmaps: An unnormalised Gaussian bump (peak 1) at every landmark, on the pixel grid.
    # Hint: xs = arange(width) (1, 1, 1, W), ys = arange(height) (1, 1, H, 1) in points' dtype/device;
    # Hint: d2 = (xs - x)^2 + (ys - y)^2 with x = points[..., 0, None, None]; return exp(-d2 / (2 sigma^2)).
    # Hint: pitfall: x indexes columns, y rows. Tested against a numpy formula in test_reenact_landmarks.py.
    # BEGIN SOLUTION p2.lmk.heatmaps
    xs = torch.arange(width, dtype=points.dtype, device=points.device).view(1, 1, 1, width)
    ys = torch.arange(height, dtype=points.dtype, device=points.device).view(1, 1, height, 1)
    x, y = points[..., 0, None, None], points[..., 1, None, None]  # (B, K, 1, 1)
    return torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
    # END SOLUTION


def soft_argmax(logits: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable decoding: `(B, K, H, W)` logits -> points `(B, K, 2)` and probabilities `(B, K, H, W)`.

    p = softmax(beta * logits) over the H*W positions; point = sum over positions of p * (x, y).
    """
    # TODO p2.lmk.soft_argmax: Softmax over the flattened space, then the expected (x, y) under it.
    # Hint: Sun et al. 2018 eq. 3 ("integral regression"): J = sum_p p * H~(p). prob = softmax(beta *
    # Hint: logits.flatten(2), dim=-1).view_as(logits); x = (prob.sum(dim=2) * arange(W)).sum(-1),
    # Hint: y = (prob.sum(dim=3) * arange(H)).sum(-1); stack to (B, K, 2) in (x, y) order.
    # Hint: pitfall: a plain argmax has no gradient and snaps to whole pixels. test_reenact_landmarks.py.
    # BEGIN SOLUTION p2.lmk.soft_argmax
    batch, k, height, width = logits.shape
    prob = torch.softmax(beta * logits.flatten(2), dim=-1).view(batch, k, height, width)
    xs = torch.arange(width, dtype=prob.dtype, device=prob.device)
    ys = torch.arange(height, dtype=prob.dtype, device=prob.device)
    x = (prob.sum(dim=2) * xs).sum(dim=-1)  # (B, K): marginal over rows, expectation over columns
    y = (prob.sum(dim=3) * ys).sum(dim=-1)
    return torch.stack([x, y], dim=-1), prob
    # END SOLUTION


def argmax_refine(heatmaps: torch.Tensor) -> torch.Tensor:
    """The classic decoder: the best pixel, then a parabola through it and its two neighbours per axis.

    `(B, K, H, W)` -> `(B, K, 2)`. The vertex of the parabola through (-1, a), (0, b), (1, c) sits at
    (a - c) / (2 (a - 2b + c)), a sub-pixel offset in [-0.5, 0.5] when b is the maximum.
    """
    batch, k, height, width = heatmaps.shape
    flat = heatmaps.flatten(2).argmax(dim=-1)  # (B, K)
    row, col = flat // width, flat % width
    padded = F.pad(heatmaps, (1, 1, 1, 1), mode="replicate")  # (B, K, H + 2, W + 2)
    b_idx = torch.arange(batch).view(-1, 1)
    k_idx = torch.arange(k).view(1, -1)

    def at(dy: int, dx: int) -> torch.Tensor:
        return padded[b_idx, k_idx, row + 1 + dy, col + 1 + dx]  # (B, K)

    centre = at(0, 0)
    offsets = []
    for before, after in ((at(0, -1), at(0, 1)), (at(-1, 0), at(1, 0))):
        curvature = before - 2 * centre + after
        step = torch.where(curvature < 0, (before - after) / (2 * curvature.clamp(max=-1e-12)),
                           torch.zeros_like(centre))
        offsets.append(step.clamp(-0.5, 0.5))
    return torch.stack([col + offsets[0], row + offsets[1]], dim=-1).to(heatmaps.dtype)


# ----------------------------------------------------------------------------------------------
# The network and its loss
# ----------------------------------------------------------------------------------------------


def conv_bn(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class LandmarkNet(nn.Module):
    """Crop `(B, 3, S, S)` in [0, 1] -> logit maps `(B, 68, S/4, S/4)`."""

    def __init__(self, cfg: LandmarkConfig | None = None, points: int = 68):
        super().__init__()
        self.cfg = cfg or LandmarkConfig()
        c1, c2, c3 = self.cfg.channels
        self.stem = nn.Sequential(conv_bn(3, c1, 2), conv_bn(c1, c1))  # stride 2
        self.down1 = nn.Sequential(conv_bn(c1, c2, 2), conv_bn(c2, c2))  # stride 4
        self.down2 = nn.Sequential(conv_bn(c2, c3, 2), conv_bn(c3, c3))  # stride 8
        dilations = [2 ** (i % 3) for i in range(self.cfg.context_layers)]  # 1, 2, 4, 1, ...
        self.context = nn.Sequential(*[conv_bn(c3, c3, dilation=d) for d in dilations])
        self.fuse = conv_bn(c3 + c2, c2)  # upsampled context + the stride-4 features (a skip connection)
        self.head = nn.Conv2d(c2, points, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.down1(self.stem(x))  # (B, c2, S/4, S/4)
        deep = self.context(self.down2(skip))  # (B, c3, S/8, S/8)
        up = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(self.fuse(torch.cat([up, skip], dim=1)))  # (B, 68, S/4, S/4)


def crop_to_heatmap(points: torch.Tensor, stride: int) -> torch.Tensor:
    """Crop pixel coordinates -> heatmap pixel coordinates (pixel centres line up)."""
    return (points + 0.5) / stride - 0.5


def heatmap_to_crop(points: torch.Tensor, stride: int) -> torch.Tensor:
    """Heatmap pixel coordinates -> crop pixel coordinates."""
    return (points + 0.5) * stride - 0.5


def landmark_loss(logits: torch.Tensor, target: torch.Tensor, cfg: LandmarkConfig) -> dict[str, torch.Tensor]:
    """Loss of logit maps `(B, K, h, w)` against crop-pixel landmarks `(B, K, 2)`.

    Returns {"loss", "l1" (crop pixels), "heatmap"}: L1 of the soft-argmax points plus
    `heatmap_weight` x cross-entropy between the softmax maps and the normalised Gaussian targets.
    """
    points, prob = soft_argmax(logits.float(), cfg.beta)
    target_hm = crop_to_heatmap(target, cfg.stride)  # (B, K, 2)
    l1 = (heatmap_to_crop(points, cfg.stride) - target).abs().mean()
    gauss = gaussian_heatmaps(target_hm, logits.shape[-2], logits.shape[-1], cfg.sigma)
    gauss = gauss / gauss.flatten(2).sum(-1).clamp_min(1e-8)[..., None, None]
    heat = -(gauss * torch.log(prob.clamp_min(1e-8))).flatten(2).sum(-1).mean()
    return {"loss": l1 + cfg.heatmap_weight * heat, "l1": l1, "heatmap": heat}


# ----------------------------------------------------------------------------------------------
# Crops in and out, and the detector for whole pictures
# ----------------------------------------------------------------------------------------------


def crop_matrix(centre: np.ndarray, side: float, size: int, angle_deg: float = 0.0) -> np.ndarray:
    """(2, 3) similarity from frame pixels to a `size` crop of a `side` px square around `centre`,
    rotated by `angle_deg` (used as training augmentation)."""
    scale = size / side
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle_deg, scale)
    matrix[:, 2] += (size - 1) / 2 - np.asarray(centre, dtype=np.float64)
    return matrix


def landmark_crop_box(landmarks: np.ndarray, crop_scale: float) -> tuple[np.ndarray, float]:
    """The crop convention: centre of the landmarks' bounding box and `crop_scale` x its larger side."""
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    return (lo + hi) / 2, float(crop_scale * (hi - lo).max())


class LandmarkDetector:
    """A trained `LandmarkNet` applied to whole frames, given a face box or rough landmarks."""

    def __init__(self, net: LandmarkNet, device: torch.device | str = "cpu"):
        self.net = net.eval()
        self.cfg = net.cfg
        self.device = torch.device(device)

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray) -> np.ndarray:
        """Crops `(B, S, S, 3)` uint8 -> landmarks `(B, 68, 2)` in crop pixels."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float().div(255).to(self.device)
        points, _ = soft_argmax(self.net(x).float(), self.cfg.beta)
        return heatmap_to_crop(points, self.cfg.stride).cpu().numpy().astype(np.float64)

    def predict(self, frame: np.ndarray, box: tuple[float, ...] | None = None,
                landmarks: np.ndarray | None = None, passes: int = 2) -> np.ndarray:
        """Landmarks `(68, 2)` in frame pixels, from a detector `box` (left, top, right, bottom) or from
        rough `landmarks` (e.g. the previous frame's). Each extra pass re-crops around the last answer,
        which puts the face exactly where training put it."""
        size = self.cfg.input_size
        if landmarks is not None:
            centre, side = landmark_crop_box(landmarks, self.cfg.crop_scale)
        elif box is not None:
            left, top, right, bottom = (float(v) for v in box[:4])
            # A HOG box spans brows to chin and misses the forehead: a crop 1.45 box widths wide, centred
            # on the box, takes it in (the later passes re-centre on the landmarks).
            centre, side = np.array([(left + right) / 2, (top + bottom) / 2]), 1.45 * (right - left)
        else:
            raise ValueError("give a face box or rough landmarks")
        for _ in range(max(1, passes)):
            matrix = crop_matrix(centre, side, size)
            crop = cv2.warpAffine(frame, matrix, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)  # as training crops (data.py)
            points = transform_points(self.predict_crops(crop[None])[0], invert_affine(matrix))
            centre, new_side = landmark_crop_box(points, self.cfg.crop_scale)
            side = max(new_side, 0.5 * side)  # a collapsed answer (untrained net) must not empty the crop
        return points
