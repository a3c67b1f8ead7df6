"""Landmark CNN: Gaussian targets (numpy formula), soft-argmax and argmax decoding, a short training run."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from common.impl import load


@pytest.fixture
def lmk():
    return load("phase2_face_reenactment", "landmark_detector")


@pytest.mark.todo("p2.lmk.heatmaps")
def test_gaussian_heatmaps_match_the_formula(lmk):
    points = torch.tensor([[[3.25, 7.5], [10.0, 2.0]], [[0.0, 0.0], [15.5, 11.75]]], dtype=torch.float64)
    maps = lmk.gaussian_heatmaps(points, 12, 16, sigma=1.5)
    assert maps.shape == (2, 2, 12, 16)
    ys, xs = np.mgrid[0:12, 0:16]
    for b in range(2):
        for k in range(2):
            x, y = points[b, k].numpy()
            expected = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.5**2))
            np.testing.assert_allclose(maps[b, k].numpy(), expected, rtol=1e-12)
    assert maps[0, 1, 2, 10] == 1.0  # the peak sits at x = column 10, y = row 2


@pytest.mark.todo("p2.lmk.soft_argmax")
def test_soft_argmax_recovers_a_known_point_with_gradients(lmk):
    ys, xs = np.mgrid[0:24, 0:24]
    true = np.array([[9.3, 14.7], [6.0, 8.5], [17.25, 12.1]])  # (x, y), 5 sigma from the borders
    logits = np.stack([-((xs - x) ** 2 + (ys - y) ** 2) / (2 * 1.2**2) for x, y in true])[None]
    logits = torch.tensor(logits, requires_grad=True)
    points, prob = lmk.soft_argmax(logits, beta=1.0)
    assert points.shape == (1, 3, 2) and prob.shape == (1, 3, 24, 24)
    np.testing.assert_allclose(points[0].detach().numpy(), true, atol=1e-6)
    np.testing.assert_allclose(prob.sum(dim=(2, 3)).detach().numpy(), 1.0, atol=1e-12)
    points.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_argmax_refine_finds_the_vertex_of_a_parabolic_peak(lmk):
    ys, xs = np.mgrid[0:20, 0:20]
    true = np.array([[6.3, 11.8], [12.0, 3.45]])
    maps = torch.tensor(np.stack([10.0 - (xs - x) ** 2 - (ys - y) ** 2 for x, y in true])[None])
    np.testing.assert_allclose(lmk.argmax_refine(maps)[0].numpy(), true, atol=1e-9)


def test_crop_coordinates_round_trip(lmk):
    pts = torch.tensor([[[0.0, 95.0], [47.5, 12.25]]])
    np.testing.assert_allclose(lmk.heatmap_to_crop(lmk.crop_to_heatmap(pts, 4), 4).numpy(), pts.numpy())
    matrix = lmk.crop_matrix(np.array([120.0, 80.0]), 60.0, 96)
    centre = matrix[:, :2] @ np.array([120.0, 80.0]) + matrix[:, 2]
    np.testing.assert_allclose(centre, [47.5, 47.5])  # the box centre lands on the crop centre


@pytest.mark.todo("p2.lmk.heatmaps", "p2.lmk.soft_argmax")
def test_a_few_steps_on_one_synthetic_face_reduce_the_error(lmk):
    from common.synthetic import make_identity, render_frame
    from common.synthetic.face_render import neutral_pose

    torch.manual_seed(0)
    cfg = lmk.LandmarkConfig(input_size=48, channels=(8, 16, 16), context_layers=1)
    image, landmarks = render_frame(make_identity(4), neutral_pose(), np.zeros(6), size=96)
    centre, side = lmk.landmark_crop_box(landmarks, cfg.crop_scale)
    matrix = lmk.crop_matrix(centre, side, cfg.input_size)
    crop = cv2.warpAffine(image, matrix, (48, 48))
    x = torch.from_numpy(crop).permute(2, 0, 1)[None].float().div(255).repeat(2, 1, 1, 1)
    in_crop = landmarks @ matrix[:, :2].T + matrix[:, 2]  # (68, 2)
    target = torch.tensor(in_crop, dtype=torch.float32)[None].repeat(2, 1, 1)
    net = lmk.LandmarkNet(cfg)
    optimizer = torch.optim.Adam(net.parameters(), 3e-3)
    first = None
    for _ in range(30):
        losses = lmk.landmark_loss(net(x), target, cfg)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = first if first is not None else losses["l1"].item()
    assert losses["l1"].item() < 0.5 * first


@pytest.mark.todo("p2.lmk.heatmaps", "p2.lmk.soft_argmax")
def test_the_heatmap_term_is_smallest_at_the_gaussian_centred_where_crop_to_heatmap_says(lmk):
    cfg = lmk.LandmarkConfig(input_size=32)
    target = torch.tensor([[[13.0, 9.0], [20.5, 17.25]]])  # crop pixels (B, 2, 2)
    h = w = cfg.input_size // cfg.stride
    gauss = lmk.gaussian_heatmaps(lmk.crop_to_heatmap(target, cfg.stride), h, w, cfg.sigma)
    gauss = gauss / gauss.flatten(2).sum(-1)[..., None, None]
    logits = (torch.log(gauss) / cfg.beta).requires_grad_(True)  # softmax(beta logits) is the target map
    lmk.landmark_loss(logits, target, cfg)["heatmap"].backward()
    assert logits.grad.abs().max() < 1e-6  # a minimum: a half-pixel shift of the target gives ~1e-2


@pytest.mark.todo("p2.lmk.soft_argmax")
def test_soft_argmax_beta_sharpens_the_distribution(lmk):
    logits = torch.tensor([[[[0.0, 1.0, 3.0]]]])  # (1, 1, 1, 3)
    for beta in (1.0, 4.0):
        p = np.exp(beta * np.array([0.0, 1.0, 3.0]))
        p /= p.sum()
        points, prob = lmk.soft_argmax(logits, beta=beta)
        np.testing.assert_allclose(prob.numpy().ravel(), p, rtol=1e-6)
        np.testing.assert_allclose(points.numpy()[0, 0], [(p * np.arange(3)).sum(), 0.0], rtol=1e-6)


def test_argmax_refine_at_the_border_repeats_the_edge_pixel(lmk):
    """A peak beyond the left/top edge: the missing neighbour is the edge pixel itself (replicate), so the
    parabola through (-1, b), (0, b), (1, c) puts the vertex half a pixel outwards, at -0.5."""
    ys, xs = np.mgrid[0:12, 0:12]
    maps = torch.tensor(10.0 - (xs + 0.3) ** 2 - (ys - 5.0) ** 2)[None, None]  # true peak x = -0.3, y = 5
    np.testing.assert_allclose(lmk.argmax_refine(maps)[0, 0].numpy(), [-0.5, 5.0], atol=1e-9)
    maps = torch.tensor(10.0 - (xs - 7.0) ** 2 - (ys + 0.2) ** 2)[None, None]  # beyond the top edge
    np.testing.assert_allclose(lmk.argmax_refine(maps)[0, 0].numpy(), [7.0, -0.5], atol=1e-9)


@pytest.mark.todo("p2.lmk.heatmaps", "p2.lmk.soft_argmax")
def test_landmark_loss_adds_the_heatmap_term_at_its_weight(lmk):
    cfg = lmk.LandmarkConfig(heatmap_weight=0.25)
    logits = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    target = torch.rand(2, 3, 2, generator=torch.Generator().manual_seed(1)) * 20
    out = lmk.landmark_loss(logits, target, cfg)
    assert float(out["heatmap"]) > 0
    assert float(out["loss"]) == pytest.approx(float(out["l1"]) + 0.25 * float(out["heatmap"]), rel=1e-6)


def test_landmark_crop_box_is_centred_and_scaled_by_the_larger_side(lmk):
    points = np.array([[10.0, 20.0], [20.0, 60.0], [15.0, 40.0]])  # a box 10 wide, 40 tall
    centre, side = lmk.landmark_crop_box(points, 1.35)
    np.testing.assert_allclose(centre, [15.0, 40.0])
    assert side == pytest.approx(1.35 * 40)


@pytest.mark.todo("p2.lmk.soft_argmax")
def test_detector_passes_keep_a_crop_when_the_answer_collapses_to_one_point(lmk):
    """An untrained net can put all 68 points on one spot (side 0): the next pass still crops half the
    previous side, so the answer stays finite, here the crop centre, i.e. the centre of the box."""
    torch.manual_seed(0)
    net = lmk.LandmarkNet(lmk.LandmarkConfig(channels=(8, 8, 8), context_layers=1))
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()  # flat logits: every soft-argmax is the heatmap centre
    frame = np.random.default_rng(0).integers(0, 256, size=(128, 128, 3), dtype=np.uint8)
    points = lmk.LandmarkDetector(net).predict(frame, box=(32, 40, 96, 104), passes=3)
    assert points.shape == (68, 2)
    np.testing.assert_allclose(points, np.broadcast_to([64.0, 72.0], (68, 2)), atol=1e-6)
