"""Face detection: NMS against torchvision, the MTCNN pieces on closed forms, MTCNN on a real photo."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from torchvision.ops import box_iou
from torchvision.ops import nms as tv_nms

from common import dlib_models
from common.impl import load


@pytest.fixture
def det():
    return load("phase1_face_swap", "face_detector")


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(5, 40, size=(n, 2))
    return np.hstack([xy, xy + wh])


@pytest.mark.todo("p1.mtcnn.nms")
@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_equals_torchvision(det, threshold):
    rng = np.random.default_rng(int(threshold * 10))
    boxes = _random_boxes(rng, 200)
    scores = rng.permutation(200).astype(np.float64) / 200  # distinct scores: a unique answer
    expected = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold).numpy()
    np.testing.assert_array_equal(det.nms(boxes, scores, threshold), expected)


@pytest.mark.todo("p1.mtcnn.nms")
def test_nms_min_mode_removes_a_box_inside_another(det):
    boxes = np.array([[0, 0, 100, 100], [10, 10, 30, 30], [200, 200, 210, 210]], dtype=float)
    scores = np.array([0.9, 0.95, 0.5])
    # IoU of the small box with the big one is 0.04 (kept by union), but it lies fully inside (min = 1).
    assert sorted(det.nms(boxes, scores, 0.7, mode="union").tolist()) == [0, 1, 2]
    assert det.nms(boxes, scores, 0.7, mode="min").tolist() == [1, 2]


@pytest.mark.todo("p1.mtcnn.pyramid")
def test_pyramid_scales_closed_form(det):
    scales = det.pyramid_scales(100, 120, min_face=20, factor=0.709)
    expected = [0.6 * 0.709**k for k in range(5)]  # 100 * 0.6 * 0.709^5 = 10.8 < 12 stops it
    np.testing.assert_allclose(scales, expected)
    assert det.pyramid_scales(11, 500) == []


@pytest.mark.todo("p1.mtcnn.pnet_stage")
def test_pnet_boxes_map_cells_back_to_the_image(det):
    prob = np.zeros((10, 12))
    prob[3, 5] = 0.9  # row 3 (y), column 5 (x)
    prob[7, 1] = 0.5  # below the threshold
    offsets = np.zeros((4, 10, 12))
    offsets[:, 3, 5] = [0.1, -0.1, 0.2, 0.0]
    boxes = det.pnet_boxes(prob, offsets, scale=0.5, threshold=0.6)
    # window [10, 22) x [6, 18) in the scaled image -> divide by 0.5
    np.testing.assert_allclose(boxes, [[20, 12, 44, 36, 0.9, 0.1, -0.1, 0.2, 0.0]])
    assert det.pnet_boxes(prob, offsets, 0.5, 0.95).shape == (0, 9)


@pytest.mark.todo("p1.mtcnn.bbox_reg")
def test_box_regression_scales_offsets_by_box_size(det):
    boxes = np.array([[10.0, 20.0, 50.0, 100.0]])  # w 40, h 80
    offsets = np.array([[0.1, -0.25, 0.5, 0.0]])
    np.testing.assert_allclose(det.apply_box_regression(boxes, offsets), [[14.0, 0.0, 70.0, 100.0]])


def test_network_layers_match_the_published_weights(det):
    import importlib.util
    from pathlib import Path

    folder = Path(importlib.util.find_spec("facenet_pytorch").origin).parent / "data"
    for net, name in ((det.PNet(), "pnet"), (det.RNet(), "rnet"), (det.ONet(), "onet")):
        published = torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True)
        ours = net.state_dict()
        assert list(ours) == list(published)
        assert all(ours[key].shape == published[key].shape for key in ours)


@pytest.mark.todo("p1.mtcnn.nms", "p1.mtcnn.pyramid", "p1.mtcnn.pnet_stage", "p1.mtcnn.bbox_reg")
def test_mtcnn_finds_the_astronaut(det):
    image = skimage.data.astronaut()
    detections = det.MTCNN().detect(image)
    assert detections, "no face found"
    best = detections[0]
    assert best.score > 0.99
    hog_box = dlib_models.detect_faces(image)[0]  # an independent detector as the reference
    iou = box_iou(torch.from_numpy(best.box[None]), torch.tensor([hog_box], dtype=torch.float64)).item()
    assert iou > 0.5, (best.box, hog_box)
    landmarks = dlib_models.landmarks68(image, hog_box)
    eyes = np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)])
    inter_ocular = np.linalg.norm(eyes[1] - eyes[0])
    assert np.linalg.norm(best.landmarks[:2] - eyes, axis=1).max() < 0.2 * inter_ocular
    mouth = landmarks[[48, 54]]
    assert np.linalg.norm(best.landmarks[3:] - mouth, axis=1).max() < 0.25 * inter_ocular


def test_hog_on_a_downscaled_frame_scales_boxes_back(det):
    image = skimage.data.astronaut()
    full = det.detect_faces_hog(image)[0]
    half = det.detect_faces_hog(np.kron(image, np.ones((2, 2, 1), np.uint8)), downscale=0.5)[0]
    np.testing.assert_allclose(np.array(half) / 2, full, atol=4)


def test_a_box_in_landmark_units_moves_and_scales_with_the_face(det):
    rng = np.random.default_rng(3)
    landmarks = rng.uniform(100, 200, size=(68, 2))
    box = (90.0, 110.0, 210.0, 230.0)
    relative = det.box_to_landmark_units(box, landmarks)
    np.testing.assert_allclose(det.box_from_landmark_units(relative, landmarks), box)
    moved = landmarks * 2 + np.array([30.0, -40.0])  # the face twice as large, elsewhere
    expected = np.array(box) * 2 + np.array([30.0, -40.0, 30.0, -40.0])
    np.testing.assert_allclose(det.box_from_landmark_units(relative, moved), expected)


@pytest.mark.todo(
    "p1.mtcnn.nms", "p1.mtcnn.pyramid", "p1.mtcnn.pnet_stage", "p1.mtcnn.bbox_reg", "p1.align.umeyama"
)
def test_extraction_with_mtcnn_boxes_gives_dlib_like_landmarks():
    faceset = load("phase1_face_swap", "faceset")
    image = skimage.data.astronaut()
    hog_landmarks = dlib_models.largest_face_landmarks(image)
    mtcnn_box = faceset.face_boxes(image, "mtcnn")[0]
    landmarks = dlib_models.landmarks68(image, tuple(int(round(v)) for v in mtcnn_box))
    inter_ocular = np.linalg.norm(hog_landmarks[36:42].mean(axis=0) - hog_landmarks[42:48].mean(axis=0))
    assert np.linalg.norm(landmarks - hog_landmarks, axis=1).mean() < 0.15 * inter_ocular
    faces = list(faceset.extract_faces([image], size=64, detector="mtcnn"))
    assert len(faces) == 1 and faces[0].crop.shape == (64, 64, 3)


@pytest.mark.todo("p1.mtcnn.nms")
def test_nms_keeps_a_box_whose_overlap_equals_the_threshold(det):
    """Only overlaps strictly above the threshold suppress (as torchvision.ops.nms)."""
    boxes = np.array([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]])  # IoU exactly 0.5
    scores = np.array([0.9, 0.8])
    want = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).numpy()
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.5), want)
    np.testing.assert_array_equal(det.nms(boxes, scores, 0.5), [0, 1])


def test_square_boxes_grow_to_the_longer_side_around_the_centre(det):
    got = det.square_boxes(np.array([[0.0, 0.0, 10.0, 4.0], [2.0, 0.0, 4.0, 8.0]]))
    np.testing.assert_allclose(got, [[0, -3, 10, 7], [-1, 0, 7, 8]])


@pytest.mark.todo("p1.mtcnn.nms", "p1.mtcnn.pyramid", "p1.mtcnn.pnet_stage", "p1.mtcnn.bbox_reg")
def test_each_mtcnn_stage_uses_its_own_score_threshold(det):
    image = skimage.data.astronaut()[::2, ::2]
    assert det.MTCNN(det.MTCNNConfig(thresholds=(0.6, 0.7, 0.7))).detect(image)
    assert det.MTCNN(det.MTCNNConfig(thresholds=(0.6, 1.01, 0.7))).detect(image) == []  # R-Net keeps none
    assert det.MTCNN(det.MTCNNConfig(thresholds=(0.6, 0.7, 1.01))).detect(image) == []  # O-Net keeps none


@pytest.mark.todo("p1.mtcnn.nms", "p1.mtcnn.pyramid", "p1.mtcnn.pnet_stage", "p1.mtcnn.bbox_reg")
def test_mtcnn_finds_the_face_in_a_frame_that_is_not_square(det):
    image = np.ascontiguousarray(skimage.data.astronaut()[:224])  # 224 tall, 512 wide
    best = det.MTCNN().detect(image)[0]
    hog_box = dlib_models.detect_faces(image)[0]
    iou = box_iou(torch.from_numpy(best.box[None]), torch.tensor([hog_box], dtype=torch.float64)).item()
    assert best.score > 0.99 and iou > 0.5, (best.box, hog_box)
