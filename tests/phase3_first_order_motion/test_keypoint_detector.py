"""Keypoint detector: anti-aliasing, heatmap softmax, soft-argmax and Jacobians against closed forms."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch

from common.impl import load

PHASE = "phase3_first_order_motion"
KP_IDS = ("p3.kp.antialias", "p3.kp.heatmap_softmax", "p3.kp.gaussian2kp", "p3.kp.jacobian")


@pytest.fixture(scope="module")
def kpd():
    return load(PHASE, "keypoint_detector")


def gaussian_kernel(sigma: float, size: int) -> np.ndarray:
    taps = np.arange(size) - (size - 1) / 2
    g = np.exp(-(taps**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def test_antialias_kernel_is_the_published_constant(kpd, shared_dir):
    """The 13x13 sigma-1.5 Gaussian buffer (built in the constructor, not a TODO)."""
    down = kpd.AntiAliasInterpolation2d(3, 0.25)
    with np.load(shared_dir / "reference" / "fomm_vox256_bn_stats.npz") as z:
        published = z["kp_detector/down.weight"]
    assert tuple(down.weight.shape) == (3, 1, 13, 13)
    np.testing.assert_allclose(down.weight.numpy(), published, atol=1e-7)
    np.testing.assert_allclose(down.weight[0, 0].numpy(), gaussian_kernel(1.5, 13), atol=1e-7)


@pytest.mark.todo("p3.kp.antialias")
def test_antialias_matches_scipy_blur_and_subsample(kpd):
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    out = kpd.AntiAliasInterpolation2d(3, 0.25)(x)
    assert out.shape == (2, 3, 8, 8)
    kernel = gaussian_kernel(1.5, 13)
    blurred = scipy.ndimage.correlate(x.double().numpy(), kernel[None, None], mode="constant", cval=0.0)
    np.testing.assert_allclose(out.double().numpy(), blurred[:, :, ::4, ::4], atol=1e-6)


@pytest.mark.todo("p3.kp.heatmap_softmax")
def test_heatmap_softmax_sums_to_one_and_matches_closed_form(kpd):
    logits = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    heat = kpd.spatial_softmax(logits, 0.1)
    assert heat.shape == logits.shape
    np.testing.assert_allclose(heat.sum(dim=(2, 3)).numpy(), 1.0, atol=1e-12)
    flat = logits.numpy().reshape(2, 4, -1) / 0.1
    e = np.exp(flat - flat.max(-1, keepdims=True))
    np.testing.assert_allclose(heat.numpy().reshape(2, 4, -1), e / e.sum(-1, keepdims=True), atol=1e-12)


@pytest.mark.todo("p3.kp.heatmap_softmax")
def test_heatmap_softmax_is_stable_for_large_float32_logits(kpd):
    """At temperature 0.1 a logit of 10 is exp(100), past float32's range: exp / sum gives inf / inf = NaN."""
    logits = torch.zeros(1, 3, 3, 4)
    logits[0, 0, 1, 2] = 10.0  # one peak: exp(100) overflows
    logits[0, 1] = 20.0  # all large and equal: the uniform map
    logits[0, 2] = -20.0  # all very negative: exp(-200) underflows to 0, and 0 / 0 = NaN
    logits[0, 2, 0, 3] = -19.0
    heat = kpd.spatial_softmax(logits, 0.1)
    assert heat.shape == logits.shape and heat.dtype == torch.float32
    assert torch.isfinite(heat).all(), f"non-finite heatmap values (overflow in exp?):\n{heat}"
    flat = logits.double().numpy().reshape(1, 3, -1) / 0.1
    e = np.exp(flat - flat.max(-1, keepdims=True))
    want = e / e.sum(-1, keepdims=True)
    np.testing.assert_allclose(heat.numpy().reshape(1, 3, -1), want, rtol=0, atol=1e-6)


@pytest.mark.todo("p3.kp.gaussian2kp")
def test_soft_argmax_of_a_delta_is_its_location(kpd):
    h, w = 7, 9
    heat = torch.zeros(1, 3, h, w, dtype=torch.float64)
    spots = [(0, 0), (6, 8), (2, 5)]  # (row, col)
    for k, (r, c) in enumerate(spots):
        heat[0, k, r, c] = 1
    value = kpd.gaussian2kp(heat)
    assert value.shape == (1, 3, 2)
    want = [(2 * c / (w - 1) - 1, 2 * r / (h - 1) - 1) for r, c in spots]  # (x, y), endpoint-inclusive
    np.testing.assert_allclose(value[0].numpy(), want, atol=1e-12)


@pytest.mark.todo("p3.kp.gaussian2kp")
def test_soft_argmax_is_the_mean_of_two_deltas(kpd):
    heat = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    heat[0, 0, 0, 0] = 0.25
    heat[0, 0, 4, 4] = 0.75
    np.testing.assert_allclose(kpd.gaussian2kp(heat)[0, 0].numpy(), [0.5, 0.5], atol=1e-12)


@pytest.mark.todo("p3.kp.jacobian")
def test_jacobian_of_constant_maps_is_that_constant(kpd):
    b, k, h, w = 2, 3, 4, 5
    heat = torch.rand(b, k, h, w, dtype=torch.float64)
    heat = heat / heat.sum(dim=(2, 3), keepdim=True)
    values = torch.arange(b * k * 4, dtype=torch.float64).view(b, k * 4, 1, 1)
    jac = kpd.heatmap_jacobians(heat, values.expand(b, k * 4, h, w))
    assert jac.shape == (b, k, 2, 2)
    np.testing.assert_allclose(jac.numpy(), values.view(b, k, 2, 2).numpy(), atol=1e-12)


@pytest.mark.todo(*KP_IDS)
def test_untrained_detector_has_identity_jacobians_and_valid_keypoints(kpd):
    """The published initialisation (zero weights, bias [1, 0, 0, 1]) means 'no local deformation'."""
    torch.manual_seed(0)
    det = kpd.KPDetector(block_expansion=8, num_kp=5, max_features=32, num_blocks=3, scale_factor=0.5).eval()
    with torch.no_grad():
        out = det(torch.rand(2, 3, 64, 64))
    assert out["value"].shape == (2, 5, 2) and out["jacobian"].shape == (2, 5, 2, 2)
    assert out["value"].abs().max() <= 1
    np.testing.assert_allclose(out["jacobian"].numpy(), np.broadcast_to(np.eye(2), (2, 5, 2, 2)), atol=1e-6)
