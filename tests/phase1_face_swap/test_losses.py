"""Losses: SSIM against scikit-image, the masked loss against plain means, the face weight map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import structural_similarity

from common.impl import load


@pytest.fixture
def losses():
    return load("phase1_face_swap", "losses")


@pytest.mark.todo("p1.loss.ssim")
def test_ssim_matches_skimage(losses):
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, size=(40, 48, 3))
    b = np.clip(a + rng.normal(0, 0.1, size=a.shape), 0, 1)
    # skimage averages the map over the interior only (it crops (win - 1) / 2 px): same as 'valid' windows.
    expected = structural_similarity(
        a, b, channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    to_t = lambda x: torch.from_numpy(x).permute(2, 0, 1)[None]  # noqa: E731
    got = losses.ssim(to_t(a), to_t(b))
    assert got.shape == (1,)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert losses.ssim(to_t(a), to_t(a)).item() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.todo("p1.loss.masked")
def test_masked_loss_with_unit_weights_is_the_plain_loss(losses):
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    ones = torch.ones(2, 1, 8, 8)
    assert losses.masked_loss(pred, target, ones, "l1").item() == pytest.approx(
        F.l1_loss(pred, target).item()
    )
    assert losses.masked_loss(pred, target, ones, "mse").item() == pytest.approx(
        F.mse_loss(pred, target).item()
    )


@pytest.mark.todo("p1.loss.masked")
def test_masked_loss_ignores_zero_weight_and_weights_pixels(losses):
    torch.manual_seed(1)
    pred, target = torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6)
    weight = torch.zeros(1, 1, 6, 6)
    weight[..., :3, :] = 1.0
    weight[..., 0, 0] = 4.0
    err = (pred - target).abs().numpy()[0]  # (3, 6, 6)
    w = weight.numpy()[0, 0]
    expected = (err * w).sum() / (w.sum() * 3)
    assert losses.masked_loss(pred, target, weight).item() == pytest.approx(float(expected), rel=1e-6)
    pred_changed = pred.clone()
    pred_changed[..., 3:, :] = 0.0  # where weight is 0
    assert losses.masked_loss(pred_changed, target, weight).item() == pytest.approx(float(expected), rel=1e-6)


def test_face_weight_map_upweights_eyes_and_mouth(losses):
    from common.synthetic.clip import render_clip
    from common.synthetic.identity import make_identity

    align = load("phase1_face_swap", "alignment")
    clip = render_clip(make_identity(3), 1, 128, speech=False)
    lm = clip.landmarks[0]
    weight = losses.face_weight_map(lm, 128, eye_mouth_weight=3.0)
    assert weight[0, 0] == 0  # background
    eye = np.round(lm[align.RIGHT_EYE].mean(axis=0)).astype(int)
    mouth = np.round(lm[align.MOUTH].mean(axis=0)).astype(int)
    cheek = np.round(lm[[2, 31]].mean(axis=0)).astype(int)
    assert weight[eye[1], eye[0]] == 3.0 and weight[mouth[1], mouth[0]] == 3.0
    assert weight[cheek[1], cheek[0]] == 1.0


@pytest.mark.todo("p1.loss.masked")
def test_masked_loss_of_an_empty_mask_is_zero_not_nan(losses):
    pred, target = torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4)
    assert losses.masked_loss(pred, target, torch.zeros(1, 1, 4, 4)).item() == 0.0


def test_face_weight_map_upweights_both_eyes_and_a_rim_around_eyes_and_mouth(losses):
    """The left eye too, and pixels 3 px beyond the eye and mouth landmarks (the lids and lips: at 128 px
    the hulls grow by 4 px)."""
    from common.synthetic.clip import render_clip
    from common.synthetic.identity import make_identity

    align = load("phase1_face_swap", "alignment")
    lm = render_clip(make_identity(3), 1, 128, speech=False).landmarks[0]
    weight = losses.face_weight_map(lm, 128, eye_mouth_weight=3.0)
    left = np.round(lm[align.LEFT_EYE].mean(axis=0)).astype(int)
    assert weight[left[1], left[0]] == 3.0
    eye, mouth = np.round(lm[align.RIGHT_EYE]).astype(int), np.round(lm[align.MOUTH]).astype(int)
    top, bottom = eye[eye[:, 1].argmin()], mouth[mouth[:, 1].argmax()]
    assert weight[top[1] - 3, top[0]] == 3.0 and weight[bottom[1] + 3, bottom[0]] == 3.0


@pytest.mark.todo("p1.loss.ssim", "p1.loss.masked")
def test_reconstruction_loss_is_the_masked_loss_plus_weighted_ssim_of_the_face_only(losses):
    torch.manual_seed(2)
    pred, target = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    weight = torch.zeros(2, 1, 16, 16)
    weight[..., 2:14, 3:13] = 1.0
    face = (weight > 0).float()
    structural = 1 - losses.ssim(pred * face, target * face).mean()
    plain = losses.masked_loss(pred, target, weight)
    without_ssim = losses.reconstruction_loss(pred, target, weight, ssim_weight=0.0)
    assert without_ssim.item() == pytest.approx(plain.item())
    got = losses.reconstruction_loss(pred, target, weight, ssim_weight=2.0)
    assert got.item() == pytest.approx((plain + 2.0 * structural).item(), rel=1e-6)
    background = torch.where(weight > 0, pred, torch.rand(2, 3, 16, 16))  # other pixels off the face
    assert losses.reconstruction_loss(background, target, weight, ssim_weight=2.0).item() == pytest.approx(
        got.item(), rel=1e-6)
