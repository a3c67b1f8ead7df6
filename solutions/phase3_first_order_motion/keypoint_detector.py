"""Unsupervised keypoints and their local affine Jacobians (FOMM, Siarohin et al., NeurIPS 2019, sec. 3).

The keypoint detector sees one frame and returns K points p_k in [-1, 1]^2 with a 2x2 Jacobian J_k
each. Nobody labels these points: they are whatever helps the generator reconstruct the driving frame,
and the equivariance loss (losses.py) makes them stick to the object.

Pipeline, with the vox-256 sizes:

    image (B, 3, 256, 256)
      -> anti-alias downsample x0.25              (B, 3, 64, 64)
      -> hourglass (U-Net of 5 down / 5 up blocks) (B, 35, 64, 64)
      -> 7x7 conv, padding 0                       (B, K, 58, 58) logits
      -> softmax over space at temperature 0.1     (B, K, 58, 58) heatmaps, each sums to 1
      -> soft-argmax over the coordinate grid      (B, K, 2) keypoints, (x, y) order
      -> heatmap-weighted 4 jacobian maps          (B, K, 2, 2)

The module and key names (`predictor.encoder.down_blocks.0.conv`, `kp`, `jacobian`, `down`) equal the
published checkpoint's, so `vox-cpk.pth.tar` loads with strict=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_coordinate_grid(height: int, width: int, dtype: torch.dtype = torch.float32,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Pixel-centre coordinates in [-1, 1], endpoint-inclusive: x_i = 2 i / (w - 1) - 1.

    Returns (H, W, 2) with (x, y) in the last dimension, the order `grid_sample` expects. The first and
    last pixel centres sit exactly on -1 and +1 (like align_corners=True), although the published model
    samples with grid_sample's default align_corners=False: both conventions are part of the checkpoint.
    """
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    xx = x.view(1, -1).expand(height, width)
    yy = y.view(-1, 1).expand(height, width)
    return torch.stack([xx, yy], dim=2)  # (H, W, 2)


class AntiAliasInterpolation2d(nn.Module):
    """Blur with a Gaussian, then keep every n-th pixel, so high frequencies do not alias.

    sigma = (1 / scale - 1) / 2 (1.5 for scale 0.25) and a kernel of 2 round(4 sigma) + 1 taps (13),
    normalised to sum 1. The kernel is a persistent buffer called `weight` (published layout).
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.pad = size // 2
        self.stride = int(1 / scale)
        self.scale = scale
        self.channels = channels
        taps = torch.arange(size, dtype=torch.float32)
        bump = torch.exp(-((taps - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = bump.view(-1, 1) * bump.view(1, -1)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H * scale, W * scale)."""
        if self.scale == 1:
            return x
        # TODO p3.kp.antialias: Zero-pad by half the kernel, blur each channel separately, subsample.
        # Hint: F.pad(x, (p, p, p, p)), then F.conv2d with self.weight and groups=self.channels (one
        # Hint: Gaussian per channel), then keep every self.stride-th row and column starting at 0.
        # Hint: (B, C, 256, 256) -> (B, C, 64, 64); tested by test_keypoint_detector.py::test_antialias_*.
        # BEGIN SOLUTION p3.kp.antialias
        x = F.pad(x, (self.pad, self.pad, self.pad, self.pad))
        x = F.conv2d(x, self.weight.to(x.dtype), groups=self.channels)
        return x[:, :, :: self.stride, :: self.stride]
        # END SOLUTION


class DownBlock2d(nn.Module):
    """conv 3x3 -> BatchNorm -> ReLU -> 2x2 average pool: halves the resolution."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class UpBlock2d(nn.Module):
    """nearest-neighbour x2 upsample -> conv 3x3 -> BatchNorm -> ReLU: doubles the resolution."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2)
        return F.relu(self.norm(self.conv(x)))


class Encoder(nn.Module):
    """Hourglass encoder: num_blocks DownBlocks; channels double each block, capped at max_features."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(in_features if i == 0 else min(max_features, block_expansion * 2**i),
                        min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_blocks)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every scale's features, input first: the decoder's skip connections."""
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: UpBlocks, each followed by concatenation with the encoder feature of its scale."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            width = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            blocks.append(UpBlock2d(width, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, outs: list[torch.Tensor]) -> torch.Tensor:
        skips = list(outs)
        x = skips.pop()
        for block in self.up_blocks:
            x = torch.cat([block(x), skips.pop()], dim=1)
        return x


class Hourglass(nn.Module):
    """U-Net: (B, in_features, H, W) -> (B, block_expansion + in_features, H, W). H, W divisible by 2^n."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256) -> None:
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def spatial_softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Turn K logit maps into K probability maps over space (paper sec. 3.1, heatmaps H_k).

    (B, K, H, W) -> (B, K, H, W); every map is >= 0 and sums to 1 over its H*W positions.
    """
    # TODO p3.kp.heatmap_softmax: Softmax over all H*W positions of each map, at the given temperature.
    # Hint: flatten the two spatial dims, softmax(logits / temperature) along them, reshape back.
    # Hint: pitfall: F.softmax(..., dim=1) would normalise over keypoints, not over space.
    # Hint: pitfall: a hand-written exp(l / T) / sum overflows in float32 (one logit of 10 at T = 0.1 is
    # Hint: exp(100) = inf, and inf / inf = NaN): use F.softmax, or subtract each map's max first.
    # Hint: (B, K, H, W) -> (B, K, H, W); tested by test_keypoint_detector.py::test_heatmap_softmax_*.
    # BEGIN SOLUTION p3.kp.heatmap_softmax
    b, k, h, w = logits.shape
    heatmap = F.softmax(logits.reshape(b, k, h * w) / temperature, dim=2)
    return heatmap.view(b, k, h, w)
    # END SOLUTION


def gaussian2kp(heatmap: torch.Tensor) -> torch.Tensor:
    """Soft-argmax: the expected (x, y) position under each heatmap (paper eq. 1's keypoint p_k).

    heatmap (B, K, H, W), each map summing to 1 -> keypoints (B, K, 2) in [-1, 1], (x, y) order, on the
    endpoint-inclusive grid of `make_coordinate_grid`.
    """
    # TODO p3.kp.gaussian2kp: Weight the coordinate grid by each heatmap and sum over space.
    # Hint: grid = make_coordinate_grid(H, W, heatmap.dtype, heatmap.device) is (H, W, 2);
    # Hint: (heatmap[..., None] * grid).sum over the H and W dims gives (B, K, 2).
    # Hint: pitfall: (x, y) order, not (row, col); tested by test_keypoint_detector.py::test_soft_argmax_*.
    # BEGIN SOLUTION p3.kp.gaussian2kp
    grid = make_coordinate_grid(heatmap.shape[2], heatmap.shape[3], heatmap.dtype, heatmap.device)
    return (heatmap.unsqueeze(-1) * grid).sum(dim=(2, 3))  # (B, K, 2)
    # END SOLUTION


def heatmap_jacobians(heatmap: torch.Tensor, jacobian_map: torch.Tensor) -> torch.Tensor:
    """Each keypoint's 2x2 Jacobian J_k: its 4 jacobian maps averaged under its heatmap (paper sec. 3.1).

    heatmap (B, K, H, W), jacobian_map (B, 4K, H, W) -> (B, K, 2, 2), row-major [[a, b], [c, d]].
    """
    # TODO p3.kp.jacobian: Heatmap-weighted sum of the four maps belonging to each keypoint.
    # Hint: view jacobian_map as (B, K, 4, H, W), multiply by heatmap[:, :, None], sum over H and W,
    # Hint: then view (B, K, 2, 2). Channels 4k..4k+3 belong to keypoint k.
    # Hint: tested by test_keypoint_detector.py::test_jacobian_* (constant maps give that constant).
    # BEGIN SOLUTION p3.kp.jacobian
    b, k, h, w = heatmap.shape
    maps = jacobian_map.reshape(b, k, 4, h, w)
    return (heatmap.unsqueeze(2) * maps).sum(dim=(3, 4)).view(b, k, 2, 2)
    # END SOLUTION


class KPDetector(nn.Module):
    """Keypoints and Jacobians from one image: `{'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}`."""

    def __init__(self, block_expansion: int = 32, num_kp: int = 10, num_channels: int = 3,
                 max_features: int = 1024, num_blocks: int = 5, temperature: float = 0.1,
                 estimate_jacobian: bool = True, scale_factor: float = 0.25, pad: int = 0) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.temperature = temperature
        self.scale_factor = scale_factor
        self.predictor = Hourglass(block_expansion, num_channels, num_blocks, max_features)
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=7, padding=pad)
        self.jacobian = None
        if estimate_jacobian:
            self.jacobian = nn.Conv2d(self.predictor.out_filters, 4 * num_kp, kernel_size=7, padding=pad)
            # Start at J = identity (the published initialisation): no local deformation at first.
            nn.init.zeros_(self.jacobian.weight)
            with torch.no_grad():
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0]).repeat(num_kp))
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x (B, 3, H, W) RGB in [0, 1]."""
        if self.scale_factor != 1:
            x = self.down(x)
        features = self.predictor(x)  # (B, block_expansion + 3, h, w)
        heatmap = spatial_softmax(self.kp(features), self.temperature)  # (B, K, h - 6, w - 6)
        out = {"value": gaussian2kp(heatmap)}  # (B, K, 2)
        if self.jacobian is not None:
            out["jacobian"] = heatmap_jacobians(heatmap, self.jacobian(features))  # (B, K, 2, 2)
        return out
