"""Rendering: Delaunay (vs scipy), piecewise-affine warping (vs cv2.warpAffine), mouth fill, smoothing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from scipy.spatial import ConvexHull, Delaunay

from common.impl import load


@pytest.fixture
def video():
    return load("phase2_face_reenactment", "video_generator")


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (uint8), so interpolation errors stay small."""
    noise = np.random.default_rng(seed).uniform(0, 255, size=(height, width, 3))
    smooth = gaussian_filter(noise, sigma=(3, 3, 0))
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.round(smooth).astype(np.uint8)


def _area(triangle: np.ndarray) -> float:
    (ax, ay), (bx, by), (cx, cy) = triangle
    return 0.5 * abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay))


@pytest.mark.todo("p2.video.delaunay")
def test_delaunay_triangles_cover_the_hull_like_scipy(video):
    rng = np.random.default_rng(0)
    points = rng.uniform(10, 190, size=(40, 2))
    triangles = video.delaunay_triangles(points, (0, 0, 200, 200))
    assert triangles.dtype.kind == "i" and triangles.shape[1] == 3
    hull = ConvexHull(points)
    assert len(triangles) == 2 * len(points) - len(hull.vertices) - 2  # Euler's formula
    covered = sum(_area(points[t]) for t in triangles)
    assert covered == pytest.approx(hull.volume, rel=1e-9)  # a 2D hull's volume is its area
    ours = {tuple(sorted(t)) for t in triangles.tolist()}
    reference = {tuple(sorted(t)) for t in Delaunay(points).simplices.tolist()}
    assert ours == reference


@pytest.mark.todo("p2.video.delaunay")
def test_reference_triangulation_covers_the_face_box(video):
    triangles = video.reference_triangles()
    assert triangles.min() >= 0 and triangles.max() == 75  # 68 landmarks + 8 border points
    assert set(range(76)) == set(triangles.ravel().tolist())  # every point is used


def _face_points(video, box):
    """A synthetic-looking set of 68 landmarks inside box, plus its 8 border points."""
    x0, y0, x1, y1 = box
    rng = np.random.default_rng(3)
    face = rng.uniform([x0 + 20, y0 + 20], [x1 - 20, y1 - 20], size=(68, 2))
    return np.vstack([face, video.border_points(box)])


@pytest.mark.todo("p2.video.delaunay", "p2.video.warp")
def test_warp_with_identical_landmarks_is_the_identity(video):
    image = _texture(120, 160)
    box = (10, 5, 150, 115)
    points = _face_points(video, box)
    triangles = video.delaunay_triangles(points, box)
    out = video.warp_piecewise_affine(image, points, points, triangles, box)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_allclose(out.astype(int), image.astype(int), rtol=0, atol=1)


@pytest.mark.todo("p2.video.delaunay", "p2.video.warp")
def test_warp_with_one_global_affine_matches_cv2_warp_affine(video):
    image = _texture(160, 160, seed=1)
    box = (0, 0, 160, 160)
    src = np.vstack([np.random.default_rng(4).uniform(30, 130, size=(30, 2)), video.border_points(box)])
    angle, scale = np.radians(4.0), 1.03
    affine = np.array([[scale * np.cos(angle), -scale * np.sin(angle), 2.0],
                       [scale * np.sin(angle), scale * np.cos(angle), -3.0]])  # src -> dst
    dst = src @ affine[:, :2].T + affine[:, 2]
    triangles = video.delaunay_triangles(src, box)
    out = video.warp_piecewise_affine(image, src, dst, triangles, box)
    expected = cv2.warpAffine(image, affine, (160, 160), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    inside = np.zeros((160, 160), bool)
    inside[20:140, 20:140] = True  # well inside the warped hull
    diff = np.abs(out.astype(int) - expected.astype(int))[inside]
    assert diff.mean() < 0.5 and diff.max() <= 2


@pytest.mark.todo("p2.video.delaunay", "p2.video.warp")
def test_pixels_outside_the_box_never_change(video):
    image = _texture(100, 100, seed=2)
    box = (20, 20, 80, 80)
    src = _face_points(video, box)
    dst = src.copy()
    dst[:68] += np.random.default_rng(5).normal(0, 2.0, size=(68, 2))
    out = video.warp_piecewise_affine(image, src, dst, video.delaunay_triangles(src, box), box)
    outside = np.ones((100, 100), bool)
    outside[20:80, 20:80] = False
    np.testing.assert_array_equal(out[outside], image[outside])
    assert np.abs(out.astype(int) - image).max() > 0


def _mouth(centre: tuple[float, float], open_px: float) -> np.ndarray:
    """Landmarks with only the mouth meaningful: outer lips 48-59 and the inner opening 60-67."""
    cx, cy = centre
    lm = np.zeros((68, 2))
    t = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    lm[48:60] = np.column_stack([cx - 30 * np.cos(t), cy - (12 + open_px / 2) * np.sin(t)])
    u = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    lm[60:68] = np.column_stack([cx - 20 * np.cos(u), cy - (open_px / 2) * np.sin(u)])
    lm[:48] = [cx, cy - 60]
    return lm


def _mouth_scene(lips_t, lips_s, inside_s, skin_t=(200, 160, 140), skin_s=(120, 100, 90)):
    """(target, target_lm, source, source_lm): flat skin, lips and (in the source) an opening 16 px high,
    each in its own colour; the target 160 px square, the source 140 px with its mouth elsewhere."""
    target_lm, source_lm = _mouth((80, 80), 16.0), _mouth((70, 60), 16.0)
    target = np.full((160, 160, 3), skin_t, np.uint8)
    cv2.fillPoly(target, [np.round(target_lm[48:60]).astype(np.int32)], tuple(int(c) for c in lips_t))
    source = np.full((140, 140, 3), skin_s, np.uint8)
    cv2.fillPoly(source, [np.round(source_lm[48:60]).astype(np.int32)], tuple(int(c) for c in lips_s))
    cv2.fillPoly(source, [np.round(source_lm[60:68]).astype(np.int32)], tuple(int(c) for c in inside_s))
    return target, target_lm, source, source_lm


@pytest.mark.todo("p2.video.mouth")
def test_mouth_fill_pastes_the_colour_corrected_source_interior(video):
    skin_t, lips_t = np.array([200, 160, 140]), np.array([170, 90, 90])
    skin_s, lips_s, inside_s = np.array([120, 100, 90]), np.array([140, 70, 80]), np.array([60, 20, 30])
    target, target_lm, source, source_lm = _mouth_scene(lips_t, lips_s, inside_s, skin_t, skin_s)
    out = video.fill_mouth(target, target_lm, source, source_lm)
    expected = inside_s + (lips_t - lips_s)  # Face2Face-style copy, shifted by the lips' colour difference
    np.testing.assert_allclose(out[78:83, 75:86].reshape(-1, 3).mean(axis=0), expected, atol=3)
    far = np.ones((160, 160), bool)
    far[50:110, 40:120] = False
    np.testing.assert_array_equal(out[far], target[far])


@pytest.mark.todo("p2.video.mouth")
def test_a_closed_mouth_is_left_alone(video):
    target = np.full((120, 120, 3), 180, np.uint8)
    source = np.zeros((120, 120, 3), np.uint8)
    closed = _mouth((60, 60), 0.0)
    np.testing.assert_array_equal(video.fill_mouth(target, closed, source, _mouth((60, 60), 20.0)), target)


@pytest.mark.todo("p1.smooth.one_euro")
def test_one_euro_passes_a_constant_and_denoises_a_ramp(video):
    constant = np.tile(np.array([[50.0, 80.0]]), (60, 68, 1))  # (T, 68, 2)
    np.testing.assert_allclose(video.smooth_track(constant, fps=25.0), constant, atol=1e-12)
    t = np.arange(100) / 25.0
    ramp = np.stack([100 + 20 * t, 50 + 10 * t], axis=-1)[:, None, :].repeat(68, axis=1)  # 20 px/s drift
    noisy = ramp + np.random.default_rng(0).normal(0, 1.5, ramp.shape)
    smoothed = video.smooth_track(noisy, fps=25.0)
    # Noise: the spread of the error around its mean (a steady ramp leaves a constant lag, not noise).
    raw_noise = (noisy - ramp)[25:].std(axis=0).mean()
    smooth_noise = (smoothed - ramp)[25:].std(axis=0).mean()
    assert smooth_noise < 0.6 * raw_noise
    lag = np.abs((smoothed - ramp)[25:].mean(axis=0)).max()
    assert lag < 2.0  # px: at 20 px/s, less than a tenth of a second behind


@pytest.mark.todo("p2.video.mouth")
def test_mouth_fill_leaves_the_target_lips_alone(video):
    """Only the opening (inner lips 60-67) is pasted: the target's lips keep their own pixels."""
    target_lm, source_lm = _mouth((80, 80), 16.0), _mouth((70, 60), 16.0)
    target = np.full((160, 160, 3), (200, 160, 140), np.uint8)
    cv2.fillPoly(target, [np.round(target_lm[48:60]).astype(np.int32)], (170, 90, 90))
    rng = np.random.default_rng(0)
    source = np.full((140, 140, 3), (120, 100, 90), np.uint8)
    lips = np.zeros((140, 140), np.uint8)
    cv2.fillPoly(lips, [np.round(source_lm[48:60]).astype(np.int32)], 1)
    source[lips > 0] = rng.integers(60, 220, (int(lips.sum()), 3))  # textured source lips
    cv2.fillPoly(source, [np.round(source_lm[60:68]).astype(np.int32)], (60, 20, 30))
    out = video.fill_mouth(target, target_lm, source, source_lm)
    corners = (slice(78, 83), slice(51, 56))  # lips at the left corner, 4+ px outside the opening
    np.testing.assert_allclose(out[corners].astype(int), target[corners].astype(int), atol=1)
    assert np.abs(out[78:83, 75:86].astype(int) - target[78:83, 75:86]).max() > 20  # the opening changed


def test_border_points_sit_on_the_last_pixels_inside_the_box(video):
    """x1, y1 are exclusive: the right and bottom points sit on column x1 - 1 and row y1 - 1."""
    points = video.border_points((2, 4, 12, 24))
    want = [[2, 4], [6.5, 4], [11, 4], [11, 13.5], [11, 23], [6.5, 23], [2, 23], [2, 13.5]]
    np.testing.assert_allclose(points, want)


def test_face_box_grows_by_the_margin_and_holds_the_last_pixel(video):
    """floor / ceil of the grown landmark box, x1, y1 exclusive (one past the ceiling), clipped to the
    frame."""
    landmarks = np.array([[10.0, 20.0], [30.0, 60.0], [20.5, 33.3]])
    assert video.face_box(landmarks, 100, 100, margin=0.25) == (5, 10, 36, 71)  # pad (5, 10)
    assert video.face_box(landmarks, 32, 64, margin=0.75) == (0, 0, 32, 64)  # clipped to the frame


@pytest.mark.todo("p2.video.mouth")
def test_mouth_fill_clips_the_colour_shifted_interior_to_the_uint8_range(video):
    """Bright target lips, dark source lips: the shift pushes the source interior past 255, which must
    saturate at 255 (not wrap around in the uint8 image)."""
    target, target_lm, source, source_lm = _mouth_scene((250, 240, 230), (40, 30, 20), (200, 210, 220))
    out = video.fill_mouth(target, target_lm, source, source_lm)
    np.testing.assert_array_equal(out[78:83, 75:86], 255)  # 200 + 210 etc., saturated


def test_polygon_area_is_the_shoelace_area_in_either_orientation(video):
    square = np.array([[2.0, 3.0], [12.0, 3.0], [12.0, 8.0], [2.0, 8.0]])  # 10 x 5
    assert video.polygon_area(square) == pytest.approx(50.0)
    assert video.polygon_area(square[::-1]) == pytest.approx(50.0)
    assert video.polygon_area(np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])) == pytest.approx(6.0)


@pytest.mark.todo("p2.video.mouth")
def test_mouth_fill_feathers_the_edge_of_the_opening(video):
    """feather > 0 blurs the opening's mask: pixels just outside the inner lips change too."""
    target, target_lm, source, source_lm = _mouth_scene((170, 90, 90), (140, 70, 80), (60, 20, 30))
    out = {f: video.fill_mouth(target, target_lm, source, source_lm, feather=f).astype(int)
           for f in (0.0, 3.0)}
    edge = (slice(72, 89), slice(58, 103))  # the opening and the lips around it
    assert np.abs(out[3.0][80, 78:83] - out[0.0][80, 78:83]).max() <= 1  # the middle: the mask is ~1
    assert np.abs(out[3.0][edge] - out[0.0][edge]).max() > 10  # the rim: blended with the target


@pytest.mark.todo("p2.video.delaunay", "p2.video.warp", "p2.video.mouth")
def test_render_frame_leaves_the_mouth_alone_when_the_config_says_so(video):
    from common.synthetic.identity import Identity, expressive_landmarks

    def face(opening: float) -> np.ndarray:
        points = expressive_landmarks(Identity(seed=1), np.array([0.0, 0.0, opening, 0.0, 0.0, 0.0]))[:, :2]
        return (points - points.min(axis=0)) / np.ptp(points, axis=0).max() * 80 + 40

    target, source = _texture(160, 160, seed=1), _texture(160, 160, seed=2)
    closed, opened = face(0.0), face(0.3)
    warped = video.render_frame(target, closed, opened)
    off = video.render_frame(target, closed, opened, source, opened, video.RenderConfig(mouth=False))
    on = video.render_frame(target, closed, opened, source, opened)
    np.testing.assert_array_equal(off, warped)
    assert (on != warped).any()
