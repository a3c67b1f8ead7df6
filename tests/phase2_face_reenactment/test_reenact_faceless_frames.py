"""Frames without a face in the target video: left as they are, not painted with borrowed landmarks."""

from __future__ import annotations

import numpy as np
import pytest

from common.synthetic import make_identity, render_clip
from phase2_face_reenactment.reenact import Track, render_warp


@pytest.mark.todo("p2.video")
def test_a_target_frame_without_a_face_passes_through_unchanged():
    driver = render_clip(make_identity(31), frames=3, size=160, seed=1, speech=False)
    target = render_clip(make_identity(32), frames=3, size=160, seed=2, speech=False)
    target_frames = list(target.frames)
    target_frames[1] = np.full_like(target_frames[1], 90)  # the person stepped out of the frame
    found = np.array([True, False, True])
    lm = target.landmarks.astype(np.float64)  # (3, 68, 2); frame 1's borrowed from frame 0, as tracked
    lm[1] = lm[0]
    new = lm + np.array([0.0, 3.0])  # every face redrawn a little lower
    driver_track = Track(driver.landmarks, np.ones(3, bool))
    out = list(render_warp(iter(driver.frames), iter(target_frames), driver_track, Track(lm, found), new))
    np.testing.assert_array_equal(out[1], target_frames[1])
    assert np.abs(out[0].astype(int) - target_frames[0]).mean() > 0.1  # the faces are redrawn
