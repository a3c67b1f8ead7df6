"""FOMM training losses (Siarohin et al., NeurIPS 2019, sec. 3.3 and the supplementary material).

* Reconstruction: a perceptual loss on a 4-level image pyramid (1, 1/2, 1/4, 1/8). Each level compares
  VGG19 features relu1_1 .. relu5_1 of prediction and driving frame with L1, weight 10 each (Johnson et
  al. 2016; the paper's eq. 9 family). VGG19 with ImageNet weights is used only if torchvision's cache
  already holds them (nothing is downloaded); otherwise the loss says so once and compares the pyramid
  levels' pixels instead.
* Equivariance (sec. 3.3, eq. 10-13): warp the driving frame with a random thin-plate-spline Y and
  detect again; the keypoints must move with the warp, p^D = Y(p^{Y(D)}), and the Jacobians too,
  J^D = (d Y / d p) J^{Y(D)}, checked as (J^D)^{-1} (d Y / d p) J^{Y(D)} = identity.
* Adversarial (optional, vox-adv style): least-squares GAN on the multi-scale discriminator plus
  feature matching between the discriminator's feature maps of real and generated frames.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from solutions.phase3_first_order_motion.keypoint_detector import (
    AntiAliasInterpolation2d,
    make_coordinate_grid,
)
from solutions.phase3_first_order_motion.motion_transfer import invert_2x2, matmul_2x2

VGG19_FILE = "vgg19-dcbb9e9d.pth"  # torchvision's ImageNet weights, as its cache names them
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG_SLICES = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # ends at relu1_1, relu2_1, ... relu5_1


def cached_vgg19_path() -> Path | None:
    """torchvision's cached VGG19 ImageNet weights, if a previous run or the user put them there."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE
    return path if path.is_file() else None


class VGG19Features(nn.Module):
    """Frozen VGG19 feature extractor returning the 5 relu*_1 maps of an RGB image in [0, 1]."""

    def __init__(self, weights_path: Path | None = None) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["E"])  # VGG19's convolutional part only (no 120 M-weight classifier)
        if weights_path is not None:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            features.load_state_dict({k[len("features."):]: v for k, v in state.items()
                                      if k.startswith("features.")})
        self.slices = nn.ModuleList(nn.Sequential(*features[a:b]) for a, b in VGG_SLICES)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, maps = (x - self.mean) / self.std, []
        for block in self.slices:
            out = block(out)
            maps.append(out)
        return maps


class ImagePyramid(nn.Module):
    """Anti-aliased copies of an image at each scale: {scale: (B, C, H * scale, W * scale)}."""

    def __init__(self, scales: tuple[float, ...], num_channels: int = 3) -> None:
        super().__init__()
        self.scales = scales
        self.downs = nn.ModuleDict({str(s).replace(".", "-"): AntiAliasInterpolation2d(num_channels, s)
                                    for s in scales})

    def forward(self, x: torch.Tensor) -> dict[float, torch.Tensor]:
        return {s: self.downs[str(s).replace(".", "-")](x) for s in self.scales}


_warned_no_vgg = False


class PerceptualPyramidLoss(nn.Module):
    """sum over scales s and VGG layers l of w_l |phi_l(pred_s) - phi_l(target_s)|_1 (mean over elements).

    Without cached VGG19 weights phi is the identity on pixels (one 'layer' of weight sum(w_l)),
    which a message says once per process.
    """

    def __init__(self, scales: tuple[float, ...] = (1, 0.5, 0.25, 0.125),
                 weights: tuple[float, ...] = (10, 10, 10, 10, 10), use_vgg: bool | None = None) -> None:
        super().__init__()
        global _warned_no_vgg
        self.pyramid = ImagePyramid(scales)
        self.weights = weights
        path = cached_vgg19_path()
        if use_vgg is None:
            use_vgg = path is not None
        self.vgg = VGG19Features(path) if use_vgg else None
        if self.vgg is None and path is None and not _warned_no_vgg:
            cache = Path(torch.hub.get_dir()) / "checkpoints"
            print(f"perceptual loss: no VGG19 ImageNet weights in {cache} "
                  "(nothing is downloaded); using a pixel pyramid L1 loss instead", file=sys.stderr)
            _warned_no_vgg = True

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """prediction, target (B, 3, H, W) in [0, 1] -> scalar loss."""
        # TODO p3.loss.perceptual_pyramid: Sum the weighted L1 feature distances over the pyramid levels.
        # Hint: self.pyramid(x) gives {scale: image}; at each scale compare self.vgg(pred) with
        # Hint: self.vgg(target).detach() layer by layer: weights[i] * |a - b|.mean(). Without VGG
        # Hint: (self.vgg is None) the features are the pixels themselves with weight sum(self.weights).
        # Hint: tested by test_losses.py::test_perceptual_pyramid_* (zero for equal images, L1 closed form).
        # BEGIN SOLUTION p3.loss.perceptual_pyramid
        pred_levels, target_levels = self.pyramid(prediction), self.pyramid(target)
        loss = prediction.new_zeros(())
        for scale in pred_levels:
            if self.vgg is None:
                diff = (pred_levels[scale] - target_levels[scale].detach()).abs().mean()
                loss = loss + sum(self.weights) * diff
                continue
            pred_maps, target_maps = self.vgg(pred_levels[scale]), self.vgg(target_levels[scale])
            for weight, a, b in zip(self.weights, pred_maps, target_maps, strict=True):
                loss = loss + weight * (a - b.detach()).abs().mean()
        return loss
        # END SOLUTION


@dataclass
class TPSParams:
    """Random transform of the equivariance loss (published vox-256 values)."""

    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5


class RandomTPS:
    """Y(z) = A z + t + sum_i w_i phi(|z - c_i|_1), phi(r) = r^2 log r: a random smooth warp per batch item.

    A = I + noise (B, 2, 2), t noise (B, 2), control points c_i on a points_tps^2 grid, weights w_i
    (B, 1, N). `warp_coordinates` maps coordinates of the *transformed* frame to the original frame,
    so `transform_frame` samples the original image at Y(z).
    """

    def __init__(self, batch: int, params: TPSParams | None = None, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype = torch.float32) -> None:
        p = params or TPSParams()
        noise = torch.randn(batch, 2, 3, generator=generator, dtype=dtype) * p.sigma_affine
        self.theta = (noise + torch.eye(2, 3, dtype=dtype).view(1, 2, 3)).to(device)  # (B, 2, 3)
        self.control_points = make_coordinate_grid(p.points_tps, p.points_tps, dtype, device).view(1, -1, 2)
        params_tps = torch.randn(batch, 1, p.points_tps**2, generator=generator, dtype=dtype) * p.sigma_tps
        self.control_params = params_tps.to(device)  # (B, 1, N)

    @classmethod
    def affine(cls, theta: torch.Tensor) -> RandomTPS:
        """A pure affine transform z -> theta[:, :, :2] z + theta[:, :, 2] (no spline part)."""
        self = cls.__new__(cls)
        self.theta = theta
        self.control_points = make_coordinate_grid(2, 2, theta.dtype, theta.device).view(1, -1, 2)
        self.control_params = theta.new_zeros(theta.shape[0], 1, 4)
        return self

    def warp_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """points (B, N, 2) -> Y(points) (B, N, 2)."""
        theta = self.theta.to(points.dtype).unsqueeze(1)  # (B, 1, 2, 3)
        out = (theta[..., :2] @ points.unsqueeze(-1)).squeeze(-1) + theta[..., 2]
        dist = (points.unsqueeze(2) - self.control_points.to(points.dtype).unsqueeze(1)).abs().sum(-1)
        spline = dist**2 * torch.log(dist + 1e-6) * self.control_params.to(points.dtype)  # (B, N, n_ctrl)
        return out + spline.sum(dim=2, keepdim=True)

    def jacobian(self, points: torch.Tensor) -> torch.Tensor:
        """d Y / d z at each point by autograd: (B, N, 2) -> (B, N, 2, 2), rows = output coordinates."""
        with torch.enable_grad():
            z = points.detach().requires_grad_(True) if not points.requires_grad else points
            warped = self.warp_coordinates(z)
            grad_x = torch.autograd.grad(warped[..., 0].sum(), z, create_graph=True)[0]
            grad_y = torch.autograd.grad(warped[..., 1].sum(), z, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        """Y(D): (B, C, H, W) -> (B, C, H, W), sampling the frame at Y(z) with reflection padding."""
        b, _, h, w = frame.shape
        grid = make_coordinate_grid(h, w, frame.dtype, frame.device).view(1, h * w, 2).expand(b, -1, -1)
        warped = self.warp_coordinates(grid).view(b, h, w, 2)
        return F.grid_sample(frame, warped, padding_mode="reflection", align_corners=False)


def equivariance_loss(kp_driving: dict[str, torch.Tensor], kp_transformed: dict[str, torch.Tensor],
                      transform: RandomTPS) -> dict[str, torch.Tensor]:
    """Keypoint and Jacobian equivariance terms (paper eq. 11 and 13), each a mean absolute error.

    kp_driving: keypoints of D; kp_transformed: keypoints of Y(D) (B, K, 2) / (B, K, 2, 2).
    Returns {'value': mean |p^D - Y(p^{Y(D)})|, 'jacobian': mean |I - (J^D)^{-1} (dY/dp) J^{Y(D)}|};
    the 'jacobian' term only when both dicts carry a 'jacobian' (a model built with
    estimate_jacobian=False has none, and training then uses the value term alone).
    """
    # TODO p3.loss.equivariance: Map the transformed frame's keypoints back through Y and compare.
    # Hint: value term: transform.warp_coordinates(kp_transformed['value']) vs kp_driving['value'] (eq. 11).
    # Hint: Jacobian term (eq. 12-13): matmul_2x2(transform.jacobian(p^{Y(D)}), J^{Y(D)}) equals J^D;
    # Hint: multiply invert_2x2(J^D) by it and take |eye(2) - result|.mean(); skip the term when either
    # dict has no 'jacobian' key (tested by test_tools.py's configuration without Jacobians).
    # Hint: tested by test_losses.py::test_equivariance_zero_for_exact_transform (affine Y, exact inverse).
    # BEGIN SOLUTION p3.loss.equivariance
    back = transform.warp_coordinates(kp_transformed["value"])  # (B, K, 2) in D's coordinates
    out = {"value": (kp_driving["value"] - back).abs().mean()}
    if "jacobian" in kp_driving and "jacobian" in kp_transformed:
        chained = matmul_2x2(transform.jacobian(kp_transformed["value"]), kp_transformed["jacobian"])
        value = matmul_2x2(invert_2x2(kp_driving["jacobian"]), chained)
        eye = torch.eye(2, dtype=value.dtype, device=value.device)
        out["jacobian"] = (eye - value).abs().mean()
    return out
    # END SOLUTION


def gan_losses(real_out: dict, fake_out: dict, scales: list[float]) -> dict[str, torch.Tensor]:
    """Least-squares GAN (Mao et al. 2017) and feature matching over the discriminator scales.

    real_out / fake_out: MultiScaleDiscriminator outputs for the driving frame and the prediction.
    Returns {'generator_gan': sum mean (1 - D(fake))^2,
             'feature_matching': sum_l mean |F_l(real) - F_l(fake)|,
             'discriminator': sum mean (1 - D(real))^2 + D(fake)^2}.
    For the discriminator's step, call it again with the discriminator run on a detached prediction.
    """
    # TODO p3.loss.gan: LSGAN terms for generator and discriminator plus feature matching.
    # Hint: keys are 'prediction_map_<s>' and 'feature_maps_<s>' for s in scales (str(s)).
    # Hint: generator: ((1 - fake_map) ** 2).mean();
    # Hint: discriminator: ((1 - real_map) ** 2 + fake_map ** 2).mean();
    # Hint: feature matching compares fake maps with the *detached* real maps. Tested by
    # Hint: test_losses.py::test_gan_losses_closed_form.
    # BEGIN SOLUTION p3.loss.gan
    zero = next(iter(fake_out.values()))
    zero = (zero[0] if isinstance(zero, list) else zero).new_zeros(())
    out = {"generator_gan": zero, "feature_matching": zero, "discriminator": zero}
    for scale in scales:
        key = str(scale)
        real_map, fake_map = real_out["prediction_map_" + key], fake_out["prediction_map_" + key]
        out["generator_gan"] = out["generator_gan"] + ((1 - fake_map) ** 2).mean()
        out["discriminator"] = out["discriminator"] + ((1 - real_map) ** 2 + fake_map**2).mean()
        pairs = zip(real_out["feature_maps_" + key], fake_out["feature_maps_" + key], strict=True)
        for real_fm, fake_fm in pairs:
            out["feature_matching"] = out["feature_matching"] + (real_fm.detach() - fake_fm).abs().mean()
    return out
    # END SOLUTION
