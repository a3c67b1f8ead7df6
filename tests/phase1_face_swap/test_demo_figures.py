"""The phase-1 demo's pictures: the before/after strip and the guide's figures (the stage itself is slow)."""

from __future__ import annotations

import numpy as np
import pytest

from common.impl import load
from common.synthetic import make_identity, neutral_pose, render_frame
from phase1_face_swap import demo, figures


def test_before_after_strip_shows_evenly_spaced_frames_from_first_to_last_originals_on_top():
    before = np.arange(5, dtype=np.uint8)[:, None, None, None] * np.ones((5, 2, 3, 3), np.uint8)
    after = before + 100
    out = demo.before_after_strip(before, after, count=3)  # frames 0, 2 and 4
    assert out.shape == (4, 9, 3)
    for column, frame in enumerate((0, 2, 4)):
        assert (out[:2, 3 * column : 3 * column + 3] == frame).all()
        assert (out[2:, 3 * column : 3 * column + 3] == 100 + frame).all()


def test_step_pictures_of_a_frame_without_a_face_are_none(tmp_path):
    blank = np.full((120, 160, 3), 128, np.uint8)
    assert demo.step_pictures(blank, swapper=None, coverage=0.6, out_dir=tmp_path) == []
    assert not any(tmp_path.iterdir())


@pytest.mark.todo("p1.aug.random_warp")
def test_warp_figure_puts_one_picture_per_jitter_side_by_side_with_white_gaps_between():
    augment = load("phase1_face_swap", "augment")
    out = figures.warp_figure(size=32, jitters=(0.0, 0.02, 0.05), seed=0)
    assert out.shape == (32, 3 * 32 + 2 * 4, 3)  # no gap after the last picture
    assert (out[:, 32:36] == 255).all() and (out[:, 68:72] == 255).all()
    np.testing.assert_array_equal(out[:, :32], augment.warp_grid_picture(32, np.random.default_rng(0), 0.0))


@pytest.mark.todo("p1.blend.mask", "p1.blend.alpha")
def test_mask_figure_shows_hull_learned_mask_final_mask_and_blend_enlarged_to_192_px():
    losses = load("phase1_face_swap", "losses")
    crop, landmarks = render_frame(make_identity(1), neutral_pose(), np.zeros(6), size=64)
    learned = np.ones((64, 64), np.float32)
    out = figures.mask_figure(crop, landmarks, np.full_like(crop, 255), learned)
    assert out.shape == (192, 4 * 192, 3)  # 64 px crops enlarged 3x, pixels kept sharp
    panels = out[::3, ::3]  # one pixel of each 3 x 3 block
    hull = (losses.hull_mask(landmarks, 64) * 255).astype(np.uint8)
    np.testing.assert_array_equal(panels[:, :64], np.repeat(hull[..., None], 3, axis=2))
    assert (panels[:, 64:128] == 255).all()  # the learned mask: all face


@pytest.mark.todo("p1.align.umeyama")
def test_alignment_figure_is_the_frame_and_the_crop_at_the_same_height():
    face, landmarks = render_frame(make_identity(1), neutral_pose(), np.zeros(6), size=256)
    frame = np.concatenate([face, face[:, :64]], axis=1)  # 256 high, 320 wide
    out = figures.alignment_figure(frame, landmarks, size=128)
    assert out.shape == (128, 160 + 128, 3)  # the frame keeps its 5:4 shape, the crop is square
