"""FaceSwapTrainer.step: both identities' losses, the discriminators, and fp16 loss scaling."""

from __future__ import annotations

import pytest
import torch

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
