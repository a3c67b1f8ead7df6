"""Face sets: box filtering, frame selection, the media a folder holds and the faces.json checks."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from common.errors import UserError
from common.impl import load
from consent_and_watermark import writer


@pytest.fixture
def faceset():
    return load("phase1_face_swap", "faceset")


def test_resizing_a_faceset_scales_its_landmarks_with_the_crops(faceset):
    landmarks = np.full((2, 68, 2), 30.0)
    small = faceset.FaceSet(np.zeros((2, 64, 64, 3), np.uint8), landmarks, 0.7).resized(32)
    assert small.crops.shape == (2, 32, 32, 3) and small.size == 32 and small.coverage == 0.7
    np.testing.assert_allclose(small.landmarks, 15.0)


def test_faces_narrower_or_shorter_than_the_minimum_are_dropped(faceset, monkeypatch):
    side = faceset.MIN_FACE_PX
    boxes = [(0, 0, 3 * side, side), (0, 0, side - 1, 5 * side), (10, 10, 10 + side, 10 + side)]
    monkeypatch.setattr(faceset, "detect_faces_hog", lambda frame, upsample: boxes)
    assert faceset.face_boxes(np.zeros((8, 8, 3), np.uint8)) == [boxes[0], boxes[2]]


def test_mtcnn_boxes_come_largest_first(faceset, monkeypatch):
    found = [(0, 0, 50, 50), (0, 0, 90, 90), (0, 0, 60, 70)]
    monkeypatch.setattr(faceset, "MTCNN", lambda: SimpleNamespace(
        detect=lambda frame: [SimpleNamespace(box=box) for box in found]))
    assert faceset.face_boxes(np.zeros((8, 8, 3), np.uint8), "mtcnn") == [found[1], found[2], found[0]]


def test_a_frame_where_the_identity_filter_finds_nobody_gives_no_face(faceset, monkeypatch):
    monkeypatch.setattr(faceset, "face_boxes", lambda frame, detector, upsample: [(0, 0, 50, 50)])
    monkeypatch.setattr(faceset, "landmarks68", lambda frame, box: np.zeros((68, 2)))
    monkeypatch.setattr(faceset, "align_face", lambda frame, lm, size, coverage: (frame, None, lm))
    chooser = SimpleNamespace(pick=lambda frame, candidates: None if frame[0, 0, 0] else 0)
    frames = [np.full((4, 4, 3), value, np.uint8) for value in (0, 1, 0, 1, 0)]
    assert [f.frame for f in faceset.extract_faces(frames, identity_filter=chooser)] == [0, 2, 4]


def test_media_files_of_a_folder_take_any_case_of_suffix(faceset, tmp_path):
    for name in ("b.PNG", "a.Mp4", "notes.txt", "c.jpg"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in faceset.media_files(tmp_path)] == ["a.Mp4", "b.PNG", "c.jpg"]


def _faceset_folder(folder, sizes=(16,), coverage=0.6, landmarks=None):
    """An extract.py-like folder: one grey crop per size, its landmarks and `coverage` in faces.json."""
    folder.mkdir()
    faces = []
    for i, size in enumerate(sizes):
        writer.save_image(folder / f"face_{i}.png", np.full((size, size, 3), 100, np.uint8), label=False)
        faces.append({"file": f"face_{i}.png", "landmarks": landmarks or [[1.0, 2.0]] * 68})
    (folder / "faces.json").write_text(json.dumps({"coverage": coverage, "faces": faces}))
    return folder


def test_a_faceset_index_is_checked_before_its_crops_are_read(faceset, tmp_path):
    loaded = faceset.load_faceset(_faceset_folder(tmp_path / "ok"), 8)
    assert loaded.crops.shape == (1, 8, 8, 3) and loaded.landmarks[0, 0].tolist() == [0.5, 1.0]
    with pytest.raises(UserError, match="a coverage or a face entry is malformed"):
        faceset.load_faceset(_faceset_folder(tmp_path / "five", landmarks=[[1.0, 2.0]] * 5), 16)
    with pytest.raises(UserError, match="a coverage or a face entry is malformed"):
        faceset.load_faceset(_faceset_folder(tmp_path / "text", coverage="0.6"), 16)
    with pytest.raises(UserError, match="extracted with coverage 0.6, not 0.62"):
        faceset.load_faceset(_faceset_folder(tmp_path / "other"), 16, coverage=0.62)
    with pytest.raises(UserError, match="holds no faces"):
        faceset.load_faceset(_faceset_folder(tmp_path / "none", sizes=()), 16)
    with pytest.raises(UserError, match="differ in size"):
        faceset.load_faceset(_faceset_folder(tmp_path / "mixed", sizes=(16, 16, 24)), 16)
