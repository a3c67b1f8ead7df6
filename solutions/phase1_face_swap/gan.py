"""The FaceSwap-GAN variant: a patch discriminator, an adversarial loss and mask regularisation.

Autoencoders trained with L1/SSIM alone produce blurry faces: the average of all plausible answers
minimises a per-pixel error. FaceSwap-GAN (shaoanlu, 2018) adds, on top of the same autoencoder:

* a **patch discriminator** (Isola et al. 2017, pix2pix): a small CNN whose output is a grid of
  real/fake scores, each judging one patch of the face. It punishes blur and texture errors locally;
* the **least-squares GAN loss** (Mao et al. 2017, LSGAN, eq. 2):
      L_D = 1/2 E[(D(y) - 1)^2] + 1/2 E[D(G(x))^2],      L_G = 1/2 E[(D(G(x)) - 1)^2]
  which gives smoother gradients than the original log loss;
* a **composited output with a learned mask**: the generator's face is pasted onto its (warped) input
  with its own mask, `y_hat = m * face + (1 - m) * input`, and the mask is **regularised**
  (its mean pushed down, its total variation penalised) so it covers the face and little else.

Select it with `train.py --gan`.
"""

from __future__ import annotations

import torch
from torch import nn


class PatchDiscriminator(nn.Module):
    """(B, 3, S, S) face in [0, 1] -> (B, 1, S/8, S/8) real/fake scores (unbounded)."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 128)):
        super().__init__()
        layers, previous = [], 3
        for out in channels:
            layers += [nn.Conv2d(previous, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            previous = out
        layers.append(nn.Conv2d(previous, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)  # the discriminator sees [-1, 1] inputs


def lsgan_losses(d_real: torch.Tensor, d_fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least-squares GAN losses from the discriminator's scores on real and generated faces.

    Returns `(loss_D, loss_G)`. Call it with `d_fake` computed on *detached* fakes for `loss_D`, and
    on attached fakes for `loss_G` (the usual two passes).
    """
    # TODO p1.gan.adversarial: The LSGAN objectives with targets 1 for real and 0 for fake.
    # Hint: Mao et al. 2017, eq. 2 with a = 0, b = c = 1: loss_D = 0.5 * mean((d_real - 1)^2) + 0.5 *
    # Hint: mean(d_fake^2),
    # Hint: loss_G = 0.5 * mean((d_fake - 1)^2); means over every patch score of the batch.
    # Hint: tests/phase1_face_swap/test_gan.py checks values on hand-made scores.
    # BEGIN SOLUTION p1.gan.adversarial
    loss_d = 0.5 * ((d_real - 1) ** 2).mean() + 0.5 * (d_fake**2).mean()
    loss_g = 0.5 * ((d_fake - 1) ** 2).mean()
    return loss_d, loss_g
    # END SOLUTION


def composite(face: torch.Tensor, mask: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Paste the generated face onto the input with the learned mask: m * face + (1 - m) * background."""
    return mask * face + (1 - mask) * background


def mask_regularisation(mask: torch.Tensor, l1_weight: float = 0.01, tv_weight: float = 0.1) -> torch.Tensor:
    """FaceSwap-GAN's mask prior: small (mean |m|) and smooth (total variation). mask (B, 1, S, S)."""
    tv = (mask[..., 1:, :] - mask[..., :-1, :]).abs().mean()
    tv = tv + (mask[..., :, 1:] - mask[..., :, :-1]).abs().mean()
    return l1_weight * mask.abs().mean() + tv_weight * tv
