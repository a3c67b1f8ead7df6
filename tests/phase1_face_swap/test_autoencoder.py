"""The autoencoder: pixel shuffle against torch, shapes of both presets, overfitting a tiny batch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.impl import load


@pytest.fixture
def ae():
    return load("phase1_face_swap", "autoencoder")


@pytest.mark.todo("p1.ae.pixel_shuffle")
@pytest.mark.parametrize("factor", [2, 3])
def test_pixel_shuffle_equals_torch(ae, factor):
    x = torch.randn(2, 3 * factor * factor, 5, 7)
    torch.testing.assert_close(ae.pixel_shuffle(x, factor), F.pixel_shuffle(x, factor), rtol=0, atol=0)


@pytest.mark.todo("p1.ae.pixel_shuffle")
@pytest.mark.parametrize("preset", ["cpu64", "gpu128"])
def test_presets_produce_faces_and_masks(ae, preset):
    cfg = ae.PRESETS[preset]
    model = ae.FaceSwapAutoencoder(cfg)
    x = torch.rand(1, 3, cfg.resolution, cfg.resolution)
    with torch.no_grad():
        for identity in (0, 1):
            face, mask = model(x, identity)
            assert face.shape == (1, 3, cfg.resolution, cfg.resolution)
            assert mask.shape == (1, 1, cfg.resolution, cfg.resolution)
            assert 0 <= face.min() and face.max() <= 1 and 0 <= mask.min() and mask.max() <= 1


def test_config_rejects_impossible_resolutions(ae):
    with pytest.raises(ValueError):
        ae.AutoencoderConfig(resolution=48)
    with pytest.raises(ValueError):
        ae.AutoencoderConfig(resolution=128)  # the 64 px channel lists do not fit 128 px


@pytest.mark.todo("p1.ae.pixel_shuffle")
def test_overfits_a_tiny_batch(ae):
    torch.manual_seed(0)
    cfg = ae.AutoencoderConfig(
        resolution=16,
        encoder_channels=(16, 32),
        latent_dim=32,
        bottleneck_channels=32,
        decoder_channels=(16,),
    )
    model = ae.FaceSwapAutoencoder(cfg)
    faces = [torch.rand(2, 3, 16, 16).mul(0.5).add(0.25) for _ in range(2)]  # two "identities"
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return sum(F.l1_loss(model(x, i)[0], x) for i, x in enumerate(faces))

    start = loss().item()
    for _ in range(150):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    assert value.item() < 0.3 * start
