"""Multi-scale PatchGAN discriminator (Isola et al. 2017, Wang et al. 2018).

Not in the FOMM paper: the published repository adds it in its vox-adv configuration.

Each scale's discriminator is 4 convolutions of 4x4 (no padding) with LeakyReLU(0.2), instance norm
from the second block on, 2x2 average pooling after all but the last, and a 1x1 conv to one
"real or fake" score per patch: (B, 3, 256, 256) -> feature maps of 126, 61, 29 and 26 px and a
(B, 1, 26, 26) prediction map. The vox-256 model uses one scale and spectral normalisation (Miyato et
al. 2018) on every conv, in the hook form whose state_dict keys are weight_orig / weight_u / weight_v.
The feature maps also feed the feature-matching loss (losses.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DiscriminatorBlock(nn.Module):
    """conv 4x4 (+ spectral norm) -> [InstanceNorm] -> LeakyReLU(0.2) -> [avg pool 2x2]."""

    def __init__(self, in_features: int, out_features: int, norm: bool = False, pool: bool = False,
                 sn: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=4)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)
        self.norm = nn.InstanceNorm2d(out_features, affine=True) if norm else None
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.norm is not None:
            out = self.norm(out)
        out = F.leaky_relu(out, 0.2)
        return F.avg_pool2d(out, (2, 2)) if self.pool else out


class Discriminator(nn.Module):
    """One scale: image (B, C, H, W) -> (list of block outputs, prediction map (B, 1, h, w))."""

    def __init__(self, num_channels: int = 3, block_expansion: int = 64, num_blocks: int = 4,
                 max_features: int = 512, sn: bool = False) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DiscriminatorBlock(num_channels if i == 0 else min(max_features, block_expansion * 2**i),
                               min(max_features, block_expansion * 2 ** (i + 1)),
                               norm=i != 0, pool=i != num_blocks - 1, sn=sn)
            for i in range(num_blocks))
        last = min(max_features, block_expansion * 2**num_blocks)
        self.conv = nn.Conv2d(last, 1, kernel_size=1)
        if sn:
            self.conv = nn.utils.spectral_norm(self.conv)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feature_maps = []
        out = x
        for block in self.down_blocks:
            out = block(out)
            feature_maps.append(out)
        return feature_maps, self.conv(out)


class MultiScaleDiscriminator(nn.Module):
    """One Discriminator per scale; reads x['prediction_<scale>'] and returns 'feature_maps_<scale>' and
    'prediction_map_<scale>' (the published calling convention; module keys `discs.<scale>`)."""

    def __init__(self, scales: tuple[float, ...] | list[float] = (1,), **kwargs) -> None:
        super().__init__()
        self.scales = list(scales)
        self.discs = nn.ModuleDict({str(s).replace(".", "-"): Discriminator(**kwargs) for s in self.scales})

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {}
        for key, disc in self.discs.items():
            scale = key.replace("-", ".")
            feature_maps, prediction_map = disc(x["prediction_" + scale])
            out["feature_maps_" + scale] = feature_maps
            out["prediction_map_" + scale] = prediction_map
        return out
