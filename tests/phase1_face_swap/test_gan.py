"""FaceSwap-GAN pieces: LSGAN losses on hand-made scores, the patch discriminator, the mask prior."""

from __future__ import annotations

import pytest
import torch

from common.impl import load


@pytest.fixture
def gan():
    return load("phase1_face_swap", "gan")


@pytest.mark.todo("p1.gan.adversarial")
def test_lsgan_losses_closed_form(gan):
    d_real = torch.tensor([[1.0, 0.5], [0.0, 1.0]])
    d_fake = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    loss_d, loss_g = gan.lsgan_losses(d_real, d_fake)
    # real: (0 + .25 + 1 + 0) / 4 = .3125 ; fake: (0 + .25 + 1 + 4) / 4 = 1.3125
    assert loss_d.item() == pytest.approx(0.5 * 0.3125 + 0.5 * 1.3125)
    # fake vs 1: (1 + .25 + 0 + 1) / 4 = .5625
    assert loss_g.item() == pytest.approx(0.5 * 0.5625)


@pytest.mark.todo("p1.gan.adversarial")
def test_perfect_discriminator_and_perfect_generator(gan):
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    loss_d, loss_g = gan.lsgan_losses(ones, zeros)
    assert loss_d.item() == 0 and loss_g.item() == pytest.approx(0.5)


@pytest.mark.todo("p1.gan.adversarial")
def test_discriminator_step_learns_to_separate(gan):
    torch.manual_seed(0)
    disc = gan.PatchDiscriminator((8, 16))
    optimizer = torch.optim.Adam(disc.parameters(), lr=2e-3)
    real, fake = torch.full((4, 3, 32, 32), 0.8), torch.full((4, 3, 32, 32), 0.2)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss_d, _ = gan.lsgan_losses(disc(real), disc(fake))
        loss_d.backward()
        optimizer.step()
        first = loss_d.item() if first is None else first
    assert loss_d.item() < 0.2 * first


def test_patch_discriminator_scores_patches(gan):
    assert gan.PatchDiscriminator()(torch.rand(2, 3, 64, 64)).shape == (2, 1, 8, 8)


def test_mask_regularisation_prefers_small_smooth_masks(gan):
    assert gan.mask_regularisation(torch.ones(1, 1, 16, 16), l1_weight=0.01).item() == pytest.approx(0.01)
    assert gan.mask_regularisation(torch.zeros(1, 1, 16, 16)).item() == 0
    blob = torch.zeros(1, 1, 16, 16)
    blob[..., 4:12, 4:12] = 1
    noisy = blob.flatten()[torch.randperm(256, generator=torch.Generator().manual_seed(0))].view(1, 1, 16, 16)
    assert gan.mask_regularisation(blob) < gan.mask_regularisation(noisy)  # same area, rougher edge


def test_composite_takes_the_face_where_the_mask_is_one(gan):
    face, background = torch.full((1, 3, 2, 2), 0.9), torch.full((1, 3, 2, 2), 0.1)
    mask = torch.tensor([[[[1.0, 0.0], [0.25, 0.5]]]])
    got = gan.composite(face, mask, background)
    want = torch.tensor([[0.9, 0.1], [0.3, 0.5]]).expand(1, 3, 2, 2)
    torch.testing.assert_close(got, want)


def test_patch_discriminator_sees_the_face_rescaled_to_minus_one_one(gan):
    torch.manual_seed(0)
    disc = gan.PatchDiscriminator((4, 8))
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(disc(x), disc.net(2 * x - 1))
        torch.testing.assert_close(disc(torch.full((1, 3, 16, 16), 0.5)), disc.net(torch.zeros(1, 3, 16, 16)))


def test_patch_discriminator_is_pix2pix_strided_convs_with_leaky_relu_0_2(gan):
    disc = gan.PatchDiscriminator((4, 8, 16))
    convs = [m for m in disc.net if isinstance(m, torch.nn.Conv2d)]
    slopes = [m.negative_slope for m in disc.net if isinstance(m, torch.nn.LeakyReLU)]
    assert slopes == [0.2, 0.2, 0.2]
    assert [(c.kernel_size, c.stride, c.padding) for c in convs[:3]] == [((4, 4), (2, 2), (1, 1))] * 3


def test_mask_regularisation_closed_form_on_stripes_along_each_axis(gan):
    """l1_weight * mean |m| + tv_weight * (mean |vertical diffs| + mean |horizontal diffs|)."""
    columns = torch.tensor([0.0, 1.0, 0.0, 1.0]).expand(1, 1, 4, 4)  # changes along the width only
    assert gan.mask_regularisation(columns).item() == pytest.approx(0.01 * 0.5 + 0.1 * 1.0)
    rows = columns.transpose(2, 3)  # changes along the height only
    assert gan.mask_regularisation(rows, l1_weight=0.2, tv_weight=0.5).item() == pytest.approx(0.1 + 0.5)
