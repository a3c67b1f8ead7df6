"""dlib's classic face models, each loaded once and shared by the whole project.

Four models are used across the phases:

* the HOG + linear SVM frontal face detector (Dalal & Triggs 2005, as trained in dlib),
* the 68-point shape predictor (an ensemble of regression trees, Kazemi & Sullivan 2014,
  trained on iBUG 300-W: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67),
* the 5-point shape predictor (eye corners and the bottom of the nose), which places a detected
  face for the descriptor,
* the 128-D face descriptor (a ResNet trained for face verification; two photos of the same
  person sit closer than about 0.6 in Euclidean distance).

The model files come from the `face-recognition-models` package. We only *locate* its folder with
`importlib.util.find_spec` and never import it, because its `__init__` imports `pkg_resources`,
which recent setuptools no longer ships.

Licence note: the package says CC0, but dlib's model page says the 68-point model (trained on iBUG
300-W) is not for use in commercial products. The 5-point model carries no such note.

Images are `(H, W, 3)` uint8 RGB; boxes are `(left, top, right, bottom)` pixel tuples.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from common.errors import UserError

Box = tuple[int, int, int, int]

SHAPE_68 = "shape_predictor_68_face_landmarks.dat"
SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR = "dlib_face_recognition_resnet_model_v1.dat"


def models_dir() -> Path:
    """Folder holding dlib's `.dat` files (inside the installed `face_recognition_models`)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise UserError(
            "dlib model files not found: install face-recognition-models==0.3.0 (see requirements.txt)"
        )
    return Path(spec.origin).parent / "models"


def model_path(name: str) -> Path:
    """Path of one model file, or UserError if it is missing."""
    path = models_dir() / name
    if not path.is_file():
        raise UserError(f"dlib model file missing: {path} (reinstall face-recognition-models==0.3.0)")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - dlib-bin is pinned in requirements.txt
        raise UserError("dlib is not installed: install dlib-bin (see requirements.txt)") from exc
    return dlib


_per_thread = threading.local()


def hog_detector():
    """dlib's HOG frontal face detector, one per thread: dlib's detectors keep scratch state while they
    run, so threads must not share one (common.parallel runs detection on a pool of threads)."""
    detector = getattr(_per_thread, "hog", None)
    if detector is None:
        detector = _per_thread.hog = _dlib().get_frontal_face_detector()
    return detector


# Each loader below runs once per process; later calls return the same object.


@lru_cache(maxsize=1)
def shape_predictor_68():
    """dlib's 68-point shape predictor (iBUG 300-W ordering)."""
    return _dlib().shape_predictor(str(model_path(SHAPE_68)))


@lru_cache(maxsize=1)
def shape_predictor_5():
    """dlib's 5-point shape predictor (points 0-1 one eye's corners, 2-3 the other's, 4 under the nose)."""
    return _dlib().shape_predictor(str(model_path(SHAPE_5)))


@lru_cache(maxsize=1)
def descriptor_model():
    """dlib's ResNet face recognition model (128-D descriptor)."""
    return _dlib().face_recognition_model_v1(str(model_path(DESCRIPTOR)))


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise UserError(f"expected an (H, W, 3) RGB image, got shape {getattr(rgb, 'shape', None)}")
    if rgb.dtype != np.uint8:
        raise UserError(f"expected a uint8 image, got {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _rect(box: Box):
    left, top, right, bottom = (int(round(v)) for v in box)
    return _dlib().rectangle(left, top, right, bottom)


def detect_faces(rgb: np.ndarray, upsample: int = 0) -> list[Box]:
    """Boxes of the faces HOG finds, largest first. `upsample` > 0 finds smaller faces (slower)."""
    rects = hog_detector()(_check_rgb(rgb), upsample)
    boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
    return sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)


def _shape_to_array(shape) -> np.ndarray:
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def landmarks68(rgb: np.ndarray, box: Box) -> np.ndarray:
    """68 landmarks `(68, 2)` float (x, y) in pixels for the face in `box`."""
    return _shape_to_array(shape_predictor_68()(_check_rgb(rgb), _rect(box)))


def landmarks5(rgb: np.ndarray, box: Box) -> np.ndarray:
    """5 landmarks `(5, 2)` float (x, y) in pixels for the face in `box`."""
    return _shape_to_array(shape_predictor_5()(_check_rgb(rgb), _rect(box)))


def _full_object_detection(points: np.ndarray):
    dlib = _dlib()
    points = np.asarray(points, dtype=np.float64)
    if points.shape not in ((68, 2), (5, 2)):
        raise UserError(f"landmarks must be (68, 2) or (5, 2), got {points.shape}")
    left, top = np.floor(points.min(axis=0)).astype(int)
    right, bottom = np.ceil(points.max(axis=0)).astype(int)
    parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points])
    return dlib.full_object_detection(dlib.rectangle(left, top, right, bottom), parts)


def face_descriptor(rgb: np.ndarray, box_or_landmarks: Box | np.ndarray) -> np.ndarray:
    """128-D identity descriptor `(128,)` float64 for one face.

    Pass either a box (the 5-point predictor then finds the alignment points, as dlib recommends)
    or landmarks `(68, 2)` / `(5, 2)` you already have.
    """
    rgb = _check_rgb(rgb)
    arr = np.asarray(box_or_landmarks)
    if arr.shape == (4,):
        shape = shape_predictor_5()(rgb, _rect(tuple(arr.tolist())))
    else:
        shape = _full_object_detection(arr)
    return np.array(descriptor_model().compute_face_descriptor(rgb, shape), dtype=np.float64)


def largest_face_landmarks(rgb: np.ndarray, upsample: int = 0) -> np.ndarray | None:
    """Landmarks `(68, 2)` of the largest face HOG finds, or None when it finds none."""
    boxes = detect_faces(rgb, upsample)
    return landmarks68(rgb, boxes[0]) if boxes else None
