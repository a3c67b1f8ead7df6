"""Augmentation for the face-swap autoencoder: a shared affine jitter and the classic random warp.

Why warp at all? The autoencoder is trained to *reconstruct* faces. If its input were the exact
target, a shared encoder could learn an identity mapping without understanding faces. The DeepFakes
recipe (the 2017 `deepfakes/faceswap` code) feeds a **randomly warped** face and asks for the
**unwarped** one: the network must learn what a face of this person looks like, and that is what
lets the decoder of person B redraw a face encoded from person A.

* `random_affine`: rotation, zoom, shift and horizontal flip, applied identically to the input, the
  target and the mask (a shared augmentation: it enlarges the data set, it is not a task).
* `random_warp`: a 5 x 5 grid of control points over the image, each moved by Gaussian noise with a
  standard deviation proportional to the image size; the displacement is interpolated smoothly to
  every pixel and the image is resampled. Only the input is warped.

Images are `(S, S, C)` arrays (uint8 or float); the randomness comes from a `numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class AugmentConfig:
    """Augmentation strengths (the classic recipe's defaults, relative to the image size)."""

    rotation_deg: float = 10.0
    zoom: float = 0.05
    shift: float = 0.05  # share of the image size
    flip_prob: float = 0.5
    warp_grid: int = 5  # control points per side
    warp_jitter: float = 5.0 / 256.0  # std of the control point noise, as a share of the image size


def random_affine(images: list[np.ndarray], rng: np.random.Generator, cfg: AugmentConfig) -> list[np.ndarray]:
    """Apply one random rotation/zoom/shift/flip to every image of the list (same for all of them)."""
    size = images[0].shape[0]
    angle = rng.uniform(-cfg.rotation_deg, cfg.rotation_deg)
    scale = rng.uniform(1 - cfg.zoom, 1 + cfg.zoom)
    matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, scale)  # (2, 3)
    matrix[:, 2] += rng.uniform(-cfg.shift, cfg.shift, size=2) * size
    flip = rng.random() < cfg.flip_prob
    out = []
    for image in images:
        warped = cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE)
        warped = warped.reshape(image.shape)  # warpAffine drops a trailing channel axis of size 1
        out.append(np.ascontiguousarray(warped[:, ::-1]) if flip else warped)
    return out


def random_warp(image: np.ndarray, rng: np.random.Generator, jitter: float = 5.0 / 256.0,
                grid: int = 5) -> np.ndarray:
    """Warp `image` (S, S, C) with a smooth random field from a `grid` x `grid` of jittered control points.

    `jitter` is the noise std as a share of the image size (5 px on 256 px in the classic recipe).
    With `jitter=0` the output equals the input exactly.
    """
    # TODO p1.aug.random_warp: Jitter a grid x grid of control points, interpolate the displacement, remap.
    # Hint: DeepFakes recipe: noise (grid, grid, 2) ~ N(0, (jitter * S)^2) from rng.normal; upsample each
    # Hint: displacement channel to (S, S) with cv2.resize(..., interpolation=cv2.INTER_CUBIC) (float32);
    # Hint: map_x = x + dx, map_y = y + dy on the pixel mesh (np.meshgrid(arange(S), arange(S))), then
    # Hint: cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).
    # Hint: pitfall: interpolate the *displacement*, not the coordinates, so zero jitter is the exact
    # Hint: identity.
    # BEGIN SOLUTION p1.aug.random_warp
    size = image.shape[0]
    noise = rng.normal(0.0, jitter * size, size=(grid, grid, 2)).astype(np.float32)  # (G, G, 2) pixels
    dx = cv2.resize(noise[..., 0], (size, size), interpolation=cv2.INTER_CUBIC)  # (S, S)
    dy = cv2.resize(noise[..., 1], (size, size), interpolation=cv2.INTER_CUBIC)
    mesh_x, mesh_y = np.meshgrid(np.arange(size, dtype=np.float32), np.arange(size, dtype=np.float32))
    warped = cv2.remap(image, mesh_x + dx, mesh_y + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(image.shape)
    # END SOLUTION


def warp_grid_picture(size: int, rng: np.random.Generator, jitter: float, grid: int = 5) -> np.ndarray:
    """A checkerboard passed through `random_warp`: shows what the warp does (for the guide and previews)."""
    rows, cols = np.indices((size, size)) // max(size // 16, 1)
    cells = (rows + cols) % 2
    board = np.repeat((cells * 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return random_warp(board, rng, jitter, grid)
