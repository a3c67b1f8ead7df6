"""From keypoints to a dense motion field (FOMM, Siarohin et al., NeurIPS 2019, sec. 3.1-3.2 and 3.4).

Notation of the paper: S is the source image, D a driving frame, R an abstract reference frame.
Around each keypoint the backward motion T_{S<-D}: z_D -> z_S is approximated to first order
(eq. 4, J_k as in eq. 5):

    T_{S<-D}(z) ~ T_{S<-R}(p_k) + J_k (z - T_{D<-R}(p_k)),
    J_k = (d T_{S<-R}/dp at p_k) (d T_{D<-R}/dp at p_k)^{-1}

With the detector's outputs, T_{S<-R}(p_k) = p_k^S, T_{D<-R}(p_k) = p_k^D and J_k = J_k^S (J_k^D)^{-1}.
The dense motion network then sees
  * heatmap differences H_k = G(p_k^D) - G(p_k^S) (eq. 6) to know where each transformation applies,
  * K+1 copies of S warped by each motion (plus the identity "background" motion),
and predicts K+1 soft masks M_k (softmax over k) that blend the motions into one field (eq. 7)

    T_hat_{S<-D}(z) = M_0 z + sum_k M_k (p_k^S + J_k (z - p_k^D))

and an occlusion map O in [0, 1] (sec. 3.2). Everything runs at 1/4 resolution (64x64 for 256x256).

`normalize_kp` implements relative motion transfer (sec. 3.4, eq. 14-15): the source moves the way the
driving video moves *relative to its first frame*, not to the driving frame's absolute pose.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import ConvexHull
from torch import nn

from solutions.phase3_first_order_motion.keypoint_detector import (
    AntiAliasInterpolation2d,
    Hourglass,
    make_coordinate_grid,
)

Keypoints = dict[str, torch.Tensor]  # {'value': (B, K, 2), 'jacobian': (B, K, 2, 2)}


def kp2gaussian(value: torch.Tensor, height: int, width: int, variance: float) -> torch.Tensor:
    """An isotropic Gaussian bump at each keypoint (paper eq. 6's G): exp(-|z - p_k|^2 / (2 variance)).

    The paper prints the exponent over sigma = 0.01; the published code divides by 2 variance with
    variance 0.01, and its checkpoints were trained that way, so this follows the code.

    value (B, K, 2) in [-1, 1] -> (B, K, H, W), 1 at the keypoint, on the endpoint-inclusive grid.
    """
    # TODO p3.motion.kp2gaussian: Evaluate the unnormalised Gaussian at every grid point.
    # Hint: grid = make_coordinate_grid(H, W, value.dtype, value.device) (H, W, 2); broadcast it against
    # Hint: value viewed as (B, K, 1, 1, 2); sum the squared difference over the last dim; exp(-0.5 d2 / var).
    # Hint: tested by test_motion_transfer.py::test_kp2gaussian_* (peak 1 at the keypoint, closed form).
    # BEGIN SOLUTION p3.motion.kp2gaussian
    grid = make_coordinate_grid(height, width, value.dtype, value.device)  # (H, W, 2)
    diff = grid.view(1, 1, height, width, 2) - value.view(*value.shape[:2], 1, 1, 2)
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)  # (B, K, H, W)
    # END SOLUTION


def invert_2x2(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of a batch of 2x2 matrices in closed form: [[a, b], [c, d]]^-1 = [[d, -b], [-c, a]] / det.

    (..., 2, 2) -> (..., 2, 2). Half-precision input (bf16 / fp16 under autocast) is computed in
    float32: `torch.inverse` refuses low-precision dtypes, and a bf16 determinant loses 3 digits.
    """
    # TODO p3.motion.jacobian_inverse: Closed-form 2x2 inverse, in float32 for half-precision input.
    # Hint: if matrix.dtype is torch.bfloat16 or torch.float16, cast to float32 first (keep float64).
    # Hint: a, b, c, d = matrix[..., 0, 0], matrix[..., 0, 1], matrix[..., 1, 0], matrix[..., 1, 1];
    # Hint: det = a d - b c; stack [[d, -b], [-c, a]] / det back into (..., 2, 2).
    # Hint: pitfall: torch.inverse raises on bf16 on CUDA; tested by test_motion_transfer.py::test_invert_*.
    # BEGIN SOLUTION p3.motion.jacobian_inverse
    if matrix.dtype in (torch.bfloat16, torch.float16):
        matrix = matrix.float()
    a, b = matrix[..., 0, 0], matrix[..., 0, 1]
    c, d = matrix[..., 1, 0], matrix[..., 1, 1]
    det = a * d - b * c
    rows = [torch.stack([d, -b], dim=-1), torch.stack([-c, a], dim=-1)]
    return torch.stack(rows, dim=-2) / det[..., None, None]
    # END SOLUTION


def matmul_2x2(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left @ right for (..., 2, 2) batches, written out element by element.

    Elementwise products stay in the inputs' precision under autocast (a matmul would drop to bf16),
    which keeps keypoint geometry in float32 while the convolutions run in bf16.
    """
    rows = []
    for i in range(2):
        rows.append(torch.stack([left[..., i, 0] * right[..., 0, j] + left[..., i, 1] * right[..., 1, j]
                                 for j in range(2)], dim=-1))
    return torch.stack(rows, dim=-2)


def sparse_motions(height: int, width: int, kp_driving: Keypoints, kp_source: Keypoints) -> torch.Tensor:
    """The K+1 candidate backward motions, sampled on the (H, W) grid of the driving frame (eq. 4).

    Returns (B, K+1, H, W, 2) source coordinates: channel 0 is the identity (background), channel k
    is p_k^S + J_k^S (J_k^D)^{-1} (z - p_k^D). Without Jacobians it is the translation z - p_k^D + p_k^S.
    """
    # TODO p3.motion.sparse_motions: The first-order Taylor motions of eq. 4, background first.
    # Hint: z = make_coordinate_grid(H, W, ...) viewed (1, 1, H, W, 2); offset = z - p^D, p^D (B, K, 1, 1, 2).
    # Hint: J = matmul_2x2(J^S, invert_2x2(J^D)) (B, K, 2, 2), viewed (B, K, 1, 1, 2, 2); apply it by hand:
    # Hint: x' = J00 x + J01 y, y' = J10 x + J11 y (a matmul would drop to bf16 under autocast); add p^S;
    # Hint: cat the identity grid in front along dim 1. Tested by test_motion_transfer.py::test_sparse_*.
    # BEGIN SOLUTION p3.motion.sparse_motions
    value_d, value_s = kp_driving["value"], kp_source["value"]
    b, k = value_d.shape[:2]
    grid = make_coordinate_grid(height, width, value_s.dtype, value_s.device).view(1, 1, height, width, 2)
    offset = grid - value_d.view(b, k, 1, 1, 2)  # (B, K, H, W, 2): z - p_k^D
    if "jacobian" in kp_driving and kp_driving["jacobian"] is not None:
        jac = matmul_2x2(kp_source["jacobian"], invert_2x2(kp_driving["jacobian"]))  # (B, K, 2, 2)
        jac = jac.to(offset.dtype).view(b, k, 1, 1, 2, 2)
        offset = torch.stack([jac[..., 0, 0] * offset[..., 0] + jac[..., 0, 1] * offset[..., 1],
                              jac[..., 1, 0] * offset[..., 0] + jac[..., 1, 1] * offset[..., 1]], dim=-1)
    driving_to_source = offset + value_s.view(b, k, 1, 1, 2)
    identity = grid.to(driving_to_source.dtype).expand(b, 1, height, width, 2)
    return torch.cat([identity, driving_to_source], dim=1)  # (B, K+1, H, W, 2)
    # END SOLUTION


def deform_sources(source: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
    """Warp the source by each of the K+1 motions: S(T_k(z)) (the dense motion net's input, sec. 3.1).

    source (B, C, H, W), motions (B, K+1, H, W, 2) -> (B, K+1, C, H, W).
    """
    # TODO p3.motion.deformed_source: One grid_sample per motion, batched by folding K+1 into B.
    # Hint: repeat the source to (B * (K+1), C, H, W) (source[:, None].expand(...).reshape), view the motions
    # Hint: as (B * (K+1), H, W, 2), call F.grid_sample with its defaults (align_corners=False, zeros
    # Hint: padding: the published convention) and view back. Pitfall: input and grid need one dtype; use
    # Hint: the wider of the two (torch.promote_types), so a float32 grid is never rounded to bf16.
    # Hint: tested by test_motion_transfer.py::test_deform_sources_translation_moves_content and the
    # Hint: reference check (test_reference.py).
    # BEGIN SOLUTION p3.motion.deformed_source
    b, c, h, w = source.shape
    n = motions.shape[1]
    dtype = torch.promote_types(source.dtype, motions.dtype)  # float32 grids stay float32 under autocast
    repeated = source.unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w).to(dtype)
    grid = motions.reshape(b * n, h, w, 2).to(dtype)
    return F.grid_sample(repeated, grid, align_corners=False).view(b, n, c, h, w)
    # END SOLUTION


def combine_motions(motions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Blend the K+1 motions with the soft masks into one dense backward field (paper eq. 7).

    motions (B, K+1, H, W, 2), mask (B, K+1, H, W) summing to 1 over K+1 -> deformation (B, H, W, 2).
    """
    # TODO p3.motion.dense_combination: T_hat(z) = sum_k M_k(z) T_k(z), k = 0..K.
    # Hint: multiply motions by mask[..., None] and sum over dim 1. Tested by
    # Hint: test_motion_transfer.py::test_combine_motions_* (a one-hot mask picks that motion).
    # BEGIN SOLUTION p3.motion.dense_combination
    return (motions * mask.unsqueeze(-1).to(motions.dtype)).sum(dim=1)
    # END SOLUTION


def to_sampling_grid(field: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Endpoint-inclusive coordinates -> the grid that `grid_sample(align_corners=False)` reads the same
    pixel centres from, at (height, width). An option of ours (`exact_warp`, tiny configuration only).

    The keypoints, the motions and the coordinate grid name pixel i by x_i = 2 i / (W - 1) - 1, while
    grid_sample with its default align_corners=False reads x as (2 i + 1) / W - 1. The published model
    mixes the two (its weights expect it): its identity motion zooms the source by W / (W - 1), and
    resizing the field bilinearly at align_corners=False adds more zoom, so it resamples every pixel a
    fraction of a pixel off (at 64 px this alone costs as much L1 as copying the source frame). Here the
    field is resized at align_corners=True (its samples sit on the endpoint-inclusive grid) and scaled by
    (W - 1) / W, so x_i becomes (2 i + 1) / W - 1 and the identity motion reproduces the source exactly.

    field (B, h, w, 2) -> (B, height, width, 2).
    """
    if field.shape[1:3] != (height, width):
        field = F.interpolate(field.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                              align_corners=True).permute(0, 2, 3, 1)
    scale = torch.tensor([(width - 1) / width, (height - 1) / height], dtype=field.dtype, device=field.device)
    return field * scale


class DenseMotionNetwork(nn.Module):
    """Predicts the dense backward motion T_hat_{S<-D}, the K+1 masks and the occlusion map (sec. 3.1-3.2)."""

    def __init__(self, block_expansion: int, num_blocks: int, max_features: int, num_kp: int,
                 num_channels: int, estimate_occlusion_map: bool = False, scale_factor: float = 1,
                 kp_variance: float = 0.01, exact_warp: bool = False) -> None:
        super().__init__()
        self.exact_warp = exact_warp  # deformed sources sampled at the named pixel centres (to_sampling_grid)
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        # input per motion k: heatmap difference (1 channel) + warped source (C channels)
        in_features = (num_kp + 1) * (num_channels + 1)
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.occlusion = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=7, padding=3)
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def heatmap_representation(self, height: int, width: int, kp_driving: Keypoints,
                               kp_source: Keypoints) -> torch.Tensor:
        """H_k = G(p_k^D) - G(p_k^S) (eq. 6) with a zero background channel first: (B, K+1, 1, H, W)."""
        heat = (kp2gaussian(kp_driving["value"], height, width, self.kp_variance)
                - kp2gaussian(kp_source["value"], height, width, self.kp_variance))  # (B, K, H, W)
        zeros = heat.new_zeros(heat.shape[0], 1, height, width)
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def forward(self, source_image: torch.Tensor, kp_driving: Keypoints,
                kp_source: Keypoints) -> dict[str, torch.Tensor]:
        """source (B, C, H, W) -> {'sparse_deformed' (B, K+1, C, h, w), 'mask' (B, K+1, h, w),
        'deformation' (B, h, w, 2), 'occlusion_map' (B, 1, h, w)} at h = H * scale_factor."""
        if self.scale_factor != 1:
            source_image = self.down(source_image)
        b, _, h, w = source_image.shape
        heatmaps = self.heatmap_representation(h, w, kp_driving, kp_source)  # (B, K+1, 1, h, w)
        motions = sparse_motions(h, w, kp_driving, kp_source)  # (B, K+1, h, w, 2)
        grids = motions
        if self.exact_warp:
            grids = to_sampling_grid(motions.flatten(0, 1), h, w).view_as(motions)
        deformed = deform_sources(source_image, grids)  # (B, K+1, C, h, w)
        net_in = torch.cat([heatmaps.to(deformed.dtype), deformed], dim=2).view(b, -1, h, w)
        features = self.hourglass(net_in)
        mask = F.softmax(self.mask(features), dim=1)  # (B, K+1, h, w), sums to 1 over motions
        out = {"sparse_deformed": deformed, "mask": mask, "deformation": combine_motions(motions, mask)}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(features))  # (B, 1, h, w)
        return out


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (N, 2) points (scipy's ConvexHull calls a 2-D area 'volume')."""
    return float(ConvexHull(points).volume)


def normalize_kp(kp_source: Keypoints, kp_driving: Keypoints, kp_driving_initial: Keypoints,
                 adapt_movement_scale: bool = False, use_relative_movement: bool = False,
                 use_relative_jacobian: bool = False) -> Keypoints:
    """Relative motion transfer (paper sec. 3.4, eq. 14-15): move the source like the driving video moves.

        p^new = p^S + s (p^D_t - p^D_1),    J^new = J^D_t (J^D_1)^{-1} J^S

    with s = sqrt(area(hull(p^S))) / sqrt(area(hull(p^D_1))) when adapt_movement_scale (computed on batch
    element 0 only, as the published demo does), else 1. Without the flags, the driving keypoints are
    returned unchanged (absolute transfer). Values and Jacobians come back in float32 (or float64).
    """
    # TODO p3.motion.normalize_kp: Relative keypoints and Jacobians of eq. 14-15, with the hull-area scale.
    # Hint: keep the geometry in float32: cast half-precision values/Jacobians with .float() first.
    # Hint: s from hull_area(kp['value'][0].detach().cpu().numpy()) of kp_source and kp_driving_initial;
    # Hint: J uses matmul_2x2 and invert_2x2. Pitfall: the hull is of batch element 0 only, even for B > 1.
    # Hint: tested by test_motion_transfer.py::test_normalize_kp_* and the reference check (kp_norm_*).
    # BEGIN SOLUTION p3.motion.normalize_kp
    def full(kp: Keypoints) -> Keypoints:
        return {k: (v.float() if v.dtype in (torch.bfloat16, torch.float16) else v) for k, v in kp.items()}

    kp_source, kp_driving, kp_driving_initial = full(kp_source), full(kp_driving), full(kp_driving_initial)
    scale = 1.0
    if adapt_movement_scale:
        source_area = hull_area(kp_source["value"][0].detach().cpu().double().numpy())
        driving_area = hull_area(kp_driving_initial["value"][0].detach().cpu().double().numpy())
        scale = float(np.sqrt(source_area) / np.sqrt(driving_area))
    new = dict(kp_driving)
    if use_relative_movement:
        new["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
    if use_relative_jacobian:
        change = matmul_2x2(kp_driving["jacobian"], invert_2x2(kp_driving_initial["jacobian"]))
        new["jacobian"] = matmul_2x2(change, kp_source["jacobian"])
    return new
    # END SOLUTION
