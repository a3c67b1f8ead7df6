"""dlib wrappers: models found without importing face_recognition_models, loaded once, clear errors."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from common import dlib_models
from common.errors import UserError
from common.synthetic import make_identity, neutral_pose, render_frame


@pytest.fixture(scope="module")
def face():
    return render_frame(make_identity(1), neutral_pose(), np.zeros(6), size=256)


def test_model_files_are_found():
    for name in (dlib_models.SHAPE_68, dlib_models.SHAPE_5, dlib_models.DESCRIPTOR):
        assert dlib_models.model_path(name).stat().st_size > 1_000_000


def test_each_model_is_loaded_once():
    assert dlib_models.hog_detector() is dlib_models.hog_detector()
    assert dlib_models.shape_predictor_68() is dlib_models.shape_predictor_68()
    assert dlib_models.shape_predictor_5() is dlib_models.shape_predictor_5()
    assert dlib_models.shape_predictor_68.cache_info().currsize == 1


def test_missing_model_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.setattr(dlib_models, "models_dir", lambda: tmp_path)
    with pytest.raises(UserError, match="missing"):
        dlib_models.model_path(dlib_models.SHAPE_68)


def test_blank_image_has_no_face():
    assert dlib_models.detect_faces(np.full((200, 200, 3), 128, np.uint8)) == []
    assert dlib_models.largest_face_landmarks(np.zeros((120, 120, 3), np.uint8)) is None


def test_bad_images_are_user_errors():
    with pytest.raises(UserError):
        dlib_models.detect_faces(np.zeros((50, 50), np.uint8))
    with pytest.raises(UserError):
        dlib_models.detect_faces(np.zeros((50, 50, 3), np.float32))


def test_landmarks_and_descriptor_shapes(face):
    rgb, truth = face
    box = dlib_models.detect_faces(rgb)[0]
    lm68 = dlib_models.landmarks68(rgb, box)
    lm5 = dlib_models.landmarks5(rgb, box)
    assert lm68.shape == (68, 2) and lm5.shape == (5, 2)
    iod = np.linalg.norm(truth[36] - truth[45])
    assert np.abs(lm68 - truth).mean() < 0.1 * iod
    # The 5-point model marks the four eye corners and the base of the nose: near 36, 39, 42, 45, 33.
    corners = truth[[36, 39, 42, 45]]
    nearest = np.linalg.norm(lm5[:4, None] - corners[None], axis=2).min(axis=1)
    assert nearest.max() < 0.15 * iod
    from_box = dlib_models.face_descriptor(rgb, box)
    from_points = dlib_models.face_descriptor(rgb, lm68)
    assert from_box.shape == (128,) and from_points.shape == (128,)
    assert np.linalg.norm(from_box - from_points) < 0.3  # same face, slightly different alignment
    with pytest.raises(UserError):
        dlib_models.face_descriptor(rgb, np.zeros((7, 2)))


def _rect(left: int, top: int, right: int, bottom: int) -> SimpleNamespace:
    """What dlib's detector returns per face: a rectangle with four getters."""
    return SimpleNamespace(left=lambda: left, top=lambda: top, right=lambda: right, bottom=lambda: bottom)


def test_detect_faces_puts_the_largest_face_first(monkeypatch):
    small, large = _rect(0, 0, 20, 20), _rect(30, 30, 90, 90)
    monkeypatch.setattr(dlib_models, "hog_detector", lambda: lambda rgb, upsample: [small, large])
    assert dlib_models.detect_faces(np.zeros((100, 100, 3), np.uint8)) == [(30, 30, 90, 90), (0, 0, 20, 20)]


def test_a_four_channel_image_is_a_user_error():
    with pytest.raises(UserError, match="RGB"):
        dlib_models.detect_faces(np.zeros((50, 50, 4), np.uint8))


def test_the_largest_face_is_the_one_of_largest_area_not_the_widest(monkeypatch):
    tall, wide = _rect(0, 0, 20, 100), _rect(30, 30, 70, 60)  # 2000 px^2 against 1200 px^2
    monkeypatch.setattr(dlib_models, "hog_detector", lambda: lambda rgb, upsample: [wide, tall])
    assert dlib_models.detect_faces(np.zeros((100, 100, 3), np.uint8))[0] == (0, 0, 20, 100)


def test_largest_face_landmarks_are_those_of_the_first_box(monkeypatch):
    boxes = [(30, 30, 90, 90), (0, 0, 20, 20)]
    monkeypatch.setattr(dlib_models, "detect_faces", lambda rgb, upsample=0: boxes)
    monkeypatch.setattr(dlib_models, "landmarks68", lambda rgb, box: np.full((68, 2), box[0], np.float64))
    assert dlib_models.largest_face_landmarks(np.zeros((100, 100, 3), np.uint8))[0, 0] == 30


def test_each_thread_gets_its_own_hog_detector():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        other = pool.submit(dlib_models.hog_detector).result()
    assert other is not dlib_models.hog_detector()
