"""Generator: backward warping, occlusion, and the identity motion through the whole network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from common.impl import load

PHASE = "phase3_first_order_motion"
ALL_GEN_IDS = ("p3.kp.antialias", "p3.motion", "p3.gen")


@pytest.fixture(scope="module")
def gen():
    return load(PHASE, "generator")


def shift_grid(b: int, h: int, w: int, dx: float, dy: float) -> torch.Tensor:
    """A grid that makes grid_sample(align_corners=False) read pixel (i + dy, j + dx) at (i, j)."""
    x = (2 * (np.arange(w) + dx) + 1) / w - 1
    y = (2 * (np.arange(h) + dy) + 1) / h - 1
    return torch.from_numpy(np.stack(np.meshgrid(x, y), axis=-1)).expand(b, h, w, 2)


@pytest.mark.todo("p3.gen.warp")
def test_warp_translation_moves_content(gen):
    feat = torch.rand(2, 4, 8, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = gen.warp(feat, shift_grid(2, 8, 10, 3, -2)).numpy()
    want = np.zeros_like(feat.numpy())
    want[:, :, 2:, :7] = feat.numpy()[:, :, :6, 3:]  # out[i, j] = feat[i - 2, j + 3], zero outside
    np.testing.assert_allclose(out, want, atol=1e-12)


@pytest.mark.todo("p3.gen.warp")
def test_warp_resizes_a_smaller_field_bilinearly(gen):
    """A constant translation field at half resolution moves the full-size features the same way."""
    feat = torch.rand(1, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    offset = torch.tensor([2 * 2 / 8, 0.0], dtype=torch.float64)  # +2 pixels in x, in [-1, 1] units
    identity = F.affine_grid(torch.eye(2, 3, dtype=torch.float64)[None], [1, 2, 4, 4], align_corners=False)
    out = gen.warp(feat, identity + offset).numpy()
    # bilinear upsampling of the affine identity field at align_corners=False is exact inside,
    # and the border rows/cols extrapolate flat: compare the interior columns only
    np.testing.assert_allclose(out[..., 1:-1, 1:4], feat.numpy()[..., 1:-1, 3:6], atol=1e-12)


@pytest.mark.todo("p3.gen.occlusion")
def test_apply_occlusion_multiplies_after_resizing(gen):
    feat = torch.rand(2, 3, 8, 8, dtype=torch.float64)
    ones = torch.ones(2, 1, 4, 4, dtype=torch.float64)
    np.testing.assert_allclose(gen.apply_occlusion(feat, ones).numpy(), feat.numpy())
    occ = torch.rand(2, 1, 8, 8, dtype=torch.float64)
    np.testing.assert_allclose(gen.apply_occlusion(feat, occ).numpy(), (feat * occ).numpy())
    half = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    assert gen.apply_occlusion(feat, half).abs().max() == 0


@pytest.mark.todo("p3.gen.occlusion")
def test_apply_occlusion_resizes_bilinearly_with_half_pixel_centres(gen):
    """A 4x4 map of ramps resized to 8x8 as the published code does (bilinear, align_corners=False).

    Output pixel j reads the map at x = (j + 0.5) / 2 - 0.5, clamped to [0, 3]: the ramp 0, 1/3, 2/3, 1
    becomes (0, 1, 3, 5, 7, 9, 11, 12) / 12. Nearest gives 0, 0, 1/3, 1/3, ...; align_corners=True j / 7.
    """
    ramp = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0], dtype=torch.float64)
    occ = torch.outer(ramp.flip(0), ramp).expand(2, 1, 4, 4)  # falls down the rows, rises along the columns
    feat = torch.rand(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    up = torch.tensor([0, 1, 3, 5, 7, 9, 11, 12], dtype=torch.float64) / 12
    want = feat * torch.outer(1 - up, up)  # bilinear is separable: each axis resized on its own
    np.testing.assert_allclose(gen.apply_occlusion(feat, occ).numpy(), want.numpy(), rtol=0, atol=1e-12)


def small_generator_and_still_keypoints(gen, **options):
    """A seeded 4-keypoint generator (eval mode), keypoints for 2 frames and 2 random 32x32 sources."""
    torch.manual_seed(0)
    g = gen.OcclusionAwareGenerator(num_kp=4, block_expansion=8, max_features=32, num_bottleneck_blocks=1,
                                    dense_motion_params={"block_expansion": 8, "max_features": 32,
                                                         "num_blocks": 2, "scale_factor": 0.5},
                                    **options).eval()
    kp = {"value": torch.rand(2, 4, 2) - 0.5, "jacobian": torch.eye(2).repeat(2, 4, 1, 1)}
    return g, kp, torch.rand(2, 3, 32, 32)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_identity_motion_keeps_the_source_in_place(gen):
    """kp_driving = kp_source: the dense field is the identity grid, `deformed` resamples the source."""
    g, kp, src = small_generator_and_still_keypoints(gen)
    with torch.no_grad():
        out = g(src, kp_driving=kp, kp_source=kp)
    assert out["prediction"].shape == (2, 3, 32, 32)
    assert out["mask"].shape == (2, 5, 16, 16) and out["occlusion_map"].shape == (2, 1, 16, 16)
    x = 2 * np.arange(16) / 15 - 1
    grid = np.stack(np.meshgrid(x, x), axis=-1)
    np.testing.assert_allclose(out["deformation"].numpy(), np.broadcast_to(grid, (2, 16, 16, 2)), atol=1e-5)
    want = F.grid_sample(src, F.interpolate(torch.from_numpy(grid).float().permute(2, 0, 1)[None].expand(
        2, 2, 16, 16), size=(32, 32), mode="bilinear").permute(0, 2, 3, 1), align_corners=False)
    np.testing.assert_allclose(out["deformed"].numpy(), want.numpy(), atol=1e-5)
    assert 0 <= out["prediction"].min() and out["prediction"].max() <= 1


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_under_bf16_autocast_keeps_the_geometry_in_float32(gen):
    """Convolutions run in bf16; the motion field (sampling coordinates) stays float32 and close to fp32."""
    torch.manual_seed(0)
    g = gen.OcclusionAwareGenerator(num_kp=4, block_expansion=8, max_features=32, num_bottleneck_blocks=1,
                                    dense_motion_params={"block_expansion": 8, "max_features": 32,
                                                         "num_blocks": 2, "scale_factor": 0.5}).eval()
    kp_s = {"value": torch.rand(1, 4, 2) - 0.5, "jacobian": torch.eye(2).repeat(1, 4, 1, 1)}
    kp_d = {"value": kp_s["value"] + 0.05, "jacobian": torch.eye(2).repeat(1, 4, 1, 1) * 1.1}
    src = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = g(src, kp_driving=kp_d, kp_source=kp_s)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = g(src, kp_driving=kp_d, kp_source=kp_s)
    assert low["deformation"].dtype == torch.float32
    assert torch.isfinite(low["prediction"]).all()
    assert (low["prediction"].float() - ref["prediction"]).abs().max() < 0.05


def test_blend_by_occlusion_closed_form(gen):
    """w * warped + (1 - w) * generated, w = O (resized bilinearly to the image size) * coverage."""
    g = torch.Generator().manual_seed(2)
    warped, generated = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    occ = torch.rand(2, 1, 8, 8, generator=g)
    np.testing.assert_allclose(gen.blend_by_occlusion(warped, generated, occ).numpy(),
                               (occ * warped + (1 - occ) * generated).numpy(), atol=1e-7)
    ones, zeros = torch.ones(2, 1, 4, 4), torch.zeros(2, 1, 4, 4)
    np.testing.assert_allclose(gen.blend_by_occlusion(warped, generated, ones).numpy(), warped.numpy())
    np.testing.assert_allclose(gen.blend_by_occlusion(warped, generated, zeros).numpy(), generated.numpy())
    coverage = torch.rand(2, 1, 8, 8, generator=g)  # the part of each warped pixel inside the source frame
    w = occ * coverage
    np.testing.assert_allclose(gen.blend_by_occlusion(warped, generated, occ, coverage).numpy(),
                               (w * warped + (1 - w) * generated).numpy(), atol=1e-7)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_options_exact_warp_and_blend_return_the_source_for_identity_motion(gen):
    """exact_warp + blend_warped_source (the tiny config's options): with kp_driving = kp_source the
    warped source is the source itself, and the prediction blends it with the decoder by O."""
    g, kp, src = small_generator_and_still_keypoints(gen, num_down_blocks=0, exact_warp=True,
                                                     blend_warped_source=True)
    with torch.no_grad():
        out = g(src, kp_driving=kp, kp_source=kp)
    np.testing.assert_allclose(out["deformed"].numpy(), src.numpy(), atol=1e-5)
    occ = F.interpolate(out["occlusion_map"], size=(32, 32), mode="bilinear")
    want = occ * src + (1 - occ) * out["generated"]
    np.testing.assert_allclose(out["prediction"].numpy(), want.numpy(), atol=1e-5)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_denoise_source_blends_the_filtered_source(gen):
    """denoise_source: with the identity motion the blended pixels are the bilateral-filtered source."""
    g, kp, src = small_generator_and_still_keypoints(gen, num_down_blocks=0, exact_warp=True,
                                                     blend_warped_source=True, denoise_source=True)
    assert sorted(k for k in g.state_dict() if k.startswith("denoise.")) == [
        "denoise.log_sigma_range", "denoise.log_sigma_space"]
    with torch.no_grad():
        out = g(src, kp_driving=kp, kp_source=kp)
        filtered = gen.BilateralFilter()(src)
    np.testing.assert_allclose(out["deformed"].numpy(), filtered.numpy(), atol=1e-5)
    occ = F.interpolate(out["occlusion_map"], size=(32, 32), mode="bilinear")
    want = occ * filtered + (1 - occ) * out["generated"]
    np.testing.assert_allclose(out["prediction"].numpy(), want.numpy(), atol=1e-5)


def test_bilateral_filter_smooths_flat_regions_and_keeps_edges(gen):
    """denoise_source's filter: a step edge far above s_range stays; with a huge s_range it is the
    normalised (2r + 1)^2 Gaussian of s_space (replicate padding), computed here with numpy."""
    f = gen.BilateralFilter(radius=2, sigma_space=1.0, sigma_range=3 / 255)
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0
    with torch.no_grad():
        np.testing.assert_allclose(f(step).numpy(), step.numpy(), atol=1e-6)
        f.log_sigma_range.fill_(10.0)
        img = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
        out = f(img).numpy()
    taps = np.arange(-2, 3)
    kernel = np.exp(-(taps[:, None] ** 2 + taps[None] ** 2) / 2.0)
    kernel /= kernel.sum()
    padded = np.pad(img.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    want = sum(kernel[i, j] * padded[..., i:i + 8, j:j + 8] for i in range(5) for j in range(5))
    np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.todo("p3.kp.antialias", "p3.motion", "p3.gen")
def test_generator_multiplies_the_warped_features_by_the_occlusion_map():
    """An occlusion map of 0 everywhere hides the source features (eq. 8): the prediction no longer depends
    on them."""
    gen = load(PHASE, "generator")
    torch.manual_seed(0)
    g = gen.OcclusionAwareGenerator(num_kp=4, block_expansion=8, max_features=32, num_bottleneck_blocks=1,
                                    dense_motion_params={"block_expansion": 8, "max_features": 32,
                                                         "num_blocks": 2, "scale_factor": 0.5}).eval()
    with torch.no_grad():
        g.dense_motion_network.occlusion.weight.zero_()
        g.dense_motion_network.occlusion.bias.fill_(-60.0)  # sigmoid -> 0
        kp = {"value": torch.rand(1, 4, 2) - 0.5, "jacobian": torch.eye(2).repeat(1, 4, 1, 1)}
        src = torch.rand(1, 3, 32, 32)
        features = g.encode_source(src)
        a = g(src, kp_driving=kp, kp_source=kp, source_features=features)
        b = g(src, kp_driving=kp, kp_source=kp, source_features=features * 5 + 1)
    assert a["occlusion_map"].max() < 1e-20
    torch.testing.assert_close(a["prediction"], b["prediction"])


def test_res_block_is_pre_activation_with_identity_skip(gen):
    """ResBlock2d: x + conv2(relu(bn2(conv1(relu(bn1(x)))))) (He et al. 2016), here in eval mode with
    non-trivial BatchNorm statistics, computed with the functional ops."""
    torch.manual_seed(0)
    block = gen.ResBlock2d(4).eval()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.bias.uniform_(-0.5, 0.5)  # negative pre-activations, so the ReLUs cut
        x = torch.randn(2, 4, 6, 6)

        def bn_relu(t, norm):
            t = (t - norm.running_mean.view(1, -1, 1, 1)) / torch.sqrt(norm.running_var.view(1, -1, 1, 1)
                                                                        + norm.eps)
            return torch.clamp(t * norm.weight.view(1, -1, 1, 1) + norm.bias.view(1, -1, 1, 1), min=0)

        hidden = F.conv2d(bn_relu(x, block.norm1), block.conv1.weight, block.conv1.bias, padding=1)
        want = x + F.conv2d(bn_relu(hidden, block.norm2), block.conv2.weight, block.conv2.bias, padding=1)
        np.testing.assert_allclose(block(x).numpy(), want.numpy(), atol=1e-5)


def test_same_block_is_conv_batchnorm_relu(gen):
    """SameBlock2d: relu(bn(conv(x))) at the same resolution (7x7, padding 3)."""
    torch.manual_seed(0)
    block = gen.SameBlock2d(3, 4).eval()
    with torch.no_grad():
        block.norm.running_mean.uniform_(-0.5, 0.5)
        x = torch.randn(1, 3, 8, 8)
        conv = F.conv2d(x, block.conv.weight, block.conv.bias, padding=3)
        normed = (conv - block.norm.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
            block.norm.running_var.view(1, -1, 1, 1) + block.norm.eps)
        want = torch.clamp(normed, min=0)  # weight 1, bias 0 at initialisation
        out = block(x)
    assert (want == 0).any() and (want > 0).any()
    np.testing.assert_allclose(out.numpy(), want.numpy(), atol=1e-5)


def test_bilateral_filter_range_weight_averages_the_squared_difference_over_channels(gen):
    """With a huge s_space only the range term is left: weight exp(-mean_c (I_c(n) - I_c(z))^2 / (2 s_r^2))
    over the (2r + 1)^2 neighbours (replicate padding), computed here with numpy."""
    f = gen.BilateralFilter(radius=1, sigma_space=1.0, sigma_range=0.2)
    with torch.no_grad():
        f.log_sigma_space.fill_(10.0)
        img = torch.rand(1, 3, 5, 6, generator=torch.Generator().manual_seed(5))
        out = f(img).numpy()[0]
    image = img.numpy()[0].astype(np.float64)
    padded = np.pad(image, ((0, 0), (1, 1), (1, 1)), mode="edge")
    want = np.zeros_like(image)
    for i in range(5):
        for j in range(6):
            patch = padded[:, i:i + 3, j:j + 3].reshape(3, 9)  # (C, 9) neighbours
            d2 = ((patch - image[:, i, j, None]) ** 2).mean(axis=0)
            weights = np.exp(-d2 / (2 * 0.2**2))
            want[:, i, j] = patch @ weights / weights.sum()
    np.testing.assert_allclose(out, want, atol=1e-5)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_prediction_is_the_sigmoid_of_the_final_convolution(gen):
    """The decoder ends in a 7x7 conv and a sigmoid: a zero conv with biases (-1, 0, 2) paints every pixel
    (sigmoid(-1), 1/2, sigmoid(2)), not a clamp of the logits."""
    g, kp, src = small_generator_and_still_keypoints(gen)
    with torch.no_grad():
        g.final.weight.zero_()
        g.final.bias.copy_(torch.tensor([-1.0, 0.0, 2.0]))
        out = g(src, kp_driving=kp, kp_source=kp)["prediction"]
    want = 1 / (1 + np.exp(-np.array([-1.0, 0.0, 2.0])))
    np.testing.assert_allclose(out.numpy(), np.broadcast_to(want.reshape(1, 3, 1, 1), out.shape), atol=1e-6)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_exact_warp_samples_the_source_at_its_own_size_below_the_features(gen):
    """exact_warp with a down block: the features are warped at 16x16 but the source image at its own
    32x32, so the identity motion still returns the source exactly."""
    g, kp, src = small_generator_and_still_keypoints(gen, num_down_blocks=1, exact_warp=True)
    with torch.no_grad():
        out = g(src, kp_driving=kp, kp_source=kp)
    np.testing.assert_allclose(out["deformed"].numpy(), src.numpy(), atol=1e-5)


@pytest.mark.todo(*ALL_GEN_IDS)
def test_generator_blend_paints_where_the_motion_leaves_the_source_frame(gen):
    """blend_warped_source: the source's weight is O times the coverage, the ones image warped by the
    field (here computed with grid_sample at the exact_warp grid), so pixels read from outside the frame
    come from the decoder, not from zero padding."""
    g, kp, src = small_generator_and_still_keypoints(gen, num_down_blocks=0, exact_warp=True,
                                                     blend_warped_source=True)
    moved = {"value": kp["value"] + torch.tensor([0.8, 0.0]), "jacobian": kp["jacobian"]}
    with torch.no_grad():
        out = g(src, kp_driving=moved, kp_source=kp)
    field = F.interpolate(out["deformation"].permute(0, 3, 1, 2), size=(32, 32), mode="bilinear",
                          align_corners=True).permute(0, 2, 3, 1) * (31 / 32)
    coverage = F.grid_sample(torch.ones(2, 1, 32, 32), field, align_corners=False)
    assert coverage.min() < 0.5  # some of the frame is read from outside the source
    w = F.interpolate(out["occlusion_map"], size=(32, 32), mode="bilinear") * coverage
    want = w * out["deformed"] + (1 - w) * out["generated"]
    np.testing.assert_allclose(out["prediction"].numpy(), want.numpy(), atol=1e-5)
