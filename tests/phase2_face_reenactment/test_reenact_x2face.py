"""X2Face: an untrained model copies its input; short self-supervised training pulls its field to identity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from common.impl import load


@pytest.fixture
def x2f():
    return load("phase2_face_reenactment", "x2face")


def _small(x2f):
    return x2f.X2FaceConfig(size=32, channels=(8, 16, 32), driving_dim=32)


def _pixel_centres(size: int) -> torch.Tensor:
    """grid_sample's align_corners=False positions of pixel centres: (2 i + 1) / S - 1, as (x, y)."""
    c = (2 * np.arange(size) + 1) / size - 1
    xs, ys = np.meshgrid(c, c)
    return torch.tensor(np.stack([xs, ys], axis=-1), dtype=torch.float32)  # (S, S, 2)


def _textured(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    noise = np.random.default_rng(seed).uniform(size=(batch, 3, size, size))
    img = gaussian_filter(noise, sigma=(0, 0, 1.5, 1.5))
    return torch.tensor((img - img.min()) / (img.max() - img.min()), dtype=torch.float32)


@pytest.mark.todo("p2.x2f.embed", "p2.x2f.drive")
def test_an_untrained_model_copies_its_input(x2f):
    torch.manual_seed(0)
    model = x2f.X2Face(_small(x2f)).eval()
    source, driving = _textured(3, 32, 1), _textured(3, 32, 2)
    with torch.no_grad():
        out = model(source, driving)
    assert out["generated"].shape == (3, 3, 32, 32) and out["field"].shape == (3, 32, 32, 2)
    centres = _pixel_centres(32).expand(3, -1, -1, -1).numpy()
    np.testing.assert_allclose(out["embed"].numpy(), centres, atol=1e-6)
    np.testing.assert_allclose(out["drive"].numpy(), centres, atol=1e-6)
    np.testing.assert_allclose(out["generated"].numpy(), source.numpy(), atol=1e-5)


@pytest.mark.todo("p2.x2f.embed", "p2.x2f.drive")
def test_field_of_identical_frames_becomes_the_identity_after_short_training(x2f):
    torch.manual_seed(0)
    model = x2f.X2Face(_small(x2f))
    for head in (model.embedding.head, model.driving.head):  # start away from the identity on purpose
        torch.nn.init.normal_(head.weight, std=0.3)
    frames = _textured(2, 32)
    identity = _pixel_centres(32)

    def field_error_px() -> float:
        with torch.no_grad():
            field = model(frames, frames)["field"]
        return float((field - identity).abs().mean() * 16)  # [-1, 1] units -> pixels of a 32 px image

    before = field_error_px()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    losses = []
    for _ in range(100):
        loss = x2f.reconstruction_loss(model, frames, frames)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert before > 2.0
    assert field_error_px() < 0.4 * before
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.todo("p2.x2f.embed", "p2.x2f.drive")
def test_the_source_is_embedded_and_the_driving_frame_drives(x2f):
    torch.manual_seed(0)
    model = x2f.X2Face(_small(x2f)).eval()
    for head in (model.embedding.head, model.driving.head):  # fields away from the identity
        torch.nn.init.normal_(head.weight, std=0.3)
    source, driving = _textured(2, 32, 1), _textured(2, 32, 2)
    with torch.no_grad():
        out = model(source, driving)
        embed, canonical = model.embedding(source)
        drive = model.driving(driving)
        assert not torch.allclose(drive, model.driving(source))
    torch.testing.assert_close(out["embed"], embed)
    torch.testing.assert_close(out["canonical"], canonical)
    torch.testing.assert_close(out["drive"], drive)


@pytest.mark.todo("p2.x2f.embed", "p2.x2f.drive")
def test_the_reconstruction_loss_is_the_l1_distance_to_the_driving_frame(x2f):
    torch.manual_seed(0)
    model = x2f.X2Face(_small(x2f)).eval()  # untrained: it generates the source
    source, driving = _textured(2, 32, 1), _textured(2, 32, 2)
    with torch.no_grad():
        losses = x2f.reconstruction_loss(model, source, driving)
    expected = float((source - driving).abs().mean())
    assert float(losses["loss"]) == pytest.approx(expected, abs=1e-4)
    assert float(losses["l1"]) == float(losses["loss"])
