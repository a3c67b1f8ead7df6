"""Metrics against closed forms and independent libraries (scikit-image, dlib itself)."""

from __future__ import annotations

import math

import dlib
import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from common import dlib_models, metrics


def _skimage_ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 channel_axis=-1, data_range=data_range)


def _smooth_texture(rng: np.random.Generator, height: int = 64, width: int = 80) -> np.ndarray:
    """(H, W, 3) uint8 texture with structure at a few pixels' scale (optical flow can track it)."""
    tex = gaussian_filter(rng.random((height, width, 3)), sigma=(3, 3, 0))
    tex = (tex - tex.min()) / (tex.max() - tex.min())
    return (tex * 255).astype(np.uint8)


def test_psnr_of_known_mse():
    a = np.full((8, 9, 3), 100, dtype=np.uint8)
    b = a + np.uint8(5)  # MSE = 25
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / 25))
    assert metrics.psnr(a / 255.0, b / 255.0) == pytest.approx(10 * math.log10(255**2 / 25))
    assert metrics.psnr(a, a) == math.inf


def test_psnr_batch_matches_skimage():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (3, 16, 12, 3), dtype=np.uint8)
    got = metrics.psnr(a, b)
    assert got.shape == (3,)
    np.testing.assert_allclose(got, [peak_signal_noise_ratio(a[i], b[i]) for i in range(3)], rtol=1e-12)


def test_ssim_matches_skimage_uint8_and_float_batch():
    rng = np.random.default_rng(1)
    a = _smooth_texture(rng, 48, 56)
    b = np.clip(a + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    assert abs(metrics.ssim(a, b) - _skimage_ssim(a, b, 255)) < 1e-4
    x = rng.random((2, 24, 30, 3))
    y = np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)
    got = metrics.ssim(x, y)
    assert got.shape == (2,)
    np.testing.assert_allclose(got, [_skimage_ssim(x[i], y[i], 1.0) for i in range(2)], atol=1e-4)
    assert metrics.ssim(a, a) == pytest.approx(1.0)


def test_nme_of_known_shift():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 100, (2, 68, 2))
    gt[:, 36] = (30.0, 50.0)
    gt[:, 45] = (70.0, 50.0)  # inter-ocular distance 40
    pred = gt + np.array([3.0, 4.0])  # every point off by 5 px
    np.testing.assert_allclose(metrics.landmark_nme(pred, gt), [5 / 40, 5 / 40])
    assert metrics.landmark_nme(gt[0], gt[0]) == 0.0


def test_warping_error_static_shift_and_noise():
    rng = np.random.default_rng(3)
    image = _smooth_texture(rng)
    static = np.stack([image] * 3)
    assert metrics.warping_error(static) < 1e-3
    moving = np.stack([np.roll(image, 2 * t, axis=1) for t in range(3)])  # 2 px pan per frame
    naive = np.abs(np.diff(moving.astype(np.float64) / 255, axis=0)).mean()
    assert metrics.warping_error(moving) < 0.1 * naive  # the flow explains the motion
    noise = rng.integers(0, 256, (3, 64, 80, 3), dtype=np.uint8)
    assert metrics.warping_error(noise) > 0.1


def test_identity_distance_equals_dlib_descriptors():
    rng = np.random.default_rng(4)
    a = _smooth_texture(rng, 120, 120)
    b = _smooth_texture(rng, 120, 120)
    box = (20, 20, 100, 100)
    # Expected values straight from dlib's own API.
    predictor = dlib.shape_predictor(str(dlib_models.model_path(dlib_models.SHAPE_5)))
    net = dlib.face_recognition_model_v1(str(dlib_models.model_path(dlib_models.DESCRIPTOR)))
    rect = dlib.rectangle(*box)
    desc = [np.array(net.compute_face_descriptor(img, predictor(img, rect))) for img in (a, b)]
    expected = np.linalg.norm(desc[0] - desc[1])
    assert metrics.identity_distance(a, b, box, box) == pytest.approx(expected, abs=1e-6)
    assert metrics.identity_distance(a, a, box, box) == 0.0
    blank = np.zeros((60, 60, 3), dtype=np.uint8)
    assert math.isnan(metrics.identity_distance(blank, a, None, box))  # no face found


def test_landmark_nme_divides_by_the_ground_truths_eye_distance():
    gt = np.zeros((68, 2))
    gt[45] = (10.0, 0.0)  # outer eye corners 36 (at 0, 0) and 45: 10 px apart
    pred = gt.copy()
    pred[45] = (20.0, 0.0)  # one point 10 px off, which also doubles the predicted eye distance
    assert metrics.landmark_nme(pred, gt) == pytest.approx(10 / 68 / 10)
