"""Face alignment: map every face onto one canonical frame before the autoencoder sees it.

The autoencoder of phase 1 never learns *where* a face is or how it is rotated: we remove that by
warping each face so that its inner landmarks (brows, nose, eyes, mouth: dlib points 17-67) land as
close as possible to a fixed **mean face**. The jaw line (points 0-16) is left out on purpose: it
moves with the head's yaw and with the mouth, so including it would tilt the alignment.

The warp is a *similarity* transform (rotation, uniform scale, translation: 4 degrees of freedom),
fitted in the least-squares sense by Umeyama's method (Umeyama 1991, "Least-squares estimation of
transformation parameters between two point patterns", IEEE TPAMI 13(4)). Its inverse pastes the
swapped face back into the frame.

Coordinates: landmarks are `(N, 2)` float `(x, y)` in pixels; a transform is a `(2, 3)` matrix `M`
with `[x', y'] = M @ [x, y, 1]` (OpenCV's convention, so `cv2.warpAffine` can use it directly).

These functions are public and general: phase 2 reuses them for its own crops.
"""

from __future__ import annotations

import cv2
import numpy as np

# dlib 68-point indices of the points we align on: brows, nose, eyes and mouth (the jaw excluded).
ALIGN_POINTS = np.arange(17, 68)

# The mean face: where points 17-67 sit in a unit square (x right, y down), brows at the top edge and
# the lower lip at the bottom. Derived once from dlib's landmarks on a frontal face, rotated so the
# eyes are level and averaged with its mirror image (so the template is left-right symmetric).
MEAN_FACE = np.array(
    [
        [0.000, 0.105], [0.069, 0.015], [0.170, 0.000], [0.272, 0.015], [0.373, 0.052],  # right brow 17-21
        [0.627, 0.052], [0.728, 0.015], [0.830, 0.000], [0.931, 0.015], [1.000, 0.105],  # left brow 22-26
        [0.500, 0.209], [0.500, 0.328], [0.500, 0.447], [0.500, 0.566],  # nose bridge 27-30
        [0.373, 0.634], [0.437, 0.649], [0.500, 0.671], [0.563, 0.649], [0.627, 0.634],  # nostrils 31-35
        [0.120, 0.202], [0.183, 0.157], [0.265, 0.157], [0.336, 0.231], [0.259, 0.239], [0.177, 0.247],
        [0.664, 0.231], [0.735, 0.157], [0.817, 0.157], [0.880, 0.202], [0.823, 0.247], [0.741, 0.239],
        [0.222, 0.769], [0.323, 0.754], [0.430, 0.753], [0.500, 0.776], [0.570, 0.753], [0.677, 0.754],
        [0.778, 0.769], [0.683, 0.918], [0.582, 0.985], [0.500, 1.000], [0.418, 0.985], [0.317, 0.918],
        [0.254, 0.783], [0.424, 0.806], [0.500, 0.821], [0.576, 0.806], [0.746, 0.783], [0.576, 0.910],
        [0.500, 0.910], [0.424, 0.910],  # eyes 36-47, outer lips 48-59, inner lips 60-67
    ]
)  # (51, 2)

# Landmark groups of the 68-point model, used to weight the loss and to build masks.
JAW = np.arange(0, 17)
RIGHT_EYE = np.arange(36, 42)
LEFT_EYE = np.arange(42, 48)
MOUTH = np.arange(48, 68)


def umeyama(src: np.ndarray, dst: np.ndarray, estimate_scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform `M` (2, 3) with `dst ~ M @ [src, 1]` (Umeyama 1991).

    `src`, `dst`: `(N, 2)` corresponding points, N >= 2. Without `estimate_scale` the result is a
    rigid transform (rotation + translation).
    """
    # TODO p1.align.umeyama: Estimate the similarity transform that maps src onto dst (least squares).
    # Hint: Umeyama (1991) eq. 34-42: centre both sets; covariance S = dst_c.T @ src_c / N; U, D, Vt = svd(S);
    # Hint: R = U @ diag(1, d) @ Vt with d = sign(det(U) * det(Vt)) so R is a rotation, not a reflection;
    # Hint: scale c = trace(diag(D) @ diag(1, d)) / var(src) (var summed over x and y); t = mean_dst - c R
    # Hint: mean_src.
    # Hint: returns (2, 3) = [c R | t]; tests/phase1_face_swap/test_alignment.py compares with skimage.
    # BEGIN SOLUTION p1.align.umeyama
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mean_src, mean_dst = src.mean(axis=0), dst.mean(axis=0)  # (2,)
    src_c, dst_c = src - mean_src, dst - mean_dst  # (N, 2)
    cov = dst_c.T @ src_c / len(src)  # (2, 2), eq. 38
    u, d, vt = np.linalg.svd(cov)
    signs = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])  # eq. 39/43: no reflection
    rotation = u @ np.diag(signs) @ vt  # eq. 40
    var_src = (src_c**2).sum(axis=1).mean()  # eq. 36
    scale = (d * signs).sum() / var_src if estimate_scale else 1.0  # eq. 42
    translation = mean_dst - scale * rotation @ mean_src  # eq. 41
    return np.hstack([scale * rotation, translation[:, None]])
    # END SOLUTION


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine `matrix` to `(N, 2)` points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine transform: `x = A^-1 (x' - t)`."""
    inverse = np.linalg.inv(matrix[:, :2])
    return np.hstack([inverse, (-inverse @ matrix[:, 2])[:, None]])


def template_points(size: int, coverage: float = 0.6, y_offset: float = 0.05) -> np.ndarray:
    """The mean face placed in a `size` x `size` crop: `(51, 2)` pixel targets for the alignment.

    `coverage` is the share of the crop's width the brow-to-mouth template spans (smaller keeps more
    forehead, cheeks and chin around it: the "padding"); `y_offset` shifts it up by that share of the
    crop so the chin, which lies below the template, fits in.
    """
    if not 0.1 <= coverage <= 1.0:
        raise ValueError(f"coverage must be in [0.1, 1], got {coverage}")
    centred = (MEAN_FACE - 0.5) * coverage  # (51, 2), the template's centre at the origin
    return (centred + np.array([0.5, 0.5 - y_offset])) * size


def alignment_matrix(landmarks: np.ndarray, size: int, coverage: float = 0.6) -> np.ndarray:
    """(2, 3) transform from frame pixels to the aligned `size` x `size` crop, from 68 landmarks."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {landmarks.shape}")
    return umeyama(landmarks[ALIGN_POINTS], template_points(size, coverage))


def warp_to_crop(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Cut the aligned face: `(H, W, C)` frame -> `(size, size, C)` crop (borders replicated)."""
    return cv2.warpAffine(
        image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def warp_to_frame(crop: np.ndarray, matrix: np.ndarray, frame_shape: tuple[int, ...]) -> np.ndarray:
    """Paste back: warp a crop (or a crop-sized mask) into frame coordinates with the inverse transform.

    Pixels the crop does not cover come out as 0, so a warped mask is 0 outside the face.
    """
    height, width = frame_shape[:2]
    return cv2.warpAffine(
        crop, matrix, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT, borderValue=0,
    )


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int, coverage: float = 0.6):
    """Aligned crop, its transform and the landmarks in crop coordinates.

    Returns `(crop (size, size, 3) uint8, matrix (2, 3), crop_landmarks (68, 2))`.
    """
    matrix = alignment_matrix(landmarks, size, coverage)
    return warp_to_crop(image, matrix, size), matrix, transform_points(landmarks, matrix)
