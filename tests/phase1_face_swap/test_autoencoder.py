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


def test_config_needs_at_least_two_downscales(ae):
    """4 * 2^k px with k >= 2: 16 px is the smallest model, 8 px is refused."""
    ae.AutoencoderConfig(resolution=16, encoder_channels=(8, 8), decoder_channels=(8,))
    with pytest.raises(ValueError, match="resolution must be"):
        ae.AutoencoderConfig(resolution=8, encoder_channels=(8,), decoder_channels=())


@pytest.mark.todo("p1.ae.pixel_shuffle")
def test_each_identity_is_decoded_by_its_own_decoder(ae):
    cfg = ae.AutoencoderConfig(resolution=16, encoder_channels=(8, 8), latent_dim=8, bottleneck_channels=8,
                               decoder_channels=(8,))
    torch.manual_seed(0)
    model = ae.FaceSwapAutoencoder(cfg).eval()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        z = model.encoder(x)
        for identity in (0, 1):
            for got, want in zip(model(x, identity), model.decoders[identity](z), strict=True):
                torch.testing.assert_close(got, want)
        assert not torch.allclose(model(x, 0)[0], model(x, 1)[0])


@pytest.mark.todo("p1.ae.pixel_shuffle")
def test_upscale_blocks_leak_a_tenth_of_negative_activations(ae):
    block = ae.UpscaleBlock(1, 1)
    with torch.no_grad():
        block.conv.weight.zero_()
        block.conv.bias.fill_(-1.0)
        out = block(torch.zeros(1, 1, 2, 2))
    assert out.shape == (1, 1, 4, 4)
    torch.testing.assert_close(out, torch.full((1, 1, 4, 4), -0.1))
