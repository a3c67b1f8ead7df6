"""Random warp: shapes kept, the identity at zero jitter, smooth displacement that grows with jitter."""

from __future__ import annotations

import cv2
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



@pytest.mark.todo("p1.aug.random_warp")
def test_the_warp_moves_pixels_along_both_axes_independently(aug):
    size = 64
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = aug.random_warp(np.stack([xx, yy], axis=-1), np.random.default_rng(2), jitter=0.04)
    inner = (slice(8, -8), slice(8, -8))  # each pixel now holds where it was read from
    dx, dy = (out[..., 0] - xx)[inner], (out[..., 1] - yy)[inner]
    assert dx.std() > 0.3 and dy.std() > 0.3
    assert abs(np.corrcoef(dx.ravel(), dy.ravel())[0, 1]) < 0.9  # not one displacement on the diagonal

@pytest.mark.parametrize("seed", [3, 4, 5])
def test_random_affine_applies_the_same_transform_to_every_image(aug, seed):
    """Two coordinate maps ride along with a face and its mask: after the call they say, for every output
    pixel, where it was read from. That map must be one affine transform (not the identity), and the face
    and the mask, unlike each other and the maps, must have been read through it too."""
    size = 64
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    face = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 3)).astype(np.float32), (0, 0), 3)
    face = (face - face.min()) / np.ptp(face) * 255  # smooth content, so interpolation is nearly exact
    mask = ((xx - 24) ** 2 + (yy - 36) ** 2 < 15**2).astype(np.float32)[..., None]  # off-centre disc
    out_x, out_y, out_face, out_mask = aug.random_affine([xx, yy, face, mask], rng, aug.AugmentConfig())
    assert out_face.shape == face.shape and out_mask.shape == (size, size, 1)
    inside = (out_x >= 1) & (out_x <= size - 2) & (out_y >= 1) & (out_y <= size - 2)  # no border fill
    assert inside.mean() > 0.5
    moved = np.hypot(out_x - xx, out_y - yy)[inside]
    assert moved.max() > 1.0  # not the identity
    rows, cols = np.nonzero(inside)
    design = np.stack([cols, rows, np.ones_like(cols)], axis=1).astype(np.float64)
    source = np.stack([out_x[inside], out_y[inside]], axis=1)
    fit, *_ = np.linalg.lstsq(design, source, rcond=None)
    assert np.abs(design @ fit - source).max() < 0.1  # one affine map for the whole image
    for image, out in ((face, out_face), (mask, out_mask)):
        expected = cv2.remap(image, out_x, out_y, cv2.INTER_LINEAR).reshape(image.shape)
        np.testing.assert_allclose(out[inside], expected[inside], rtol=0, atol=0.02 * np.ptp(image))


def test_random_affine_shift_is_a_share_of_the_image_size(aug):
    """rotation, zoom and flip off: the maps move by one translation of at most shift * size pixels."""
    size = 64
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cfg = aug.AugmentConfig(rotation_deg=0.0, zoom=0.0, shift=0.25, flip_prob=0.0)
    moves = []
    for seed in range(5):
        out_x, out_y = aug.random_affine([xx, yy], np.random.default_rng(seed), cfg)
        inner = (slice(20, 44), slice(20, 44))
        dx, dy = (xx - out_x)[inner], (yy - out_y)[inner]  # content moved by +t: out(p) = in(p - t)
        assert np.ptp(dx) < 1e-3 and np.ptp(dy) < 1e-3  # one translation
        moves.append(max(abs(dx.mean()), abs(dy.mean())))
    assert max(moves) > 4.0 and max(moves) <= 0.25 * size


def test_random_affine_flip_is_horizontal(aug):
    size = 16
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cfg = aug.AugmentConfig(rotation_deg=0.0, zoom=0.0, shift=0.0, flip_prob=1.0)
    out_x, out_y = aug.random_affine([xx, yy], np.random.default_rng(0), cfg)
    np.testing.assert_allclose(out_x, size - 1 - xx, atol=1e-4)  # mirrored left-right
    np.testing.assert_allclose(out_y, yy, atol=1e-4)  # rows stay


@pytest.mark.todo("p1.aug.random_warp")
def test_random_warp_displacement_is_the_bicubic_upsampled_control_noise(aug):
    """The hint's recipe, computed here: noise (grid, grid, 2) ~ N(0, (jitter S)^2) drawn first from rng,
    each channel resized bicubically to (S, S); a coordinate map then reads back that displacement."""
    size, jitter = 32, 0.05
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    out = aug.random_warp(np.stack([xx, yy], axis=-1), np.random.default_rng(7), jitter=jitter)
    noise = np.random.default_rng(7).normal(0.0, jitter * size, size=(5, 5, 2)).astype(np.float32)
    dx = cv2.resize(noise[..., 0], (size, size), interpolation=cv2.INTER_CUBIC)
    dy = cv2.resize(noise[..., 1], (size, size), interpolation=cv2.INTER_CUBIC)
    inner = (xx + dx >= 0) & (xx + dx <= size - 1) & (yy + dy >= 0) & (yy + dy <= size - 1)
    assert inner.mean() > 0.5
    # cv2.remap interpolates in steps of 1/32 pixel
    np.testing.assert_allclose(out[..., 0][inner], (xx + dx)[inner], atol=0.02)
    np.testing.assert_allclose(out[..., 1][inner], (yy + dy)[inner], atol=0.02)
