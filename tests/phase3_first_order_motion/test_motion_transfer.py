"""Dense motion: Gaussians, eq. 4 sparse motions, warping, mask blending, the 2x2 inverse and normalize_kp."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from common.impl import load

PHASE = "phase3_first_order_motion"
MOTION_IDS = ("p3.motion.kp2gaussian", "p3.motion.jacobian_inverse", "p3.motion.sparse_motions",
              "p3.motion.deformed_source", "p3.motion.dense_combination", "p3.kp.antialias")


@pytest.fixture(scope="module")
def mt():
    return load(PHASE, "motion_transfer")


def grid_np(h: int, w: int) -> np.ndarray:
    """Endpoint-inclusive (x, y) grid, (H, W, 2)."""
    x = 2 * np.arange(w) / (w - 1) - 1
    y = 2 * np.arange(h) / (h - 1) - 1
    return np.stack(np.meshgrid(x, y), axis=-1)


def random_kp(b: int, k: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    value = torch.rand(b, k, 2, generator=g, dtype=torch.float64) * 1.6 - 0.8
    jac = torch.eye(2, dtype=torch.float64) + 0.3 * torch.randn(b, k, 2, 2, generator=g, dtype=torch.float64)
    return {"value": value, "jacobian": jac}


def shift_grid(b: int, h: int, w: int, dx: int, dy: int) -> torch.Tensor:
    """A grid that makes grid_sample(align_corners=False) read pixel (i + dy, j + dx) at (i, j)."""
    x = (2 * (np.arange(w) + dx) + 1) / w - 1
    y = (2 * (np.arange(h) + dy) + 1) / h - 1
    g = np.stack(np.meshgrid(x, y), axis=-1)
    return torch.from_numpy(g).expand(b, h, w, 2)


def shifted(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """out[..., i, j] = img[..., i + dy, j + dx], zero outside."""
    out = np.zeros_like(img)
    h, w = img.shape[-2:]
    out[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
        img[..., max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return out


@pytest.mark.todo("p3.motion.kp2gaussian")
def test_kp2gaussian_closed_form(mt):
    kp = random_kp(2, 3, 0)["value"]
    heat = mt.kp2gaussian(kp, 6, 7, 0.01)
    assert heat.shape == (2, 3, 6, 7)
    d2 = ((grid_np(6, 7)[None, None] - kp.numpy()[:, :, None, None]) ** 2).sum(-1)
    np.testing.assert_allclose(heat.numpy(), np.exp(-0.5 * d2 / 0.01), atol=1e-12)
    on_pixel = torch.tensor([[[-1.0, 1.0]]], dtype=torch.float64)  # exactly the bottom-left pixel centre
    assert mt.kp2gaussian(on_pixel, 5, 5, 0.01)[0, 0, 4, 0] == 1


@pytest.mark.todo("p3.motion.jacobian_inverse")
def test_invert_2x2_matches_numpy(mt):
    m = random_kp(3, 4, 1)["jacobian"]
    np.testing.assert_allclose(mt.invert_2x2(m).numpy(), np.linalg.inv(m.numpy()), atol=1e-12)


@pytest.mark.todo("p3.motion.jacobian_inverse")
def test_invert_2x2_under_bf16_autocast_is_float32(mt):
    """The published code's torch.inverse raises on bf16; ours must compute in float32."""
    m = random_kp(2, 10, 2)["jacobian"].to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inv = mt.invert_2x2(m)
    assert inv.dtype == torch.float32
    np.testing.assert_allclose(inv.double().numpy(), np.linalg.inv(m.double().numpy()), rtol=1e-5, atol=1e-5)


@pytest.mark.todo("p3.motion.sparse_motions", "p3.motion.jacobian_inverse")
def test_sparse_motions_of_an_identity_motion_are_identity(mt):
    """Source keypoints = driving keypoints: every first-order motion is z -> z."""
    kp = random_kp(2, 3, 3)
    motions = mt.sparse_motions(8, 9, kp, kp)
    assert motions.shape == (2, 4, 8, 9, 2)
    np.testing.assert_allclose(motions.numpy(), np.broadcast_to(grid_np(8, 9), (2, 4, 8, 9, 2)), atol=1e-12)


@pytest.mark.todo("p3.motion.sparse_motions", "p3.motion.jacobian_inverse")
def test_sparse_motions_follow_eq4(mt):
    kd, ks = random_kp(2, 3, 4), random_kp(2, 3, 5)
    motions = mt.sparse_motions(5, 6, kd, ks).numpy()
    z = grid_np(5, 6)
    jac = ks["jacobian"].numpy() @ np.linalg.inv(kd["jacobian"].numpy())  # (B, K, 2, 2)
    want = np.einsum("bkij,bkhwj->bkhwi", jac, z[None, None] - kd["value"].numpy()[:, :, None, None])
    want = want + ks["value"].numpy()[:, :, None, None]
    np.testing.assert_allclose(motions[:, 1:], want, atol=1e-12)
    np.testing.assert_allclose(motions[:, 0], np.broadcast_to(z, (2, 5, 6, 2)), atol=1e-12)


@pytest.mark.todo("p3.motion.sparse_motions", "p3.motion.jacobian_inverse")
def test_sparse_motions_stay_float32_under_bf16_autocast(mt):
    kd = {k: v.to(torch.bfloat16) for k, v in random_kp(1, 2, 6).items()}
    ks = {k: v.float() for k, v in random_kp(1, 2, 7).items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        motions = mt.sparse_motions(4, 4, kd, ks)
    assert motions.dtype == torch.float32 and torch.isfinite(motions).all()


@pytest.mark.todo("p3.motion.deformed_source")
def test_deform_sources_translation_moves_content(mt):
    src = torch.rand(2, 3, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    shifts = [(0, 0), (2, 0), (-1, 3)]
    motions = torch.stack([shift_grid(2, 6, 7, dx, dy) for dx, dy in shifts], 1)
    out = mt.deform_sources(src, motions)
    assert out.shape == (2, 3, 3, 6, 7)
    for k, (dx, dy) in enumerate(shifts):
        np.testing.assert_allclose(out[:, k].numpy(), shifted(src.numpy(), dx, dy), atol=1e-12)


@pytest.mark.todo("p3.motion.dense_combination")
def test_combine_motions_one_hot_and_convex(mt):
    motions = torch.randn(2, 3, 4, 5, 2, dtype=torch.float64)
    mask = torch.zeros(2, 3, 4, 5, dtype=torch.float64)
    mask[:, 1] = 1
    np.testing.assert_allclose(mt.combine_motions(motions, mask).numpy(), motions[:, 1].numpy())
    weights = torch.softmax(torch.randn(2, 3, 4, 5, dtype=torch.float64), dim=1)
    want = np.einsum("bkhw,bkhwc->bhwc", weights.numpy(), motions.numpy())
    np.testing.assert_allclose(mt.combine_motions(motions, weights).numpy(), want, atol=1e-12)


def square(side: float, centre=(0.0, 0.0)) -> torch.Tensor:
    """Four corners of an axis-aligned square plus its centre (inside the hull): (1, 5, 2)."""
    h = side / 2
    pts = [(-h, -h), (h, -h), (h, h), (-h, h), (0, 0)]
    return torch.tensor([[(x + centre[0], y + centre[1]) for x, y in pts]], dtype=torch.float64)


@pytest.mark.todo("p3.motion.normalize_kp", "p3.motion.jacobian_inverse")
def test_normalize_kp_relative_motion_with_hull_scale(mt):
    """Source hull area 1, driving-initial hull area 0.25: s = sqrt(1) / sqrt(0.25) = 2 (eq. 14)."""
    g = torch.Generator().manual_seed(9)
    jac = lambda: torch.eye(2, dtype=torch.float64) + 0.2 * torch.randn(1, 5, 2, 2, generator=g,  # noqa: E731
                                                                        dtype=torch.float64)
    src = {"value": square(1.0), "jacobian": jac()}
    init = {"value": square(0.5, (0.2, 0.1)), "jacobian": jac()}
    drv = {"value": init["value"] + 0.05, "jacobian": jac()}
    out = mt.normalize_kp(kp_source=src, kp_driving=drv, kp_driving_initial=init, adapt_movement_scale=True,
                          use_relative_movement=True, use_relative_jacobian=True)
    np.testing.assert_allclose(out["value"].numpy(), src["value"].numpy() + 2 * 0.05, atol=1e-12)
    want_j = drv["jacobian"].numpy() @ np.linalg.inv(init["jacobian"].numpy()) @ src["jacobian"].numpy()
    np.testing.assert_allclose(out["jacobian"].numpy(), want_j, atol=1e-12)
    flags = {"adapt_movement_scale": False, "use_relative_movement": True, "use_relative_jacobian": False}
    plain = mt.normalize_kp(kp_source=src, kp_driving=drv, kp_driving_initial=init, **flags)
    np.testing.assert_allclose(plain["value"].numpy(), src["value"].numpy() + 0.05, atol=1e-12)
    np.testing.assert_allclose(plain["jacobian"].numpy(), drv["jacobian"].numpy())


@pytest.mark.todo("p3.motion.normalize_kp")
def test_normalize_kp_scale_comes_from_batch_element_0_only(mt):
    """The published demo measures both hulls on element 0 and moves every element by that one s: here
    s = sqrt(1) / sqrt(0.25) = 2 for both, though element 1's own hulls would give sqrt(1) / sqrt(4)."""
    src = {"value": torch.cat([square(1.0), square(1.0)])}  # (2, 5, 2)
    init = {"value": torch.cat([square(0.5), square(2.0)])}  # element 1's driving hull is 16x larger
    drv = {"value": init["value"] + 0.05}
    out = mt.normalize_kp(kp_source=src, kp_driving=drv, kp_driving_initial=init, adapt_movement_scale=True,
                          use_relative_movement=True)
    np.testing.assert_allclose(out["value"].numpy(), src["value"].numpy() + 2 * 0.05, atol=1e-12)


@pytest.mark.todo("p3.motion.normalize_kp", "p3.motion.jacobian_inverse")
def test_normalize_kp_first_frame_gives_the_source_pose(mt):
    """At the first driving frame (driving = driving_initial) relative transfer returns the source kp."""
    src, init = random_kp(1, 10, 10), random_kp(1, 10, 11)
    out = mt.normalize_kp(kp_source=src, kp_driving=init, kp_driving_initial=init, adapt_movement_scale=True,
                          use_relative_movement=True, use_relative_jacobian=True)
    np.testing.assert_allclose(out["value"].numpy(), src["value"].numpy(), atol=1e-12)
    np.testing.assert_allclose(out["jacobian"].numpy(), src["jacobian"].numpy(), atol=1e-12)


@pytest.mark.todo("p3.motion.normalize_kp", "p3.motion.jacobian_inverse")
def test_normalize_kp_bf16_inputs_give_float32(mt):
    src, init = random_kp(1, 10, 12), random_kp(1, 10, 13)
    bf = {k: v.to(torch.bfloat16) for k, v in init.items()}
    out = mt.normalize_kp(kp_source={k: v.float() for k, v in src.items()}, kp_driving=bf,
                          kp_driving_initial=bf, adapt_movement_scale=True, use_relative_movement=True,
                          use_relative_jacobian=True)
    assert out["value"].dtype == torch.float32 and out["jacobian"].dtype == torch.float32


@pytest.mark.todo(*MOTION_IDS)
def test_dense_motion_network_shapes_and_identity_motion(mt):
    """Same keypoints for source and driving: every motion and so their blend is the identity grid."""
    torch.manual_seed(0)
    net = mt.DenseMotionNetwork(block_expansion=8, num_blocks=2, max_features=32, num_kp=3, num_channels=3,
                                estimate_occlusion_map=True, scale_factor=0.5).eval()
    kp = {k: v.float() for k, v in random_kp(2, 3, 14).items()}
    with torch.no_grad():
        out = net(torch.rand(2, 3, 32, 32), kp_driving=kp, kp_source=kp)
    assert out["mask"].shape == (2, 4, 16, 16)
    assert out["sparse_deformed"].shape == (2, 4, 3, 16, 16)
    assert out["occlusion_map"].shape == (2, 1, 16, 16)
    np.testing.assert_allclose(out["mask"].sum(1).numpy(), 1, atol=1e-5)
    np.testing.assert_allclose(out["deformation"].numpy(), np.broadcast_to(grid_np(16, 16), (2, 16, 16, 2)),
                               atol=1e-5)


def test_to_sampling_grid_makes_the_identity_motion_exact(mt):
    """The endpoint-inclusive identity grid, at the same or half resolution, resamples every pixel onto
    itself with grid_sample(align_corners=False); the published convention (no conversion) does not."""
    import torch.nn.functional as F

    img = torch.rand(2, 3, 16, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for h, w in ((16, 12), (8, 6)):
        field = torch.from_numpy(grid_np(h, w)).expand(2, h, w, 2)
        grid = mt.to_sampling_grid(field, 16, 12)
        assert grid.shape == (2, 16, 12, 2)
        np.testing.assert_allclose(F.grid_sample(img, grid, align_corners=False).numpy(), img.numpy(),
                                   atol=1e-12)
    x = (2 * np.arange(12) + 1) / 12 - 1  # grid_sample's pixel centres at align_corners=False
    np.testing.assert_allclose(grid[0, 0, :, 0].numpy(), x, atol=1e-12)
    identity = torch.from_numpy(grid_np(16, 12)).expand(2, 16, 12, 2)
    published = F.grid_sample(img, identity, align_corners=False)
    assert (published - img).abs().max() > 0.05  # the W / (W - 1) zoom the published weights expect


@pytest.mark.todo(*MOTION_IDS)
def test_dense_motion_network_exact_warp_keeps_identity_sources(mt):
    """With exact_warp the K+1 deformed sources of an identity motion are the (downsampled) source."""
    torch.manual_seed(0)
    net = mt.DenseMotionNetwork(block_expansion=8, num_blocks=2, max_features=32, num_kp=3, num_channels=3,
                                estimate_occlusion_map=True, scale_factor=1, exact_warp=True).eval()
    kp = {"value": torch.rand(2, 3, 2) - 0.5, "jacobian": torch.eye(2).repeat(2, 3, 1, 1)}
    src = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        out = net(src, kp_driving=kp, kp_source=kp)
    np.testing.assert_allclose(out["sparse_deformed"].numpy(), src[:, None].expand(2, 4, 3, 16, 16).numpy(),
                               atol=1e-5)


@pytest.mark.todo("p3.motion.normalize_kp")
def test_normalize_kp_takes_the_source_hull_of_batch_element_0_too(mt):
    """s = sqrt(area(source[0])) / sqrt(area(driving_initial[0])) = 1 / 0.5 = 2 for every element, though
    element 1's source hull is 9x larger."""
    src = {"value": torch.cat([square(1.0), square(3.0)])}  # (2, 5, 2)
    init = {"value": torch.cat([square(0.5), square(0.5)])}
    drv = {"value": init["value"] + 0.05}
    out = mt.normalize_kp(kp_source=src, kp_driving=drv, kp_driving_initial=init, adapt_movement_scale=True,
                          use_relative_movement=True)
    np.testing.assert_allclose(out["value"].numpy(), src["value"].numpy() + 2 * 0.05, atol=1e-12)
