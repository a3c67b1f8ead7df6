"""Occlusion-aware generator (FOMM, Siarohin et al., NeurIPS 2019, sec. 3.2).

The generator does not paint the driving frame from scratch. It encodes the *source* image, moves the
encoded features with the dense motion field T_hat_{S<-D} (backward warping with grid_sample), dims
the parts the source cannot show with the occlusion map O (eq. 8: xi' = O * f_w(xi, T_hat)), and
decodes the result:

    source (B, 3, 256, 256) -> SameBlock 7x7 -> 2 DownBlocks       xi        (B, 256, 64, 64)
    dense motion network (motion_transfer.py)                      T_hat     (B, 64, 64, 2), O (B, 1, 64, 64)
    warp + occlusion                                               xi'       (B, 256, 64, 64)
    6 pre-activation ResBlocks -> 2 UpBlocks -> 7x7 conv -> sigmoid prediction (B, 3, 256, 256)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from solutions.phase3_first_order_motion.keypoint_detector import DownBlock2d, UpBlock2d
from solutions.phase3_first_order_motion.motion_transfer import (
    DenseMotionNetwork,
    Keypoints,
    to_sampling_grid,
)


class SameBlock2d(nn.Module):
    """conv -> BatchNorm -> ReLU at the same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 7, padding: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class ResBlock2d(nn.Module):
    """Pre-activation residual block (He et al. 2016): x + conv(relu(bn(conv(relu(bn(x))))))."""

    def __init__(self, features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(features, features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(features, affine=True)
        self.norm2 = nn.BatchNorm2d(features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


def warp(features: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Backward warping f_w(xi, T_hat): output pixel z takes the input at T_hat(z) (paper eq. 8).

    features (B, C, H, W), deformation (B, h, w, 2) source coordinates in [-1, 1] -> (B, C, H, W).
    A field of another size is first resized bilinearly to (H, W).
    """
    # TODO p3.gen.warp: Resize the motion field to the feature size if needed, then grid_sample.
    # Hint: the field is (B, h, w, 2): permute to (B, 2, h, w) for F.interpolate(size=(H, W),
    # Hint: mode="bilinear") and back, both with their default align_corners=False (the published code's
    # Hint: resize; True fails test_warp_resizes_a_smaller_field_bilinearly). grid_sample likewise keeps
    # Hint: its defaults (align_corners=False, zeros padding): True there fails every generator check.
    # Hint: pitfall: under bf16 autocast sample in float32 (a bf16 grid is off by up to half a pixel).
    # Hint: tested by test_generator.py::test_warp_translation_moves_content.
    # BEGIN SOLUTION p3.gen.warp
    h, w = features.shape[2:]
    if deformation.shape[1:3] != (h, w):
        deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear")
        deformation = deformation.permute(0, 2, 3, 1)
    dtype = torch.promote_types(features.dtype, deformation.dtype)  # never round the grid to bf16
    return F.grid_sample(features.to(dtype), deformation.to(dtype), align_corners=False)
    # END SOLUTION


def apply_occlusion(features: torch.Tensor, occlusion_map: torch.Tensor) -> torch.Tensor:
    """xi' = O * xi (paper eq. 8): O near 0 where the source cannot show the driving pose (inpaint there).

    features (B, C, H, W), occlusion_map (B, 1, h, w) in [0, 1] -> (B, C, H, W).
    """
    # TODO p3.gen.occlusion: Multiply the features by the occlusion map, resized to their size.
    # Hint: when (h, w) != (H, W), F.interpolate(occlusion_map, size=(H, W), mode="bilinear") first,
    # Hint: with its default align_corners=False, as the published code does: O is a map of per-pixel
    # Hint: values, so each low-res pixel stays centred on the block of features it covers (neither
    # Hint: "nearest" nor align_corners=True).
    # Hint: tested by test_generator.py::test_apply_occlusion_*.
    # BEGIN SOLUTION p3.gen.occlusion
    if occlusion_map.shape[2:] != features.shape[2:]:
        occlusion_map = F.interpolate(occlusion_map, size=features.shape[2:], mode="bilinear")
    return features * occlusion_map.to(features.dtype)
    # END SOLUTION


def blend_by_occlusion(warped: torch.Tensor, generated: torch.Tensor, occlusion_map: torch.Tensor,
                       coverage: torch.Tensor | None = None) -> torch.Tensor:
    """w * S(T_hat(z)) + (1 - w) * generated with w = O * coverage: the source's own pixels where it
    shows the driving pose, the decoder's elsewhere.

    warped, generated (B, C, H, W); occlusion_map (B, 1, h, w) in [0, 1], resized to (H, W); coverage
    (B, 1, H, W): how much of each warped pixel came from inside the source frame (the ones image warped
    the same way), so that motion pointing outside the frame is painted, not filled with zero padding.
    An option of ours (`blend_warped_source`, tiny configuration only; the paper's generator and the
    published checkpoints decode every pixel).
    """
    if occlusion_map.shape[2:] != generated.shape[2:]:
        occlusion_map = F.interpolate(occlusion_map, size=generated.shape[2:], mode="bilinear")
    weight = occlusion_map.to(generated.dtype)
    if coverage is not None:
        weight = weight * coverage.to(generated.dtype)
    return weight * warped.to(generated.dtype) + (1 - weight) * generated


class BilateralFilter(nn.Module):
    """Edge-preserving smoothing (Tomasi & Manduchi 1998) with learned widths: each pixel becomes the mean
    of its (2r + 1)^2 neighbours n weighted by
    exp(-|n - z|^2 / (2 s_space^2) - |I(n) - I(z)|^2 / (2 s_range^2)) (|I(n) - I(z)|^2 averaged over
    channels), so flat regions lose their sensor noise and edges stay.

    An option of ours (`denoise_source`, tiny configuration only): the source pixels that the blend copies
    carry the source frame's noise, which no driving frame shares. Starts at s_space = 1 px and
    s_range = 3 grey levels; both are learned (log-parametrised). (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, radius: int = 2, sigma_space: float = 1.0, sigma_range: float = 3 / 255) -> None:
        super().__init__()
        self.radius = radius
        self.log_sigma_space = nn.Parameter(torch.tensor(math.log(sigma_space)))
        self.log_sigma_range = nn.Parameter(torch.tensor(math.log(sigma_range)))
        taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
        self.register_buffer("distance2", (taps.view(-1, 1) ** 2 + taps.view(1, -1) ** 2).flatten(),
                             persistent=False)  # (k * k,) squared offset of each neighbour

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        k = 2 * self.radius + 1
        padded = F.pad(image.float(), (self.radius,) * 4, mode="replicate")
        neighbours = F.unfold(padded, k).view(b, c, k * k, h, w)  # (B, C, k * k, H, W)
        range2 = ((neighbours - image.float().unsqueeze(2)) ** 2).mean(dim=1)  # (B, k * k, H, W)
        logits = (-self.distance2.view(1, -1, 1, 1) / (2 * self.log_sigma_space.exp() ** 2)
                  - range2 / (2 * self.log_sigma_range.exp() ** 2))
        weights = torch.softmax(logits, dim=1).unsqueeze(1)  # (B, 1, k * k, H, W), sums to 1 over neighbours
        return (neighbours * weights).sum(dim=2).to(image.dtype)


class OcclusionAwareGenerator(nn.Module):
    """Source image + keypoints of source and driving frame -> the driving frame, rendered from the source."""

    def __init__(self, num_channels: int = 3, num_kp: int = 10, block_expansion: int = 64,
                 max_features: int = 512, num_down_blocks: int = 2, num_bottleneck_blocks: int = 6,
                 estimate_occlusion_map: bool = True, dense_motion_params: dict | None = None,
                 estimate_jacobian: bool = True, exact_warp: bool = False,
                 blend_warped_source: bool = False, denoise_source: bool = False) -> None:
        super().__init__()
        self.exact_warp = exact_warp  # motion_transfer.to_sampling_grid before every warp (tiny only)
        self.blend_warped_source = blend_warped_source
        self.denoise = BilateralFilter() if denoise_source and blend_warped_source else None
        self.dense_motion_network = None
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp, num_channels=num_channels, estimate_occlusion_map=estimate_occlusion_map,
                exact_warp=exact_warp, **dense_motion_params)
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(max_features, block_expansion * 2**i),
                        min(max_features, block_expansion * 2 ** (i + 1)))
            for i in range(num_down_blocks))
        self.up_blocks = nn.ModuleList(
            UpBlock2d(min(max_features, block_expansion * 2 ** (num_down_blocks - i)),
                      min(max_features, block_expansion * 2 ** (num_down_blocks - i - 1)))
            for i in range(num_down_blocks))
        width = min(max_features, block_expansion * 2**num_down_blocks)
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width, kernel_size=3, padding=1))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)
        self.num_channels = num_channels

    def encode_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """The source's features xi before warping: (B, 3, H, W) -> (B, 256, H/4, W/4) for vox-256.

        They depend on the source only, so animating many driving frames can compute them once.
        """
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        return out

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints, kp_source: Keypoints,
                source_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """source (B, 3, H, W) in [0, 1] -> dict with 'prediction' (B, 3, H, W) and the motion diagnostics
        'mask', 'sparse_deformed', 'occlusion_map', 'deformation' and 'deformed' (the source warped).

        `source_features` (1 or B, C, h, w) from `encode_source` skips the encoder."""
        if source_features is None:
            source_features = self.encode_source(source_image)
        out = source_features.expand(source_image.shape[0], *source_features.shape[1:])
        result: dict[str, torch.Tensor] = {}
        if self.dense_motion_network is not None:
            motion = self.dense_motion_network(source_image=source_image, kp_driving=kp_driving,
                                               kp_source=kp_source)
            result["mask"] = motion["mask"]
            result["sparse_deformed"] = motion["sparse_deformed"]
            result["deformation"] = motion["deformation"]
            feature_grid = image_grid = motion["deformation"]
            if self.exact_warp:
                feature_grid = to_sampling_grid(feature_grid, *out.shape[2:])
                image_grid = to_sampling_grid(image_grid, *source_image.shape[2:])
            out = warp(out, feature_grid)
            if "occlusion_map" in motion:
                result["occlusion_map"] = motion["occlusion_map"]
                out = apply_occlusion(out, motion["occlusion_map"])
            pixels = source_image if self.denoise is None else self.denoise(source_image)
            result["deformed"] = warp(pixels, image_grid)
        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        prediction = torch.sigmoid(self.final(out))
        if self.blend_warped_source and "occlusion_map" in result:
            result["generated"] = prediction
            coverage = warp(torch.ones_like(source_image[:, :1]), image_grid)  # (B, 1, H, W)
            prediction = blend_by_occlusion(result["deformed"], prediction, result["occlusion_map"], coverage)
        result["prediction"] = prediction
        return result
