"""Blending: colour statistics via scikit-image, histogram matching against skimage, the mask, alpha."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage.color import rgb2lab
from skimage.exposure import match_histograms

from common.impl import load


@pytest.fixture
def blend():
    return load("phase1_face_swap", "blending")


def _smooth_image(seed: int, base: tuple[float, float, float], size: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([base[c] + 30 * np.sin(3 * xx + c) + 20 * yy for c in range(3)], axis=2)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def _disc(size: int = 64, radius: float | None = None) -> np.ndarray:
    """A centred disc of 1s, radius size / 3 unless given, as float32 (size, size)."""
    yy, xx = np.mgrid[0:size, 0:size]
    radius = size / 3 if radius is None else radius
    return ((xx - size / 2) ** 2 + (yy - size / 2) ** 2 < radius**2).astype(np.float32)


@pytest.mark.todo("p1.blend.reinhard")
def test_reinhard_matches_target_lab_statistics(blend):
    source = _smooth_image(0, (150, 110, 90))
    target = _smooth_image(1, (120, 125, 140))
    mask = _disc()
    out = blend.reinhard_transfer(source, target, mask)
    region = mask > 0.5
    lab_out, lab_t = rgb2lab(out)[region], rgb2lab(target)[region]  # an independent LAB conversion
    np.testing.assert_allclose(lab_out.mean(axis=0), lab_t.mean(axis=0), atol=1.0)
    np.testing.assert_allclose(lab_out.std(axis=0), lab_t.std(axis=0), rtol=0.1, atol=0.5)
    before = np.abs(rgb2lab(source)[region].mean(axis=0) - lab_t.mean(axis=0)).max()
    assert before > 5  # the test would be empty if the images already agreed


@pytest.mark.todo("p1.blend.hist_match")
def test_histogram_match_equals_skimage(blend):
    source = _smooth_image(2, (90, 140, 60))
    target = _smooth_image(3, (160, 100, 120))
    expected = match_histograms(source, target, channel_axis=2)
    got = blend.histogram_match(source, target)
    assert got.dtype == np.uint8
    np.testing.assert_allclose(got.astype(float), expected, rtol=0, atol=1.0)


@pytest.mark.todo("p1.blend.mask")
def test_mask_stays_inside_the_hull_and_is_solid_inside(blend):
    rng = np.random.default_rng(4)
    angles = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    landmarks = np.stack([100 + 50 * np.cos(angles), 90 + 60 * np.sin(angles)], axis=1)  # an ellipse
    landmarks += rng.normal(0, 0.5, landmarks.shape)
    mask = blend.build_mask(landmarks, (200, 220, 3), erode=6, blur=5)
    assert mask.shape == (200, 220) and mask.dtype == np.float32
    yy, xx = np.mgrid[0:200, 0:220]
    radius = ((xx - 100) / 50) ** 2 + ((yy - 90) / 60) ** 2
    assert mask[radius > 1.05].max() == 0
    assert mask[radius < 0.5].min() == pytest.approx(1.0)
    learned = np.zeros((200, 220), np.float32)
    learned[:, :100] = 1.0  # the learned mask only keeps the left half
    halved = blend.build_mask(landmarks, (200, 220), learned, erode=6, blur=5)
    assert halved[:, 110:].max() == 0 and halved[90, 70] == pytest.approx(1.0)


@pytest.mark.todo("p1.blend.alpha")
def test_alpha_blend_leaves_pixels_outside_the_mask_untouched(blend):
    rng = np.random.default_rng(5)
    frame = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    face = rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
    mask = np.zeros((50, 60), np.float32)
    mask[10:30, 20:40] = 1.0
    mask[30:35, 20:40] = 0.5
    out = blend.alpha_blend(frame, face, mask)
    outside = mask == 0
    np.testing.assert_array_equal(out[outside], frame[outside])
    np.testing.assert_array_equal(out[10:30, 20:40], face[10:30, 20:40])
    expected = np.round(0.5 * face[30:35, 20:40].astype(float) + 0.5 * frame[30:35, 20:40])
    np.testing.assert_allclose(out[30:35, 20:40].astype(float), expected, rtol=0, atol=1)


def test_poisson_blend_clones_the_face_detail_inside_and_leaves_the_outside_untouched(blend):
    frame = _smooth_image(6, (100, 100, 100), 80)
    face = _smooth_image(7, (180, 120, 90), 80)
    mask = _disc(80)
    out = blend.poisson_blend(frame, face, mask)
    far = np.ones((80, 80), bool)
    far[10:70, 10:70] = False
    np.testing.assert_array_equal(out[far], frame[far])
    inner = _disc(80, radius=80 / 3 - 4) > 0  # well inside the mask
    assert np.mean(out[inner] != frame[inner]) > 0.5  # the inside was replaced ...

    def detail(image: np.ndarray) -> np.ndarray:  # the Laplacian: what Poisson cloning carries over
        return cv2.Laplacian(image.astype(np.float64), cv2.CV_64F)[inner].ravel()

    assert np.corrcoef(detail(out), detail(face))[0, 1] > 0.9  # ... by the face's detail (its noise),
    assert abs(np.corrcoef(detail(out), detail(frame))[0, 1]) < 0.3  # not the frame's


@pytest.mark.todo("p1.blend.hist_match")
def test_histogram_match_reads_the_target_only_inside_the_mask(blend):
    rng = np.random.default_rng(0)
    source = rng.integers(40, 120, (32, 32, 3), dtype=np.uint8)
    target = rng.integers(100, 200, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), np.float32)
    mask[8:24, 8:24] = 1
    target[mask == 0] = 255  # what lies outside the mask must not count
    region = mask > 0.5
    want = match_histograms(source[region], target[region], channel_axis=-1)
    got = blend.histogram_match(source, target, mask)
    np.testing.assert_allclose(got[region].astype(float), want, atol=1.0)


def test_poisson_blend_clones_into_an_off_centre_mask(blend):
    rng = np.random.default_rng(0)
    frame = np.full((80, 80, 3), 100, np.uint8)
    face = np.clip(100 + rng.normal(0, 30, (80, 80, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((80, 80), np.float32)
    mask[8:28, 40:76] = 1  # wide, near the top right: its centre is not its transposed centre
    out = blend.poisson_blend(frame, face, mask)
    inside = np.zeros((80, 80), bool)
    inside[12:24, 44:72] = True
    assert np.mean(out[inside] != frame[inside]) > 0.5
    far = np.ones((80, 80), bool)
    far[4:32, 36:80] = False
    np.testing.assert_array_equal(out[far], frame[far])
