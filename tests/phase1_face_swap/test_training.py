"""FaceSwapTrainer.step: both identities' losses, the discriminators, and fp16 loss scaling."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from common.impl import load

PHASE = "phase1_face_swap"


def _batch(size: int, seed: int) -> dict:
    """One identity's batch in `make_batch`'s layout: faces (B, 3, S, S), weight and hull (B, 1, S, S)."""
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 3, size, size, generator=g)
    warped = (target + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    hull = (torch.rand(2, 1, size, size, generator=g) > 0.5).float()
    return {"warped": warped, "target": target, "weight": torch.ones(2, 1, size, size), "hull": hull}


@pytest.mark.todo("p1")
def test_fp16_loss_scaling_wraps_the_autoencoder_and_discriminator_steps(forced_fp16_scaler):
    training, autoencoder = load(PHASE, "training"), load(PHASE, "autoencoder")
    cfg = autoencoder.AutoencoderConfig(resolution=32, encoder_channels=(8, 16, 32), latent_dim=32,
                                        bottleneck_channels=16, decoder_channels=(16, 8))
    batch = (_batch(32, 0), _batch(32, 1))
    trained = {}
    for scaled in (False, True):
        scaler = forced_fp16_scaler(training) if scaled else None
        torch.manual_seed(0)
        model = autoencoder.FaceSwapAutoencoder(cfg)
        trainer = training.FaceSwapTrainer(model, torch.device("cpu"), gan=True)
        trainer.step(batch)
        trained[scaled] = trainer
    assert dict(scaler.calls) == {"scale": 2, "step": 2, "update": 1}  # generators, then discriminators
    assert "scaler" in trained[True].stateful() and "scaler" not in trained[False].stateful()
    for name in ("model", "discriminators"):
        plain, scaled = (trained[s].stateful()[name].state_dict() for s in (False, True))
        for key, value in plain.items():
            torch.testing.assert_close(scaled[key], value, rtol=1e-4, atol=1e-6)


def _trainer(gan: bool):
    """A 32-px FaceSwapTrainer on the CPU, seeded."""
    training, autoencoder = load(PHASE, "training"), load(PHASE, "autoencoder")
    cfg = autoencoder.AutoencoderConfig(resolution=32, encoder_channels=(8, 16, 32), latent_dim=32,
                                        bottleneck_channels=16, decoder_channels=(16, 8))
    torch.manual_seed(0)
    return training.FaceSwapTrainer(autoencoder.FaceSwapAutoencoder(cfg), torch.device("cpu"), gan=gan)


@pytest.mark.todo("p1")
def test_the_gan_step_reports_the_lsgan_discriminator_loss_with_real_faces_as_real():
    gan = load(PHASE, "gan")
    trainer = _trainer(gan=True)
    batch = (_batch(32, 0), _batch(32, 1))
    before = copy.deepcopy(trainer)
    metrics = trainer.step(batch)
    before.model.train()
    want = 0.0
    with torch.no_grad():
        for identity, part in enumerate(batch):
            face, mask = before.model(part["warped"], identity)  # what the step's generator made
            fake = gan.composite(face, mask, part["warped"])
            disc = before.discriminators[identity]
            want += gan.lsgan_losses(disc(part["target"]), disc(fake))[0].item()  # (real, fake)
    assert metrics["loss_d"] == pytest.approx(want, rel=1e-4)


@pytest.mark.todo("p1")
def test_the_mask_loss_is_the_mse_to_the_landmark_hull():
    trainer = _trainer(gan=False)
    part = _batch(32, 0)
    _, metrics, _ = trainer._generator_loss(0, part)
    with torch.no_grad():
        _, mask = trainer.model(part["warped"], 0)
    assert metrics["mask"] == pytest.approx(F.mse_loss(mask, part["hull"]).item(), rel=1e-5)
