"""Detecting the face on every k-th frame only (`BoxConfig.detect_every`, `wav2lip.py --detect-every`)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from common.errors import UserError
from phase4_audio_driven import pipeline, wav2lip
from phase4_audio_driven.pipeline import SKIPPED


def test_skipped_frames_move_linearly_between_detections_and_keep_the_last_box_at_the_end():
    a, b = (0, 0, 10, 10), (30, 30, 40, 40)
    stream = [(0, a), (1, SKIPPED), (2, SKIPPED), (3, b), (4, SKIPPED)]
    out = list(pipeline.interpolate_skipped(stream))
    assert [i for i, _ in out] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose([box for _, box in out],
                               [a, (10, 10, 20, 20), (20, 20, 30, 30), b, b])


def test_skipped_frames_next_to_a_faceless_frame_take_the_box_of_the_side_that_has_one():
    a = (0, 0, 10, 10)
    out = list(pipeline.interpolate_skipped([(0, None), (1, SKIPPED), (2, a), (3, SKIPPED), (4, None)]))
    assert [box for _, box in out] == [None, a, a, a, None]


def moving_face_frames(n: int) -> list[np.ndarray]:
    """(100, 100, 3) frames whose first pixel holds the frame index (the fake detector reads it)."""
    frames = [np.zeros((100, 100, 3), np.uint8) for _ in range(n)]
    for i, frame in enumerate(frames):
        frame[0, 0, 0] = i
    return frames


def test_detecting_every_third_frame_calls_the_detector_a_third_as_often_with_the_same_boxes():
    calls = []

    def detect(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        i = int(rgb[0, 0, 0])
        calls.append(i)
        return [(2 * i, 10, 2 * i + 20, 50)]  # a face moving 2 px per frame

    frames = moving_face_frames(10)
    every = pipeline.face_boxes(frames, pipeline.BoxConfig(), smooth=False, detect=detect)
    assert sorted(calls) == list(range(10))
    calls.clear()
    third = pipeline.face_boxes(frames, pipeline.BoxConfig(detect_every=3), smooth=False, detect=detect)
    assert sorted(calls) == [0, 3, 6, 9]
    np.testing.assert_array_equal(third, every)  # linear motion is interpolated exactly


def test_the_faceless_frame_count_says_it_is_a_lower_bound_when_frames_were_skipped(caplog):
    def detect(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        return [] if int(rgb[0, 0, 0]) >= 5 else [(10, 10, 30, 50)]  # the face leaves at frame 5

    frames = moving_face_frames(10)
    with caplog.at_level(logging.WARNING, logger=pipeline.log.name):
        pipeline.face_boxes(frames, pipeline.BoxConfig(), detect=detect)
    assert "no face in 5 of 10 frames:" in caplog.text  # every frame looked at: the exact count
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=pipeline.log.name):
        pipeline.face_boxes(frames, pipeline.BoxConfig(detect_every=3), detect=detect)
    # frames 0, 3, 6, 9 looked at; 4 and 5 take frame 3's box, 7 and 8 have none on either side
    assert "no face in 4 of 10 frames (at least: the detector looked at one frame in 3)" in caplog.text


def test_the_command_line_refuses_detect_every_below_one(tmp_path):
    face, audio = tmp_path / "face.mp4", tmp_path / "speech.wav"
    face.touch()
    audio.touch()
    with pytest.raises(UserError, match="--detect-every"):
        wav2lip.main(["--face", str(face), "--audio", str(audio), "--checkpoint", str(face),
                      "--output", str(tmp_path / "out.mp4"), "--detect-every", "0"])


def test_smoothed_boxes_are_rounded_to_the_nearest_pixel_not_truncated():
    def detect(rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        i = int(rgb[0, 0, 0])
        return [(i * i, 10, i * i + 20, 50)]  # left 0, 1, 4, 9, 16: window means with thirds

    cfg = pipeline.BoxConfig(pads=(0, 0, 0, 0), chin_margin=0.0, smooth_window=3)
    boxes = pipeline.face_boxes(moving_face_frames(5), cfg, detect=detect)
    # means 5/3, 14/3, 29/3, then the last full window (29/3) twice
    assert boxes[:, 0].tolist() == [2, 5, 10, 10, 10]
    assert boxes[:, 2].tolist() == [22, 25, 30, 30, 30]
