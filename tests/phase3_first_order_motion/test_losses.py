"""Training losses: perceptual pyramid, equivariance under a known transform, LSGAN + feature matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.impl import load

PHASE = "phase3_first_order_motion"


@pytest.fixture(scope="module")
def losses():
    return load(PHASE, "losses")


@pytest.mark.todo("p3.loss.perceptual_pyramid", "p3.kp.antialias")
def test_perceptual_pyramid_pixel_fallback_closed_form(losses):
    a = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    b = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    loss = losses.PerceptualPyramidLoss(scales=(1,), use_vgg=False)
    assert float(loss(a, a)) == 0
    np.testing.assert_allclose(float(loss(a, b)), 50 * np.abs(a.numpy() - b.numpy()).mean(), rtol=1e-12)
    full = losses.PerceptualPyramidLoss(use_vgg=False)
    assert float(full(a, a)) == 0 and float(full(a, b)) > float(loss(a, b))


@pytest.mark.todo("p3.loss.perceptual_pyramid", "p3.kp.antialias")
def test_perceptual_pyramid_with_vgg_features(losses):
    """Random VGG19 weights (ImageNet weights are never downloaded): zero only for equal images."""
    loss = losses.PerceptualPyramidLoss(scales=(1,), use_vgg=True)
    assert loss.vgg is not None
    a = torch.rand(1, 3, 16, 16)
    assert float(loss(a, a)) == 0
    assert float(loss(a, a.flip(-1))) > 0


def test_tps_jacobian_matches_finite_differences(losses):
    torch.manual_seed(0)
    tps = losses.RandomTPS(2, losses.TPSParams(sigma_affine=0.1, sigma_tps=0.05), dtype=torch.float64)
    pts = torch.rand(2, 3, 2, dtype=torch.float64) * 1.6 - 0.8
    jac = tps.jacobian(pts)
    eps = 1e-6
    for j in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[j] = eps
        fd = (tps.warp_coordinates(pts + step) - tps.warp_coordinates(pts - step)) / (2 * eps)
        np.testing.assert_allclose(jac[..., :, j].detach().numpy(), fd.numpy(), atol=1e-6)


@pytest.mark.todo("p3.loss.equivariance", "p3.motion.jacobian_inverse")
def test_equivariance_zero_for_exact_transform(losses):
    """Y(z) = A z + t; an exactly equivariant detector finds p^{Y(D)} = Y^-1(p^D), J^{Y(D)} = A^-1 J^D."""
    g = torch.Generator().manual_seed(1)
    theta = torch.tensor([[[1.1, 0.2, 0.05], [-0.1, 0.9, -0.1]]], dtype=torch.float64).repeat(2, 1, 1)
    transform = losses.RandomTPS.affine(theta)
    kp_d = {"value": torch.rand(2, 5, 2, generator=g, dtype=torch.float64) - 0.5,
            "jacobian": torch.eye(2, dtype=torch.float64) + 0.2 * torch.randn(2, 5, 2, 2, generator=g,
                                                                              dtype=torch.float64)}
    a_inv = np.linalg.inv(theta[0, :, :2].numpy())
    value_t = (kp_d["value"].numpy() - theta[0, :, 2].numpy()) @ a_inv.T
    jac_t = torch.from_numpy(a_inv @ kp_d["jacobian"].numpy())
    kp_t = {"value": torch.from_numpy(value_t), "jacobian": jac_t}
    out = losses.equivariance_loss(kp_d, kp_t, transform)
    assert float(out["value"]) < 1e-12 and float(out["jacobian"].detach()) < 1e-12
    moved = {"value": kp_t["value"] + 0.1, "jacobian": kp_t["jacobian"]}
    wrong = losses.equivariance_loss(kp_d, moved, transform)
    assert float(wrong["value"]) > 0.05


@pytest.mark.todo("p3.loss.gan")
def test_gan_losses_closed_form(losses):
    real = {"prediction_map_1": torch.full((2, 1, 3, 3), 0.5), "feature_maps_1": [torch.ones(2, 2, 4, 4)]}
    fake = {"prediction_map_1": torch.full((2, 1, 3, 3), 0.25), "feature_maps_1": [torch.zeros(2, 2, 4, 4)]}
    out = losses.gan_losses(real, fake, [1])
    np.testing.assert_allclose(float(out["generator_gan"]), 0.75**2)
    np.testing.assert_allclose(float(out["discriminator"]), 0.5**2 + 0.25**2)
    np.testing.assert_allclose(float(out["feature_matching"]), 1.0)


@pytest.mark.todo("p3.loss.equivariance", "p3.motion.jacobian_inverse")
def test_equivariance_with_a_thin_plate_spline_is_zero_when_exact_and_eq_13_otherwise(losses):
    g = torch.Generator().manual_seed(2)
    f64 = torch.float64
    tps = losses.RandomTPS(2, losses.TPSParams(sigma_affine=0.1, sigma_tps=0.5), generator=g, dtype=f64)
    kp_t = {"value": torch.rand(2, 5, 2, generator=g, dtype=f64) - 0.5,
            "jacobian": torch.eye(2, dtype=f64) + 0.2 * torch.randn(2, 5, 2, 2, generator=g, dtype=f64)}
    dy = tps.jacobian(kp_t["value"]).detach()  # dY/dz at the transformed frame's keypoints: not constant
    kp_d = {"value": tps.warp_coordinates(kp_t["value"]).detach(), "jacobian": dy @ kp_t["jacobian"]}
    out = losses.equivariance_loss(kp_d, kp_t, tps)
    assert float(out["value"]) < 1e-12 and float(out["jacobian"].detach()) < 1e-10
    off = torch.tensor([[1.2, 0.1], [0.0, 0.9]], dtype=f64)
    other = {"value": kp_d["value"], "jacobian": kp_d["jacobian"] @ off}
    want = np.abs(np.eye(2) - np.linalg.inv(other["jacobian"].numpy()) @ kp_d["jacobian"].numpy()).mean()
    got = float(losses.equivariance_loss(other, kp_t, tps)["jacobian"].detach())
    np.testing.assert_allclose(got, want, rtol=1e-9)  # eq. 13: |1 - J_D^-1 (dY/dz) J_Y(D)|


@pytest.mark.todo("p3.loss.gan")
def test_feature_matching_sends_no_gradient_into_the_real_features(losses):
    real_fm = torch.rand(1, 2, 4, 4, requires_grad=True)
    fake_fm = torch.rand(1, 2, 4, 4, requires_grad=True)
    real = {"prediction_map_1": torch.rand(1, 1, 4, 4), "feature_maps_1": [real_fm]}
    fake = {"prediction_map_1": torch.rand(1, 1, 4, 4), "feature_maps_1": [fake_fm]}
    out = losses.gan_losses(real, fake, [1])
    torch.testing.assert_close(out["feature_matching"], (real_fm - fake_fm).abs().mean())
    out["feature_matching"].backward()
    assert fake_fm.grad is not None and real_fm.grad is None


@pytest.mark.todo("p3.loss.perceptual_pyramid", "p3.kp.antialias")
def test_perceptual_pyramid_weights_each_vgg_layer_of_the_normalised_image(losses):
    """sum_l w_l |phi_l(a) - phi_l(b)|_1 with phi_l = relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of
    torchvision's VGG19 (layers 1, 6, 11, 20, 29 of `features`) on the ImageNet-normalised image; here
    torchvision's own network, given the loss's random weights."""
    from torchvision.models import vgg19

    torch.manual_seed(0)
    weights = (1.0, 2.0, 3.0, 4.0, 5.0)
    loss = losses.PerceptualPyramidLoss(scales=(1,), weights=weights, use_vgg=True)
    features = vgg19(weights=None).features.eval()
    with torch.no_grad():
        for mine, theirs in zip(loss.vgg.parameters(), features[:30].parameters(), strict=True):
            theirs.copy_(mine)
        a, b = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        xa, xb, distances = (a - mean) / std, (b - mean) / std, []
        for index, layer in enumerate(features[:30]):
            xa, xb = layer(xa), layer(xb)
            if index in (1, 6, 11, 20, 29):
                distances.append(float((xa - xb).abs().mean()))
        got = float(loss(a, b))
        last = losses.PerceptualPyramidLoss(scales=(1,), weights=(0, 0, 0, 0, 1), use_vgg=True)
        last.load_state_dict(loss.state_dict())
        got_last = float(last(a, b))  # relu5_1 alone (its distances are far smaller than the others)
    assert got == pytest.approx(sum(w * d for w, d in zip(weights, distances, strict=True)), rel=1e-5)
    assert got_last == pytest.approx(distances[-1], rel=1e-3)


@pytest.mark.todo("p3.loss.perceptual_pyramid", "p3.kp.antialias")
def test_perceptual_pyramid_sends_no_gradient_into_the_target(losses):
    """The driving frame is the target: its pyramid is detached, only the prediction gets a gradient."""
    pred = torch.rand(1, 3, 16, 16, requires_grad=True)
    target = torch.rand(1, 3, 16, 16, requires_grad=True)
    losses.PerceptualPyramidLoss(scales=(1, 0.5), use_vgg=False)(pred, target).backward()
    assert target.grad is None
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_perceptual_pyramid_says_once_per_process_that_vgg_weights_are_missing(losses, monkeypatch, capsys):
    monkeypatch.setattr(losses, "cached_vgg19_path", lambda: None)
    monkeypatch.setattr(losses, "_warned_no_vgg", False)
    first, second = losses.PerceptualPyramidLoss(), losses.PerceptualPyramidLoss()
    assert first.vgg is None and second.vgg is None
    err = capsys.readouterr().err
    assert err.count("no VGG19 ImageNet weights") == 1 and "nothing is downloaded" in err
