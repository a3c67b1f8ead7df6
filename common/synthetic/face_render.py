"""Draw one synthetic face from its 68 landmarks, with OpenCV polygons and a little shading.

Pipeline of `render_frame` (all coordinates come from the same projected 3D points, so every drawn
feature sits exactly where the ground-truth landmarks say):

1. background gradient, shirt, neck, ears and the hair behind the head;
2. the skin: the face outline is the jaw (landmarks 0-16) closed by a forehead arc;
3. features: eye whites, iris, pupil, lids (36-47); brows as thick tapered strokes (17-26);
   nostrils (31-35); lips (48-59) around a dark mouth opening with teeth (60-67); hair fringe;
4. light: Lambert shading of a head-shaped ellipsoid, n . l (Lambert 1760), times soft blurred
   shadows in the eye sockets, beside and under the nose and under the lower lip;
5. a skin texture that moves with the head, a slight camera blur and sensor noise.

dlib's HOG detector keys on exactly this gradient structure (dark eye sockets and brows, a nose
bridge with a shaded side, a mouth line, a face outline against the background).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from common.synthetic.identity import Identity, expressive_landmarks, jaw_curve

POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")  # degrees, degrees, degrees, ×size, ×size, ×
BASE_SCALE = 0.26  # one face unit (the outer-eye-corner distance) in image widths at scale 1
EYE_LINE = 0.42  # where the eyes sit, as a fraction of the image height, at ty = 0
HEAD_CENTRE = np.array([0.0, 0.35, -0.7])  # the head turns about this point (face units)
SHIFT = 4  # cv2 drawing with 4 fractional bits: sub-pixel accurate polygons
SUB = 1 << SHIFT


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rotation `(3, 3)` for angles in degrees: yaw about y, pitch about x, roll in the image plane."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points: np.ndarray, pose: np.ndarray, size: int) -> np.ndarray:
    """Weak-perspective projection of face-unit points `(N, 3)` to pixels `(N, 2)` for one pose `(6,)`."""
    yaw, pitch, roll, tx, ty, scale = (float(v) for v in pose)
    rotated = (points - HEAD_CENTRE) @ rotation(yaw, pitch, roll).T + HEAD_CENTRE
    s = BASE_SCALE * size * scale
    return np.stack(
        [size * (0.5 + tx) + s * rotated[:, 0], size * (EYE_LINE + ty) + s * rotated[:, 1]], axis=1
    )


def _ellipse3d(cx: float, cy: float, ax: float, ay: float, z: float, n: int = 32) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t), np.full(n, z)], axis=1)


@lru_cache(maxsize=64)
def _head_shapes(ident: Identity) -> dict[str, np.ndarray]:
    """Face-unit outlines `(N, 3)` of the parts that are not landmarks: forehead, hair, ears, neck."""
    jw, top = ident.jaw_width, ident.jaw_top
    theta = np.linspace(0.0, np.pi, 24)
    forehead_h = top + 1.05
    forehead = np.stack(
        [jw * np.cos(theta), top - forehead_h * np.sin(theta), -0.45 + 0.55 * np.sin(theta)], axis=1
    )  # from the right ear (16) over the top to the left ear (0)
    hv = ident.hair_volume
    hair_bottom = top + 0.15 + 1.1 * ident.hair_length
    back = np.stack(
        [(jw + hv) * np.cos(theta), top - (forehead_h + hv) * np.sin(theta), np.full(24, -0.8)], axis=1
    )
    back = np.concatenate([[[jw + hv, hair_bottom, -0.8]], back, [[-jw - hv, hair_bottom, -0.8]]])
    xs = np.linspace(-jw - 0.03, jw + 0.03, 15)
    # The fringe's edge: a gentle arch, tilted to one side by the parting (kept above the brows).
    edge = ident.hairline + 0.2 * (xs / jw) ** 2 + 0.12 * ident.parting * xs / jw
    edge = np.minimum(edge, -ident.brow_height - 0.2 + 0.15 * (xs / jw) ** 2)
    line = np.stack([xs, edge, 0.2 - 0.5 * xs**2], axis=1)
    over = np.stack(
        [(jw + 0.05) * np.cos(theta), top - (forehead_h + 0.06) * np.sin(theta), -0.4 + 0.6 * np.sin(theta)],
        axis=1,
    )
    fringe = np.concatenate([line, over[over[:, 1] < min(line[0, 1], line[-1, 1])]])
    neck = np.array([[-0.42, 0.9, -0.6], [-0.48, 2.6, -0.6], [0.48, 2.6, -0.6], [0.42, 0.9, -0.6]])
    ears = [_ellipse3d(sx * (jw + 0.03), top + 0.2, 0.09, 0.22, -0.5, 20) for sx in (-1, 1)]
    return {
        "forehead": forehead,
        "hair_back": back,
        "fringe": fringe,
        "neck": neck,
        "ear_l": ears[0],
        "ear_r": ears[1],
    }


@lru_cache(maxsize=64)
def _background(ident: Identity, size: int) -> np.ndarray:
    """A vertical gradient with a soft vignette `(S, S, 3)` uint8, cached per identity and size."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    base = np.array(ident.background, dtype=np.float32)
    grad = (1.1 - 0.25 * y)[..., None] * base
    vignette = 1.0 - 0.35 * ((x - 0.5) ** 2 + (y - 0.5) ** 2)[..., None]
    return np.clip(grad * vignette, 0, 255).astype(np.uint8)


TEXTURE_BOX = (-1.9, -1.5, 3.8)  # x0, y0 and side of the texture square in face units
TEXTURE_RES = 224  # texture pixels along each side


@lru_cache(maxsize=64)
def _texture(ident: Identity) -> np.ndarray:
    """Surface texture `(R, R)` float32 over TEXTURE_BOX, attached to the head: skin blotches and
    pores, and vertical strands where the hair is."""
    rng = np.random.default_rng([ident.seed, 7])
    res = TEXTURE_RES
    coarse = cv2.GaussianBlur(rng.normal(0, 1, (res, res)).astype(np.float32), (0, 0), 8)
    pores = 0.5 * coarse / (coarse.std() + 1e-6) + rng.normal(0, 1, (res, res)).astype(np.float32)
    strands = cv2.GaussianBlur(rng.normal(0, 1, (res, res)).astype(np.float32), (0, 0), sigmaX=0.7, sigmaY=7)
    hair = np.zeros((res, res), np.uint8)
    x0, y0, side = TEXTURE_BOX
    shapes = _head_shapes(ident)
    face = np.concatenate([jaw_curve(ident), shapes["forehead"][:, :2]])
    parts = [(shapes["hair_back"], 1), (face, 0), (shapes["neck"], 0), (shapes["fringe"], 1)]
    for outline, value in parts:
        _fill(hair, (outline[:, :2] - (x0, y0)) * (res / side), (value,))
    tex = np.where(hair > 0, 2.5 * strands / (strands.std() + 1e-6), pores / pores.std())
    return (ident.texture * tex).astype(np.float32)


NOISE_MARGIN = 64


@lru_cache(maxsize=8)
def _sensor_noise(size: int) -> np.ndarray:
    """Camera noise (sigma 2 grey levels) `(S + 64, S + 64, 3)`; each frame takes a random window of it."""
    rng = np.random.default_rng(size)
    return rng.normal(0.0, 2.0, (size + NOISE_MARGIN, size + NOISE_MARGIN, 3)).astype(np.float32)


def _pts(p: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(p) * SUB).astype(np.int32)


def _fill(img: np.ndarray, pts: np.ndarray, colour) -> None:
    cv2.fillPoly(img, [_pts(pts)], tuple(float(c) for c in colour), cv2.LINE_AA, SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, colour, thickness: float) -> None:
    width = max(1, int(round(thickness)))
    cv2.polylines(img, [_pts(pts)], False, tuple(float(c) for c in colour), width, cv2.LINE_AA, SHIFT)


def _circle(img: np.ndarray, centre: np.ndarray, radius: float, colour) -> None:
    _ellipse(img, centre, (radius, radius), colour)


def _ellipse(img: np.ndarray, centre: np.ndarray, axes: tuple[float, float], colour, aa: bool = True) -> None:
    size = (max(1, int(axes[0] * SUB)), max(1, int(axes[1] * SUB)))
    line = cv2.LINE_AA if aa else cv2.LINE_8
    cv2.ellipse(
        img, tuple(_pts(centre).tolist()), size, 0, 0, 360, tuple(float(c) for c in colour), -1, line, SHIFT
    )


def _paint_inside(img: np.ndarray, outline: np.ndarray, paint) -> None:
    """Let `paint(roi, offset)` draw on a copy of the region around `outline` `(N, 2)`; keep only
    what falls inside the outline (anti-aliased edge). Irises stay inside the lids, teeth inside the lips."""
    h, w = img.shape[:2]
    x0, y0 = np.maximum(np.floor(outline.min(axis=0) - 2).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(outline.max(axis=0) + 2).astype(int), (w, h))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return
    roi = img[y0:y1, x0:x1]
    offset = np.array([x0, y0], dtype=np.float64)
    mask = np.zeros(roi.shape[:2], np.uint8)
    _fill(mask, outline - offset, (255,))
    inside = roi.copy()
    paint(inside, offset)
    alpha = (mask.astype(np.float32) / 255.0)[..., None]
    roi[:] = (alpha * inside + (1.0 - alpha) * roi).astype(np.uint8)


def _draw_eye(
    img: np.ndarray, eye: np.ndarray, ident: Identity, unit: float, skin: np.ndarray, gaze: np.ndarray
) -> None:
    """One eye from its six landmarks `(6, 2)` in the order corner, upper, upper, corner, lower, lower."""

    def paint(roi: np.ndarray, offset: np.ndarray) -> None:
        _fill(roi, eye - offset, (228, 222, 215))
        centre = 0.5 * (eye[0] + eye[3]) - offset + gaze * unit
        iris_r = 0.075 * unit
        _circle(roi, centre, iris_r, ident.iris)
        _circle(roi, centre, 0.42 * iris_r, (15, 12, 12))
        _circle(roi, centre + np.array([0.3, -0.35]) * iris_r, max(0.6, 0.18 * iris_r), (250, 250, 250))

    _paint_inside(img, eye, paint)
    lash = np.array(ident.hair) * 0.4
    _line(img, eye[[0, 1, 2, 3]], lash, 0.028 * unit)
    _line(img, eye[[3, 4, 5, 0]], skin * 0.6, 0.012 * unit)
    crease = eye[[0, 1, 2, 3]] - np.array([0.0, 0.045 * unit])
    crease[[0, 3], 1] += 0.03 * unit
    _line(img, crease, skin * 0.72, 0.014 * unit)


def _draw_mouth(img: np.ndarray, lm: np.ndarray, lips: np.ndarray, unit: float) -> None:
    """Lips (48-59, the upper one darker), the opening (60-67) with the upper teeth, the lip line."""
    _fill(img, lm[48:60], lips)
    _fill(img, np.concatenate([lm[48:55], lm[60:65][::-1]]), lips * 0.85)
    inner = lm[60:68]
    gap = lm[66, 1] - lm[62, 1]
    if gap > 0.01 * unit:

        def paint(roi: np.ndarray, offset: np.ndarray) -> None:
            _fill(roi, inner - offset, (70, 25, 30))
            teeth_h = min(0.06 * unit, 0.45 * gap)
            top = lm[60:65] - offset - (0, unit)  # from above the lip down to the teeth's edge
            edge = lm[60:65] - offset + (0, teeth_h)
            _fill(roi, np.concatenate([top, edge[::-1]]), (225, 220, 205))

        _paint_inside(img, inner, paint)
    _line(img, inner[[0, 1, 2, 3, 4]], lips * 0.45, 0.014 * unit)


def _shadows(
    size: int, lm: np.ndarray, unit: float, light_x: float, neck: np.ndarray, face: np.ndarray
) -> np.ndarray:
    """Soft darkening `(S, S)` float32 in [0, 1): under the chin, eye sockets, beside and under the nose."""
    dark = np.zeros((size, size), np.float32)
    _fill(dark, neck, (0.4,))
    _fill(dark, face, (0.0,))
    for eye in (lm[36:42], lm[42:48]):
        c = eye.mean(axis=0) - np.array([0.0, 0.06 * unit])
        _ellipse(dark, c, (0.19 * unit, 0.13 * unit), (0.22,), aa=False)
    side = 0.05 * unit
    left = np.array([lm[27] - (side, 0), lm[31] - (0.3 * side, 0), lm[31], lm[30], lm[28]])
    right = np.array([lm[27] + (side, 0), lm[35] + (0.3 * side, 0), lm[35], lm[30], lm[28]])
    _fill(dark, left, (0.10 + 0.12 * max(light_x, 0.0),))
    _fill(dark, right, (0.10 + 0.12 * max(-light_x, 0.0),))
    _ellipse(dark, lm[33] + (0, 0.05 * unit), (0.13 * unit, 0.04 * unit), (0.22,), aa=False)
    _ellipse(dark, lm[57] + (0, 0.12 * unit), (0.14 * unit, 0.04 * unit), (0.12,), aa=False)
    _line(dark, lm[27:31], (-0.12,), 0.05 * unit)
    sigma = max(0.6, 0.035 * unit)
    return cv2.GaussianBlur(dark, (0, 0), sigma)


def _lighting(size: int, ident: Identity, pose: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Lambert shading `(S, S)` float32 of a head-shaped ellipsoid; 1 outside the head box."""
    light_map = np.ones((size, size), np.float32)
    x0, y0 = np.clip(np.floor(box[0]).astype(int), 0, size)
    x1, y1 = np.clip(np.ceil(box[1]).astype(int), 0, size)
    if x1 <= x0 or y1 <= y0:
        return light_map
    yaw, pitch, roll, tx, ty, scale = (float(v) for v in pose)
    s = BASE_SCALE * size * scale
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    # Undo translation, scale and roll to get face units (yaw and pitch act through the light below).
    dx, dy = (xs - size * (0.5 + tx)) / s, (ys - size * (EYE_LINE + ty)) / s
    c, sn = np.cos(np.radians(roll)), np.sin(np.radians(roll))
    u, v = c * dx + sn * dy, -sn * dx + c * dy
    nx = u / (ident.jaw_width * 1.3)
    ny = (v - 0.3) / 1.6
    nz = np.sqrt(np.clip(1.0 - nx * nx - ny * ny, 0.05, 1.0))
    light = rotation(yaw, pitch, roll).T @ np.array(ident.light)
    lambert = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
    light_map[y0:y1, x0:x1] = 0.5 + 0.62 * lambert
    return light_map


def render_frame(
    ident: Identity,
    pose: np.ndarray,
    expression: np.ndarray,
    size: int = 256,
    noise_seed: int = 0,
    gaze: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame -> (image `(S, S, 3)` uint8 RGB, landmarks `(68, 2)` float pixels).

    `pose` is `(6,)` in POSE_FIELDS order, `expression` is `(6,)` in EXPRESSION_FIELDS order,
    `gaze` moves the irises in face units.
    """
    pose = np.asarray(pose, dtype=np.float64)
    unit = BASE_SCALE * size * float(pose[5])  # pixels per face unit
    lm = project(expressive_landmarks(ident, expression), pose, size)  # (68, 2)
    shapes = {k: project(v, pose, size) for k, v in _head_shapes(ident).items()}
    body_pose = np.array([0.0, 0.0, 0.3 * pose[2], pose[3], pose[4], pose[5]])
    shoulders = project(_ellipse3d(0.0, 2.9, 2.3, 1.0, -1.0, 40), body_pose, size)

    skin = np.array(ident.skin)
    hair = np.array(ident.hair)
    img = _background(ident, size).copy()
    _fill(img, shapes["hair_back"], hair * 0.8)
    _fill(img, shoulders, ident.shirt)
    _fill(img, shapes["neck"], skin * 0.92)
    _fill(img, shapes["ear_l"], skin * 0.9)
    _fill(img, shapes["ear_r"], skin * 0.9)
    face = np.concatenate([lm[0:17], shapes["forehead"]])
    _fill(img, face, skin)

    # Brows: tapered strokes whose upper edge runs just above the landmarks.
    thick = ident.brow_thickness * unit * np.array([0.55, 0.8, 0.95, 1.0, 1.0])
    brow_colour = np.minimum(0.7 * hair + 0.15 * skin, 0.55 * skin)  # brows darker than skin
    for brow, taper in ((lm[17:22], thick), (lm[22:27], thick[::-1])):
        top = brow - np.stack([np.zeros(5), 0.35 * taper], axis=1)
        bottom = brow + np.stack([np.zeros(5), 0.65 * taper], axis=1)
        _fill(img, np.concatenate([top, bottom[::-1]]), brow_colour)

    gaze_v = np.asarray(gaze, dtype=np.float64)
    _draw_eye(img, lm[36:42], ident, unit, skin, gaze_v)
    _draw_eye(img, lm[[45, 44, 43, 42, 47, 46]], ident, unit, skin, gaze_v)

    # Nose: nostrils and the curved wings of the nose.
    nostril = skin * 0.3
    for a, b in ((31, 32), (35, 34)):
        c = 0.5 * (lm[a] + lm[b]) - np.array([0.0, 0.012 * unit])
        _ellipse(img, c, (0.045 * unit, 0.022 * unit), nostril)
    for a, sx in ((31, -1.0), (35, 1.0)):
        wing = np.array([lm[a], lm[a] + (sx * 0.035 * unit, -0.06 * unit), lm[a] + (0.0, -0.12 * unit)])
        _line(img, wing, skin * 0.7, 0.015 * unit)
    _line(img, lm[31:36], skin * 0.75, 0.012 * unit)

    # Mouth, and the creases at its corners.
    _draw_mouth(img, lm, np.array(ident.lips), unit)
    for corner, sx in ((48, -1.0), (54, 1.0)):
        crease = np.array([lm[corner] - (sx * 0.05 * unit, 0), lm[corner] + (sx * 0.015 * unit, 0)])
        _line(img, crease, skin * 0.55, 0.014 * unit)

    _fill(img, shapes["fringe"], hair)

    # Light and shadows on everything inside the head region, then texture, blur and noise.
    head = np.concatenate([face, shapes["hair_back"], shapes["neck"]])
    box = np.array([head.min(axis=0) - 2, head.max(axis=0) + 2])
    head_mask = np.zeros((size, size), np.uint8)  # the head's surfaces get Lambert shading...
    for part in (face, shapes["hair_back"], shapes["ear_l"], shapes["ear_r"]):
        _fill(head_mask, part, (255,))
    lit = 1.0 + (head_mask.astype(np.float32) / 255.0) * (_lighting(size, ident, pose, box) - 1.0)
    _fill(head_mask, shapes["neck"], (255,))  # ...and the neck only the shadow under the chin
    light_x = float((rotation(*pose[:3]).T @ np.array(ident.light))[0])
    shade = lit * (1.0 - _shadows(size, lm, unit, light_x, shapes["neck"], face))
    out = img.astype(np.float32) * shade[..., None]

    x0, y0, side = TEXTURE_BOX
    corners = np.array([[x0, y0, 0.1], [x0 + side, y0, 0.1], [x0, y0 + side, 0.1]])
    tex_px = np.float32([[0, 0], [TEXTURE_RES, 0], [0, TEXTURE_RES]])
    warp = cv2.getAffineTransform(tex_px, project(corners, pose, size).astype(np.float32))
    texture = cv2.warpAffine(_texture(ident), warp, (size, size), flags=cv2.INTER_LINEAR, borderValue=0.0)
    out += (texture * (head_mask > 0))[..., None]

    out = cv2.GaussianBlur(out, (0, 0), max(0.5, 0.004 * size))
    dx, dy = np.random.default_rng([ident.seed, int(noise_seed), 11]).integers(0, NOISE_MARGIN, 2)
    out += _sensor_noise(size)[dy : dy + size, dx : dx + size]
    return np.clip(out, 0, 255).astype(np.uint8), lm


def neutral_pose() -> np.ndarray:
    """Frontal pose `(6,)`: no rotation, centred, scale 1."""
    return np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1.0])
