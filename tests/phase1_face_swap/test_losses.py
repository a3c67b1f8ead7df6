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
