"""The three convolution blocks every Wav2Lip network is built from.

Their attribute names (`conv_block.0` the convolution, `conv_block.1` the BatchNorm) are part of the
published checkpoint layout: `face_encoder.3.conv_block.1.running_var` in `lipsync_expert.pth` only
loads into a block that names its parts exactly like this. A `width` multiplier (see `channels`)
shrinks every network for quick CPU training; at width 1.0 the layouts are exactly the published ones.
"""

from __future__ import annotations

import torch
from torch import nn


def channels(n: int, width: float = 1.0) -> int:
    """n channels scaled by a width multiplier: 1.0 is the published network, 0.25 a CPU-sized one."""
    return n if width == 1.0 else max(4, int(round(n * width)))


class Conv2d(nn.Module):
    """Conv -> BatchNorm (-> + input when residual) -> ReLU.  (B, cin, H, W) -> (B, cout, H', W')."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, residual: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.Conv2d(cin, cout, kernel_size, stride, padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x  # a residual block keeps shape: cin == cout, stride 1
        return self.act(out)


class NoNormConv2d(nn.Module):
    """Conv -> LeakyReLU(0.01), no normalisation (the visual-quality discriminator's block)."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(cin, cout, kernel_size, stride, padding))
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))


class Conv2dTranspose(nn.Module):
    """Transposed conv (upsampling) -> BatchNorm -> ReLU: the decoder's block."""

    def __init__(self, cin: int, cout: int, kernel_size, stride, padding, output_padding: int = 0) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ConvTranspose2d(cin, cout, kernel_size, stride, padding, output_padding), nn.BatchNorm2d(cout)
        )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv_block(x))
