"""Random warp: shapes kept, the identity at zero jitter, smooth displacement that grows with jitter."""

from __future__ import annotations

import numpy as np
import pytest

from common.impl import load


@pytest.fixture
def aug():
    return load("phase1_face_swap", "augment")


def _ramp(size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return np.stack([xx * 255 // size, yy * 255 // size, (xx + yy) * 127 // size], axis=2).astype(np.uint8)


@pytest.mark.todo("p1.aug.random_warp")
def test_zero_jitter_is_the_identity(aug):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(aug.random_warp(image, rng, jitter=0.0), image)


@pytest.mark.todo("p1.aug.random_warp")
@pytest.mark.parametrize(
    "shape,dtype", [((64, 64, 3), np.uint8), ((32, 32, 1), np.float32), ((128, 128, 3), np.float32)]
)
def test_shapes_and_dtypes_are_kept(aug, shape, dtype):
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, size=shape).astype(dtype)
    out = aug.random_warp(image, rng, jitter=0.03)
    assert out.shape == shape and out.dtype == dtype


@pytest.mark.todo("p1.aug.random_warp")
def test_displacement_scales_with_jitter_and_image_size(aug):
    # On a linear ramp, the value change is proportional to the displacement: measure it.
    for size in (64, 128):
        ramp = _ramp(size)[..., :1].astype(np.float32) * size / 255  # value = x coordinate in pixels
        shifts = {}
        for jitter in (0.01, 0.04):
            rng = np.random.default_rng(2)
            warped = aug.random_warp(ramp, rng, jitter=jitter)
            shifts[jitter] = np.abs(warped - ramp)[size // 8 : -size // 8, size // 8 : -size // 8].mean()
        assert shifts[0.04] > 2.5 * shifts[0.01]
        assert 0.1 * 0.04 * size < shifts[0.04] < 2.0 * 0.04 * size  # jitter is a share of the size


def test_random_affine_applies_the_same_transform_to_every_image(aug):
    rng = np.random.default_rng(3)
    image = _ramp(64)
    copy = image.copy()
    mask = np.ones((64, 64, 1), np.float32)
    out_a, out_b, out_mask = aug.random_affine([image, copy, mask], rng, aug.AugmentConfig())
    np.testing.assert_array_equal(out_a, out_b)
    assert out_mask.shape == (64, 64, 1)
