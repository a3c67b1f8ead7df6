"""Rendering a reenacted frame: piecewise-affine warping, the inner mouth, and smoothing over time.

Given the target's picture with its landmarks `src` and the landmarks it *should* have `dst` (from
expression_transfer.py), we move the pixels so that each landmark lands on its new place:

1. **Triangulate** the landmarks plus a ring of border points around the face (Delaunay: no
   triangle's circumcircle holds another point, so triangles are as fat as possible). The border
   points never move, so the warp fades out to nothing at the edge of the face region.
2. **Piecewise-affine warp**: inside each triangle of `dst`, one affine transform maps it back onto
   the same triangle of `src`; every output pixel looks up its source position with the affine of
   the triangle it falls in (backward mapping, so there are no holes), and `cv2.remap` samples there.
   Neighbouring affines agree on the shared edge, so the warp is continuous.
3. **The inner mouth**: the target's picture has no teeth or tongue to stretch when the driver opens
   a mouth the target keeps closed. Face2Face (Thies et al. 2016, "Mouth Retrieval") copies a mouth interior
   from a retrieved target frame; with no such database we take the *driver's* mouth interior, warp
   it onto the new lip opening and shift its colours by the difference of the two faces' lip colours.
4. **Over time**: landmarks jitter from frame to frame, and every pixel of the warp shakes with them.
   The One-Euro filter (Casiez et al. 2012) from phase 1 smooths the landmark tracks.

Images are `(H, W, 3)` uint8 RGB; landmarks `(N, 2)` float pixels; boxes `(x0, y0, x1, y1)` int pixels
with x1, y1 exclusive; triangles `(M, 3)` int indices into the point array.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from common.synthetic.identity import Identity, expressive_landmarks
from solutions.phase1_face_swap.alignment import umeyama
from solutions.phase1_face_swap.smoothing import OneEuroFilter

INNER_MOUTH = np.arange(60, 68)  # the lip opening's outline
OUTER_MOUTH = np.arange(48, 60)


# ----------------------------------------------------------------------------------------------
# Triangulation
# ----------------------------------------------------------------------------------------------


def border_points(box: tuple[int, int, int, int]) -> np.ndarray:
    """Eight fixed points `(8, 2)` on a box: its corners and edge midpoints (clockwise from top-left)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    x1, y1 = x1 - 1, y1 - 1  # the last pixel inside the box
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([[x0, y0], [xm, y0], [x1, y0], [x1, ym], [x1, y1], [xm, y1], [x0, y1], [x0, ym]])


def face_box(landmarks: np.ndarray, width: int, height: int,
             margin: float = 0.4) -> tuple[int, int, int, int]:
    """The region the warp may touch: the landmarks' bounding box grown by `margin` of its size,
    clipped to the frame. Pixels outside it are left exactly as they were."""
    lo, hi = np.min(landmarks, axis=0), np.max(landmarks, axis=0)
    pad = margin * (hi - lo)
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int) + 1
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height)


def delaunay_triangles(points: np.ndarray, rect: tuple[int, int, int, int]) -> np.ndarray:
    """Delaunay triangulation of `points` `(N, 2)` lying inside `rect` (x0, y0, x1, y1) -> `(M, 3)` indices.

    Duplicate points (e.g. the lips of a closed mouth) are kept once: triangles use the first copy.
    """
    # TODO p2.video.delaunay: Insert the points into cv2.Subdiv2D; turn its triangle list into indices.
    # Hint: subdiv = cv2.Subdiv2D((x0, y0, x1 - x0 + 1, y1 - y0 + 1)) (x, y, w, h: it must hold every
    # Hint: point); subdiv.insert((x, y)) per point; subdiv.getTriangleList() -> (M', 6) vertex coords.
    # Hint: pitfall: Subdiv2D adds three far-away virtual vertices; drop triangles using any vertex that
    # Hint: is not one of `points` (match coordinates to the nearest point, distance < 1e-3). Returns
    # Hint: (M, 3) int; for N points with h on the hull M = 2N - h - 2 (test_reenact_warp.py).
    # BEGIN SOLUTION p2.video.delaunay
    points = np.asarray(points, dtype=np.float64)
    x0, y0, x1, y1 = rect
    subdiv = cv2.Subdiv2D((int(x0), int(y0), int(x1 - x0 + 1), int(y1 - y0 + 1)))
    for x, y in points:
        subdiv.insert((float(x), float(y)))
    vertices = subdiv.getTriangleList().reshape(-1, 3, 2).astype(np.float64)  # (M', 3, 2)
    distance = np.linalg.norm(vertices[:, :, None, :] - points[None, None], axis=-1)  # (M', 3, N)
    index = distance.argmin(axis=2)  # (M', 3): the first of equally near points
    real = (distance.min(axis=2) < 1e-3).all(axis=1)
    return index[real].astype(np.int64)
    # END SOLUTION


@lru_cache(maxsize=1)
def reference_triangles() -> np.ndarray:
    """One triangulation `(M, 3)` of 68 landmarks + 8 border points, reused for every face and frame.

    It is computed once on the synthetic mean face with the mouth slightly open, so the inner-lip
    points are distinct; src and dst must share one triangulation (the same triangles, moved).
    """
    face = expressive_landmarks(Identity(seed=0), np.array([0.0, 0.0, 0.25, 0.0, 0.0, 0.0]))[:, :2] * 100
    face = face - face.min(axis=0) + 50  # (68, 2) about 100 px wide, inside a 200 px picture
    box = face_box(face, 10_000, 10_000)
    points = np.vstack([face, border_points(box)])  # (76, 2)
    return delaunay_triangles(points, box)


# ----------------------------------------------------------------------------------------------
# Piecewise-affine warping
# ----------------------------------------------------------------------------------------------


def triangle_affines(src_points: np.ndarray, dst_points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """For each triangle the affine `(M, 2, 3)` mapping its dst corners onto its src corners.

    Degenerate dst triangles (zero area: no pixel falls inside) get the identity.
    """
    src = np.asarray(src_points, dtype=np.float64)[triangles]  # (M, 3, 2)
    dst = np.asarray(dst_points, dtype=np.float64)[triangles]
    dst_h = np.concatenate([dst, np.ones((*dst.shape[:2], 1))], axis=2)  # (M, 3, 3): rows [x, y, 1]
    out = np.tile(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), (len(triangles), 1, 1))
    ok = np.abs(np.linalg.det(dst_h)) > 1e-9
    # dst_h @ A.T = src  ->  A.T = dst_h^-1 src
    out[ok] = np.transpose(np.linalg.solve(dst_h[ok], src[ok]), (0, 2, 1))
    return out


def warp_piecewise_affine(image: np.ndarray, src_points: np.ndarray, dst_points: np.ndarray,
                          triangles: np.ndarray, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Move the pixels of `image` so that `src_points` land on `dst_points` (same triangulation).

    Only pixels inside `box` (default: the whole image) and inside some dst triangle change; the
    rest is copied. Returns a new image of the same shape and dtype.
    """
    height, width = image.shape[:2]
    x0, y0, x1, y1 = box if box is not None else (0, 0, width, height)
    affines = triangle_affines(src_points, dst_points, triangles)  # (M, 2, 3)
    # TODO p2.video.warp: Label box pixels with their dst triangle, map through its affine, remap.
    # Hint: label = np.full((y1 - y0, x1 - x0), M, np.int32) (fillConvexPoly refuses int64) with an
    # Hint: extra identity affine at index M (pixels in no triangle stay put);
    # Hint: cv2.fillConvexPoly(label, round((dst[tri] - (x0, y0)) * 16), k, shift=4) for k in range(M)
    # Hint: (shift=4: sub-pixel vertices). A = affines[label] (h, w, 2, 3); with pixel
    # Hint: coordinates (x, y) of the frame, map_x = A[..., 0, 0] x + A[..., 0, 1] y + A[..., 0, 2], map_y
    # Hint: likewise, as float32; cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, cv2.BORDER_REPLICATE).
    # Hint: identical src and dst must return the image itself (test_reenact_warp.py).
    # BEGIN SOLUTION p2.video.warp
    count = len(triangles)
    affines = np.concatenate([affines, np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])]).astype(np.float32)
    label = np.full((y1 - y0, x1 - x0), count, dtype=np.int32)  # (h, w)
    dst = np.asarray(dst_points, dtype=np.float64) - np.array([x0, y0])
    corners = np.round(dst[triangles] * 16).astype(np.int32)  # (M, 3, 2), 4 fractional bits
    for k in range(count):
        cv2.fillConvexPoly(label, corners[k], k, lineType=cv2.LINE_8, shift=4)
    grid_y, grid_x = np.mgrid[y0:y1, x0:x1].astype(np.float32)  # (h, w) frame coordinates
    a = affines[label]  # (h, w, 2, 3)
    map_x = a[..., 0, 0] * grid_x + a[..., 0, 1] * grid_y + a[..., 0, 2]
    map_y = a[..., 1, 0] * grid_x + a[..., 1, 1] * grid_y + a[..., 1, 2]
    out = image.copy()
    out[y0:y1, x0:x1] = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out
    # END SOLUTION


# ----------------------------------------------------------------------------------------------
# The inner mouth
# ----------------------------------------------------------------------------------------------


def polygon_mask(points: np.ndarray, shape: tuple[int, ...], feather: float = 0.0) -> np.ndarray:
    """A float32 `(H, W)` mask, 1 inside the polygon `points` `(N, 2)`, edges blurred by `feather` px."""
    mask = np.zeros(shape[:2], dtype=np.float32)
    cv2.fillPoly(mask, [np.round(np.asarray(points) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return mask


def polygon_area(points: np.ndarray) -> float:
    """Area of a simple polygon `(N, 2)` (the shoelace formula)."""
    x, y = np.asarray(points, dtype=np.float64).T
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def fill_mouth(frame: np.ndarray, landmarks: np.ndarray, source: np.ndarray, source_landmarks: np.ndarray,
               feather: float = 1.0, min_area: float = 4.0) -> np.ndarray:
    """Paste the source's inner mouth (teeth, tongue) into the lip opening of `frame`, colour-corrected.

    `frame` is the warped target with `landmarks` `(68, 2)`; `source` the driver frame with
    `source_landmarks`. A closed mouth (opening under `min_area` px²) leaves the frame unchanged.
    """
    # TODO p2.video.mouth: Warp the source mouth onto the target's, shift its colours, blend it in.
    # Hint: M = umeyama(source_landmarks[48:68], landmarks[48:68]) (phase 1, (2, 3)); warped =
    # Hint: cv2.warpAffine(source, M, (W, H), borderMode=cv2.BORDER_REPLICATE). Colour: lips = outer-lip
    # Hint: polygon minus inner polygon (polygon_mask > 0.5); shift = mean(frame[lips]) - mean(warped[lips])
    # Hint: per channel (3,); mouth = clip(warped + shift). Blend inside polygon_mask(landmarks[60:68],
    # Hint: feather=feather): out = m * mouth + (1 - m) * frame. Pitfall: skip a closed mouth (polygon_area);
    # Hint: for speed work inside face_box(landmarks[48:68], W, H, 0.2), points shifted by its corner.
    # BEGIN SOLUTION p2.video.mouth
    if polygon_area(landmarks[INNER_MOUTH]) < min_area:
        return frame.copy()
    # Work in a box around the mouth only (a whole 720p frame would cost ten times more).
    x0, y0, x1, y1 = face_box(landmarks[48:68], frame.shape[1], frame.shape[0], margin=0.2)
    local = landmarks - np.array([x0, y0])  # (68, 2) in box coordinates
    roi = frame[y0:y1, x0:x1]
    matrix = umeyama(source_landmarks[48:68], local[48:68])  # (2, 3) source -> box
    warped = cv2.warpAffine(source, matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    inner = polygon_mask(local[INNER_MOUTH], roi.shape)
    lips = (polygon_mask(local[OUTER_MOUTH], roi.shape) > 0.5) & (inner < 0.5)  # (h, w) bool
    shift = roi[lips].mean(axis=0) - warped[lips].mean(axis=0) if lips.any() else np.zeros(3)  # (3,)
    mouth = np.clip(warped + shift, 0, 255)
    mask = polygon_mask(local[INNER_MOUTH], roi.shape, feather)[..., None]  # (h, w, 1)
    out = frame.copy()
    out[y0:y1, x0:x1] = np.round(mask * mouth + (1 - mask) * roi).astype(np.uint8)
    return out
    # END SOLUTION


# ----------------------------------------------------------------------------------------------
# Putting one frame together, and smoothing over time
# ----------------------------------------------------------------------------------------------


@dataclass
class RenderConfig:
    """How a reenacted frame is drawn."""

    margin: float = 0.4  # the warped region: landmark box grown by this share of its size
    mouth: bool = True  # fill an opening mouth from the driver
    feather: float = 1.0  # mouth mask edge blur (pixels)


def render_frame(target: np.ndarray, target_landmarks: np.ndarray, new_landmarks: np.ndarray,
                 source: np.ndarray | None = None, source_landmarks: np.ndarray | None = None,
                 cfg: RenderConfig | None = None) -> np.ndarray:
    """The target picture redrawn with `new_landmarks` `(68, 2)` (and the driver's mouth if given)."""
    cfg = cfg or RenderConfig()
    height, width = target.shape[:2]
    box = face_box(np.vstack([target_landmarks, new_landmarks]), width, height, cfg.margin)
    ring = border_points(box)
    src = np.vstack([target_landmarks, ring])  # (76, 2)
    dst = np.vstack([new_landmarks, ring])
    out = warp_piecewise_affine(target, src, dst, reference_triangles(), box)
    if cfg.mouth and source is not None and source_landmarks is not None:
        out = fill_mouth(out, new_landmarks, source, source_landmarks, cfg.feather)
    return out


def smooth_track(track: np.ndarray, fps: float, min_cutoff: float = 1.0, beta: float = 0.05) -> np.ndarray:
    """One-Euro-filter a landmark track `(T, ...)` sampled at `fps` (phase 1's filter, one call per frame)."""
    flt = OneEuroFilter(min_cutoff=min_cutoff, beta=beta)
    return np.stack([flt(frame, i / fps) for i, frame in enumerate(np.asarray(track, dtype=np.float64))])
