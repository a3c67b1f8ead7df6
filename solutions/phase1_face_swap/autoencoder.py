"""The DeepFakes autoencoder: one shared encoder, one decoder per identity.

The trick that made "deepfakes" (2017) work is in the wiring, not in any single layer:

    face of A --warp--> encoder --> latent --> decoder_A --> face of A     (trained)
    face of B --warp--> encoder --> latent --> decoder_B --> face of B     (trained)
    face of A ---------> encoder --> latent --> decoder_B --> "B with A's pose and expression"  (the swap)

Because the encoder is shared, it must describe both people's faces in one latent code: pose,
expression, lighting. Each decoder learns to draw *its* person from that code. At swap time we encode
a frame of A and decode it with B's decoder.

Architecture (after the original `deepfakes/faceswap` model, scaled by a config):

* encoder: strided 5x5 convolutions halve the resolution down to 4 x 4, a dense bottleneck (the
  latent vector), a dense layer back to 4 x 4, and one upscale block to 8 x 8;
* decoder: upscale blocks to the full resolution, then a 5x5 convolution to 4 channels: RGB and a
  **learned mask** (where the decoder believes the face is), both through a sigmoid;
* upscale block: convolution to 4x the channels, LeakyReLU, then **pixel shuffle** (Shi et al. 2016,
  "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel CNN"), which
  rearranges (C * r^2, H, W) into (C, H * r, W * r). It upsamples without the checkerboard artefacts
  of transposed convolutions.

Tensors: faces are `(B, 3, S, S)` in [0, 1]; masks `(B, 1, S, S)` in [0, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AutoencoderConfig:
    """Model size. `resolution` must be 4 * 2^k; the encoder has k stride-2 convolutions."""

    resolution: int = 64
    encoder_channels: tuple[int, ...] = (32, 64, 128, 256)  # one per stride-2 conv (k = 4 for 64 px)
    latent_dim: int = 256
    bottleneck_channels: int = 128  # channels at 4 x 4 after the dense layer
    decoder_channels: tuple[int, ...] = (96, 48, 24)  # one per upscale block in the decoder (k - 1)

    def __post_init__(self):
        steps = math.log2(self.resolution / 4)
        if steps != int(steps) or steps < 2:
            raise ValueError(f"resolution must be 4 * 2^k, k >= 2 (16, 32, 64...), not {self.resolution}")
        if len(self.encoder_channels) != steps or len(self.decoder_channels) != steps - 1:
            raise ValueError(
                f"{self.resolution} px needs {int(steps)} encoder and {int(steps) - 1} decoder channel sizes"
            )


PRESETS = {
    # CPU preset (4.5 M parameters): trains in minutes on two cores.
    "cpu64": AutoencoderConfig(),
    # GPU preset: the classic 128 px model, about 10x the compute.
    "gpu128": AutoencoderConfig(
        resolution=128,
        encoder_channels=(64, 128, 256, 512, 512),
        latent_dim=512,
        bottleneck_channels=512,
        decoder_channels=(256, 128, 64, 32),
    ),
}


def pixel_shuffle(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Depth-to-space: (B, C * r^2, H, W) -> (B, C, H * r, W * r) with r = `factor` (Shi et al. 2016).

    Output pixel (c, h * r + i, w * r + j) takes input channel c * r^2 + i * r + j at (h, w).
    """
    # TODO p1.ae.pixel_shuffle: Rearrange channels into space with view + permute + reshape.
    # Hint: Shi et al. 2016, eq. 4 (the "periodic shuffling" PS); (B, C*r*r, H, W) -> view (B, C, r, r, H, W)
    # Hint: -> permute to (B, C, H, r, W, r) -> reshape (B, C, H*r, W*r).
    # Hint: pitfall: the order of the two r axes decides rows vs columns; tests compare with F.pixel_shuffle.
    # BEGIN SOLUTION p1.ae.pixel_shuffle
    batch, channels, height, width = x.shape
    out_channels = channels // (factor * factor)
    x = x.view(batch, out_channels, factor, factor, height, width)
    return x.permute(0, 1, 4, 2, 5, 3).reshape(batch, out_channels, height * factor, width * factor)
    # END SOLUTION


class UpscaleBlock(nn.Module):
    """Conv 3x3 to 4x the channels, LeakyReLU, pixel shuffle: (B, C_in, H, W) -> (B, C_out, 2H, 2W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * 4, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle(self.act(self.conv(x)), 2)


class Encoder(nn.Module):
    """(B, 3, S, S) -> (B, bottleneck, 8, 8): convolutions, dense bottleneck, one upscale."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        layers, channels = [], 3
        for out in cfg.encoder_channels:
            layers += [nn.Conv2d(channels, out, 5, stride=2, padding=2), nn.LeakyReLU(0.1)]
            channels = out
        self.convs = nn.Sequential(*layers)
        self.to_latent = nn.Linear(channels * 16, cfg.latent_dim)
        self.from_latent = nn.Linear(cfg.latent_dim, cfg.bottleneck_channels * 16)
        self.upscale = UpscaleBlock(cfg.bottleneck_channels, cfg.bottleneck_channels)
        self.bottleneck_channels = cfg.bottleneck_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x).flatten(1)  # (B, C * 4 * 4)
        x = self.from_latent(self.to_latent(x))  # (B, latent) -> (B, bottleneck * 16)
        return self.upscale(x.view(-1, self.bottleneck_channels, 4, 4))  # (B, bottleneck, 8, 8)


class Decoder(nn.Module):
    """(B, bottleneck, 8, 8) -> face (B, 3, S, S) and mask (B, 1, S, S)."""

    def __init__(self, cfg: AutoencoderConfig):
        super().__init__()
        blocks, channels = [], cfg.bottleneck_channels
        for out in cfg.decoder_channels:
            blocks.append(UpscaleBlock(channels, out))
            channels = out
        self.upscales = nn.Sequential(*blocks)
        self.to_output = nn.Conv2d(channels, 4, 5, padding=2)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.sigmoid(self.to_output(self.upscales(z)))  # (B, 4, S, S)
        return out[:, :3], out[:, 3:]


class FaceSwapAutoencoder(nn.Module):
    """Shared encoder + one decoder per identity (index 0 = source A, 1 = target B)."""

    def __init__(self, cfg: AutoencoderConfig | None = None, identities: int = 2):
        super().__init__()
        self.cfg = cfg or AutoencoderConfig()
        self.encoder = Encoder(self.cfg)
        self.decoders = nn.ModuleList(Decoder(self.cfg) for _ in range(identities))

    def forward(self, faces: torch.Tensor, identity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode `faces` (B, 3, S, S) and decode with `identity`'s decoder: (face, mask)."""
        return self.decoders[identity](self.encoder(faces))
