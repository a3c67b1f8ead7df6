"""Finding faces: dlib's HOG detector, and MTCNN written from scratch with its published weights.

Two detectors, two eras of computer vision:

* **HOG + linear SVM** (Dalal & Triggs 2005, as trained in dlib): a sliding window over histograms of
  gradient orientations. Fast on a CPU, frontal faces only. We call it through `common.dlib_models`.
* **MTCNN** (Zhang et al. 2016, "Joint Face Detection and Alignment using Multitask Cascaded
  Convolutional Networks", IEEE SPL 23(10)): a cascade of three small CNNs.
    1. P-Net (proposal) runs fully convolutionally over an **image pyramid**; every output cell is a
       12 x 12 window with a face probability and a **bounding-box regression** offset.
    2. R-Net (refine) rescores 24 x 24 crops of the surviving boxes and regresses them again.
    3. O-Net (output) does the same on 48 x 48 crops and also predicts **5 landmarks** (eyes, nose,
       mouth corners).
  Between stages, **non-maximum suppression** (NMS) removes overlapping duplicates.

The MTCNN weights are the published ones (converted from the authors' Caffe models), shipped as plain
state_dicts in the `facenet-pytorch==2.5.3` wheel. We only read those files; the layer names below
match their keys exactly, which is all "checkpoint compatibility" needs.

Boxes are `(x1, y1, x2, y2)` floats in pixels of the input image; images are `(H, W, 3)` uint8 RGB.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from common import dlib_models
from common.errors import UserError

# ----------------------------------------------------------------------------------------------
# HOG (dlib) and the 68 landmarks
# ----------------------------------------------------------------------------------------------


def detect_faces_hog(rgb: np.ndarray, upsample: int = 0, downscale: float = 1.0) -> list[tuple[int, ...]]:
    """Face boxes `(left, top, right, bottom)` from dlib's HOG detector, largest first.

    `downscale` < 1 runs the detector on a smaller copy (much faster on 720p) and scales the boxes
    back; faces narrower than about 80 px * downscale are then missed.
    """
    if downscale >= 1.0:
        return dlib_models.detect_faces(rgb, upsample)
    small = cv2.resize(rgb, None, fx=downscale, fy=downscale, interpolation=cv2.INTER_AREA)
    boxes = dlib_models.detect_faces(small, upsample)
    return [tuple(int(round(v / downscale)) for v in box) for box in boxes]


def landmarks68(rgb: np.ndarray, box) -> np.ndarray:
    """dlib's 68 landmarks `(68, 2)` for the face in `box` (any detector's box works)."""
    return dlib_models.landmarks68(rgb, tuple(int(round(v)) for v in box[:4]))


# Tracking between detections re-fits the 68 landmarks inside a box carried over from the last frame.
# dlib's predictor was trained on HOG boxes, and a tight box around the landmarks (lower and narrower)
# makes its answers drift; so the last HOG box is stored relative to its landmarks (origin: the centre
# of the eye corners, unit: the outer-eye-corner distance) and moves and scales with them.


def landmark_frame(landmarks: np.ndarray) -> tuple[np.ndarray, float]:
    """Origin (2,) and unit of a face that move and scale with it: eye-corner centre, outer-eye distance."""
    centre = landmarks[[36, 39, 42, 45]].mean(axis=0)
    return centre, float(np.linalg.norm(landmarks[45] - landmarks[36]))


def box_to_landmark_units(box: tuple[float, ...], landmarks: np.ndarray) -> np.ndarray:
    """A box `(left, top, right, bottom)` in pixels -> (4,) relative to `landmarks`' `landmark_frame`."""
    centre, unit = landmark_frame(landmarks)
    return (np.asarray(box, dtype=np.float64) - np.tile(centre, 2)) / unit


def box_from_landmark_units(relative: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Inverse of `box_to_landmark_units`: the box (4,) in pixels for the face with these landmarks."""
    centre, unit = landmark_frame(landmarks)
    return np.tile(centre, 2) + relative * unit


# ----------------------------------------------------------------------------------------------
# MTCNN: the three networks (layer names = keys of the published state_dicts)
# ----------------------------------------------------------------------------------------------


class PNet(nn.Module):
    """Proposal net: fully convolutional, a 12 x 12 receptive field, stride 2 on the input."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not face
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, H, W) normalised -> face probability (B, H', W'), offsets (B, 4, H', W')."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return torch.softmax(self.conv4_1(x), dim=1)[:, 1], self.conv4_2(x)


class RNet(nn.Module):
    """Refine net on 24 x 24 crops."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, 24, 24) -> face probability (B,), offsets (B, 4)."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x))  # (B, 64, 3, 3)
        # The weights come from a framework that flattened (W, H, C): flatten in that order too.
        x = self.prelu4(self.dense4(x.permute(0, 3, 2, 1).flatten(1)))
        return torch.softmax(self.dense5_1(x), dim=1)[:, 1], self.dense5_2(x)


class ONet(nn.Module):
    """Output net on 48 x 48 crops: score, box offsets and 5 landmarks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)  # x of the 5 points, then y of the 5 points

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 3, 48, 48) -> face probability (B,), offsets (B, 4), landmarks (B, 10) relative to the box."""
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))  # (B, 128, 3, 3)
        x = self.prelu5(self.dense5(x.permute(0, 3, 2, 1).flatten(1)))
        return torch.softmax(self.dense6_1(x), dim=1)[:, 1], self.dense6_2(x), self.dense6_3(x)


def mtcnn_weights_dir() -> Path:
    """Folder of `pnet.pt`, `rnet.pt`, `onet.pt` inside the installed facenet-pytorch wheel (not imported)."""
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.origin is None:
        raise UserError("MTCNN weights not found: install facenet-pytorch==2.5.3 (see requirements.txt)")
    return Path(spec.origin).parent / "data"


@lru_cache(maxsize=1)
def load_mtcnn_nets() -> tuple[PNet, RNet, ONet]:
    """The three networks with the published weights, in eval mode (loaded once per process)."""
    nets = (PNet(), RNet(), ONet())
    for net, name in zip(nets, ("pnet", "rnet", "onet"), strict=True):
        path = mtcnn_weights_dir() / f"{name}.pt"
        if not path.is_file():
            raise UserError(f"MTCNN weight file missing: {path} (reinstall facenet-pytorch==2.5.3)")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        net.eval()
    return nets


# ----------------------------------------------------------------------------------------------
# MTCNN: the algorithmic pieces
# ----------------------------------------------------------------------------------------------


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, mode: str = "union") -> np.ndarray:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    `boxes` (N, 4) as (x1, y1, x2, y2), `scores` (N,). `mode="union"` uses intersection over union;
    `mode="min"` uses intersection over the smaller box (MTCNN's last stage, which removes a small
    box lying inside a big one).
    """
    # TODO p1.mtcnn.nms: Keep the best box, drop every box overlapping it by more than the threshold, repeat.
    # Hint: sort by score descending; area = (x2 - x1) * (y2 - y1) (no +1, as torchvision.ops.nms);
    # Hint: intersection = clip(min(x2) - max(x1), 0) * clip(min(y2) - max(y1), 0), vectorised against the
    # Hint: rest;
    # Hint: a box is dropped when overlap > threshold (strictly); returns int64 (K,), scores descending.
    # Hint: tests/phase1_face_swap/test_face_detector.py compares with torchvision.ops.nms.
    # BEGIN SOLUTION p1.mtcnn.nms
    boxes = np.asarray(boxes, dtype=np.float64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        width = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]), 0, None)
        height = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]), 0, None)
        inter = width * height
        if mode == "min":
            overlap = inter / np.minimum(areas[best], areas[rest])
        else:
            overlap = inter / (areas[best] + areas[rest] - inter)
        order = rest[overlap <= iou_threshold]
    return np.array(keep, dtype=np.int64)
    # END SOLUTION


def pyramid_scales(height: int, width: int, min_face: float = 20.0, factor: float = 0.709) -> list[float]:
    """Scales of the image pyramid: P-Net's 12 px window must see faces from `min_face` px up.

    The first scale maps a `min_face` face onto 12 px; each next scale shrinks by `factor` (area
    halves every two levels, since 0.709^2 ~ 0.5) until the short side would drop below 12 px.
    """
    # TODO p1.mtcnn.pyramid: List the pyramid scales m * factor^k while min(height, width) * scale >= 12.
    # Hint: m = 12 / min_face (Zhang et al. 2016, sec. II-A: "resize it to different scales to build an
    # Hint: image pyramid"); e.g. 100 x 100 with min_face 20 gives [0.6, 0.4254, 0.3016, 0.2139, 0.1516].
    # BEGIN SOLUTION p1.mtcnn.pyramid
    scale = 12.0 / min_face
    scales = []
    while min(height, width) * scale >= 12:
        scales.append(scale)
        scale *= factor
    return scales
    # END SOLUTION


def pnet_boxes(prob: np.ndarray, offsets: np.ndarray, scale: float, threshold: float,
               stride: int = 2, cell: int = 12) -> np.ndarray:
    """Turn one pyramid level's P-Net output into candidate boxes in input-image pixels.

    `prob` (H', W') face probability, `offsets` (4, H', W'). Cell (row i, column j) is the window
    `[stride*j, stride*j + cell) x [stride*i, stride*i + cell)` of the *scaled* image; dividing by
    `scale` maps it back. Returns (K, 9): x1, y1, x2, y2, score, then the 4 offsets of that cell.
    """
    # TODO p1.mtcnn.pnet_stage: Keep the cells with prob >= threshold and map their windows back to the image.
    # Hint: rows, cols = np.nonzero(prob >= threshold); x1 = stride * cols / scale, y1 = stride * rows /
    # Hint: scale,
    # Hint: x2 = (stride * cols + cell) / scale, y2 likewise; pitfall: rows are y and columns are x.
    # Hint: stack [x1, y1, x2, y2, prob[rows, cols], offsets[:, rows, cols].T] -> (K, 9).
    # BEGIN SOLUTION p1.mtcnn.pnet_stage
    rows, cols = np.nonzero(prob >= threshold)
    x1, y1 = stride * cols / scale, stride * rows / scale
    x2, y2 = (stride * cols + cell) / scale, (stride * rows + cell) / scale
    return np.column_stack([x1, y1, x2, y2, prob[rows, cols], offsets[:, rows, cols].T]).reshape(-1, 9)
    # END SOLUTION


def apply_box_regression(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Calibrate boxes (N, 4) with the network's offsets (N, 4), given in units of box width/height."""
    # TODO p1.mtcnn.bbox_reg: Move each edge by its offset times the box's width (x) or height (y).
    # Hint: Zhang et al. 2016 train the offsets with eq. 2; the released code scales them by the box size:
    # Hint: w = x2 - x1, h = y2 - y1; x1' = x1 + dx1 * w, y1' = y1 + dy1 * h, x2' = x2 + dx2 * w, y2' = y2 +
    # Hint: dy2 * h.
    # BEGIN SOLUTION p1.mtcnn.bbox_reg
    boxes = np.asarray(boxes, dtype=np.float64)
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)  # (N, 4): w, h, w, h
    return boxes + offsets * size
    # END SOLUTION


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Grow each box (N, 4) to a square around its centre (the next net wants square crops)."""
    centre = (boxes[:, :2] + boxes[:, 2:4]) / 2
    side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])[:, None] / 2
    return np.hstack([centre - side, centre + side])


def normalise(images: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 RGB -> (B, 3, H, W) float in about [-1, 1], as the published nets expect."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) / 128.0


def crop_boxes(rgb: np.ndarray, boxes: np.ndarray, size: int) -> np.ndarray:
    """Cut each box (zero padding where it leaves the image) and resize: (N, size, size, 3) uint8."""
    height, width = rgb.shape[:2]
    crops = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for k, (x1, y1, x2, y2) in enumerate(np.round(boxes[:, :4]).astype(int)):
        if x2 <= x1 or y2 <= y1:
            continue
        patch = np.zeros((y2 - y1, x2 - x1, 3), dtype=np.uint8)
        sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)
        if sx2 > sx1 and sy2 > sy1:
            patch[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = rgb[sy1:sy2, sx1:sx2]
        crops[k] = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA)
    return crops


@dataclass
class MTCNNConfig:
    """Detection settings (the published defaults)."""

    min_face: float = 20.0  # smallest face size in pixels
    factor: float = 0.709  # pyramid step
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)  # P-, R-, O-Net score thresholds


@dataclass
class Detection:
    """One face found by MTCNN."""

    box: np.ndarray  # (4,) x1, y1, x2, y2
    score: float
    landmarks: np.ndarray  # (5, 2): eye, eye, nose, mouth corner, mouth corner (x, y)


class MTCNN:
    """The three-stage cascade on one RGB image."""

    def __init__(self, config: MTCNNConfig | None = None):
        self.config = config or MTCNNConfig()
        self.pnet, self.rnet, self.onet = load_mtcnn_nets()

    @torch.no_grad()
    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """All faces in `rgb` (H, W, 3) uint8, best score first."""
        cfg = self.config
        height, width = rgb.shape[:2]
        # Stage 1: P-Net over the pyramid; NMS inside each level, then across levels.
        candidates = []
        for scale in pyramid_scales(height, width, cfg.min_face, cfg.factor):
            size = (max(int(np.ceil(width * scale)), 12), max(int(np.ceil(height * scale)), 12))
            level = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            prob, offsets = self.pnet(normalise(level[None]))  # (1, H', W'), (1, 4, H', W')
            boxes = pnet_boxes(prob[0].numpy(), offsets[0].numpy(), scale, cfg.thresholds[0])
            candidates.append(boxes[nms(boxes[:, :4], boxes[:, 4], 0.5)])
        boxes = np.concatenate(candidates) if candidates else np.zeros((0, 9))
        boxes = boxes[nms(boxes[:, :4], boxes[:, 4], 0.7)]
        boxes = square_boxes(apply_box_regression(boxes[:, :4], boxes[:, 5:9]))
        if not len(boxes):
            return []
        # Stage 2: R-Net rescoring and regression on 24 x 24 crops.
        prob, offsets = self.rnet(normalise(crop_boxes(rgb, boxes, 24)))
        keep = prob.numpy() >= cfg.thresholds[1]
        boxes, scores, offsets = boxes[keep], prob.numpy()[keep], offsets.numpy()[keep]
        keep = nms(boxes, scores, 0.7)
        boxes = square_boxes(apply_box_regression(boxes[keep], offsets[keep]))
        if not len(boxes):
            return []
        # Stage 3: O-Net on 48 x 48 crops, with the 5 landmarks.
        prob, offsets, points = (t.numpy() for t in self.onet(normalise(crop_boxes(rgb, boxes, 48))))
        keep = prob >= cfg.thresholds[2]
        boxes, scores, offsets, points = boxes[keep], prob[keep], offsets[keep], points[keep]
        sizes = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)  # (N, 2)
        landmarks = np.stack([points[:, :5], points[:, 5:]], axis=2) * sizes[:, None] + boxes[:, None, :2]
        boxes = apply_box_regression(boxes, offsets)
        keep = nms(boxes, scores, 0.7, mode="min")
        return [Detection(box=boxes[k], score=float(scores[k]), landmarks=landmarks[k]) for k in keep]
