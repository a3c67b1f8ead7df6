"""Alignment: Umeyama's similarity transform against scikit-image, and the crop/paste-back round trip."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import SimilarityTransform

from common.impl import load


@pytest.fixture
def align():
    return load("phase1_face_swap", "alignment")


def _similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[scale * c, -scale * s, tx], [scale * s, scale * c, ty]])


@pytest.mark.todo("p1.align.umeyama")
def test_umeyama_recovers_a_known_transform(align):
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, size=(51, 2))
    truth = _similarity(1.7, 0.4, 12.0, -30.0)
    dst = src @ truth[:, :2].T + truth[:, 2]
    np.testing.assert_allclose(align.umeyama(src, dst), truth, atol=1e-9)


@pytest.mark.todo("p1.align.umeyama")
def test_umeyama_matches_skimage_on_noisy_points(align):
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(30, 2))
    dst = src @ _similarity(0.6, -2.5, 40.0, 7.0)[:, :2].T + rng.normal(0, 2.0, size=(30, 2))
    reference = (
        SimilarityTransform.from_estimate(src, dst)
        if hasattr(SimilarityTransform, "from_estimate")
        else _skimage_estimate(src, dst)
    )
    np.testing.assert_allclose(align.umeyama(src, dst), reference.params[:2], atol=1e-8)


def _skimage_estimate(src: np.ndarray, dst: np.ndarray) -> SimilarityTransform:
    tform = SimilarityTransform()
    tform.estimate(src, dst)
    return tform


@pytest.mark.todo("p1.align.umeyama")
def test_umeyama_never_returns_a_reflection(align):
    rng = np.random.default_rng(2)
    src = rng.uniform(-1, 1, size=(20, 2))
    mirrored = src * np.array([-1.0, 1.0])  # the best fit would be a reflection
    matrix = align.umeyama(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


@pytest.mark.todo("p1.align.umeyama")
def test_alignment_puts_landmarks_on_the_template_and_inverts(align):
    rng = np.random.default_rng(3)
    size = 64
    template = align.template_points(size, coverage=0.6)  # (51, 2)
    frame_from_crop = _similarity(2.5, 0.3, 100.0, 50.0)  # a face 2.5x larger, rotated, moved
    landmarks = np.zeros((68, 2))
    landmarks[align.ALIGN_POINTS] = template @ frame_from_crop[:, :2].T + frame_from_crop[:, 2]
    landmarks[:17] = rng.uniform(0, 300, size=(17, 2))  # the jaw must not matter
    matrix = align.alignment_matrix(landmarks, size, coverage=0.6)
    np.testing.assert_allclose(
        align.transform_points(landmarks[align.ALIGN_POINTS], matrix), template, atol=1e-9
    )
    full = np.vstack([matrix, [0, 0, 1]])
    np.testing.assert_allclose(align.invert_affine(matrix), np.linalg.inv(full)[:2], atol=1e-12)


@pytest.mark.todo("p1.align.umeyama")
def test_crop_and_paste_back_round_trip(align):
    yy, xx = np.mgrid[0:200, 0:240]
    frame = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=2).astype(np.uint8)  # smooth ramps
    template = align.template_points(200, coverage=0.9)
    landmarks = np.zeros((68, 2))
    landmarks[align.ALIGN_POINTS] = template * 0.5 + np.array([60.0, 40.0])
    crop, matrix, crop_landmarks = align.align_face(frame, landmarks, 64, coverage=0.6)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    back = align.warp_to_frame(crop, matrix, frame.shape)
    covered = align.warp_to_frame(np.ones((64, 64), np.float32), matrix, frame.shape) > 0.999
    assert covered.sum() > 1000
    error = np.abs(back[covered].astype(int) - frame[covered].astype(int))
    assert np.median(error) <= 2


@pytest.mark.todo("p1.align.umeyama")
def test_umeyama_on_mirrored_points_keeps_a_rotation_and_matches_skimage(align):
    """dst is a mirror image of src: the fit must stay a rotation and its scale use the sign-fixed trace."""
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 100, size=(20, 2))
    dst = src * np.array([-1.0, 1.0]) + rng.normal(0, 2.0, src.shape)
    want = SimilarityTransform.from_estimate(src, dst)
    got = align.umeyama(src, dst)
    assert np.linalg.det(got[:, :2]) > 0
    np.testing.assert_allclose(got, want.params[:2], atol=1e-9)


def test_the_template_sits_y_offset_of_the_crop_higher_to_leave_room_for_the_chin(align):
    low, high = align.template_points(100, 0.6, y_offset=0.0), align.template_points(100, 0.6, y_offset=0.05)
    np.testing.assert_allclose(high, low - [0.0, 5.0])


def test_the_template_spans_coverage_of_the_crop(align):
    whole, half = align.template_points(100, 1.0), align.template_points(100, 0.5)
    np.testing.assert_allclose(np.ptp(half, axis=0), 0.5 * np.ptp(whole, axis=0))
    align.template_points(100, 0.1)  # the smallest coverage allowed
    with pytest.raises(ValueError, match="coverage"):
        align.template_points(100, 0.09)


def test_crops_reaching_past_the_frame_repeat_its_border(align):
    frame = np.full((20, 20, 3), 100, np.uint8)
    shifted = np.array([[1.0, 0.0, 15.0], [0.0, 1.0, 15.0]])  # frame pixel (0, 0) lands at crop (15, 15)
    np.testing.assert_array_equal(align.warp_to_crop(frame, shifted, 30), np.full((30, 30, 3), 100, np.uint8))
